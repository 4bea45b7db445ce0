//! The UI's snapshot source over a real scenario: journeys, per-request evidence (packets before
//! and after NAT, the chain walk, recent-table operations), rules with replay hits, and the
//! what-if re-run.

use hoptrace::capture::CaptureOptions;
use hoptrace::journey::model::Evidence;
use hoptrace::journey::snapshot::{
    Direction, LoadProgress, RuleOutcome, SnapshotSource, WhatIfSettings,
};
use hoptrace::journey::source::ScenarioSource;
use std::path::Path;

fn source(name: &str) -> ScenarioSource {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("captures")
        .join(name);
    let opts = CaptureOptions {
        keep_packets: true,
        ..Default::default()
    };
    let sc =
        hoptrace::cli::scenario::load(&[dir.display().to_string()], &[], &[], &[], opts).unwrap();
    ScenarioSource::new(sc, 1)
}

#[test]
fn recorded_snapshot_carries_the_evidence() {
    let src = source("03-three-replicas");
    let p = LoadProgress::new();
    let s = src.snapshot(&WhatIfSettings::default(), &p);
    assert!((p.ratio() - 1.0).abs() < 1e-9);
    assert_eq!(s.requests.len(), 30);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    assert!(
        s.requests.windows(2).all(|w| w[0].time <= w[1].time),
        "sorted by time"
    );
    // A forwarded request: its packets appear before and after NAT, on three captures.
    let r = s
        .requests
        .iter()
        .find(|r| {
            r.endpoint
                .as_ref()
                .is_some_and(|e| e.evidence == Evidence::Observed)
        })
        .unwrap();
    let d = &s.details[&r.id];
    let captures: std::collections::BTreeSet<&str> =
        d.packets.iter().map(|p| p.capture.as_str()).collect();
    assert!(captures.len() >= 3, "{captures:?}");
    assert!(
        d.packets
            .iter()
            .any(|p| p.direction == Direction::ToServer && p.dst.ip == r.frontend.ip)
    );
    assert!(
        d.packets
            .iter()
            .any(|p| p.dst.ip == r.endpoint.as_ref().unwrap().ip)
    );
    assert!(d.request_head.starts_with(b"GET / HTTP/1.1"));
    assert!(
        d.response_head
            .as_ref()
            .is_some_and(|h| h.starts_with(b"HTTP/1."))
    );
    // The chain walk: the statistic cascade and the DNAT, whose evidence is the capture's.
    assert!(
        d.chain_walk
            .iter()
            .any(|st| matches!(st.outcome, RuleOutcome::Statistic { .. }))
    );
    let dnat = d
        .chain_walk
        .iter()
        .find(|st| {
            st.chain.starts_with("KUBE-SEP-")
                && st.text.contains("DNAT")
                && st.outcome == RuleOutcome::Matched
        })
        .unwrap();
    assert_eq!(dnat.evidence, Evidence::Observed);
    assert_eq!(d.service.as_deref(), Some("default/testapp:"));
    // Every acting step of `path` is a matched step of the walk.
    for st in &r.path {
        assert!(d.chain_walk.iter().any(|w| w.chain == st.chain
            && w.rule == st.rule
            && w.outcome != RuleOutcome::NotReached));
    }
    // Client side, ingress node before and after NAT, pod node: one connection, four legs.
    assert_eq!(
        s.connections
            .iter()
            .filter(|c| c.id == r.connection)
            .count(),
        4
    );
    assert!(
        s.services
            .iter()
            .any(|x| x.name == "default/testapp:" && x.endpoints.len() == 3 && !x.session_affinity)
    );
    assert_eq!(s.rules.len(), 3);
    let hits: u64 = s
        .rules
        .iter()
        .flat_map(|n| &n.tables)
        .flat_map(|t| &t.chains)
        .filter(|c| c.name.starts_with("KUBE-SVC-"))
        .flat_map(|c| &c.rules)
        .map(|r| r.replay_hits)
        .sum();
    assert_eq!(hits, 30, "one cascade decision per connection");
    assert_eq!(
        s.distribution.nodes.iter().map(|n| n.count).sum::<u64>(),
        30
    );
    assert!(s.distribution.node_p_value.is_some());
    assert!(s.whatif.summary.is_none());
    let json = serde_json::to_string(&s).unwrap();
    let back: hoptrace::journey::snapshot::Snapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(back.requests.len(), 30);
}

#[test]
fn whatif_snapshot_reports_moves() {
    let src = source("03-three-replicas");
    let mut w = WhatIfSettings::default();
    w.affinity.insert("default/testapp:".into(), true);
    let s = src.snapshot(&w, &LoadProgress::new());
    let sum = s.whatif.summary.as_ref().unwrap();
    assert_eq!(sum.requests_total, 30);
    assert_eq!(sum.clients.len(), 1);
    assert_eq!(sum.clients[0].pods.len(), 1);
    assert!(s.requests.iter().all(|r| r.whatif.is_some()));
    assert_eq!(
        s.distribution.pods.iter().filter(|p| p.count > 0).count(),
        1
    );
}
