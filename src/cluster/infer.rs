//! Inference helpers: pure functions that fill gaps in what the inputs state, each returning the
//! reason in words so the result can be shown as *inferred*.
//!
//! * pod → node from pod CIDRs ([`node_for_pod_ip`]);
//! * a node's pod CIDR from the pod IPs seen on it ([`guess_pod_cidr`]);
//! * node IPs from masqueraded sources ([`node_ips_from_masquerade`]);
//! * which node a capture was taken on, from its file name ([`capture_node_from_file_name`],
//!   [`node_name_from_capture_file`]) and from the addresses it saw
//!   ([`capture_node_from_addresses`]); [`attribute_capture`] combines both.

use super::error::Diagnostic;
use super::model::{Cluster, Node};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// The node whose pod CIDR contains `ip` (longest prefix wins), with the CIDR.
pub fn node_for_pod_ip(nodes: &[Node], ip: IpAddr) -> Option<(&Node, IpNet)> {
    nodes
        .iter()
        .filter_map(|n| n.pod_cidr_containing(ip).map(|c| (n, c.value)))
        .max_by_key(|(_, c)| c.prefix_len())
}

/// A guessed pod CIDR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodCidrGuess {
    pub net: IpNet,
    pub reason: String,
}

/// Guess a node's pod CIDR from pod IPs seen on it: the `assumed_prefix` network containing
/// them all (kubenet hands each node a /24 by default — `--node-cidr-mask-size` — and a /64 for
/// IPv6), or, when they do not fit one, the smallest common supernet, but never wider than /16
/// (IPv4) or /48 (IPv6), which would swallow other nodes' ranges. Mixed families yield `None`.
pub fn guess_pod_cidr(ips: &[IpAddr], assumed_prefix: u8) -> Option<PodCidrGuess> {
    let first = *ips.first()?;
    let v6 = first.is_ipv6();
    if ips.iter().any(|ip| ip.is_ipv6() != v6) {
        return None;
    }
    let max = if v6 { 128 } else { 32 };
    let widest = if v6 { 48 } else { 16 };
    let prefix = assumed_prefix.min(max);
    let common = common_prefix_len(ips);
    let shown = || {
        ips.iter()
            .take(4)
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let more = if ips.len() > 4 {
        format!(" and {} more", ips.len() - 4)
    } else {
        String::new()
    };
    let (len, reason) = if common >= prefix {
        (
            prefix,
            format!(
                "the /{prefix} holding pod IPs {}{more} (one /{prefix} per node assumed)",
                shown()
            ),
        )
    } else if common >= widest {
        (
            common,
            format!(
                "smallest network holding pod IPs {}{more} (they do not fit one /{prefix})",
                shown()
            ),
        )
    } else {
        return None;
    };
    let net = IpNet::new(first, len).ok()?.trunc();
    Some(PodCidrGuess { net, reason })
}

fn common_prefix_len(ips: &[IpAddr]) -> u8 {
    let as_u128 = |ip: &IpAddr| match ip {
        IpAddr::V4(a) => u128::from(u32::from(*a)) << 96,
        IpAddr::V6(a) => u128::from(*a),
    };
    let max = if ips[0].is_ipv4() { 32 } else { 128 };
    let first = as_u128(&ips[0]);
    let diff = ips
        .iter()
        .fold(0u128, |acc, ip| acc | (as_u128(ip) ^ first));
    (diff.leading_zeros() as u8).min(max)
}

/// One post-NAT connection seen on its way to a pod: it entered the cluster at `ingress_node`
/// (the node whose capture saw the client's SYN) and reached the pod with source
/// `snat_source` after MASQUERADE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasqueradeSighting {
    pub ingress_node: String,
    pub snat_source: IpAddr,
}

/// A node IP inferred from masqueraded sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InferredNodeIp {
    pub node: String,
    pub ip: IpAddr,
    pub reason: String,
}

