//! Evaluator semantics: exact probabilities, kernel-exact statistic draws, nth counters,
//! affinity stickiness and eviction, conntrack reuse, forced (observed) branches, goto/RETURN,
//! marks, undecidable rules, and index equivalence at scale.

use hoptrace::netfilter::kube::{self, generate};
use hoptrace::netfilter::{
    self, NodeContext, NodeEvaluator, Packet, StatisticMatch, TraceOptions, Verdict,
    recent::RecentEventKind,
};
use std::net::IpAddr;
use std::sync::Arc;

const S: u64 = 1_000_000_000;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn rs(text: &str) -> netfilter::Ruleset {
    let (r, e) = netfilter::load(text.as_bytes(), "test.rules");
    assert!(e.is_empty(), "{e:?}");
    r
}

const THREE: &str = "*nat
:PREROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-A - [0:0]
:KUBE-SEP-1 - [0:0]
:KUBE-SEP-2 - [0:0]
:KUBE-SEP-3 - [0:0]
-A PREROUTING -j KUBE-SERVICES
-A KUBE-SERVICES -d 172.30.0.1/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-A
-A KUBE-SVC-A -m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-1
-A KUBE-SVC-A -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-2
-A KUBE-SVC-A -j KUBE-SEP-3
-A KUBE-SEP-1 -p tcp -m tcp -j DNAT --to-destination 10.0.0.1:8080
-A KUBE-SEP-2 -p tcp -m tcp -j DNAT --to-destination 10.0.0.2:8080
-A KUBE-SEP-3 -p tcp -m tcp -j DNAT --to-destination 10.0.0.3:8080
COMMIT
";

#[test]
fn exhaustive_probabilities_are_the_kernels_fixed_point_values() {
    let r = rs(THREE);
    let tr = netfilter::trace(
        &r,
        &NodeContext::default(),
        &Packet::tcp(ip("10.1.0.9"), Some(5555), ip("172.30.0.1"), 80),
        Default::default(),
    );
    let q0 = 715827883.0 / 2147483648.0; // round(0.3333333333 * 2^31)
    assert_eq!(StatisticMatch::stored_probability(0.3333333333), 715827883);
    assert_eq!(tr.endpoints.len(), 3);
    assert_eq!(tr.probability_of(ip("10.0.0.1"), 8080), q0);
    assert_eq!(tr.probability_of(ip("10.0.0.2"), 8080), (1.0 - q0) * 0.5);
    assert_eq!(tr.probability_of(ip("10.0.0.3"), 8080), (1.0 - q0) * 0.5);
    assert_eq!(&*tr.endpoints[1].chain, "KUBE-SEP-2");
    // Each endpoint has its own path, ending in its DNAT rule.
    let last = tr.outcomes[tr.endpoints[2].outcome]
        .path
        .iter()
        .rfind(|s| s.matched && s.rule > 0)
        .unwrap();
    assert_eq!((&*last.chain, last.rule), ("KUBE-SEP-3", 1));
}

#[test]
fn stateful_draws_follow_the_kernel_test_exactly() {
    let r = Arc::new(rs(THREE));
    let pkt = |port| Packet::tcp(ip("10.1.0.9"), Some(port), ip("172.30.0.1"), 80);
    // (rand & 0x7FFFFFFF) < 715827883 matches the first rule.
    let values = vec![
        715827882u32,
        715827883 | 0x8000_0000,
        1073741823 | 0x8000_0000,
        715827883,
        1073741824,
    ];
    let mut it = values.into_iter();
    let mut ev = NodeEvaluator::new(r, NodeContext::default(), move || {
        it.next().expect("enough values")
    });
    let d = ev.new_connection(&pkt(1), 0);
    assert_eq!(d.outcome.dnat.as_ref().unwrap().ip, ip("10.0.0.1"));
    assert_eq!(d.outcome.statistic[0].drawn, Some(715827882));
    let d = ev.new_connection(&pkt(2), 0);
    assert_eq!(
        d.outcome.dnat.as_ref().unwrap().ip,
        ip("10.0.0.2"),
        "high bit is masked off"
    );
    let d = ev.new_connection(&pkt(3), 0);
    assert_eq!(d.outcome.dnat.as_ref().unwrap().ip, ip("10.0.0.3"));
    assert_eq!(d.outcome.statistic.len(), 2);
}

