//! Checks every committed lab recording (`captures/<scenario>/`) against its own pcaps, so a
//! broken recording cannot land: truth.json comes from conntrack, nftrace and the pods' request
//! logs, never from the pcaps, so agreement between the two is a real cross-check.
//!
//! For every scenario:
//! * each node capture holds exactly one client SYN 4-tuple per truth connection that entered
//!   that node (client → frontend), and no other client SYN;
//! * a connection the node DNATed to another node's pod shows up on the pod node's capture as a
//!   SYN from the SNAT source (or the client, without SNAT) to the endpoint;
//! * the HTTP request lines the client sent on each connection, as the ingress node saw them,
//!   are the truth's requests (method, target, count);
//! * client-side captures hold exactly that client's connections.
//!
//! Reads only committed files; needs no root. The pcap reading here is deliberately minimal and
//! independent of hoptrace's capture engine: the classic pcap record layer by hand, packets with
//! etherparse. (pcap-file 2.0's `PcapReader`/`PcapParser` reject every record whose `orig_len`
//! exceeds the file's snaplen, i.e. every truncated packet, which `07-affinity-eviction`'s
//! snaplen-160 captures are full of; its header parser is still used for the global header.)

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use etherparse::{LaxNetSlice, LaxSlicedPacket, TransportSlice};
use pcap_file::pcap::PcapHeader;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Truth {
    scenario: String,
    connections: Vec<Connection>,
    summary: Summary,
}

#[derive(Debug, Deserialize)]
struct Summary {
    connections: usize,
    requests: usize,
}

#[derive(Debug, Deserialize)]
struct Endpoint {
    ip: Ipv4Addr,
    port: u16,
}

#[derive(Debug, Deserialize)]
struct Connection {
    id: u32,
    client: Endpoint,
    frontend: Endpoint,
    ingress_node: String,
    alb: Option<AlbChoice>,
    endpoint: Dnat,
    pod: Pod,
    snat: Option<Endpoint>,
    crossed_node: bool,
    chain_path: Vec<PathStep>,
    requests: Vec<Request>,
}

#[derive(Debug, Deserialize)]
struct AlbChoice {
    bucket: usize,
    node: String,
}

#[derive(Debug, Deserialize)]
struct Dnat {
    ip: Ipv4Addr,
    port: u16,
    chain: String,
}

#[derive(Debug, Deserialize)]
struct Pod {
    ip: Ipv4Addr,
    node: String,
}

#[derive(Debug, Deserialize)]
struct PathStep {
    table: String,
    chain: String,
    rule: u32,
    verdict: String,
}

#[derive(Debug, Deserialize)]
struct Request {
    method: String,
    target: String,
    count: usize,
}

#[derive(Debug, Deserialize)]
struct Cluster {
    load_balancer: Option<LoadBalancer>,
    #[serde(default)]
    nodes: Vec<Capturer>,
    #[serde(default)]
    clients: Vec<Capturer>,
}

#[derive(Debug, Deserialize)]
struct LoadBalancer {
    backends: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Capturer {
    name: String,
    ip: Ipv4Addr,
    #[serde(default)]
    captures: Vec<String>,
}

type FourTuple = (Ipv4Addr, u16, Ipv4Addr, u16);

/// What the test needs from one capture: SYN 4-tuples and the request lines per direction.
#[derive(Default)]
struct CaptureFacts {
    syns: BTreeSet<FourTuple>,
    /// (flow) → request lines "METHOD TARGET", one per distinct TCP sequence number.
    requests: BTreeMap<FourTuple, BTreeMap<u32, String>>,
}

const METHODS: [&str; 7] = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"];

fn read_capture(path: &Path) -> CaptureFacts {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (rest, header) = PcapHeader::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{}: not a pcap: {e}", path.display()));
    let big_endian = header.endianness == pcap_file::Endianness::Big;
    let u32_at = |b: &[u8], at: usize| {
        let w: [u8; 4] = b[at..at + 4].try_into().unwrap();
        if big_endian {
            u32::from_be_bytes(w)
        } else {
            u32::from_le_bytes(w)
        }
    };
    let mut facts = CaptureFacts::default();
    let mut offset = bytes.len() - rest.len();
    let mut index = 0usize;
    while offset < bytes.len() {
        index += 1;
        assert!(
            bytes.len() - offset >= 16,
            "{}: record {index} at byte {offset}: truncated record header",
            path.display()
        );
        let incl_len = u32_at(&bytes, offset + 8) as usize;
        let data_at = offset + 16;
        assert!(
            incl_len <= header.snaplen as usize && incl_len <= bytes.len() - data_at,
            "{}: record {index} at byte {offset}: incl_len {incl_len} exceeds the snaplen or the file",
            path.display()
        );
        let data = &bytes[data_at..data_at + incl_len];
        offset = data_at + incl_len;
        let Ok(sliced) = LaxSlicedPacket::from_ethernet(data) else {
            continue;
        };
        let Some(LaxNetSlice::Ipv4(ip)) = &sliced.net else {
            continue;
        };
        let Some(TransportSlice::Tcp(tcp)) = &sliced.transport else {
            continue;
        };
        let flow = (
            ip.header().source_addr(),
            tcp.source_port(),
            ip.header().destination_addr(),
            tcp.destination_port(),
        );
        if tcp.syn() && !tcp.ack() {
            facts.syns.insert(flow);
        }
        if let Some(line) = request_line(tcp.payload()) {
            facts
                .requests
                .entry(flow)
                .or_default()
                .insert(tcp.sequence_number(), line);
        }
    }
    facts
}

/// "METHOD TARGET" when the segment starts an HTTP/1.x request.
fn request_line(payload: &[u8]) -> Option<String> {
    let end = payload.iter().position(|&b| b == b'\r')?;
    let line = std::str::from_utf8(&payload[..end]).ok()?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    (METHODS.contains(&method) && version.starts_with("HTTP/1."))
        .then(|| format!("{method} {target}"))
}

fn scenarios() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.join("truth.json").is_file())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