/// MASQUERADE takes the address of the outgoing interface: the node IP towards another node,
/// the bridge address (first address of the pod CIDR) towards a local pod. So the SNAT sources
/// of connections that entered at node N, outside every pod CIDR, are N's IP. More than one
/// such address for a node, or one address for two nodes, is reported, not guessed.
pub fn node_ips_from_masquerade(
    sightings: &[MasqueradeSighting],
    pod_cidrs: &[IpNet],
) -> (Vec<InferredNodeIp>, Vec<String>) {
    let mut by_node: BTreeMap<&str, BTreeMap<IpAddr, usize>> = BTreeMap::new();
    for s in sightings {
        if pod_cidrs.iter().any(|c| c.contains(&s.snat_source)) {
            continue; // a bridge address: local delivery, says nothing about the node IP
        }
        *by_node
            .entry(&s.ingress_node)
            .or_default()
            .entry(s.snat_source)
            .or_default() += 1;
    }
    let mut problems = Vec::new();
    let mut out: Vec<InferredNodeIp> = Vec::new();
    for (node, ips) in &by_node {
        let per_family: BTreeMap<bool, Vec<(&IpAddr, &usize)>> =
            ips.iter().fold(BTreeMap::new(), |mut m, (ip, n)| {
                m.entry(ip.is_ipv6()).or_insert_with(Vec::new).push((ip, n));
                m
            });
        for list in per_family.values() {
            if let [(ip, n)] = list.as_slice() {
                out.push(InferredNodeIp {
                    node: (*node).to_owned(),
                    ip: **ip,
                    reason: format!("source address after MASQUERADE of {n} connection(s) that entered at {node}"),
                });
            } else {
                let all: Vec<String> = list.iter().map(|(ip, n)| format!("{ip} ({n}×)")).collect();
                problems.push(format!("connections entering at {node} were masqueraded to several addresses: {}; node IP not inferred", all.join(", ")));
            }
        }
    }
    // One address claimed by two nodes: drop it from both.
    let mut owners: BTreeMap<IpAddr, BTreeSet<String>> = BTreeMap::new();
    for i in &out {
        owners.entry(i.ip).or_default().insert(i.node.clone());
    }
    for (ip, nodes) in owners.iter().filter(|(_, n)| n.len() > 1) {
        problems.push(format!(
            "{ip} appears as the masqueraded source for connections entering at {}; node IP not inferred",
            nodes.iter().cloned().collect::<Vec<_>>().join(" and ")
        ));
        out.retain(|i| i.ip != *ip);
    }
    (out, problems)
}

const CAPTURE_EXTENSIONS: &[&str] = &[".gz", ".zst", ".xz", ".pcapng", ".pcap", ".cap", ".dmp"];

fn capture_stem(file_name: &str) -> &str {
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
    let mut stem = base;
    loop {
        let lower = stem.to_ascii_lowercase();
        match CAPTURE_EXTENSIONS.iter().find(|e| lower.ends_with(*e)) {
            Some(e) => stem = &stem[..stem.len() - e.len()],
            None => return stem,
        }
    }
}

fn is_sep(c: char) -> bool {
    matches!(c, '-' | '_' | '.' | '@' | '+' | ' ' | '=')
}

/// `needle` occurs in `hay` bounded by separators or the ends.
fn bounded_match(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return false;
    }
    hay.match_indices(needle).any(|(i, _)| {
        let before = hay[..i].chars().next_back();
        let after = hay[i + needle.len()..].chars().next();
        before.is_none_or(is_sep) && after.is_none_or(is_sep)
    })
}

/// A capture-to-node match with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeMatch {
    pub node: String,
    pub reason: String,
}

