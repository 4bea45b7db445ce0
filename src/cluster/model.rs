//! The cluster as hoptrace knows it: nodes, pods and the load balancer, every value tagged with
//! its [`Provenance`](super::provenance::Provenance), and the lookups the journey layer needs ("which node owns this pod IP?",
//! "is this address a frontend?").
//!
//! A [`Cluster`] is built by [`super::merge::ClusterBuilder`] from one or more
//! [`ClusterSource`]s (what each loader read) plus inferences; it is immutable afterwards.

use super::alb::{AlbHash, AlbMode, ExternalTrafficPolicy, SessionAffinity};
use super::error::Diagnostic;
use super::provenance::{Fact, SourceKind};
use ipnet::IpNet;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// A Kubernetes node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// Node name. Inferred (e.g. named after its IP) when only a route pointed at it.
    pub name: Fact<String>,
    /// Node addresses (InternalIP); the first is the primary one. Dual-stack nodes have two.
    pub ips: Vec<Fact<IpAddr>>,
    /// Pod CIDRs allocated to the node (kubenet: one per family).
    pub pod_cidrs: Vec<Fact<IpNet>>,
    pub zone: Option<Fact<String>>,
    /// Captures taken on this node's primary interface.
    pub captures: Vec<Fact<PathBuf>>,
    /// This node's iptables-save dump, when it has its own.
    pub rules: Option<Fact<PathBuf>>,
    /// Kubernetes Ready condition, when a source said.
    pub ready: Option<Fact<bool>>,
}

impl Node {
    pub fn new(name: Fact<String>) -> Self {
        Self {
            name,
            ips: Vec::new(),
            pod_cidrs: Vec::new(),
            zone: None,
            captures: Vec::new(),
            rules: None,
            ready: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name.value
    }

    /// Primary node IP.
    pub fn ip(&self) -> Option<IpAddr> {
        self.ips.first().map(|f| f.value)
    }

    pub fn zone(&self) -> Option<&str> {
        self.zone.as_ref().map(|z| z.value.as_str())
    }

    pub fn has_ip(&self, ip: IpAddr) -> bool {
        self.ips.iter().any(|f| f.value == ip)
    }

    /// The pod CIDR containing `ip`, if any.
    pub fn pod_cidr_containing(&self, ip: IpAddr) -> Option<&Fact<IpNet>> {
        self.pod_cidrs.iter().find(|c| c.value.contains(&ip))
    }

    /// The bridge address a kubenet node holds on `cbr0`: the first address of its pod CIDR of
    /// the given family. MASQUERADE towards a local pod uses it as the new source.
    pub fn bridge_address(&self, ipv6: bool) -> Option<IpAddr> {
        let net = self
            .pod_cidrs
            .iter()
            .find(|c| c.value.addr().is_ipv6() == ipv6)?
            .value;
        first_host(net)
    }
}

/// First usable address of a network (network address + 1), as kubenet assigns to `cbr0`.
pub fn first_host(net: IpNet) -> Option<IpAddr> {
    match net {
        IpNet::V4(n) => {
            let base = u32::from(n.network());
            (n.prefix_len() < 32).then(|| IpAddr::from((base + 1).to_be_bytes()))
        }
        IpNet::V6(n) => {
            let base = u128::from(n.network());
            (n.prefix_len() < 128).then(|| IpAddr::from((base + 1).to_be_bytes()))
        }
    }
}

/// A pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pod {
    pub name: Option<Fact<String>>,
    pub namespace: Option<Fact<String>>,
    /// Primary pod IP (`status.podIP`).
    pub ip: Fact<IpAddr>,
    /// Further pod IPs (dual stack).
    pub other_ips: Vec<Fact<IpAddr>>,
    pub node: Option<Fact<String>>,
    /// `spec.hostNetwork`: the pod uses its node's address, so it has no pod-CIDR address.
    pub host_network: bool,
}

impl Pod {
    pub fn new(ip: Fact<IpAddr>) -> Self {
        Self {
            name: None,
            namespace: None,
            ip,
            other_ips: Vec::new(),
            node: None,
            host_network: false,
        }
    }
    pub fn name(&self) -> Option<&str> {
        self.name.as_ref().map(|n| n.value.as_str())
    }
    pub fn node_name(&self) -> Option<&str> {
        self.node.as_ref().map(|n| n.value.as_str())
    }
    pub fn ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        std::iter::once(self.ip.value).chain(self.other_ips.iter().map(|f| f.value))
    }
}