fn check_scenario(dir: &Path) -> Vec<String> {
    let mut errors = Vec::new();
    let name = dir.file_name().unwrap().to_string_lossy().to_string();
    let truth: Truth =
        serde_json::from_str(&std::fs::read_to_string(dir.join("truth.json")).unwrap())
            .unwrap_or_else(|e| panic!("{name}/truth.json: {e}"));
    let cluster: Cluster =
        toml::from_str(&std::fs::read_to_string(dir.join("cluster.toml")).unwrap())
            .unwrap_or_else(|e| panic!("{name}/cluster.toml: {e}"));
    assert_eq!(
        truth.scenario, name,
        "{name}: truth.json names another scenario"
    );
    assert!(!truth.connections.is_empty(), "{name}: no connections");
    if truth.summary.connections != truth.connections.len() {
        errors.push(format!(
            "summary says {} connections, list has {}",
            truth.summary.connections,
            truth.connections.len()
        ));
    }
    let total: usize = truth
        .connections
        .iter()
        .flat_map(|c| &c.requests)
        .map(|r| r.count)
        .sum();
    if truth.summary.requests != total {
        errors.push(format!(
            "summary says {} requests, connections hold {total}",
            truth.summary.requests
        ));
    }

    let client_ips: BTreeSet<Ipv4Addr> = truth.connections.iter().map(|c| c.client.ip).collect();
    let node_caps: BTreeMap<&str, CaptureFacts> = cluster
        .nodes
        .iter()
        .map(|n| {
            let mut merged = CaptureFacts::default();
            for cap in &n.captures {
                let f = read_capture(&dir.join(cap));
                merged.syns.extend(f.syns);
                for (flow, lines) in f.requests {
                    merged.requests.entry(flow).or_default().extend(lines);
                }
            }
            (n.name.as_str(), merged)
        })
        .collect();
    if node_caps.is_empty() {
        errors.push("cluster.toml lists no node".into());
    }

    for (node, facts) in &node_caps {
        let seen: BTreeSet<FourTuple> = facts
            .syns
            .iter()
            .copied()
            .filter(|(src, _, _, _)| client_ips.contains(src))
            .filter(|(_, _, dst, dport)| {
                truth
                    .connections
                    .iter()
                    .any(|c| c.frontend.ip == *dst && c.frontend.port == *dport)
            })
            .collect();
        let expected: BTreeSet<FourTuple> = truth
            .connections
            .iter()
            .filter(|c| c.ingress_node == *node)
            .map(|c| (c.client.ip, c.client.port, c.frontend.ip, c.frontend.port))
            .collect();
        for missing in expected.difference(&seen) {
            errors.push(format!(
                "{node}: truth has connection {missing:?}, the capture has no SYN for it"
            ));
        }
        for extra in seen.difference(&expected) {
            errors.push(format!("{node}: capture has client SYN {extra:?} that truth.json does not list for this node"));
        }
    }

    for c in &truth.connections {
        let tuple = (c.client.ip, c.client.port, c.frontend.ip, c.frontend.port);
        if c.chain_path.is_empty()
            || c.chain_path
                .iter()
                .any(|s| s.rule == 0 || s.table.is_empty() || s.chain.is_empty())
        {
            errors.push(format!(
                "connection {}: empty or malformed chain path",
                c.id
            ));
        }
        // The ALB's bucket names the ingress node through cluster.toml's backend order.
        match (&c.alb, &cluster.load_balancer) {
            (Some(alb), Some(lb)) => {
                if lb.backends.get(alb.bucket) != Some(&c.ingress_node)
                    || alb.node != c.ingress_node
                {
                    errors.push(format!(
                        "connection {}: bucket {} is not ingress node {} in {:?}",
                        c.id, alb.bucket, c.ingress_node, lb.backends
                    ));
                }
            }
            (Some(_), None) => errors.push(format!(
                "connection {}: ALB choice without [load_balancer]",
                c.id
            )),
            (None, _) => {}
        }
        let dnat: Vec<&PathStep> = c
            .chain_path
            .iter()
            .filter(|s| {
                s.table == "nat" && s.chain.starts_with("KUBE-SEP-") && s.verdict == "ACCEPT"
            })
            .collect();
        if dnat.len() != 1 || dnat[0].chain != c.endpoint.chain || c.pod.ip != c.endpoint.ip {
            errors.push(format!(
                "connection {}: endpoint {} is not the path's one DNAT rule or the pod",
                c.id, c.endpoint.chain
            ));
        }
        if c.crossed_node != (c.pod.node != c.ingress_node) {
            errors.push(format!(
                "connection {}: crossed_node disagrees with its nodes",
                c.id
            ));
        }
        // Requests as the ingress node saw them.
        if let Some(facts) = node_caps.get(c.ingress_node.as_str()) {
            let mut seen: BTreeMap<String, usize> = BTreeMap::new();
            for line in facts
                .requests
                .get(&tuple)
                .map(|m| m.values())
                .into_iter()
                .flatten()
            {
                *seen.entry(line.clone()).or_default() += 1;
            }
            let expected: BTreeMap<String, usize> = c
                .requests
                .iter()
                .map(|r| (format!("{} {}", r.method, r.target), r.count))
                .collect();
            if seen != expected {
                errors.push(format!("connection {} {tuple:?}: capture on {} shows requests {seen:?}, truth {expected:?}", c.id, c.ingress_node));
            }
        }
        // The forwarded SYN on the pod's node.
        if let Some(facts) = node_caps
            .get(c.pod.node.as_str())
            .filter(|_| c.crossed_node)
        {
            let src = c
                .snat
                .as_ref()
                .map_or((c.client.ip, c.client.port), |s| (s.ip, s.port));
            let fwd = (src.0, src.1, c.endpoint.ip, c.endpoint.port);
            if !facts.syns.contains(&fwd) {
                errors.push(format!(
                    "connection {}: pod node {} has no SYN {fwd:?}",
                    c.id, c.pod.node
                ));
            }
        }
    }

    for client in &cluster.clients {
        let mut syns = BTreeSet::new();
        for cap in &client.captures {
            syns.extend(
                read_capture(&dir.join(cap))
                    .syns
                    .into_iter()
                    .filter(|(src, ..)| *src == client.ip),
            );
        }
        let expected: BTreeSet<FourTuple> = truth
            .connections
            .iter()
            .filter(|c| c.client.ip == client.ip)
            .map(|c| (c.client.ip, c.client.port, c.frontend.ip, c.frontend.port))
            .collect();
        if syns != expected {
            errors.push(format!(
                "client {}: capture SYNs {} vs truth {}",
                client.name,
                syns.len(),
                expected.len()
            ));
        }
    }
    errors.into_iter().map(|e| format!("{name}: {e}")).collect()
}

#[test]
fn every_recording_agrees_with_its_pcaps() {
    let dirs = scenarios();
    if dirs.is_empty() {
        eprintln!("skipped: no captures/<scenario>/truth.json in this checkout");
        return;
    }
    let errors: Vec<String> = dirs.iter().flat_map(|d| check_scenario(d)).collect();
    assert!(
        errors.is_empty(),
        "{} problem(s):\n{}",
        errors.len(),
        errors.join("\n")
    );
}

#[test]
fn request_line_recognises_http_requests_only() {
    assert_eq!(
        request_line(b"GET / HTTP/1.1\r\nHost: x\r\n"),
        Some("GET /".into())
    );
    assert_eq!(
        request_line(b"POST /orders HTTP/1.1\r\n"),
        Some("POST /orders".into())
    );
    assert_eq!(request_line(b"HTTP/1.1 200 OK\r\n"), None);
    assert_eq!(
        request_line(b"GET / HTTP/1.1"),
        None,
        "no line end in the snapshot"
    );
    assert_eq!(request_line(b"YO"), None);
}
