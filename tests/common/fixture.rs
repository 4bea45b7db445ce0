//! FIXTURE — a hand-written scenario for UI tests, the `tui_fixture` demo and the UI benchmark.
//! It is NOT a recording and nothing here is computed by hoptrace's model: it mirrors the seed
//! posts' lab (Azure LB 20.185.96.169 in front of 3 nodes, Service default/testapp with 3
//! replicas, kube-proxy iptables rules) so the screens look like the real thing. The what-if
//! answers are written by hand too.
//!
//! The spec, in words:
//! * node0 10.220.1.4 zone 1, node1 10.220.1.5 zone 2, node2 10.220.1.6 zone 1; captures on
//!   node0-eth0 and node2-eth0 only (node1 was not captured).
//! * pods: zp4ns 10.100.0.7 on node0 (KUBE-SEP-GB5Z…), cq567 10.100.1.4 on node1 (KUBE-SEP-SHJO…),
//!   x7427 10.100.2.2 on node2 (KUBE-SEP-STQ7…).
//! * phase 1 (`hey -n 10 -c 1`, keep-alive): 71.246.222.12:58796, one connection, 10 requests,
//!   ALB → node2, statistic → cq567 (crossed node and zone, SNAT to 10.220.1.6).
//! * phase 2 (`hey --disable-keepalive -n 40`): 71.246.222.12 ports 3008…, one connection each,
//!   spread over nodes and pods by a fixed pseudo-random table.
//! * phase 3: a second client 52.168.14.7, 10 requests without keep-alive.
//! * what-if sessionAffinity ClientIP: ALB SourceIP + `recent`: 71.246.222.12 → node2/zp4ns,
//!   52.168.14.7 → node0/cq567. What-if ALB source-ip: each client one node, pods as recorded.

#![allow(dead_code)]

use hoptrace::journey::model::*;
use hoptrace::journey::snapshot::*;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

pub const FRONTEND: [u8; 4] = [20, 185, 96, 169];
pub const SERVICE: &str = "default/testapp";
pub const SVC_CHAIN: &str = "KUBE-SVC-K4VUERBNKSOP4S25";
pub const FW_CHAIN: &str = "KUBE-FW-K4VUERBNKSOP4S25";

pub struct NodeSpec {
    pub name: &'static str,
    pub ip: [u8; 4],
    pub zone: &'static str,
    pub captured: bool,
}

pub struct PodSpec {
    pub name: &'static str,
    pub ip: [u8; 4],
    pub node: usize,
    pub sep: &'static str,
}

pub const NODES: [NodeSpec; 3] = [
    NodeSpec {
        name: "node0",
        ip: [10, 220, 1, 4],
        zone: "1",
        captured: true,
    },
    NodeSpec {
        name: "node1",
        ip: [10, 220, 1, 5],
        zone: "2",
        captured: false,
    },
    NodeSpec {
        name: "node2",
        ip: [10, 220, 1, 6],
        zone: "1",
        captured: true,
    },
];

pub const PODS: [PodSpec; 3] = [
    PodSpec {
        name: "testapp-7f4b8f5c9d-zp4ns",
        ip: [10, 100, 0, 7],
        node: 0,
        sep: "KUBE-SEP-GB5ZXZKDF6JWMI74",
    },
    PodSpec {
        name: "testapp-7f4b8f5c9d-cq567",
        ip: [10, 100, 1, 4],
        node: 1,
        sep: "KUBE-SEP-SHJOK7USDC7L53KY",
    },
    PodSpec {
        name: "testapp-7f4b8f5c9d-x7427",
        ip: [10, 100, 2, 2],
        node: 2,
        sep: "KUBE-SEP-STQ7EMRESDHHERMG",
    },
];

/// One hand-written request: who, when (ms after 10:06:20), which connection, ALB node, pod.
#[derive(Clone, Copy)]
pub struct ReqSpec {
    pub client: [u8; 4],
    pub port: u16,
    pub ms: u64,
    pub conn: u64,
    pub node: usize,
    pub pod: usize,
    /// The ALB model's bucket disagrees with the observed node.
    pub model_differs: bool,
    /// No DNAT evidence (dropped packets): endpoint modelled, candidates listed.
    pub no_dnat_evidence: bool,
}

const C1: [u8; 4] = [71, 246, 222, 12];
const C2: [u8; 4] = [52, 168, 14, 7];