/// A client outside the cluster (cluster.toml `[[clients]]`, as the lab writes them): its
/// addresses (single addresses or networks) and the captures taken on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Client {
    pub name: Option<Fact<String>>,
    pub addresses: Vec<Fact<IpNet>>,
    pub captures: Vec<Fact<PathBuf>>,
}

impl Client {
    pub fn name(&self) -> Option<&str> {
        self.name.as_ref().map(|n| n.value.as_str())
    }
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.addresses.iter().any(|a| a.value.contains(&ip))
    }
}

/// What one input says about the load balancer; every part optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LoadBalancerSpec {
    pub frontends: Vec<Fact<IpAddr>>,
    pub mode: Option<Fact<AlbMode>>,
    pub hash: Option<Fact<AlbHash>>,
    pub seed: Option<Fact<u32>>,
    pub backends: Option<Fact<Vec<String>>>,
    pub session_affinity: Option<Fact<SessionAffinity>>,
    pub external_traffic_policy: Option<Fact<ExternalTrafficPolicy>>,
    pub maglev_table_size: Option<Fact<u32>>,
    /// Nodes whose health probe fails (no new flows).
    pub unhealthy: Vec<Fact<String>>,
}

/// The resolved load balancer: defaults filled in, each marked as such.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadBalancer {
    pub frontends: Vec<Fact<IpAddr>>,
    pub mode: Fact<AlbMode>,
    pub hash: Fact<AlbHash>,
    pub seed: Fact<u32>,
    /// Pool order = bucket order.
    pub backends: Fact<Vec<String>>,
    pub session_affinity: Option<Fact<SessionAffinity>>,
    pub external_traffic_policy: Fact<ExternalTrafficPolicy>,
    pub maglev_table_size: Option<Fact<u32>>,
    pub unhealthy: Vec<Fact<String>>,
}

/// Everything one input file contributed, before merging. Loaders produce these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterSource {
    pub kind: SourceKind,
    pub file: String,
    pub nodes: Vec<Node>,
    pub pods: Vec<Pod>,
    pub clients: Vec<Client>,
    pub load_balancer: LoadBalancerSpec,
    /// Subnets the node addresses live in (`route -n`'s connected route on the primary
    /// interface).
    pub node_subnets: Vec<Fact<IpNet>>,
    /// A local pod CIDR from `route -n` taken on a node nobody named.
    pub unplaced_local_pod_cidr: Option<Fact<IpNet>>,
    /// Row-level problems and notes (the valid rows are still in the lists above).
    pub diagnostics: Vec<Diagnostic>,
}

impl ClusterSource {
    pub fn new(kind: SourceKind, file: impl Into<String>) -> Self {
        Self {
            kind,
            file: file.into(),
            nodes: Vec::new(),
            pods: Vec::new(),
            clients: Vec::new(),
            load_balancer: LoadBalancerSpec::default(),
            node_subnets: Vec::new(),
            unplaced_local_pod_cidr: None,
            diagnostics: Vec::new(),
        }
    }
}

/// Longest-prefix lookup of pod CIDRs in O(number of distinct prefix lengths): one hash map per
/// (family, prefix length), keyed by network address. Clusters use one or two lengths, so a
/// lookup is one or two hash probes however many nodes there are.
#[derive(Debug, Clone, Default)]
pub(crate) struct CidrIndex {
    /// (is IPv6, prefix length, network → node index), longest prefixes first.
    levels: Vec<(bool, u8, HashMap<u128, usize>)>,
}