#[test]
fn seeded_replay_is_deterministic_and_frequencies_match_probabilities() {
    let r = Arc::new(rs(THREE));
    let run = |seed| {
        let mut ev = NodeEvaluator::seeded(r.clone(), NodeContext::default(), seed);
        ev.record_path = false;
        (0..30000u32)
            .map(|i| {
                let p = Packet::tcp(
                    ip("10.1.0.9"),
                    Some((i % 60000) as u16 + 1),
                    ip("172.30.0.1"),
                    80,
                );
                ev.new_connection(&p, i as u64 * S).outcome.dnat.unwrap().ip
            })
            .collect::<Vec<_>>()
    };
    let a = run(7);
    assert_eq!(a, run(7));
    assert_ne!(a, run(8));
    for e in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
        let f = a.iter().filter(|x| **x == ip(e)).count() as f64 / a.len() as f64;
        assert!((f - 1.0 / 3.0).abs() < 0.015, "{e}: {f}");
    }
}

#[test]
fn retransmitted_syn_reuses_the_binding_without_drawing() {
    let r = Arc::new(rs(THREE));
    let mut n = 0;
    let mut ev = NodeEvaluator::new(r, NodeContext::default(), || {
        n += 1;
        0
    });
    let p = Packet::tcp(ip("10.1.0.9"), Some(4000), ip("172.30.0.1"), 80);
    let a = ev.new_connection(&p, 0);
    let b = ev.new_connection(&p, S);
    assert!(!a.reused && b.reused);
    assert_eq!(a.outcome.dnat, b.outcome.dnat);
    assert_eq!(a.outcome.source_nat, b.outcome.source_nat);
    assert!(b.outcome.path.is_empty());
    ev.close_connection(&b.key);
    assert!(!ev.new_connection(&p, 2 * S).reused);
    drop(ev);
    assert_eq!(
        n, 2,
        "one draw per evaluated connection (the first statistic rule matched both times)"
    );
}