/// (node, pod) of phase 2's 40 connections and phase 3's 10: a fixed table, written to look like
/// draws from the ALB hash and the 1/3 → 1/2 → 1 cascade. node1 → cq567 (pod local to the
/// uncaptured node) never appears: no capture could have seen those requests.
#[rustfmt::skip]
const PHASE2: [(usize, usize); 40] = [
    (0, 0), (2, 1), (1, 0), (0, 2), (2, 2), (0, 1), (2, 0), (1, 2), (0, 0), (2, 1),
    (0, 2), (2, 2), (1, 0), (0, 1), (2, 0), (0, 0), (2, 1), (1, 2), (0, 2), (2, 2),
    (0, 1), (2, 0), (1, 0), (0, 0), (2, 1), (0, 2), (2, 2), (1, 2), (0, 1), (2, 0),
    (0, 0), (2, 1), (1, 0), (0, 2), (2, 2), (0, 1), (2, 0), (1, 2), (0, 0), (2, 1),
];
const PHASE3: [(usize, usize); 10] = [
    (2, 0),
    (0, 1),
    (1, 2),
    (2, 2),
    (0, 0),
    (2, 1),
    (1, 0),
    (0, 2),
    (2, 1),
    (0, 1),
];

/// The 60 requests of the fixture scenario, in time order.
pub fn request_specs() -> Vec<ReqSpec> {
    let mut out = Vec::new();
    for i in 0..10 {
        out.push(ReqSpec {
            client: C1,
            port: 58796,
            ms: i * 80,
            conn: 1,
            node: 2,
            pod: 1,
            model_differs: false,
            no_dnat_evidence: false,
        });
    }
    for (i, (node, pod)) in PHASE2.iter().enumerate() {
        let i = i as u64;
        out.push(ReqSpec {
            client: C1,
            port: 3008 + i as u16,
            ms: 7_000 + i * 350,
            conn: 2 + i,
            node: *node,
            pod: *pod,
            model_differs: i == 17,
            no_dnat_evidence: i == 25 || i == 26,
        });
    }
    for (i, (node, pod)) in PHASE3.iter().enumerate() {
        let i = i as u64;
        out.push(ReqSpec {
            client: C2,
            port: 41_000 + 7 * i as u16,
            ms: 25_000 + i * 900,
            conn: 42 + i,
            node: *node,
            pod: *pod,
            model_differs: false,
            no_dnat_evidence: false,
        });
    }
    out
}

