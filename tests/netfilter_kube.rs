//! kube-proxy knowledge against kube-proxy's own dumps: the service map (layout, names verified
//! by hash, endpoints, affinity, policies) and the affinity rewrite (switching affinity off and on
//! again reproduces exactly the rules kube-proxy wrote).

use hoptrace::netfilter::kube::{self, FrontendKind, Layout, TrafficPolicy};
use hoptrace::netfilter::{self, Match, RecentOp, TableName};
use std::path::{Path, PathBuf};

fn corpus() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/corpus/kube-proxy"
    ));
    if p.is_dir() {
        Some(p)
    } else {
        println!(
            "skipped: {} not found (the shared corpus sits beside the clone in CI)",
            p.display()
        );
        None
    }
}

fn load(dir: &Path, rel: &str) -> netfilter::Ruleset {
    let p = dir.join(rel);
    netfilter::parse(&std::fs::read(&p).unwrap(), rel).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn layouts_and_names_of_every_dump() {
    let Some(c) = corpus() else { return };
    for f in std::fs::read_dir(c.join("dumps")).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_none_or(|e| e != "rules") {
            continue;
        }
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        let rs = load(&c, &format!("dumps/{name}"));
        let map = kube::service_map(&rs);
        let want = if name.starts_with("old-2020") {
            Layout::Old
        } else if name.starts_with("v1.24") {
            Layout::Transitional
        } else {
            Layout::New
        };
        assert_eq!(map.layout, want, "{name}");
        for s in &map.services {
            assert!(
                s.name_verified,
                "{name}: {} not verified by hash",
                s.label()
            );
            for e in &s.endpoints {
                assert!(
                    e.chain_verified,
                    "{name}: {} endpoint chain {} not verified",
                    s.label(),
                    e.chain
                );
            }
            let total: f64 = s.endpoints.iter().filter_map(|e| e.probability).sum();
            assert!(
                s.endpoints.iter().all(|e| e.probability.is_none()) || (total - 1.0).abs() < 1e-9,
                "{name}: {}",
                s.label()
            );
        }
    }
}

#[test]
fn service_map_of_the_overall_dump() {
    let Some(c) = corpus() else { return };
    let map = kube::service_map(&load(&c, "dumps/overall-iptables-rules.rules"));
    let svc5 = map.find("ns5/svc5:p80").unwrap();
    assert_eq!(svc5.affinity_timeout, Some(10800));
    let lb = svc5
        .frontends
        .iter()
        .find(|f| f.kind == FrontendKind::LoadBalancerIp)
        .unwrap();
    assert_eq!(lb.ip, Some("5.6.7.8".parse().unwrap()));
    assert_eq!(lb.source_ranges, vec!["203.0.113.0/25".parse().unwrap()]);
    let svc2 = map.find("ns2/svc2:p80").unwrap();
    assert_eq!(svc2.external_traffic_policy, TrafficPolicy::Local);
    assert!(
        svc2.frontends
            .iter()
            .any(|f| f.kind == FrontendKind::NodePort && f.port == 3001)
    );
    assert!(
        svc2.frontends
            .iter()
            .any(|f| f.kind == FrontendKind::HealthCheckNodePort && f.port == 30000)
    );
    let svc4 = map.find("ns4/svc4:p80").unwrap();
    assert_eq!(svc4.endpoints.len(), 2);
    assert_eq!(svc4.endpoints[0].probability, Some(0.5));
    assert_eq!(
        map.find("ns6/svc6:p80").unwrap().no_endpoints,
        Some("REJECT")
    );
    assert!(
        map.masquerade
            .as_ref()
            .is_some_and(|m| m.mark == Some(0x4000))
    );
    let rf = kube::service_map(&load(&c, "dumps/masquerade-rule-random-fully.rules"));
    assert!(rf.masquerade.unwrap().random_fully);
}