#[test]
fn nth_mode_matches_every_nth_packet_from_packet() {
    let r = Arc::new(rs("*nat
:PREROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -m statistic --mode nth --every 3 --packet 1 -j DNAT --to-destination 10.0.0.1
COMMIT
"));
    let mut ev = NodeEvaluator::seeded(r, NodeContext::default(), 1);
    let hits: Vec<usize> = (0..9)
        .filter(|&i| {
            ev.new_connection(
                &Packet::tcp(ip("1.1.1.1"), Some(1000 + i as u16), ip("2.2.2.2"), 80),
                0,
            )
            .outcome
            .dnat
            .is_some()
        })
        .collect();
    assert_eq!(hits, [1, 4, 7]);
}

/// One Service with `endpoints` endpoints and ClientIP affinity (10800 s): its rules and itself.
fn affinity_service(endpoints: usize) -> (Arc<netfilter::Ruleset>, generate::GeneratedService) {
    let shape = generate::ClusterShape {
        services: 1,
        endpoints,
        affinity: Some(10800),
        ..Default::default()
    };
    let text = generate::generate(&shape);
    (Arc::new(rs(&text)), generate::services(&shape).remove(0))
}

#[test]
fn client_ip_affinity_sticks_until_timeout_and_rcheck_does_not_refresh() {
    let (r, svc) = affinity_service(3);
    let vip = IpAddr::V4(svc.cluster_ip);
    let mut ev = NodeEvaluator::seeded(r, NodeContext::new([ip("192.168.0.2")]), 42);
    let p = |port| Packet::tcp(ip("203.0.113.7"), Some(port), vip, 80);
    let first = ev.new_connection(&p(1000), 0);
    let chosen = first.outcome.dnat.clone().unwrap();
    assert!(first.outcome.recent_hits.is_empty());
    for (k, t) in [(1u16, 100 * S), (2, 10_000 * S), (3, 20_000 * S)] {
        let d = ev.new_connection(&p(1000 + k), t);
        assert_eq!(
            d.outcome.dnat.as_ref().unwrap().ip,
            chosen.ip,
            "connection {k} sticks"
        );
        assert_eq!(d.outcome.recent_hits, vec![chosen.chain.clone()]);
        assert!(
            d.outcome.statistic.is_empty(),
            "no draw when the sticky rule matches"
        );
    }
    // 10800 s after the last NEW connection (20000 s), the entry is stale: drawn again.
    let d = ev.new_connection(&p(2000), 30_801 * S);
    assert!(d.outcome.recent_hits.is_empty());
    assert!(!d.outcome.statistic.is_empty());
    // A pure rcheck (preview) never refreshes: the table still has the last set time.
    let table = d.outcome.dnat.as_ref().unwrap().chain.clone();
    let last_set = |ev: &NodeEvaluator| {
        ev.state()
            .recent_table(&table)
            .unwrap()
            .get(&ip("203.0.113.7"))
            .unwrap()
            .last_seen_ns
    };
    let before = last_set(&ev);
    let _ = ev.preview(&p(2001), 30_900 * S);
    let after = last_set(&ev);
    assert_eq!(before, after);
}

#[test]
fn the_101st_client_evicts_the_oldest_and_breaks_its_affinity() {
    let (r, svc) = affinity_service(1);
    let vip = IpAddr::V4(svc.cluster_ip);
    let mut ev = NodeEvaluator::seeded(r, NodeContext::default(), 3);
    let client = |i: u32| IpAddr::V4((0xCB00_7100 + i).into());
    for i in 0..100 {
        let d = ev.new_connection(&Packet::tcp(client(i), Some(40000), vip, 80), i as u64 * S);
        assert_eq!(d.evictions().count(), 0);
    }
    let d = ev.new_connection(&Packet::tcp(client(100), Some(40000), vip, 80), 100 * S);
    let ev_list: Vec<_> = d.evictions().collect();
    assert_eq!(ev_list.len(), 1);
    assert_eq!(ev_list[0].addr, client(0));
    assert_eq!(
        ev_list[0].kind,
        RecentEventKind::Evicted { last_seen_ns: 0 }
    );
}

#[test]
fn observed_endpoint_forces_the_branch_and_seeds_affinity() {
    let (r, svc) = affinity_service(3);
    let vip = IpAddr::V4(svc.cluster_ip);
    let target = (IpAddr::V4(svc.endpoints[2].0), svc.endpoints[2].1);
    let mut ev = NodeEvaluator::new(r, NodeContext::default(), || {
        panic!("a forced branch draws no random number")
    });
    let p = |port| Packet::tcp(ip("198.51.100.4"), Some(port), vip, 80);
    let d = ev.new_connection_observed(&p(1), 0, target).unwrap();
    assert!(d.forced);
    assert_eq!(
        (
            d.outcome.dnat.as_ref().unwrap().ip,
            d.outcome.dnat.as_ref().unwrap().port
        ),
        target
    );
    // The --set happened: the next connection sticks without drawing.
    let d2 = ev.new_connection(&p(2), S);
    assert_eq!(d2.outcome.dnat.unwrap().ip, target.0);
    // An endpoint the rules cannot reach is reported, and the state is left alone.
    let err = ev
        .new_connection_observed(&p(3), 2 * S, (ip("10.9.9.9"), 80))
        .unwrap_err();
    assert!(err.reachable.contains(&target.0.to_string()), "{err}");
}

#[test]
fn goto_return_marks_and_policies() {
    let r = rs("*mangle
:PREROUTING ACCEPT [0:0]
:A - [0:0]
:B - [0:0]
-A PREROUTING -j MARK --set-xmark 0x1/0xffffffff
-A PREROUTING -g A
-A PREROUTING -j MARK --set-xmark 0x99/0xffffffff
-A A -j B
-A A -j MARK --or-mark 0x10
-A B -j RETURN
-A B -j MARK --set-xmark 0x77/0xffffffff
COMMIT
*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m mark --mark 0x10/0x10 -j REJECT
COMMIT
");
    let ctx = NodeContext::new([ip("192.168.0.2")]);
    // Forwarded: mark 0x11 (goto A never returns to PREROUTING's third rule), then REJECT.
    let tr = netfilter::trace(
        &r,
        &ctx,
        &Packet::tcp(ip("1.1.1.1"), Some(1), ip("2.2.2.2"), 80),
        Default::default(),
    );
    assert_eq!(tr.verdict, Verdict::Reject);
    assert_eq!(tr.outcomes[0].mark, 0x11);
    // To the node: INPUT policy DROP.
    let tr = netfilter::trace(
        &r,
        &ctx,
        &Packet::tcp(ip("1.1.1.1"), Some(1), ip("192.168.0.2"), 80),
        Default::default(),
    );
    assert_eq!(tr.verdict, Verdict::Drop);
    assert!(matches!(
        tr.decided_by,
        Some(netfilter::DecidedBy::Policy { .. })
    ));
}

#[test]
fn unknown_matches_and_targets_are_undecided_not_guessed() {
    let r = rs("*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p udp -m hashlimit --hashlimit-above 5/sec --hashlimit-name x -j DROP
-A FORWARD -p tcp -m set --match-set blocked src -j DROP
COMMIT
");
    let ctx = NodeContext::default();
    // The hashlimit rule is not reached by TCP (protocol mismatch is decidable).
    let tr = netfilter::trace(
        &r,
        &ctx,
        &Packet::tcp(ip("1.1.1.1"), Some(1), ip("2.2.2.2"), 80),
        Default::default(),
    );
    assert_eq!(tr.verdict, Verdict::Undecided);
    let u = tr.outcomes[0].undecided.as_ref().unwrap();
    assert_eq!(u.rule.rule, 2);
    assert!(u.reason.contains("-m set"), "{}", u.reason);
    // The printer keeps the unknown matches verbatim.
    let printed = netfilter::print::save(&r, Default::default());
    assert!(
        printed.contains("-m set --match-set blocked src -j DROP"),
        "{printed}"
    );
}

#[test]
fn indexed_dispatch_gives_the_same_answers_as_a_linear_scan() {
    let shape = generate::ClusterShape {
        services: 400,
        endpoints: 3,
        ..Default::default()
    };
    let text = generate::generate(&shape);
    let indexed = rs(&text);
    let linear = indexed.clone().without_indexes();
    let ctx = NodeContext::new([ip("192.168.0.2")]);
    let svcs = generate::services(&shape);
    let mut packets = Vec::new();
    for (i, s) in svcs.iter().enumerate().step_by(7) {
        packets.push(Packet::tcp(
            ip("203.0.113.9"),
            Some(1000 + i as u16),
            IpAddr::V4(s.cluster_ip),
            80,
        ));
        packets.push(Packet::tcp(
            ip("203.0.113.9"),
            Some(1000 + i as u16),
            IpAddr::V4(s.cluster_ip),
            81,
        ));
        packets.push(Packet::tcp(
            ip("203.0.113.9"),
            Some(1000 + i as u16),
            ip("192.168.0.2"),
            s.node_port,
        ));
    }
    for p in &packets {
        let a = netfilter::trace(&indexed, &ctx, p, TraceOptions::default());
        let b = netfilter::trace(&linear, &ctx, p, TraceOptions::default());
        assert_eq!(a.endpoints, b.endpoints, "{p:?}");
        assert_eq!(a.verdict, b.verdict);
        let m = |t: &netfilter::Trace| {
            t.path
                .iter()
                .filter(|s| s.matched)
                .map(|s| (s.chain.clone(), s.rule))
                .collect::<Vec<_>>()
        };
        assert_eq!(m(&a), m(&b));
    }
    // Bulk replay (no path: compact rules + index) draws and decides exactly like the full
    // matcher scanning linearly.
    let mut fast = NodeEvaluator::seeded(Arc::new(indexed.clone()), ctx.clone(), 99);
    let mut slow = NodeEvaluator::seeded(Arc::new(linear.clone()), ctx.clone(), 99);
    fast.record_path = false;
    slow.record_path = true;
    for (i, p) in packets.iter().enumerate() {
        let a = fast.new_connection(p, i as u64 * S);
        let b = slow.new_connection(p, i as u64 * S);
        assert_eq!(a.outcome.dnat, b.outcome.dnat, "{p:?}");
        assert_eq!(
            (a.outcome.verdict, a.outcome.mark, &a.outcome.source_nat),
            (b.outcome.verdict, b.outcome.mark, &b.outcome.source_nat)
        );
        assert_eq!(a.outcome.statistic, b.outcome.statistic);
        assert_eq!(a.outcome.decided_by, b.outcome.decided_by);
    }
    // The service map verifies every generated name and endpoint chain by hash.
    let map = kube::service_map(&indexed);
    assert_eq!(map.services.len(), 400);
    assert!(
        map.services
            .iter()
            .all(|s| s.name_verified && s.endpoints.iter().all(|e| e.chain_verified))
    );
}

#[test]
fn old_layout_five_decimal_probabilities_are_exact() {
    let shape = generate::ClusterShape {
        services: 2,
        endpoints: 3,
        layout: kube::Layout::Old,
        ..Default::default()
    };
    let r = rs(&generate::generate(&shape));
    let map = kube::service_map(&r);
    assert_eq!(map.layout, kube::Layout::Old);
    let q = 715820724.0 / 2147483648.0; // 0.33333 stored
    let e = &map.services[0].endpoints;
    assert_eq!(e[0].probability, Some(q));
    assert_eq!(e[1].probability, Some((1.0 - q) * 0.5));
}

/// REDIRECT in nat OUTPUT rewrites the destination to loopback, so the packet is then delivered
/// locally and walks filter INPUT (where this rule set drops it), as the kernel does.
#[test]
fn redirect_in_output_delivers_to_loopback() {
    let r = rs("*nat
:OUTPUT ACCEPT [0:0]
-A OUTPUT -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 8080
COMMIT
*filter
:INPUT ACCEPT [0:0]
-A INPUT -d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j DROP
COMMIT
");
    let mut pkt = Packet::tcp(ip("192.168.0.2"), Some(40000), ip("10.9.9.9"), 80);
    pkt.origin = netfilter::Origin::Local;
    let tr = netfilter::trace(&r, &NodeContext::default(), &pkt, Default::default());
    assert_eq!(tr.verdict, Verdict::Drop, "{tr:#?}");

    // Without the DROP the redirected connection reaches 127.0.0.1:8080.
    let r = rs("*nat
:OUTPUT ACCEPT [0:0]
-A OUTPUT -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 8080
COMMIT
");
    let tr = netfilter::trace(&r, &NodeContext::default(), &pkt, Default::default());
    assert_eq!(tr.verdict, Verdict::Accept, "{tr:#?}");
    assert_eq!(tr.endpoints.len(), 1);
    assert_eq!(
        (tr.endpoints[0].ip, tr.endpoints[0].port),
        (ip("127.0.0.1"), 8080)
    );
}