fn ip(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn ep(a: [u8; 4], port: u16) -> Endpoint {
    Endpoint { ip: ip(a), port }
}

/// RFC 3339 time `ms` milliseconds after 2026-11-21T10:06:20Z.
pub fn time_at(ms: u64) -> String {
    let total_ms = 20_000 + ms;
    let secs = 6 * 60 + total_ms / 1000;
    format!(
        "2026-11-21T10:{:02}:{:02}.{:03}{:03}Z",
        secs / 60,
        secs % 60,
        total_ms % 1000,
        (ms * 7) % 1000
    )
}

fn capture_of(node: usize) -> String {
    format!("{}-eth0.pcap", NODES[node].name)
}

const CASCADE: [f64; 3] = [0.33333333349, 0.5, 1.0];

/// Which capture saw the request, and with what evidence for the endpoint.
fn evidence_of(s: &ReqSpec) -> (String, Evidence) {
    let pod_node = PODS[s.pod].node;
    if s.no_dnat_evidence {
        return (capture_of(s.node), Evidence::Modeled);
    }
    if NODES[s.node].captured {
        // Remote pod: the forwarded, DNATed packet leaves eth0. Local pod: it goes to the bridge,
        // not eth0; no other capture shows it, so the local pod is inferred by elimination.
        if pod_node == s.node {
            (capture_of(s.node), Evidence::Inferred)
        } else {
            (capture_of(s.node), Evidence::Observed)
        }
    } else {
        // Seen only where it arrived, after node1's DNAT and SNAT.
        (capture_of(pod_node), Evidence::Observed)
    }
}

fn endpoint_choice(pod: usize, evidence: Evidence) -> EndpointChoice {
    EndpointChoice {
        ip: ip(PODS[pod].ip),
        port: 80,
        chain: PODS[pod].sep.to_string(),
        probability: 1.0 / 3.0,
        evidence,
    }
}

fn journey(id: u64, s: &ReqSpec) -> RequestJourney {
    let (capture, evidence) = evidence_of(s);
    let node = &NODES[s.node];
    let pod = &PODS[s.pod];
    let pod_node = &NODES[pod.node];
    let predicted = if s.model_differs {
        (s.node + 1) % 3
    } else {
        s.node
    };
    let mut path = vec![
        PathStep {
            table: "nat".into(),
            chain: "PREROUTING".into(),
            rule: 1,
        },
        PathStep {
            table: "nat".into(),
            chain: "KUBE-SERVICES".into(),
            rule: 5,
        },
        PathStep {
            table: "nat".into(),
            chain: FW_CHAIN.into(),
            rule: 1,
        },
        PathStep {
            table: "nat".into(),
            chain: "KUBE-MARK-MASQ".into(),
            rule: 1,
        },
        PathStep {
            table: "nat".into(),
            chain: FW_CHAIN.into(),
            rule: 2,
        },
    ];
    if !s.no_dnat_evidence {
        path.push(PathStep {
            table: "nat".into(),
            chain: SVC_CHAIN.into(),
            rule: s.pod as u32 + 1,
        });
        path.push(PathStep {
            table: "nat".into(),
            chain: pod.sep.into(),
            rule: 2,
        });
    }
    path.extend([
        PathStep {
            table: "nat".into(),
            chain: "POSTROUTING".into(),
            rule: 1,
        },
        PathStep {
            table: "nat".into(),
            chain: "KUBE-POSTROUTING".into(),
            rule: 2,
        },
        PathStep {
            table: "nat".into(),
            chain: "KUBE-POSTROUTING".into(),
            rule: 3,
        },
    ]);
    let known = !s.no_dnat_evidence;
    RequestJourney {
        id,
        connection: s.conn,
        time: time_at(s.ms),
        capture,
        client: ep(s.client, s.port),
        frontend: ep(FRONTEND, 80),
        method: "GET".into(),
        target: if id == 57 {
            "/admin\\x1b[2J".into()
        } else {
            "/".into()
        },
        host: Some("20.185.96.169".into()),
        status: Some(if id == 57 { 404 } else { 200 }),
        alb: Some(AlbDecision {
            mode: AlbMode::Default,
            hash: AlbHash::Jhash,
            bucket: Some(predicted as u32),
            predicted_node: Some(NODES[predicted].name.into()),
            observed_node: node.captured.then(|| node.name.to_string()),
        }),
        node: Some(node.name.into()),
        path,
        endpoint: known.then(|| endpoint_choice(s.pod, evidence)),
        candidates: if known {
            vec![]
        } else {
            (0..3)
                .map(|p| endpoint_choice(p, Evidence::Modeled))
                .collect()
        },
        pod: known.then(|| PodRef {
            name: Some(pod.name.into()),
            ip: ip(pod.ip),
            node: Some(pod_node.name.into()),
            zone: Some(pod_node.zone.into()),
        }),
        masquerade: Some(ep(node.ip, s.port)),
        crossed_node: known.then_some(pod.node != s.node),
        crossed_zone: known.then_some(pod_node.zone != node.zone),
        whatif: None,
    }
}

fn step(
    chain: &str,
    rule: u32,
    text: String,
    outcome: RuleOutcome,
    probability: Option<f64>,
    evidence: Evidence,
) -> ChainWalkStep {
    ChainWalkStep {
        table: "nat".into(),
        chain: chain.into(),
        rule,
        text,
        outcome,
        probability,
        evidence,
    }
}

fn not(reason: &str) -> RuleOutcome {
    RuleOutcome::NotMatched {
        reason: reason.into(),
    }
}

fn detail(id: u64, s: &ReqSpec, r: &RequestJourney) -> RequestDetail {
    let rules = nat_rules();
    let text = |chain: &str, n: u32| -> String {
        rules
            .iter()
            .find(|c| c.name == chain)
            .and_then(|c| c.rules.get(n as usize - 1))
            .map(|r| r.text.clone())
            .unwrap_or_default()
    };
    let ev = r
        .endpoint
        .as_ref()
        .map_or(Evidence::Modeled, |e| e.evidence);
    let m = Evidence::Modeled;
    let mut walk = vec![
        step(
            "PREROUTING",
            1,
            text("PREROUTING", 1),
            RuleOutcome::Matched,
            None,
            m,
        ),
        step(
            "KUBE-SERVICES",
            1,
            text("KUBE-SERVICES", 1),
            not("destination 20.185.96.169 is not 10.200.0.10/32"),
            None,
            m,
        ),
        step(
            "KUBE-SERVICES",
            2,
            text("KUBE-SERVICES", 2),
            not("destination 20.185.96.169 is not 10.200.0.10/32"),
            None,
            m,
        ),
        step(
            "KUBE-SERVICES",
            3,
            text("KUBE-SERVICES", 3),
            not("destination 20.185.96.169 is not 10.200.105.65/32"),
            None,
            m,
        ),
        step(
            "KUBE-SERVICES",
            4,
            text("KUBE-SERVICES", 4),
            not("destination 20.185.96.169 is not 10.200.105.65/32"),
            None,
            m,
        ),
        step(
            "KUBE-SERVICES",
            5,
            text("KUBE-SERVICES", 5),
            RuleOutcome::Matched,
            None,
            m,
        ),
        step(
            FW_CHAIN,
            1,
            text(FW_CHAIN, 1),
            RuleOutcome::Matched,
            None,
            m,
        ),
        step(
            "KUBE-MARK-MASQ",
            1,
            text("KUBE-MARK-MASQ", 1),
            RuleOutcome::Matched,
            None,
            m,
        ),
        step(
            FW_CHAIN,
            2,
            text(FW_CHAIN, 2),
            RuleOutcome::Matched,
            None,
            m,
        ),
    ];
    if !s.no_dnat_evidence {
        for (k, p) in CASCADE.iter().enumerate().take(s.pod + 1) {
            let n = k as u32 + 1;
            if k < 2 {
                walk.push(step(
                    SVC_CHAIN,
                    n,
                    text(SVC_CHAIN, n),
                    RuleOutcome::Statistic { taken: k == s.pod },
                    Some(*p),
                    ev,
                ));
            } else {
                walk.push(step(
                    SVC_CHAIN,
                    n,
                    text(SVC_CHAIN, n),
                    RuleOutcome::Matched,
                    None,
                    ev,
                ));
            }
        }
        let sep = PODS[s.pod].sep;
        let src = Ipv4Addr::from(s.client);
        let pod_ip = Ipv4Addr::from(PODS[s.pod].ip);
        walk.push(step(
            sep,
            1,
            text(sep, 1),
            not(&format!("source {src} is not {pod_ip}/32")),
            None,
            m,
        ));
        walk.push(step(sep, 2, text(sep, 2), RuleOutcome::Matched, None, ev));
        walk.push(step(
            FW_CHAIN,
            3,
            text(FW_CHAIN, 3),
            RuleOutcome::NotReached,
            None,
            m,
        ));
        walk.push(step(
            "KUBE-SERVICES",
            6,
            text("KUBE-SERVICES", 6),
            RuleOutcome::NotReached,
            None,
            m,
        ));
    }
    walk.extend([
        step(
            "POSTROUTING",
            1,
            text("POSTROUTING", 1),
            RuleOutcome::Matched,
            None,
            m,
        ),
        step(
            "KUBE-POSTROUTING",
            1,
            text("KUBE-POSTROUTING", 1),
            not("mark 0x4000/0x4000 is set (KUBE-MARK-MASQ)"),
            None,
            m,
        ),
        step(
            "KUBE-POSTROUTING",
            2,
            text("KUBE-POSTROUTING", 2),
            RuleOutcome::Matched,
            None,
            m,
        ),
        step(
            "KUBE-POSTROUTING",
            3,
            text("KUBE-POSTROUTING", 3),
            RuleOutcome::Matched,
            None,
            m,
        ),
    ]);
    let client = ep(s.client, s.port);
    let front = ep(FRONTEND, 80);
    let cap = capture_of(s.node);
    let t = |d: u64| time_at(s.ms + d);
    let pkt = |d: u64,
               dir: Direction,
               src: Endpoint,
               dst: Endpoint,
               flags: &str,
               len: u32,
               info: &[u8]| PacketLine {
        time: t(d),
        capture: if NODES[s.node].captured {
            cap.clone()
        } else {
            capture_of(PODS[s.pod].node)
        },
        direction: dir,
        src,
        dst,
        flags: flags.into(),
        payload_len: len,
        info: info.to_vec(),
    };
    let request_line: &[u8] = if id == 57 {
        b"GET /admin\x1b[2J HTTP/1.1"
    } else {
        b"GET / HTTP/1.1"
    };
    let mut packets = Vec::new();
    if NODES[s.node].captured {
        packets.push(pkt(0, Direction::ToServer, client, front, "S", 0, b""));
        packets.push(pkt(1, Direction::ToClient, front, client, "S.", 0, b""));
        packets.push(pkt(1, Direction::ToServer, client, front, ".", 0, b""));
        packets.push(pkt(
            2,
            Direction::ToServer,
            client,
            front,
            "P.",
            118,
            request_line,
        ));
    }
    if let (Some(m), Some(e)) = (&r.masquerade, &r.endpoint)
        && e.evidence == Evidence::Observed
    {
        let pod_ep = Endpoint {
            ip: e.ip,
            port: e.port,
        };
        packets.push(pkt(
            2,
            Direction::ToServer,
            *m,
            pod_ep,
            "P.",
            118,
            request_line,
        ));
        packets.push(pkt(
            4,
            Direction::ToClient,
            pod_ep,
            *m,
            "P.",
            238,
            b"HTTP/1.1 200 OK",
        ));
    }
    if NODES[s.node].captured {
        packets.push(pkt(
            4,
            Direction::ToClient,
            front,
            client,
            "P.",
            238,
            b"HTTP/1.1 200 OK",
        ));
    }
    let mut head = Vec::new();
    head.extend_from_slice(request_line);
    head.extend_from_slice(b"\r\nHost: 20.185.96.169\r\nUser-Agent: hey/0.0.1\r\nContent-Length: 2\r\nAccept-Encoding: gzip\r\n\r\n");
    let status = if id == 57 { "404 Not Found" } else { "200 OK" };
    let response = format!(
        "HTTP/1.1 {status}\r\nServer: nginx/1.27.3\r\nDate: Sat, 21 Nov 2026 10:06:27 GMT\r\nContent-Type: text/html\r\nContent-Length: 615\r\nConnection: keep-alive\r\n\r\n"
    );
    RequestDetail {
        packets,
        request_head: head,
        response_head: Some(response.into_bytes()),
        chain_walk: walk,
        recent: Vec::new(),
        service: Some(SERVICE.into()),
        masquerade_evidence: None,
    }
}

fn rule(chain: &str, n: u32, body: &str, target: &str) -> RuleRow {
    RuleRow {
        number: n,
        text: format!("-A {chain} {body}"),
        target: Some(target.into()),
        counters: None,
        replay_hits: 0,
    }
}

fn chain(name: &str, policy: Option<&str>, rules: Vec<RuleRow>) -> ChainRules {
    ChainRules {
        name: name.into(),
        policy: policy.map(Into::into),
        counters: None,
        rules,
    }
}

/// The nat table kube-proxy wrote for the scenario (iptables-save text per rule).
pub fn nat_rules() -> Vec<ChainRules> {
    let mut sep_chains = Vec::new();
    for p in &PODS {
        let pod_ip = Ipv4Addr::from(p.ip);
        sep_chains.push(chain(p.sep, None, vec![
            rule(p.sep, 1, &format!("-s {pod_ip}/32 -m comment --comment \"default/testapp:\" -j KUBE-MARK-MASQ"), "KUBE-MARK-MASQ"),
            rule(p.sep, 2, &format!("-p tcp -m comment --comment \"default/testapp:\" -m tcp -j DNAT --to-destination {pod_ip}:80"), "DNAT"),
        ]));
    }
    let mut out = vec![
        chain(
            "PREROUTING",
            Some("ACCEPT"),
            vec![rule(
                "PREROUTING",
                1,
                "-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
                "KUBE-SERVICES",
            )],
        ),
        chain("INPUT", Some("ACCEPT"), vec![]),
        chain(
            "OUTPUT",
            Some("ACCEPT"),
            vec![rule(
                "OUTPUT",
                1,
                "-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
                "KUBE-SERVICES",
            )],
        ),
        chain(
            "POSTROUTING",
            Some("ACCEPT"),
            vec![rule(
                "POSTROUTING",
                1,
                "-m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING",
                "KUBE-POSTROUTING",
            )],
        ),
        chain(
            "KUBE-SERVICES",
            None,
            vec![
                rule(
                    "KUBE-SERVICES",
                    1,
                    "! -s 10.100.0.0/16 -d 10.200.0.10/32 -p tcp -m comment --comment \"kube-system/kube-dns:dns-tcp cluster IP\" -m tcp --dport 53 -j KUBE-MARK-MASQ",
                    "KUBE-MARK-MASQ",
                ),
                rule(
                    "KUBE-SERVICES",
                    2,
                    "-d 10.200.0.10/32 -p tcp -m comment --comment \"kube-system/kube-dns:dns-tcp cluster IP\" -m tcp --dport 53 -j KUBE-SVC-ERIFXISQEP7F7OF4",
                    "KUBE-SVC-ERIFXISQEP7F7OF4",
                ),
                rule(
                    "KUBE-SERVICES",
                    3,
                    "! -s 10.100.0.0/16 -d 10.200.105.65/32 -p tcp -m comment --comment \"default/testapp: cluster IP\" -m tcp --dport 80 -j KUBE-MARK-MASQ",
                    "KUBE-MARK-MASQ",
                ),
                rule(
                    "KUBE-SERVICES",
                    4,
                    "-d 10.200.105.65/32 -p tcp -m comment --comment \"default/testapp: cluster IP\" -m tcp --dport 80 -j KUBE-SVC-K4VUERBNKSOP4S25",
                    SVC_CHAIN,
                ),
                rule(
                    "KUBE-SERVICES",
                    5,
                    "-d 20.185.96.169/32 -p tcp -m comment --comment \"default/testapp: loadbalancer IP\" -m tcp --dport 80 -j KUBE-FW-K4VUERBNKSOP4S25",
                    FW_CHAIN,
                ),
                rule(
                    "KUBE-SERVICES",
                    6,
                    "-m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS",
                    "KUBE-NODEPORTS",
                ),
            ],
        ),
        chain(
            FW_CHAIN,
            None,
            vec![
                rule(
                    FW_CHAIN,
                    1,
                    "-m comment --comment \"default/testapp: loadbalancer IP\" -j KUBE-MARK-MASQ",
                    "KUBE-MARK-MASQ",
                ),
                rule(
                    FW_CHAIN,
                    2,
                    "-m comment --comment \"default/testapp: loadbalancer IP\" -j KUBE-SVC-K4VUERBNKSOP4S25",
                    SVC_CHAIN,
                ),
                rule(
                    FW_CHAIN,
                    3,
                    "-m comment --comment \"default/testapp: loadbalancer IP\" -j KUBE-MARK-DROP",
                    "KUBE-MARK-DROP",
                ),
            ],
        ),
        chain(
            SVC_CHAIN,
            None,
            vec![
                rule(
                    SVC_CHAIN,
                    1,
                    "-m comment --comment \"default/testapp:\" -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-GB5ZXZKDF6JWMI74",
                    PODS[0].sep,
                ),
                rule(
                    SVC_CHAIN,
                    2,
                    "-m comment --comment \"default/testapp:\" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-SHJOK7USDC7L53KY",
                    PODS[1].sep,
                ),
                rule(
                    SVC_CHAIN,
                    3,
                    "-m comment --comment \"default/testapp:\" -j KUBE-SEP-STQ7EMRESDHHERMG",
                    PODS[2].sep,
                ),
            ],
        ),
        chain(
            "KUBE-NODEPORTS",
            None,
            vec![
                rule(
                    "KUBE-NODEPORTS",
                    1,
                    "-p tcp -m comment --comment \"default/testapp:\" -m tcp --dport 31857 -j KUBE-MARK-MASQ",
                    "KUBE-MARK-MASQ",
                ),
                rule(
                    "KUBE-NODEPORTS",
                    2,
                    "-p tcp -m comment --comment \"default/testapp:\" -m tcp --dport 31857 -j KUBE-SVC-K4VUERBNKSOP4S25",
                    SVC_CHAIN,
                ),
            ],
        ),
        chain(
            "KUBE-MARK-MASQ",
            None,
            vec![rule(
                "KUBE-MARK-MASQ",
                1,
                "-j MARK --set-xmark 0x4000/0x4000",
                "MARK",
            )],
        ),
        chain(
            "KUBE-MARK-DROP",
            None,
            vec![rule(
                "KUBE-MARK-DROP",
                1,
                "-j MARK --set-xmark 0x8000/0x8000",
                "MARK",
            )],
        ),
        chain(
            "KUBE-POSTROUTING",
            None,
            vec![
                rule(
                    "KUBE-POSTROUTING",
                    1,
                    "-m mark ! --mark 0x4000/0x4000 -j RETURN",
                    "RETURN",
                ),
                rule(
                    "KUBE-POSTROUTING",
                    2,
                    "-j MARK --set-xmark 0x4000/0x0",
                    "MARK",
                ),
                rule(
                    "KUBE-POSTROUTING",
                    3,
                    "-m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully",
                    "MASQUERADE",
                ),
            ],
        ),
        chain(
            "KUBE-SVC-ERIFXISQEP7F7OF4",
            None,
            vec![rule(
                "KUBE-SVC-ERIFXISQEP7F7OF4",
                1,
                "-m comment --comment \"kube-system/kube-dns:dns-tcp\" -j KUBE-SEP-IT2ZTR26TO4XFPTO",
                "KUBE-SEP-IT2ZTR26TO4XFPTO",
            )],
        ),
        chain(
            "KUBE-SEP-IT2ZTR26TO4XFPTO",
            None,
            vec![rule(
                "KUBE-SEP-IT2ZTR26TO4XFPTO",
                1,
                "-p tcp -m comment --comment \"kube-system/kube-dns:dns-tcp\" -m tcp -j DNAT --to-destination 10.100.0.2:53",
                "DNAT",
            )],
        ),
    ];
    out.extend(sep_chains);
    out
}

/// The rules per node, with replay hit counts from the requests that entered each node; node0's
/// dump was taken with `iptables-save -c`, so it also has counters.
fn node_rules(
    requests: &[RequestJourney],
    details: &BTreeMap<u64, RequestDetail>,
) -> Vec<NodeRules> {
    NODES
        .iter()
        .enumerate()
        .map(|(ni, n)| {
            let mut chains = nat_rules();
            // Rules see the first packet of a connection only (conntrack does the rest).
            let mut seen = std::collections::BTreeSet::new();
            for r in requests
                .iter()
                .filter(|r| r.node.as_deref() == Some(n.name) && seen.insert(r.connection))
            {
                for s in details
                    .get(&r.id)
                    .map(|d| d.chain_walk.as_slice())
                    .unwrap_or(&[])
                {
                    let hit = matches!(
                        s.outcome,
                        RuleOutcome::Matched | RuleOutcome::Statistic { taken: true }
                    );
                    if hit && let Some(c) = chains.iter_mut().find(|c| c.name == s.chain) {
                        c.rules[s.rule as usize - 1].replay_hits += 1;
                    }
                }
            }
            if ni == 0 {
                for c in &mut chains {
                    for r in &mut c.rules {
                        let packets = r.replay_hits * 3 + 41;
                        r.counters = Some(Counters {
                            packets,
                            bytes: packets * 60,
                        });
                    }
                    if c.policy.is_some() {
                        c.counters = Some(Counters {
                            packets: 1204,
                            bytes: 72_240,
                        });
                    }
                }
            }
            NodeRules {
                node: n.name.into(),
                source: if ni == 0 {
                    "node0.iptables-save-c".into()
                } else {
                    format!("{}.iptables-save", n.name)
                },
                tables: vec![TableRules {
                    name: "nat".into(),
                    chains,
                }],
            }
        })
        .collect()
}

fn connections(specs: &[ReqSpec], requests: &[RequestJourney]) -> Vec<ConnectionSummary> {
    let mut out: Vec<ConnectionSummary> = Vec::new();
    for (s, r) in specs.iter().zip(requests) {
        if let Some(c) = out.iter_mut().find(|c| c.id == s.conn) {
            c.requests.push(r.id);
            c.last = time_at(s.ms + 5);
            c.to_server.packets += 2;
            c.to_server.bytes += 118;
            c.to_client.packets += 1;
            c.to_client.bytes += 238 + 615;
            continue;
        }
        let node = if NODES[s.node].captured {
            s.node
        } else {
            PODS[s.pod].node
        };
        out.push(ConnectionSummary {
            id: s.conn,
            capture: capture_of(node),
            node: Some(NODES[node].name.into()),
            protocol: "tcp".into(),
            client: r.client,
            server: r.frontend,
            initiator: Initiator::Syn,
            first: r.time.clone(),
            last: time_at(s.ms + 5),
            to_server: DirectionStats {
                packets: 5,
                bytes: 118,
            },
            to_client: DirectionStats {
                packets: 3,
                bytes: 238 + 615,
            },
            state: if s.conn == 44 {
                ConnectionState::Reset
            } else {
                ConnectionState::Closed
            },
            requests: vec![r.id],
        });
    }
    out
}

fn p_value_df2(counts: &[u64], expected: &[f64]) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 || counts.len() != 3 {
        return None;
    }
    let x: f64 = counts
        .iter()
        .zip(expected)
        .map(|(c, e)| {
            let e = e * total as f64;
            (*c as f64 - e).powi(2) / e
        })
        .sum();
    Some((-x / 2.0).exp()) // chi-squared survival function for 2 degrees of freedom
}