/// Which of `nodes` a capture file name names: the node name as a separator-bounded part of the
/// name (`node1-eth0.pcap` → node1, not node10), AKS's VMSS instance suffix
/// (`vmss000001.pcap` → `aks-nodepool1-…-vmss000001`), or a node IP in the name. The longest
/// matching name wins; a tie between different nodes is no answer.
pub fn capture_node_from_file_name<S: AsRef<str>>(
    file_name: &str,
    nodes: &[(S, Option<IpAddr>)],
) -> Option<NodeMatch> {
    let stem = capture_stem(file_name);
    let mut best: Vec<(usize, &str, String)> = Vec::new();
    for (name, ip) in nodes {
        let name = name.as_ref();
        let mut candidates: Vec<(usize, String)> = Vec::new();
        if bounded_match(stem, name) {
            candidates.push((
                name.len() + 1000,
                format!("file name {stem:?} contains node name {name}"),
            ));
        }
        if let Some(pos) = name.rfind("-vmss") {
            let suffix = &name[pos + 1..];
            if bounded_match(stem, suffix) {
                candidates.push((
                    suffix.len(),
                    format!("file name {stem:?} contains {suffix}, the VMSS instance of {name}"),
                ));
            }
        }
        if let Some(ip) = ip {
            let s = ip.to_string();
            if bounded_match(stem, &s)
                || bounded_match(stem, &s.replace('.', "-"))
                || bounded_match(stem, &s.replace('.', "_"))
            {
                candidates.push((
                    500,
                    format!("file name {stem:?} contains {name}'s address {ip}"),
                ));
            }
        }
        if let Some((score, reason)) = candidates.into_iter().max_by_key(|(s, _)| *s) {
            best.push((score, name, reason));
        }
    }
    let top = best.iter().map(|(s, _, _)| *s).max()?;
    let winners: Vec<&(usize, &str, String)> = best.iter().filter(|(s, _, _)| *s == top).collect();
    match winners.as_slice() {
        [(_, name, reason)] => Some(NodeMatch {
            node: (*name).to_owned(),
            reason: reason.clone(),
        }),
        _ => None,
    }
}

/// A node name guessed from a capture file name when no node list is known:
/// `node1-eth0.pcap` → `node1`. Interface suffixes (`-eth0`, `_ens5`, `-any`, `-cbr0`) are
/// dropped. Client-side captures (`client…`) name no node.
pub fn node_name_from_capture_file(file_name: &str) -> Option<String> {
    let stem = capture_stem(file_name);
    if stem.is_empty() || stem.to_ascii_lowercase().starts_with("client") {
        return None;
    }
    let is_iface = |t: &str| {
        let digits_after = |p: &str| {
            t.strip_prefix(p)
                .is_some_and(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric()))
        };
        matches!(t, "any" | "lo" | "cbr0" | "cni0" | "docker0")
            || digits_after("eth")
            || digits_after("ens")
            || digits_after("enp")
            || digits_after("eno")
            || digits_after("bond")
            || digits_after("wlan")
            || digits_after("veth")
    };
    let mut name = stem;
    while let Some(pos) = name.rfind(['-', '_', '.']) {
        if is_iface(&name[pos + 1..]) {
            name = &name[..pos];
        } else {
            break;
        }
    }
    (!name.is_empty()).then(|| name.to_owned())
}

/// How often an address appeared in a capture (as source or destination).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressTally {
    pub ip: IpAddr,
    pub packets: u64,
}

/// Which node a capture belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureAttribution {
    Node {
        node: String,
        reason: String,
    },
    /// Taken on a declared client (cluster.toml `[[clients]]`).
    Client {
        name: Option<String>,
        reason: String,
    },
    Ambiguous {
        candidates: Vec<String>,
        reason: String,
    },
    NoNode {
        reason: String,
    },
}

impl CaptureAttribution {
    pub fn node(&self) -> Option<&str> {
        match self {
            CaptureAttribution::Node { node, .. } => Some(node),
            _ => None,
        }
    }
}

