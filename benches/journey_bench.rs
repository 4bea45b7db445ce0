//! Journeys at scale: 1 M generated HTTP requests against a kube-proxy-shaped dump of 5,000
//! Services × 5 endpoints (new layout) on a 100-node cluster, after capture parsing: per
//! connection the ALB model's decision, the stateful replay on its ingress node (forced to the
//! observed endpoint for two thirds of the connections, as captures on every node would show;
//! the seeded draw with the exhaustive candidate list for the rest), SNAT, pod, zone; then one
//! `RequestJourney` record per request.
//!
//! Three mixes: one request per connection (`--disable-keepalive`, the worst case: a NAT decision
//! per request) and four per connection (keep-alive), with two thirds of the connections
//! explained by a capture; and one per connection with every connection explained (captures on
//! every node, as in the lab).
//!
//! Reference in the same run: the netfilter engine's bare stateful replay of the same
//! connections (`NodeEvaluator::new_connection`, no path), i.e. the floor the journey adds to.
//!
//! Run: `cargo bench --bench journey_bench` (`-- --quick` for 100 k requests).

use hoptrace::cluster::load::load_bytes;
use hoptrace::journey::replay::{FlowFacts, ReplayConfig, Replayer};
use hoptrace::journey::run::{HttpFields, request_record};
use hoptrace::journey::scenario::{RulesInput, Scenario, ScenarioInputs};
use hoptrace::netfilter::kube::Layout;
use hoptrace::netfilter::kube::generate::{self, ClusterShape};
use hoptrace::netfilter::{NodeContext, NodeEvaluator, Packet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

const NODES: usize = 100;

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// xorshift64*: cheap, deterministic.
struct Gen(u64);
impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// cluster.toml: 100 nodes in 3 zones, each owning a /24 of the generated endpoints' range;
/// every ClusterIP is also an ALB frontend (floating IP), so the ALB model decides each flow.
fn cluster_toml(svcs: &[generate::GeneratedService]) -> String {
    let mut t = String::from("[load_balancer]\nfrontends = [");
    for (i, s) in svcs.iter().enumerate() {
        let _ = write!(t, "{}\"{}\"", if i > 0 { ", " } else { "" }, s.cluster_ip);
    }
    t.push_str("]\nmode = \"default\"\nhash = \"jhash\"\nseed = 0x5eed0003\n\n");
    for n in 0..NODES {
        let _ = write!(
            t,
            "[[nodes]]\nname = \"node{n}\"\nip = \"10.220.{}.{}\"\npod_cidr = \"10.128.{n}.0/24\"\nzone = \"{}\"\n\n",
            n / 250,
            4 + n % 250,
            1 + n % 3
        );
    }
    t
}

struct Workload {
    facts: Vec<FlowFacts>,
    requests_per_connection: usize,
}

/// `observed_thirds`: how many thirds of the connections a capture explains (post-DNAT packet seen).
fn workload(
    sc: &Scenario,
    svcs: &[generate::GeneratedService],
    requests: usize,
    per_conn: usize,
    observed_thirds: u64,
) -> Workload {
    let mut g = Gen(0x5eed_0001);
    let conns = requests / per_conn;
    let rp = Replayer::new(
        sc,
        ReplayConfig {
            seed: 1,
            full_walk: false,
        },
    );
    let facts = (0..conns)
        .map(|i| {
            let r = g.next();
            let s = &svcs[(r % svcs.len() as u64) as usize];
            let client = SocketAddr::new(
                IpAddr::V4(Ipv4Addr::from(0x47F6_0000u32 | ((r >> 16) as u32 & 0xffff))),
                1024 + ((r >> 32) as u16 % 60000),
            );
            let frontend = SocketAddr::new(IpAddr::V4(s.cluster_ip), s.port);
            let mut f = FlowFacts {
                protocol: 6,
                client,
                frontend,
                // 100 µs apart: 100 s of traffic.
                start_ns: 1_795_774_000_000_000_000 + i as i64 * 100_000,
                syn_seen: true,
                observed_node: None,
                observed_endpoint: None,
                observed_source: None,
                no_egress_on_ingress: false,
            };
            let node = rp.alb_decision(&f).and_then(|a| a.predicted_node);
            f.observed_node = node.clone();
            if (r >> 48) % 3 < observed_thirds {
                // A capture shows the post-DNAT packet (and the masqueraded source).
                let (ip, port) = s.endpoints[((r >> 40) % s.endpoints.len() as u64) as usize];
                f.observed_endpoint = Some(SocketAddr::new(IpAddr::V4(ip), port));
                let n: usize = node
                    .as_deref()
                    .and_then(|n| n[4..].parse().ok())
                    .unwrap_or(0);
                f.observed_source = Some(SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::new(10, 220, (n / 250) as u8, (4 + n % 250) as u8)),
                    client.port(),
                ));
            }
            f
        })
        .collect();
    Workload {
        facts,
        requests_per_connection: per_conn,
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let requests: usize = if quick { 100_000 } else { 1_000_000 };
    let shape = ClusterShape {
        services: 5000,
        endpoints: 5,
        layout: Layout::New,
        ..Default::default()
    };
    let svcs = generate::services(&shape);
    let rules = generate::generate(&shape);
    println!(
        "journey benchmark: {requests} requests, 5,000 services x 5 endpoints ({:.1} MB of rules), {NODES} nodes; one core",
        rules.len() as f64 / 1e6
    );

    let rss0 = rss_kib("VmRSS:");
    let t = Instant::now();
    let toml = cluster_toml(&svcs);
    let src = load_bytes(toml.as_bytes(), "cluster.toml", Path::new(""), None)
        .expect("generated cluster.toml loads");
    let si = ScenarioInputs {
        title: "bench".into(),
        rules: vec![RulesInput {
            source: "generated.rules".into(),
            node: None,
            text: rules.into_bytes(),
        }],
        cluster_sources: vec![src],
        ..Default::default()
    };
    let sc = Scenario::assemble(si);
    println!(
        "scenario         {:.0} ms to parse the rules and the cluster, infer {} pods; +{:.1} MiB resident",
        t.elapsed().as_secs_f64() * 1e3,
        sc.cluster.pods().len(),
        rss_kib("VmRSS:").saturating_sub(rss0) as f64 / 1024.0
    );
    assert!(
        sc.warnings.is_empty(),
        "{:?}",
        &sc.warnings[..sc.warnings.len().min(3)]
    );

    for (per_conn, thirds) in [(1usize, 2u64), (4, 2), (1, 3)] {
        let w = workload(&sc, &svcs, requests, per_conn, thirds);
        let rss1 = rss_kib("VmRSS:");
        let t = Instant::now();
        let mut rp = Replayer::new(
            &sc,
            ReplayConfig {
                seed: 1,
                full_walk: false,
            },
        );
        // Records are serialised as `report --format ndjson` writes them, to a sink: a report
        // streams them out rather than holding a million in memory.
        let mut sink = std::io::sink();
        let mut line = Vec::with_capacity(2048);
        let mut bytes = 0usize;
        let mut n_records = 0usize;
        let mut observed = 0usize;
        let mut crossed = 0usize;
        for (ci, f) in w.facts.iter().enumerate() {
            let j = rp.step(f);
            observed += usize::from(j.endpoint.is_some());
            crossed += usize::from(j.crossed_node == Some(true));
            for k in 0..w.requests_per_connection {
                let http = HttpFields {
                    method: "GET".into(),
                    target: "/".into(),
                    host: None,
                    status: Some(200),
                };
                n_records += 1;
                let rec = request_record(
                    n_records as u64,
                    ci as u64 + 1,
                    f.start_ns + k as i64 * 1000,
                    "bench.pcap",
                    f.client,
                    f.frontend,
                    http,
                    &j,
                );
                line.clear();
                serde_json::to_writer(&mut line, &rec).expect("serialises");
                line.push(b'\n');
                bytes += line.len();
                std::io::Write::write_all(&mut sink, &line).expect("sink");
            }
        }
        let el = t.elapsed().as_secs_f64();
        let peak = rss_kib("VmHWM:");
        println!(
            "journeys x{per_conn} {thirds}/3  {:.0} k requests/s ({:.2} µs each; {} connections, {} with an endpoint, {} crossed a node; {:.2} s; {:.0} MB of NDJSON; +{:.0} MiB replay state, peak RSS {:.0} MiB)",
            n_records as f64 / el / 1e3,
            el * 1e6 / n_records as f64,
            w.facts.len(),
            observed,
            crossed,
            el,
            bytes as f64 / 1e6,
            rss_kib("VmRSS:").saturating_sub(rss1) as f64 / 1024.0,
            peak as f64 / 1024.0
        );
        drop(rp);
    }

    // Reference: the netfilter engine's bare stateful replay of the same connections.
    let w = workload(&sc, &svcs, requests, 1, 2);
    let rs = sc.rules[0].ruleset.clone();
    let mut evs: Vec<NodeEvaluator> = (0..NODES)
        .map(|n| {
            let mut e = NodeEvaluator::seeded(Arc::clone(&rs), NodeContext::new([]), n as u64);
            e.record_path = false;
            e
        })
        .collect();
    let t = Instant::now();
    for f in &w.facts {
        let n: usize = f
            .observed_node
            .as_deref()
            .and_then(|n| n[4..].parse().ok())
            .unwrap_or(0);
        let p = Packet::tcp(
            f.client.ip(),
            Some(f.client.port()),
            f.frontend.ip(),
            f.frontend.port(),
        )
        .with_in_iface("eth0");
        std::hint::black_box(evs[n].new_connection(&p, f.start_ns as u64));
    }
    let el = t.elapsed().as_secs_f64();
    println!(
        "reference        NodeEvaluator::new_connection alone, same connections: {:.0} k/s ({:.2} µs each)",
        w.facts.len() as f64 / el / 1e3,
        el * 1e6 / w.facts.len() as f64
    );
}