/// Distribution over the requests' effective (what-if if set, else recorded) node and pod.
pub fn distribution(requests: &[RequestJourney]) -> Distribution {
    let start = time_micros(&time_at(0)).unwrap();
    let end = requests
        .iter()
        .filter_map(|r| time_micros(&r.time))
        .max()
        .unwrap_or(start);
    let buckets = ((end - start) / 1_000_000 + 1) as usize;
    let eff_node = |r: &RequestJourney| {
        r.whatif
            .as_ref()
            .and_then(|w| w.node.clone())
            .or_else(|| r.node.clone())
    };
    let eff_pod = |r: &RequestJourney| {
        r.whatif
            .as_ref()
            .and_then(|w| w.pod.clone())
            .or_else(|| r.pod.as_ref().and_then(|p| p.name.clone()))
    };
    let stat = |name: &str,
                node: Option<&str>,
                zone: &str,
                pick: &dyn Fn(&RequestJourney) -> Option<String>| {
        let mut timeline = vec![0u64; buckets];
        let mut count = 0;
        for r in requests.iter().filter(|r| pick(r).as_deref() == Some(name)) {
            count += 1;
            let b = ((time_micros(&r.time).unwrap() - start) / 1_000_000) as usize;
            timeline[b.min(buckets - 1)] += 1;
        }
        ShareStat {
            name: name.into(),
            node: node.map(Into::into),
            zone: Some(zone.into()),
            count,
            share: count as f64 / requests.len().max(1) as f64,
            expected_share: 1.0 / 3.0,
            timeline,
        }
    };
    let nodes: Vec<ShareStat> = NODES
        .iter()
        .map(|n| stat(n.name, None, n.zone, &eff_node))
        .collect();
    let pods: Vec<ShareStat> = PODS
        .iter()
        .map(|p| {
            stat(
                p.name,
                Some(NODES[p.node].name),
                NODES[p.node].zone,
                &eff_pod,
            )
        })
        .collect();
    let exp = [1.0 / 3.0; 3];
    Distribution {
        node_p_value: p_value_df2(&nodes.iter().map(|s| s.count).collect::<Vec<_>>(), &exp),
        pod_p_value: p_value_df2(&pods.iter().map(|s| s.count).collect::<Vec<_>>(), &exp),
        nodes,
        pods,
        bucket_seconds: 1.0,
        start: Some(time_at(0)),
    }
}