/// Attribute a capture from the addresses it saw. On a node's primary interface (no overlay)
/// every packet that is not client↔frontend involves that node: its own address, or an address
/// in its pod CIDR (cross-node pod traffic has one end on each node). So a node's score is the
/// packets involving its IP or pod CIDR; the best must beat the runner-up clearly (×1.5) or
/// the answer is ambiguous.
pub fn capture_node_from_addresses(
    tallies: &[AddressTally],
    cluster: &Cluster,
) -> CaptureAttribution {
    let mut scores: Vec<(u64, &str)> = cluster
        .nodes()
        .iter()
        .map(|n| {
            let s: u64 = tallies
                .iter()
                .filter(|t| n.has_ip(t.ip) || n.pod_cidr_containing(t.ip).is_some())
                .map(|t| t.packets)
                .fold(0u64, u64::saturating_add);
            (s, n.name())
        })
        .collect();
    scores.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    match scores.as_slice() {
        [] | [(0, _), ..] => CaptureAttribution::NoNode {
            reason: "no node address or pod-CIDR address seen".into(),
        },
        [(best, node)] => CaptureAttribution::Node {
            node: (*node).to_owned(),
            reason: format!("{best} packet(s) involve its address or pod CIDR"),
        },
        [(best, node), (second, other), ..] => {
            // best ≥ 1.5 × second, in integers.
            if best.saturating_mul(2) >= second.saturating_mul(3) && best > second {
                CaptureAttribution::Node {
                    node: (*node).to_owned(),
                    reason: format!(
                        "{best} packet(s) involve its address or pod CIDR, against {second} for {other}"
                    ),
                }
            } else {
                let candidates: Vec<String> = scores
                    .iter()
                    .filter(|(s, _)| s.saturating_mul(3) > best.saturating_mul(2))
                    .map(|(_, n)| (*n).to_owned())
                    .collect();
                CaptureAttribution::Ambiguous {
                    reason: format!("{node} ({best}) and {other} ({second}) appear about equally"),
                    candidates,
                }
            }
        }
    }
}