fn ip_bits(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (false, u128::from(u32::from(a))),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

fn mask(v6: bool, bits: u128, prefix: u8) -> u128 {
    let width = if v6 { 128 } else { 32 };
    if prefix == 0 {
        0
    } else {
        let keep = u32::from(width - prefix.min(width));
        (bits >> keep).checked_shl(keep).unwrap_or(0)
    }
}

impl CidrIndex {
    /// Index every node's pod CIDRs; on a duplicate CIDR the first node keeps it.
    pub(crate) fn new(nodes: &[Node]) -> Self {
        let mut idx = Self::default();
        for (i, n) in nodes.iter().enumerate() {
            for c in &n.pod_cidrs {
                let (v6, bits) = ip_bits(c.value.network());
                let len = c.value.prefix_len();
                let level = match idx
                    .levels
                    .iter_mut()
                    .position(|(f, l, _)| *f == v6 && *l == len)
                {
                    Some(p) => p,
                    None => {
                        idx.levels.push((v6, len, HashMap::new()));
                        idx.levels.len() - 1
                    }
                };
                idx.levels[level].2.entry(mask(v6, bits, len)).or_insert(i);
            }
        }
        idx.levels.sort_by_key(|l| std::cmp::Reverse(l.1));
        idx
    }

    /// Index of the node with the longest pod CIDR containing `ip`.
    pub(crate) fn lookup(&self, ip: IpAddr) -> Option<usize> {
        let (v6, bits) = ip_bits(ip);
        self.levels
            .iter()
            .filter(|(f, _, _)| *f == v6)
            .find_map(|(_, len, map)| map.get(&mask(v6, bits, *len)).copied())
    }
}

/// What an address is in this cluster, strongest identity first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpRole<'a> {
    /// A load-balancer frontend IP.
    Frontend,
    /// A node's own address.
    Node(&'a Node),
    /// A known pod.
    Pod(&'a Pod),
    /// A declared client.
    Client(&'a Client),
    /// A node's bridge address (first address of its pod CIDR, kubenet's `cbr0`).
    Bridge(&'a Node),
    /// Inside a node's pod CIDR, but no pod is known with that address.
    PodNetwork(&'a Node),
    /// In a node subnet but not a known node.
    NodeSubnet,
    Unknown,
}

/// The merged cluster, with lookup indexes.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub(crate) nodes: Vec<Node>,
    pub(crate) pods: Vec<Pod>,
    pub(crate) clients: Vec<Client>,
    pub(crate) load_balancer: LoadBalancer,
    pub(crate) node_subnets: Vec<Fact<IpNet>>,
    node_by_name: HashMap<String, usize>,
    node_by_ip: HashMap<IpAddr, usize>,
    pod_by_ip: HashMap<IpAddr, usize>,
    pod_cidrs: CidrIndex,
    frontends: HashSet<IpAddr>,
}

impl Serialize for Cluster {
    /// The facts, without the lookup indexes: `{nodes, pods, clients, load_balancer, node_subnets}`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Cluster", 5)?;
        st.serialize_field("nodes", &self.nodes)?;
        st.serialize_field("pods", &self.pods)?;
        st.serialize_field("clients", &self.clients)?;
        st.serialize_field("load_balancer", &self.load_balancer)?;
        st.serialize_field("node_subnets", &self.node_subnets)?;
        st.end()
    }
}

impl Cluster {
    /// Assemble and index. Used by the builder, which has already resolved conflicts: on a
    /// duplicate key the first entry wins here too.
    pub(crate) fn from_parts(
        nodes: Vec<Node>,
        pods: Vec<Pod>,
        clients: Vec<Client>,
        load_balancer: LoadBalancer,
        node_subnets: Vec<Fact<IpNet>>,
    ) -> Self {
        let mut node_by_name = HashMap::new();
        let mut node_by_ip = HashMap::new();
        for (i, n) in nodes.iter().enumerate() {
            node_by_name.entry(n.name.value.clone()).or_insert(i);
            for ip in &n.ips {
                node_by_ip.entry(ip.value).or_insert(i);
            }
        }
        let mut pod_by_ip = HashMap::new();
        for (i, p) in pods.iter().enumerate() {
            for ip in p.ips() {
                pod_by_ip.entry(ip).or_insert(i);
            }
        }
        let frontends = load_balancer.frontends.iter().map(|f| f.value).collect();
        let pod_cidrs = CidrIndex::new(&nodes);
        Self {
            nodes,
            pods,
            clients,
            load_balancer,
            node_subnets,
            node_by_name,
            node_by_ip,
            pod_by_ip,
            pod_cidrs,
            frontends,
        }
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }
    pub fn pods(&self) -> &[Pod] {
        &self.pods
    }
    pub fn clients(&self) -> &[Client] {
        &self.clients
    }
    pub fn load_balancer(&self) -> &LoadBalancer {
        &self.load_balancer
    }

    /// The declared client whose addresses include `ip` (the narrowest network wins).
    pub fn client_by_ip(&self, ip: IpAddr) -> Option<&Client> {
        self.clients
            .iter()
            .filter_map(|c| {
                c.addresses
                    .iter()
                    .filter(|a| a.value.contains(&ip))
                    .map(|a| a.value.prefix_len())
                    .max()
                    .map(|l| (l, c))
            })
            .max_by_key(|(l, _)| *l)
            .map(|(_, c)| c)
    }

    /// The declared client a capture was taken on (full path first, then file name).
    pub fn client_for_capture(&self, path: &Path) -> Option<&Client> {
        let by = |f: &dyn Fn(&Path) -> bool| {
            self.clients
                .iter()
                .find(|c| c.captures.iter().any(|x| f(&x.value)))
        };
        by(&|c| c == path).or_else(|| {
            let name = path.file_name()?;
            by(&|c| c.file_name() == Some(name))
        })
    }
    pub fn node_subnets(&self) -> &[Fact<IpNet>] {
        &self.node_subnets
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.node_by_name.get(name).map(|&i| &self.nodes[i])
    }

    pub fn node_by_ip(&self, ip: IpAddr) -> Option<&Node> {
        self.node_by_ip.get(&ip).map(|&i| &self.nodes[i])
    }

    pub fn pod_by_ip(&self, ip: IpAddr) -> Option<&Pod> {
        self.pod_by_ip.get(&ip).map(|&i| &self.pods[i])
    }

    /// The node whose pod CIDR contains `ip` (longest prefix if CIDRs overlap).
    pub fn node_owning_pod_cidr(&self, ip: IpAddr) -> Option<&Node> {
        self.pod_cidrs.lookup(ip).map(|i| &self.nodes[i])
    }

    pub fn zone_of_node(&self, name: &str) -> Option<&str> {
        self.node(name).and_then(Node::zone)
    }

    /// The node a pod runs on: its stated/inferred node, else the owner of its pod CIDR.
    pub fn node_of_pod(&self, pod: &Pod) -> Option<&Node> {
        match pod.node_name() {
            Some(n) => self.node(n),
            None => self.node_owning_pod_cidr(pod.ip.value),
        }
    }

    /// The node an endpoint IP lives on: a known pod's node, else the pod-CIDR owner, else a
    /// node with that address (host-network endpoints).
    pub fn node_of_endpoint(&self, ip: IpAddr) -> Option<&Node> {
        self.pod_by_ip(ip)
            .and_then(|p| self.node_of_pod(p))
            .or_else(|| self.node_owning_pod_cidr(ip))
            .or_else(|| self.node_by_ip(ip))
    }

    pub fn zone_of_pod(&self, pod: &Pod) -> Option<&str> {
        self.node_of_pod(pod).and_then(Node::zone)
    }

    pub fn is_frontend(&self, ip: IpAddr) -> bool {
        self.frontends.contains(&ip)
    }
    pub fn is_node_ip(&self, ip: IpAddr) -> bool {
        self.node_by_ip.contains_key(&ip)
    }
    pub fn is_pod_ip(&self, ip: IpAddr) -> bool {
        self.pod_by_ip.contains_key(&ip)
    }
    /// Inside some node's pod CIDR (whether or not a pod is known there).
    pub fn in_pod_network(&self, ip: IpAddr) -> bool {
        self.node_owning_pod_cidr(ip).is_some()
    }

    pub fn classify(&self, ip: IpAddr) -> IpRole<'_> {
        if self.is_frontend(ip) {
            return IpRole::Frontend;
        }
        if let Some(n) = self.node_by_ip(ip) {
            return IpRole::Node(n);
        }
        if let Some(p) = self.pod_by_ip(ip) {
            return IpRole::Pod(p);
        }
        if let Some(c) = self.client_by_ip(ip) {
            return IpRole::Client(c);
        }
        if let Some(n) = self.node_owning_pod_cidr(ip) {
            let v6 = ip.is_ipv6();
            if n.bridge_address(v6) == Some(ip) {
                return IpRole::Bridge(n);
            }
            return IpRole::PodNetwork(n);
        }
        if self.node_subnets.iter().any(|s| s.value.contains(&ip)) {
            return IpRole::NodeSubnet;
        }
        IpRole::Unknown
    }

    /// The node a capture file was assigned to (by cluster.toml or an inference), compared by
    /// full path first, then by file name.
    pub fn node_for_capture(&self, path: &Path) -> Option<&Node> {
        let by = |f: &dyn Fn(&Path) -> bool| {
            self.nodes
                .iter()
                .find(|n| n.captures.iter().any(|c| f(&c.value)))
        };
        by(&|c| c == path).or_else(|| {
            let name = path.file_name()?;
            by(&|c| c.file_name() == Some(name))
        })
    }

    /// Whether going from node `a` to node `b` crosses a zone: `None` when either zone is
    /// unknown (never guessed), `Some(false)` for the same node.
    pub fn crosses_zone(&self, a: &str, b: &str) -> Option<bool> {
        if a == b {
            return Some(false);
        }
        Some(self.zone_of_node(a)? != self.zone_of_node(b)?)
    }

    /// The load balancer's frontends.
    pub fn frontends(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.load_balancer.frontends.iter().map(|f| f.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::provenance::Provenance;

    #[test]
    fn cidr_index_longest_prefix_and_families() {
        let node = |name: &str, cidrs: &[&str]| {
            let mut n = Node::new(Fact::inferred(name.to_owned(), "t"));
            n.pod_cidrs = cidrs
                .iter()
                .map(|c| Fact::inferred(c.parse().unwrap(), "t"))
                .collect();
            n
        };
        let nodes = [
            node("wide", &["10.0.0.0/8"]),
            node("a", &["10.1.0.0/24", "fd00:1::/64"]),
            node("b", &["10.1.1.0/24"]),
            node("all", &["0.0.0.0/0"]),
            node("dup", &["10.1.0.0/24"]),
        ];
        let idx = CidrIndex::new(&nodes);
        let at = |s: &str| idx.lookup(s.parse().unwrap()).map(|i| nodes[i].name());
        assert_eq!(at("10.1.0.255"), Some("a"));
        assert_eq!(at("10.1.1.0"), Some("b"));
        assert_eq!(at("10.9.9.9"), Some("wide"));
        assert_eq!(at("192.168.0.1"), Some("all"));
        assert_eq!(at("fd00:1::5"), Some("a"));
        assert_eq!(at("fd00:2::5"), None);
        // The same answer as a linear scan over every node.
        for s in [
            "10.1.0.7",
            "10.1.1.200",
            "10.200.0.1",
            "8.8.8.8",
            "fd00:1::ffff",
        ] {
            let ip: IpAddr = s.parse().unwrap();
            let linear = nodes
                .iter()
                .filter_map(|n| {
                    n.pod_cidr_containing(ip)
                        .map(|c| (c.value.prefix_len(), n.name()))
                })
                .fold(None::<(u8, &str)>, |best, x| {
                    if best.is_none_or(|b| x.0 > b.0) {
                        Some(x)
                    } else {
                        best
                    }
                })
                .map(|x| x.1);
            assert_eq!(at(s), linear, "{s}");
        }
    }

    #[test]
    fn first_host_and_bridge() {
        assert_eq!(
            first_host("10.100.0.0/24".parse().unwrap()),
            Some("10.100.0.1".parse().unwrap())
        );
        assert_eq!(first_host("10.100.0.9/32".parse().unwrap()), None);
        assert_eq!(
            first_host("fd00:10::/64".parse().unwrap()),
            Some("fd00:10::1".parse().unwrap())
        );
        let mut n = Node::new(Fact::new("n".into(), Provenance::inferred("t")));
        n.pod_cidrs
            .push(Fact::inferred("10.1.2.0/24".parse().unwrap(), "t"));
        assert_eq!(n.bridge_address(false), Some("10.1.2.1".parse().unwrap()));
        assert_eq!(n.bridge_address(true), None);
    }
}