/// The recorded fixture snapshot.
pub fn recorded() -> Snapshot {
    let specs = request_specs();
    let requests: Vec<RequestJourney> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| journey(i as u64 + 1, s))
        .collect();
    let details: BTreeMap<u64, RequestDetail> = specs
        .iter()
        .zip(&requests)
        .map(|(s, r)| (r.id, detail(r.id, s, r)))
        .collect();
    let rules = node_rules(&requests, &details);
    let connections = connections(&specs, &requests);
    Snapshot {
        scenario: ScenarioInfo {
            title: "FIXTURE: 3 replicas behind Azure LB, keep-alive vs --disable-keepalive".into(),
            description: "Hand-written fixture mirroring the seed posts' lab: 3 nodes, Service default/testapp with 3 replicas, hey with and without keep-alive from two clients.".into(),
            inputs: vec!["node0-eth0.pcap".into(), "node2-eth0.pcap".into(), "node0.iptables-save-c".into(), "cluster.toml".into()],
        },
        distribution: distribution(&requests),
        requests,
        details,
        connections,
        services: vec![ServiceInfo {
            name: SERVICE.into(),
            chain: SVC_CHAIN.into(),
            session_affinity: false,
            endpoints: PODS.iter().map(|p| p.sep.to_string()).collect(),
        }],
        rules,
        whatif: WhatIfState::default(),
        warnings: vec![
            "node1 was not captured: requests it forwarded are seen only where they arrived (ingress node from the SNAT source 10.220.1.5)".into(),
            "node2-eth0.pcap: 14 packets dropped by the kernel (ifdrop); requests 36 and 37 have no DNAT evidence".into(),
        ],
    }
}