/// Which node (or client) a capture belongs to. A capture listed in the cluster file decides;
/// otherwise combine the file name and the addresses seen. The name wins when both answer and
/// disagree (the user chose it), with a warning; a capture matching no node gets a warning too.
pub fn attribute_capture(
    file_name: &str,
    tallies: &[AddressTally],
    cluster: &Cluster,
) -> (CaptureAttribution, Vec<Diagnostic>) {
    let path = std::path::Path::new(file_name);
    if let Some(n) = cluster.node_for_capture(path)
        && let Some(c) = n
            .captures
            .iter()
            .find(|c| c.value == path || c.value.file_name() == path.file_name())
    {
        let reason = format!(
            "listed as a capture of node {} ({})",
            n.name(),
            c.provenance
        );
        return (
            CaptureAttribution::Node {
                node: n.name().to_owned(),
                reason,
            },
            Vec::new(),
        );
    }
    if let Some(cl) = cluster.client_for_capture(path) {
        let reason = format!(
            "listed as a capture of client {}",
            cl.name().unwrap_or("(unnamed)")
        );
        return (
            CaptureAttribution::Client {
                name: cl.name().map(str::to_owned),
                reason,
            },
            Vec::new(),
        );
    }
    let nodes: Vec<(&str, Option<IpAddr>)> =
        cluster.nodes().iter().map(|n| (n.name(), n.ip())).collect();
    let by_name = capture_node_from_file_name(file_name, &nodes);
    let by_addr = capture_node_from_addresses(tallies, cluster);
    let mut diags = Vec::new();
    let result = match (by_name, &by_addr) {
        (Some(m), CaptureAttribution::Node { node, reason }) if *node == m.node => {
            CaptureAttribution::Node {
                node: m.node,
                reason: format!("{}; {reason}", m.reason),
            }
        }
        (Some(m), CaptureAttribution::Node { node, reason }) => {
            diags.push(Diagnostic::warning(
                file_name,
                format!("the file name says node {} but the addresses seen point to {node} ({reason}); using {}", m.node, m.node),
            ));
            CaptureAttribution::Node {
                node: m.node,
                reason: m.reason,
            }
        }
        (Some(m), _) => CaptureAttribution::Node {
            node: m.node,
            reason: m.reason,
        },
        // capture_node_from_addresses never answers Client; listed clients returned above.
        (None, CaptureAttribution::Node { .. } | CaptureAttribution::Client { .. }) => by_addr,
        (None, CaptureAttribution::Ambiguous { candidates, reason }) => {
            diags.push(Diagnostic::warning(
                file_name,
                format!(
                    "capture could be from {} ({reason}); name it NODE=FILE",
                    candidates.join(" or ")
                ),
            ));
            by_addr
        }
        (None, CaptureAttribution::NoNode { reason }) => {
            diags.push(Diagnostic::warning(
                file_name,
                format!("capture matches no node by name or addresses ({reason}); treated as taken outside the cluster"),
            ));
            by_addr
        }
    };
    (result, diags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn pod_cidr_guesses() {
        let g = guess_pod_cidr(&[ip("10.100.2.2"), ip("10.100.2.9")], 24).unwrap();
        assert_eq!(g.net.to_string(), "10.100.2.0/24");
        assert!(g.reason.contains("10.100.2.2"));
        let g = guess_pod_cidr(&[ip("10.100.2.2"), ip("10.100.3.9")], 24).unwrap();
        assert_eq!(g.net.to_string(), "10.100.2.0/23");
        assert_eq!(
            guess_pod_cidr(&[ip("10.100.2.2"), ip("10.200.3.9")], 24),
            None
        );
        assert_eq!(guess_pod_cidr(&[ip("10.100.2.2"), ip("fd00::1")], 24), None);
        assert_eq!(guess_pod_cidr(&[], 24), None);
        assert_eq!(
            guess_pod_cidr(&[ip("fd00:1:2:3::5")], 64)
                .unwrap()
                .net
                .to_string(),
            "fd00:1:2:3::/64"
        );
    }

    #[test]
    fn masquerade_sources() {
        let s = |n: &str, i: &str| MasqueradeSighting {
            ingress_node: n.into(),
            snat_source: ip(i),
        };
        let cidrs: Vec<IpNet> = vec!["10.100.0.0/24".parse().unwrap()];
        let (ips, problems) = node_ips_from_masquerade(
            &[
                s("node1", "10.220.1.5"),
                s("node1", "10.220.1.5"),
                s("node2", "10.220.1.6"),
                s("node0", "10.100.0.1"),
            ],
            &cidrs,
        );
        assert!(problems.is_empty());
        let got: Vec<(&str, String)> = ips
            .iter()
            .map(|i| (i.node.as_str(), i.ip.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("node1", "10.220.1.5".to_owned()),
                ("node2", "10.220.1.6".to_owned())
            ]
        );
        assert!(ips[0].reason.contains("2 connection"));

        let (ips, problems) = node_ips_from_masquerade(
            &[
                s("a", "10.0.0.1"),
                s("a", "10.0.0.2"),
                s("b", "10.0.0.9"),
                s("c", "10.0.0.9"),
            ],
            &[],
        );
        assert!(ips.is_empty());
        assert_eq!(problems.len(), 2);
    }

    #[test]
    fn file_names() {
        let nodes = [
            ("node1", Some(ip("10.220.1.5"))),
            ("node10", Some(ip("10.220.1.14"))),
            ("aks-nodepool1-23454376-vmss000001", Some(ip("10.220.1.4"))),
        ];
        let m = |f: &str| capture_node_from_file_name(f, &nodes).map(|m| m.node);
        assert_eq!(m("node1-eth0.pcap").as_deref(), Some("node1"));
        assert_eq!(m("node10-eth0.pcapng").as_deref(), Some("node10"));
        assert_eq!(m("/tmp/caps/node1.pcap.gz").as_deref(), Some("node1"));
        assert_eq!(
            m("aks-nodepool1-23454376-vmss000001.pcap").as_deref(),
            Some("aks-nodepool1-23454376-vmss000001")
        );
        assert_eq!(
            m("vmss000001-eth0.pcap").as_deref(),
            Some("aks-nodepool1-23454376-vmss000001")
        );
        assert_eq!(m("cap-10.220.1.14.pcap").as_deref(), Some("node10"));
        assert_eq!(m("cap-10-220-1-5.pcap").as_deref(), Some("node1"));
        assert_eq!(m("node2-eth0.pcap"), None);
        assert_eq!(m("client.pcap"), None);

        assert_eq!(
            node_name_from_capture_file("node1-eth0.pcap").as_deref(),
            Some("node1")
        );
        assert_eq!(
            node_name_from_capture_file("worker_a_ens5.pcapng").as_deref(),
            Some("worker_a")
        );
        assert_eq!(
            node_name_from_capture_file("aks-nodepool1-23454376-vmss000001.pcap").as_deref(),
            Some("aks-nodepool1-23454376-vmss000001")
        );
        assert_eq!(
            node_name_from_capture_file("node0-any.pcap").as_deref(),
            Some("node0")
        );
        assert_eq!(node_name_from_capture_file("client-side.pcap"), None);
        assert_eq!(node_name_from_capture_file(".pcap"), None);
    }
}
