//! kube-proxy's packet-flow expectations that come without a dump
//! (`shared/corpus/kube-proxy/cases-nodump.json`, 153 cases): each scenario is encoded as Services
//! and endpoints, turned into rules by `kube::write` (what kube-proxy ≥1.25 writes), and every case
//! is traced. Same mapping of answers as `netfilter_conformance.rs`.

use hoptrace::netfilter::kube::write::{EndpointSpec, ProxyConfig, ServiceSpec, write_rules};
use hoptrace::netfilter::{self, DecidedBy, NodeContext, Packet, Protocol, TableName, Verdict};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ep(s: &str, port: u16, local: bool) -> EndpointSpec {
    EndpointSpec {
        ip: ip(s),
        port,
        local,
    }
}

fn lb(name: &str, cluster_ip: &str, node_port: Option<u16>, lb_ip: Option<&str>) -> ServiceSpec {
    let mut s = ServiceSpec::cluster_ip(name, Protocol::Tcp, ip(cluster_ip), 80);
    s.node_port = node_port;
    s.load_balancer_ips = lb_ip.map(ip).into_iter().collect();
    s
}

/// The Services of a scenario, and kube-proxy's configuration; `None` when not encoded.
fn scenario(test: &str) -> Option<(Vec<ServiceSpec>, ProxyConfig)> {
    let cfg = ProxyConfig::default();
    let services = match test {
        "TestNoEndpointsReject" => {
            let mut s = lb("ns1/svc1:p80", "172.30.0.41", Some(3001), Some("1.2.3.4"));
            s.external_ips = vec![ip("192.168.99.11")];
            vec![s]
        }
        "TestClusterIPGeneral" => {
            let mut v = vec![ServiceSpec::cluster_ip(
                "ns1/svc1:http",
                Protocol::Tcp,
                ip("172.30.0.41"),
                80,
            )];
            v[0].endpoints = vec![ep("10.180.0.1", 80, true)];
            for (port_name, proto, port, target) in [
                ("http", Protocol::Tcp, 80, 80),
                ("https", Protocol::Tcp, 443, 8443),
                ("dns-udp", Protocol::Udp, 53, 53),
                ("dns-tcp", Protocol::Tcp, 53, 5353),
                ("dns-sctp", Protocol::Sctp, 53, 53),
            ] {
                let mut s = ServiceSpec::cluster_ip(
                    &format!("ns2/svc2:{port_name}"),
                    proto,
                    ip("172.30.0.42"),
                    port,
                );
                s.endpoints = vec![
                    ep("10.180.0.1", target, true),
                    ep("10.180.2.1", target, false),
                ];
                v.push(s);
            }
            v
        }
        // After the Service / its endpoints were deleted.
        "TestHealthCheckNodePort" => vec![],
        "TestInternalTrafficPolicyE2E (all 3 sub-cases)" => {
            vec![ServiceSpec::cluster_ip(
                "ns1/svc1:80",
                Protocol::Tcp,
                ip("172.30.1.1"),
                80,
            )]
        }
        t if t.starts_with("TestEndpointSliceWithTerminatingEndpoints") => {
            vec![lb("ns1/svc1:p80", "172.30.1.1", None, Some("1.2.3.4"))]
        }
        "TestExternalTrafficPolicyLocal" | "TestExternalTrafficPolicyCluster" => {
            let mut s = lb("ns1/svc1:p80", "172.30.0.41", Some(3001), Some("1.2.3.4"));
            s.external_ips = vec![ip("192.168.99.11")];
            s.endpoints = vec![ep("10.180.0.1", 80, false), ep("10.180.2.1", 80, true)];
            if test.ends_with("Local") {
                s.external_policy_local = true;
                s.health_check_node_port = Some(30000);
            }
            vec![s]
        }
        t if t.starts_with("TestInternalExternalMasquerade/") => {
            let variant = &t["TestInternalExternalMasquerade/".len()..];
            let mut v = Vec::new();
            for (i, lbip) in [(1, "1.2.3.4"), (2, "5.6.7.8"), (3, "9.10.11.12")] {
                let mut s = lb(
                    &format!("ns{i}/svc{i}:p80"),
                    &format!("172.30.0.4{i}"),
                    Some(3000 + i),
                    Some(lbip),
                );
                s.health_check_node_port = Some(30000 + i);
                s.endpoints = vec![
                    ep(&format!("10.180.0.{i}"), 80, true),
                    ep(&format!("10.180.1.{i}"), 80, false),
                ];
                s.external_policy_local = i == 2;
                s.internal_policy_local = i == 3;
                v.push(s);
            }
            let cfg = ProxyConfig {
                cluster_cidr: if variant.contains("no LocalTrafficDetector") {
                    None
                } else {
                    cfg.cluster_cidr
                },
                masquerade_all: variant.starts_with("masqueradeAll"),
                ..cfg
            };
            return Some((v, cfg));
        }
        _ => return None,
    };
    Some((services, cfg))
}