/// Apply hand-written what-if answers to the recorded snapshot.
pub fn with_whatif(whatif: &WhatIfSettings) -> Snapshot {
    let mut snap = recorded();
    if whatif.is_recorded() {
        return snap;
    }
    let affinity = whatif.affinity.get(SERVICE).copied().unwrap_or(false);
    let source_ip = matches!(
        whatif.alb_mode,
        Some(AlbMode::SourceIp | AlbMode::SourceIpProtocol)
    );
    let mut moved = 0;
    let mut per_client: BTreeMap<IpAddr, (u64, Vec<String>, Vec<String>)> = BTreeMap::new();
    for r in &mut snap.requests {
        let c1 = r.client.ip == ip(C1);
        let was_pod = r.pod.as_ref().and_then(|p| p.name.clone());
        let sticky_node = if c1 { "node2" } else { "node0" };
        let (node, pod) = if affinity {
            // AKS switches the ALB to SourceIP with sessionAffinity; `recent` pins the first pod.
            (
                sticky_node.to_string(),
                Some(if c1 { PODS[0].name } else { PODS[1].name }.to_string()),
            )
        } else if source_ip {
            (sticky_node.to_string(), was_pod.clone())
        } else {
            (r.node.clone().unwrap_or_default(), was_pod.clone())
        };
        let is_moved = Some(&node) != r.node.as_ref() || pod != was_pod;
        moved += u64::from(is_moved);
        let e = per_client.entry(r.client.ip).or_default();
        e.0 += 1;
        if let Some(p) = &pod
            && !e.1.contains(p)
        {
            e.1.push(p.clone());
        }
        if !e.2.contains(&node) {
            e.2.push(node.clone());
        }
        r.whatif = Some(WhatIf {
            node: Some(node),
            pod,
            moved: is_moved,
        });
    }
    snap.distribution = distribution(&snap.requests);
    snap.whatif = WhatIfState {
        settings: whatif.clone(),
        summary: Some(WhatIfSummary {
            alb_mode: whatif.alb_mode,
            requests_total: snap.requests.len() as u64,
            requests_moved: moved,
            clients: per_client
                .into_iter()
                .map(|(client, (requests, pods, nodes))| ClientStickiness {
                    client,
                    requests,
                    pods,
                    nodes,
                })
                .collect(),
        }),
    };
    snap
}