fn has_affinity(rs: &netfilter::Ruleset) -> bool {
    rs.tables
        .iter()
        .flat_map(|t| &t.chains)
        .flat_map(|c| &c.rules)
        .any(|r| r.spec.matches.iter().any(|m| matches!(m, Match::Recent(_))))
}

#[test]
fn affinity_off_then_on_reproduces_kube_proxys_rules() {
    let Some(c) = corpus() else { return };
    let mut checked = 0;
    for form in ["dumps", "saved"] {
        for f in std::fs::read_dir(c.join(form)).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_none_or(|e| e != "rules") {
                continue;
            }
            let rel = format!("{form}/{}", p.file_name().unwrap().to_str().unwrap());
            let rs = load(&c, &rel);
            let map = kube::service_map(&rs);
            for s in map.services.iter().filter(|s| s.affinity_timeout.is_some()) {
                let name = s.name.clone().unwrap();
                let off = kube::set_session_affinity(&rs, &name, None).unwrap();
                let off_svc = kube::service_map(&off);
                assert_eq!(
                    off_svc.find(&name).unwrap().affinity_timeout,
                    None,
                    "{rel} {name}"
                );
                assert!(
                    !has_affinity(&off)
                        || map
                            .services
                            .iter()
                            .filter(|x| x.affinity_timeout.is_some())
                            .count()
                            > 1
                );
                let on = kube::set_session_affinity(&off, &name, s.affinity_timeout).unwrap();
                assert!(
                    on.same_rules(&rs),
                    "{rel} {name}: off+on differs from kube-proxy's rules:\n{}",
                    netfilter::print::save(&on, Default::default())
                );
                // And as text: printing the rewrite gives what printing the original gives.
                assert_eq!(
                    netfilter::print::save(&on, Default::default()),
                    netfilter::print::save(&rs, Default::default())
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "only {checked} affinity services checked");
}

#[test]
fn affinity_on_then_off_is_identity_and_the_rules_are_what_kube_proxy_writes() {
    let Some(c) = corpus() else { return };
    for rel in [
        "dumps/load-balancer.rules",
        "saved/node-port.rules",
        "dumps/old-2020-endpoint-slice-e2e.rules",
        "dumps/only-local-node-ports.rules",
    ] {
        let rs = load(&c, rel);
        let map = kube::service_map(&rs);
        for s in map.services.iter().filter(|s| !s.endpoints.is_empty()) {
            let name = s.name.clone().unwrap();
            let on = kube::set_session_affinity(&rs, &name, Some(600)).unwrap();
            let m = kube::service_map(&on);
            assert_eq!(m.find(&name).unwrap().affinity_timeout, Some(600), "{rel}");
            let nat = on.table(TableName::Nat).unwrap();
            for e in &s.endpoints {
                let sep = nat.chain(&e.chain).unwrap();
                assert!(
                    sep.rules.iter().any(|r| r
                        .spec
                        .recent()
                        .is_some_and(|m| m.op == RecentOp::Set && *m.name == *e.chain)),
                    "{rel}"
                );
            }
            let svc = nat.chain(s.chains.svc.as_deref().unwrap()).unwrap();
            let first_sep = svc
                .rules
                .iter()
                .position(|r| r.text.contains("-j KUBE-SEP-"))
                .unwrap();
            assert!(
                svc.rules[first_sep].spec.recent().is_some(),
                "{rel}: sticky rules come before the statistic rules"
            );
            let off = kube::set_session_affinity(&on, &name, None).unwrap();
            assert!(off.same_rules(&rs), "{rel}: on+off is not the original");
        }
    }
    let rs = load(&c, "dumps/cluster-ip-reject.rules");
    assert!(matches!(
        kube::set_session_affinity(&rs, "ns1/svc1:p80", Some(10)),
        Err(kube::AffinityError::NoEndpoints(_))
    ));
    assert!(matches!(
        kube::set_session_affinity(&rs, "nope/x:1", Some(10)),
        Err(kube::AffinityError::UnknownService(_))
    ));
}