const HARNESS_CHAINS: [&str; 4] = [
    "KUBE-SERVICES",
    "KUBE-EXTERNAL-SERVICES",
    "KUBE-NODEPORTS",
    "KUBE-PROXY-FIREWALL",
];

#[test]
fn kube_proxy_cases_without_dumps_pass_on_generated_rules() {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/corpus/kube-proxy"
    ));
    let Ok(text) = std::fs::read_to_string(dir.join("cases-nodump.json")) else {
        println!(
            "skipped: {} not found (the shared corpus sits beside the clone in CI)",
            dir.display()
        );
        return;
    };
    let cases: Vec<Value> = serde_json::from_str(&text).unwrap();
    let (mut passed, mut failures, mut not_encoded) = (0, Vec::new(), Vec::new());
    for c in &cases {
        let test = c["test"].as_str().unwrap();
        let Some((services, cfg)) = scenario(test) else {
            not_encoded.push(test.to_string());
            continue;
        };
        let rules = write_rules(&services, &cfg);
        let (rs, errs) = netfilter::load(rules.as_bytes(), test);
        assert!(
            errs.is_empty(),
            "{test}: generated rules do not parse: {errs:?}\n{rules}"
        );
        let local: Vec<IpAddr> = c["local_ips"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().parse().unwrap())
            .collect();
        let ctx = NodeContext::new(local);
        let proto = Protocol::parse(c["protocol"].as_str().unwrap())
            .unwrap()
            .unwrap();
        let pkt = Packet::new(
            proto,
            ip(c["source_ip"].as_str().unwrap()),
            None,
            ip(c["dest_ip"].as_str().unwrap()),
            c["dest_port"].as_u64().unwrap() as u16,
        );
        let tr = netfilter::trace(&rs, &ctx, &pkt, Default::default());
        let mut got: BTreeSet<String> = tr
            .endpoints
            .iter()
            .map(|e| netfilter::eval::fmt_sock(e.ip, e.port))
            .collect();
        if let Some(DecidedBy::Rule(r)) = &tr.decided_by
            && r.table == TableName::Filter
            && HARNESS_CHAINS.contains(&&*r.chain)
            && tr.verdict != Verdict::Undecided
        {
            got.insert(tr.verdict.as_str().to_string());
        }
        let expected: BTreeSet<String> = c["expected_output"]
            .as_str()
            .unwrap()
            .split(", ")
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let masq = c["expected_masq"].as_bool().unwrap();
        if got == expected && tr.masquerade == masq {
            passed += 1;
        } else {
            let path: Vec<String> = tr
                .path
                .iter()
                .filter(|s| s.matched)
                .map(|s| format!("  {} {} #{} {}", s.table, s.chain, s.rule, s.text))
                .collect();
            failures.push(format!(
                "{test} [{}]: {} -> {}:{} expected {expected:?} masq={masq}, got {got:?} masq={}\n{}",
                c["name"].as_str().unwrap(),
                pkt.src,
                pkt.dst,
                pkt.dst_port,
                tr.masquerade,
                path.join("\n")
            ));
        }
    }
    assert!(
        not_encoded.is_empty(),
        "scenarios not encoded: {not_encoded:?}"
    );
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
    assert_eq!(passed, 153);
}