/// Serves the fixture, with the hand-written what-if answers.
pub struct FixtureSource;

impl SnapshotSource for FixtureSource {
    fn name(&self) -> String {
        "FIXTURE scenario".into()
    }

    fn snapshot(&self, whatif: &WhatIfSettings, progress: &LoadProgress) -> Snapshot {
        progress.begin("fixture", 1);
        let s = with_whatif(whatif);
        progress.advance(1);
        s
    }
}

/// The fixture scaled to `n` requests (for the benchmark): the 60 requests repeated with new ids,
/// connection numbers and times; detail kept only for the first 60.
pub fn scaled(n: usize) -> Snapshot {
    let mut snap = recorded();
    let base = snap.requests.clone();
    let base_us = time_micros(&base[0].time).unwrap();
    snap.requests = Vec::with_capacity(n);
    for i in 0..n {
        let mut r = base[i % base.len()].clone();
        let round = (i / base.len()) as i64;
        r.id = i as u64 + 1;
        r.connection += round as u64 * 100;
        let us = time_micros(&r.time).unwrap() - base_us + round * 60_000_000 + base_us;
        r.time = micros_to_rfc3339(us);
        snap.requests.push(r);
    }
    snap
}

fn micros_to_rfc3339(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let micro = us.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // civil from days (Howard Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micro:06}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// The fixture's guided tour (TOML text).
pub const TOUR: &str = include_str!("fixture_tour.toml");
