//! A journey [`Scenario`]: everything one run knows — captures (with the node or client each was
//! taken on), one rule set per node, the merged cluster model — assembled from loaded inputs, with
//! the gaps filled by inference (and marked inferred):
//!
//! * pod IPs from the rules' DNAT targets (`KUBE-SEP-…` chains), LB frontends from kube-proxy's
//!   "loadbalancer IP" comments;
//! * which capture belongs to which node (cluster.toml, `NODE=FILE`, else the file name and the
//!   addresses it saw — [`crate::cluster::infer::attribute_capture`]);
//! * which rules belong to which node (`NODE=FILE`, cluster.toml's `rules`, else shared);
//! * node IPs from masqueraded sources (after stitching: [`Scenario::infer_from_flows`]).
//!
//! Conflicts (a pod IP outside every pod CIDR, a capture matching no node, rules that do not
//! parse) become warnings; the valid part is kept.
//!
//! Client-side captures are named by cluster.toml's `[[clients]]` (read by the cluster layer);
//! a capture whose every connection goes from a non-cluster address to a frontend is treated as
//! client-side too (inferred).

use crate::capture::Capture;
use crate::cluster::infer::{self, AddressTally, CaptureAttribution, MasqueradeSighting};
use crate::cluster::{
    Cluster, ClusterBuilder, ClusterSource, Diagnostic, Fact, Provenance, Severity,
};
use crate::netfilter::kube::{FrontendKind, ServiceMap, service_map};
use crate::netfilter::{self, Ruleset};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Who a capture was taken on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureOwner {
    /// A node's primary interface. `inferred` when no input said so.
    Node {
        name: String,
        inferred: bool,
        reason: String,
    },
    /// The client side (`[[clients]]`, or inferred from its traffic).
    Client { name: String },
    /// Nobody known: its connections are still stitched, but it says nothing about a node.
    Unknown,
}

impl CaptureOwner {
    pub fn node(&self) -> Option<&str> {
        match self {
            CaptureOwner::Node { name, .. } => Some(name),
            _ => None,
        }
    }
}

/// One loaded capture in a scenario.
#[derive(Debug)]
pub struct ScenarioCapture {
    pub capture: Capture,
    /// Base file name, as reports show it.
    pub label: String,
    /// Path as given (for cluster.toml's `captures` lookups).
    pub path: Option<PathBuf>,
    pub owner: CaptureOwner,
}

/// A rule set and the node it belongs to (`None`: every node without its own).
#[derive(Debug, Clone)]
pub struct NodeRuleset {
    pub node: Option<String>,
    /// File name, for messages.
    pub source: String,
    pub ruleset: Arc<Ruleset>,
    pub services: Arc<ServiceMap>,
    /// Per KUBE-SEP chain: its Service port and the probability the rules give it for a new
    /// connection (the cluster-wide chain's cascade, else the node-local chain's).
    pub endpoints: Arc<std::collections::HashMap<Arc<str>, EndpointInfo>>,
}

/// What the service map says about one KUBE-SEP chain.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointInfo {
    pub service: Arc<str>,
    /// From the cluster-wide chain (KUBE-SVC).
    pub probability: Option<f64>,
    /// From the node-local chain (KUBE-SVL, old KUBE-XLB).
    pub local_probability: Option<f64>,
}

/// A capture as loaded, before it is attributed.
#[derive(Debug)]
pub struct CaptureInput {
    pub capture: Capture,
    /// From `NODE=FILE`.
    pub node: Option<String>,
    pub path: Option<PathBuf>,
}

/// A rules dump as read, before parsing.
#[derive(Debug, Clone)]
pub struct RulesInput {
    pub source: String,
    pub node: Option<String>,
    pub text: Vec<u8>,
}

/// Everything loaded for one scenario (by the CLI from files, or from the embedded bytes).
#[derive(Debug, Default)]
pub struct ScenarioInputs {
    pub title: String,
    pub captures: Vec<CaptureInput>,
    pub rules: Vec<RulesInput>,
    pub cluster_sources: Vec<ClusterSource>,
    /// Problems met while loading (already phrased for the user).
    pub warnings: Vec<String>,
    /// Input names, for the header.
    pub inputs: Vec<String>,
}

/// Everything one run knows.
#[derive(Debug)]
pub struct Scenario {
    pub title: String,
    pub inputs: Vec<String>,
    pub cluster: Cluster,
    pub captures: Vec<ScenarioCapture>,
    pub rules: Vec<NodeRuleset>,
    pub warnings: Vec<String>,
    /// Every DNAT target in any rule set (endpoint IPs), to recognise post-DNAT legs.
    pub endpoint_ips: BTreeSet<IpAddr>,
    /// The stitched flows, computed once ([`Scenario::flows`]); reset when an inference changes
    /// the cluster.
    flows: std::sync::OnceLock<Vec<crate::journey::correlate::Flow>>,
}

fn diag_warnings(diags: &[Diagnostic], out: &mut Vec<String>) {
    for d in diags {
        if d.severity == Severity::Warning {
            let s = d.to_string();
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
}

fn file_name(p: &Path) -> Option<&std::ffi::OsStr> {
    p.file_name()
}

impl Scenario {
    /// Assemble a scenario: parse rules, merge cluster sources, infer what is missing.
    pub fn assemble(inputs: ScenarioInputs) -> Scenario {
        let ScenarioInputs {
            title,
            captures,
            rules,
            cluster_sources,
            mut warnings,
            inputs,
        } = inputs;

        // Rules.
        let mut parsed: Vec<(RulesInput, Ruleset)> = Vec::new();
        for r in rules {
            let (rs, errors) = netfilter::load(&r.text, &r.source);
            for e in errors.iter().take(20) {
                warnings.push(format!("{e}"));
            }
            if errors.len() > 20 {
                warnings.push(format!(
                    "{}: {} more rule lines could not be parsed",
                    r.source,
                    errors.len() - 20
                ));
            }
            for w in &rs.warnings {
                match w.line {
                    Some(l) => warnings.push(format!("{}:{l}: {}", r.source, w.message)),
                    None => warnings.push(format!("{}: {}", r.source, w.message)),
                }
            }
            parsed.push((r, rs));
        }

        // Cluster: given sources first, then what the rules say.
        let mut builder = ClusterBuilder::new();
        for s in cluster_sources {
            builder.add_source(s);
        }
        let mut endpoint_ips = BTreeSet::new();
        let maps: Vec<ServiceMap> = parsed.iter().map(|(_, rs)| service_map(rs)).collect();
        let mut lb_ips: BTreeSet<IpAddr> = BTreeSet::new();
        let mut targets: Vec<(IpAddr, String)> = Vec::new();
        for ((input, _), map) in parsed.iter().zip(&maps) {
            for svc in &map.services {
                for ep in &svc.endpoints {
                    if endpoint_ips.insert(ep.ip) {
                        targets.push((
                            ep.ip,
                            format!("DNAT target of {} in {}", ep.chain, input.source),
                        ));
                    }
                }
                for f in &svc.frontends {
                    if matches!(f.kind, FrontendKind::LoadBalancerIp)
                        && let Some(ip) = f.ip
                    {
                        lb_ips.insert(ip);
                    }
                }
            }
        }
        let (given, diags) = builder.build();
        diag_warnings(&diags, &mut warnings);
        // DNAT targets are pods when they sit in a pod CIDR (or when no CIDR is known at all);
        // others (the API server, host-network endpoints) are left as plain endpoints.
        let any_cidr = given.nodes().iter().any(|n| !n.pod_cidrs.is_empty());
        let mut b = ClusterBuilder::from_cluster(&given);
        for (ip, reason) in targets {
            if given.pod_by_ip(ip).is_none()
                && !given.is_node_ip(ip)
                && (!any_cidr || given.in_pod_network(ip))
            {
                b.add_inferred_pod(ip, reason);
            }
        }
        if given.frontends().next().is_none() {
            for ip in &lb_ips {
                b.add_frontend(Fact::inferred(
                    *ip,
                    "kube-proxy's \"loadbalancer IP\" rule comment",
                ));
            }
        }
        let (mut cluster, d) = b.build();
        diag_warnings(&d, &mut warnings);

        // Rules → nodes.
        let rules: Vec<NodeRuleset> = parsed
            .into_iter()
            .zip(maps)
            .map(|((input, rs), map)| {
                let node = input.node.clone().or_else(|| {
                    let name = file_name(Path::new(&input.source))?;
                    cluster
                        .nodes()
                        .iter()
                        .find(|n| {
                            n.rules
                                .as_ref()
                                .is_some_and(|r| file_name(&r.value) == Some(name))
                        })
                        .map(|n| n.name().to_string())
                });
                let endpoints = map
                    .services
                    .iter()
                    .flat_map(|s| {
                        let label: Arc<str> = s.label().into();
                        s.endpoints.iter().map(move |e| {
                            (
                                e.chain.clone(),
                                EndpointInfo {
                                    service: label.clone(),
                                    probability: e.probability,
                                    local_probability: e.local_probability,
                                },
                            )
                        })
                    })
                    .collect();
                NodeRuleset {
                    node,
                    source: input.source,
                    ruleset: Arc::new(rs),
                    services: Arc::new(map),
                    endpoints: Arc::new(endpoints),
                }
            })
            .collect();

        // Captures → owners.
        let mut out_caps = Vec::with_capacity(captures.len());
        let mut assign: Vec<(String, PathBuf, Provenance)> = Vec::new();
        for c in captures {
            let label = capture_label(&c.capture);
            let owner = attribute(&c, &label, &cluster, !rules.is_empty(), &mut warnings);
            if let CaptureOwner::Node {
                name,
                inferred: true,
                reason,
            } = &owner
            {
                assign.push((
                    name.clone(),
                    c.path.clone().unwrap_or_else(|| PathBuf::from(&label)),
                    Provenance::inferred(reason.clone()),
                ));
            }
            out_caps.push(ScenarioCapture {
                capture: c.capture,
                label,
                path: c.path,
                owner,
            });
        }
        if !assign.is_empty() {
            let mut b = ClusterBuilder::from_cluster(&cluster);
            for (n, p, prov) in assign {
                b.assign_capture(&n, p, prov);
            }
            let (c, _) = b.build();
            cluster = c;
        }
        let mut names: BTreeSet<&str> = BTreeSet::new();
        for r in &rules {
            if let Some(n) = &r.node
                && cluster.node(n).is_none()
                && names.insert(n)
            {
                warnings.push(format!(
                    "{}: rules for node {n}, which no cluster input names",
                    r.source
                ));
            }
        }
        if !rules.is_empty() && !rules.iter().any(|r| r.node.is_none()) {
            for n in cluster.nodes() {
                if !rules.iter().any(|r| r.node.as_deref() == Some(n.name())) {
                    warnings.push(format!(
                        "node {}: no rules dump for it (its chain paths are unknown)",
                        n.name()
                    ));
                }
            }
        }
        Scenario {
            title,
            inputs,
            cluster,
            captures: out_caps,
            rules,
            warnings,
            endpoint_ips,
            flows: std::sync::OnceLock::new(),
        }
    }

    /// Every connection stitched across captures and NAT, in time order (computed once).
    pub fn flows(&self) -> &[crate::journey::correlate::Flow] {
        self.flows
            .get_or_init(|| crate::journey::correlate::stitch(self))
    }

    /// The rule set in force on `node`: its own, else the shared one.
    pub fn rules_for(&self, node: &str) -> Option<&NodeRuleset> {
        self.rules
            .iter()
            .find(|r| r.node.as_deref() == Some(node))
            .or_else(|| self.rules.iter().find(|r| r.node.is_none()))
    }

    /// Is `ip` the far end of a post-DNAT leg (a pod or a DNAT target)?
    pub fn is_endpoint_address(&self, ip: IpAddr) -> bool {
        self.endpoint_ips.contains(&ip)
            || self.cluster.is_pod_ip(ip)
            || self.cluster.in_pod_network(ip)
    }

    /// Second inference pass, after stitching: node IPs from masqueraded sources, and pod
    /// placement from post-DNAT packets arriving on a node's capture from another node (the pod
    /// lives there; a node without a pod CIDR gets the /24 holding its pods). Adds only what the
    /// cluster lacks, marked inferred, with warnings on conflicts.
    pub fn infer_from_flows(
        &mut self,
        sightings: &[MasqueradeSighting],
        placements: &[PodPlacement],
    ) {
        self.infer_placements(placements);
        if sightings.is_empty() {
            return;
        }
        let cidrs: Vec<IpNet> = self
            .cluster
            .nodes()
            .iter()
            .flat_map(|n| n.pod_cidrs.iter().map(|c| c.value))
            .collect();
        let (found, problems) = infer::node_ips_from_masquerade(sightings, &cidrs);
        self.warnings.extend(problems);
        let missing: Vec<_> = found
            .into_iter()
            .filter(|f| {
                self.cluster.node(&f.node).is_none_or(|n| n.ips.is_empty())
                    && !self.cluster.is_node_ip(f.ip)
            })
            .collect();
        if missing.is_empty() {
            return;
        }
        let mut b = ClusterBuilder::from_cluster(&self.cluster);
        for f in missing {
            b.add_node_ip(&f.node, Fact::inferred(f.ip, f.reason));
        }
        let (c, d) = b.build();
        diag_warnings(&d, &mut self.warnings);
        self.cluster = c;
        // What is a pod (and so a post-DNAT leg) may have changed: stitch again when asked.
        self.flows = std::sync::OnceLock::new();
    }
}

/// A post-DNAT packet to `pod` seen arriving on `node`'s capture from another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPlacement {
    pub node: String,
    pub pod: IpAddr,
    pub capture: String,
}

impl Scenario {
    fn infer_placements(&mut self, placements: &[PodPlacement]) {
        let mut by_node: BTreeMap<&str, (BTreeSet<IpAddr>, &str)> = BTreeMap::new();
        for p in placements {
            let known = self
                .cluster
                .pod_by_ip(p.pod)
                .and_then(|x| self.cluster.node_of_pod(x))
                .is_some()
                || self.cluster.node_owning_pod_cidr(p.pod).is_some();
            if !known {
                by_node
                    .entry(&p.node)
                    .or_insert_with(|| (BTreeSet::new(), &p.capture))
                    .0
                    .insert(p.pod);
            }
        }
        if by_node.is_empty() {
            return;
        }
        let mut b = ClusterBuilder::from_cluster(&self.cluster);
        for (node, (ips, capture)) in by_node {
            let ips: Vec<IpAddr> = ips.into_iter().collect();
            let has_cidr = self
                .cluster
                .node(node)
                .is_some_and(|n| !n.pod_cidrs.is_empty());
            if !has_cidr
                && let Some(g) = infer::guess_pod_cidr(&ips, if ips[0].is_ipv6() { 64 } else { 24 })
            {
                let mut n = crate::cluster::Node::new(Fact::inferred(
                    node.to_string(),
                    format!("capture {capture}"),
                ));
                n.pod_cidrs.push(Fact::inferred(
                    g.net,
                    format!(
                        "{}; packets to them arrive on {node}'s capture {capture} from other nodes",
                        g.reason
                    ),
                ));
                b.add_node(n);
            }
            for ip in ips {
                let mut pod = crate::cluster::Pod::new(Fact::inferred(ip, "post-DNAT destination"));
                pod.node = Some(Fact::inferred(
                    node.to_string(),
                    format!("packets to it arrive on {node}'s capture {capture} from another node"),
                ));
                b.add_pod(pod);
            }
        }
        let (c, d) = b.build();
        diag_warnings(&d, &mut self.warnings);
        self.cluster = c;
        // What is a pod (and so a post-DNAT leg) may have changed: stitch again when asked.
        self.flows = std::sync::OnceLock::new();
    }
}

/// Base name used for a capture in records.
pub fn capture_label(c: &Capture) -> String {
    if c.name == "-" {
        return "stdin".into();
    }
    Path::new(&c.name)
        .file_name()
        .map_or_else(|| c.name.clone(), |n| n.to_string_lossy().into_owned())
}

fn tallies(c: &Capture) -> Vec<AddressTally> {
    let mut m: BTreeMap<IpAddr, u64> = BTreeMap::new();
    for conn in &c.connections {
        let n = conn.packets[0] + conn.packets[1];
        *m.entry(conn.a.ip()).or_default() += n;
        *m.entry(conn.b.ip()).or_default() += n;
    }
    m.into_iter()
        .map(|(ip, packets)| AddressTally { ip, packets })
        .collect()
}

fn attribute(
    c: &CaptureInput,
    label: &str,
    cluster: &Cluster,
    have_rules: bool,
    warnings: &mut Vec<String>,
) -> CaptureOwner {
    if let Some(n) = &c.node {
        if cluster.node(n).is_none() && !cluster.nodes().is_empty() {
            warnings.push(format!(
                "{label}: taken on node {n} (NODE=FILE), which no cluster input names"
            ));
        }
        return CaptureOwner::Node {
            name: n.clone(),
            inferred: false,
            reason: "given as NODE=FILE".into(),
        };
    }
    let path = c.path.clone().unwrap_or_else(|| PathBuf::from(label));
    if let Some(n) = cluster.node_for_capture(&path) {
        let inferred = n
            .captures
            .iter()
            .any(|f| f.is_inferred() && file_name(&f.value) == file_name(&path));
        return CaptureOwner::Node {
            name: n.name().to_string(),
            inferred,
            reason: "listed in the cluster file".into(),
        };
    }
    if let Some(cl) = cluster.client_for_capture(&path) {
        return CaptureOwner::Client {
            name: cl.name().map_or_else(|| label.to_string(), str::to_string),
        };
    }
    // Client-side by its traffic: every connection from outside the cluster to a frontend.
    let conns = &c.capture.connections;
    let to_frontend = |conn: &crate::capture::Connection| cluster.is_frontend(conn.server().ip());
    let outside = |ip: IpAddr| {
        !cluster.is_node_ip(ip) && !cluster.in_pod_network(ip) && !cluster.is_pod_ip(ip)
    };
    if !conns.is_empty()
        && cluster.frontends().next().is_some()
        && conns
            .iter()
            .all(|x| to_frontend(x) && outside(x.client().ip()))
    {
        let name = conns
            .iter()
            .find_map(|x| {
                cluster
                    .client_by_ip(x.client().ip())
                    .and_then(|cl| cl.name())
            })
            .map_or_else(|| format!("client ({label})"), str::to_string);
        return CaptureOwner::Client { name };
    }
    if cluster.nodes().is_empty() {
        // Nothing names nodes. With rules to replay, a node-like file name (`node1-eth0.pcap`)
        // says where it was taken; with captures alone there is nothing to attribute.
        if !have_rules {
            return CaptureOwner::Unknown;
        }
        if let Some(n) = infer::node_name_from_capture_file(label) {
            return CaptureOwner::Node {
                name: n,
                inferred: true,
                reason: format!("named in the file name {label}"),
            };
        }
        warnings.push(format!(
            "{label}: no cluster input and the file name names no node: treated as taken on no node"
        ));
        return CaptureOwner::Unknown;
    }
    let (att, diags) = infer::attribute_capture(label, &tallies(&c.capture), cluster);
    diag_warnings(&diags, warnings);
    match att {
        CaptureAttribution::Node { node, reason } => CaptureOwner::Node {
            name: node,
            inferred: true,
            reason,
        },
        CaptureAttribution::Client { name, .. } => CaptureOwner::Client {
            name: name.unwrap_or_else(|| label.to_string()),
        },
        CaptureAttribution::Ambiguous { reason, .. } | CaptureAttribution::NoNode { reason } => {
            let w = format!(
                "{label}: matches no node ({reason}); its packets are stitched but say nothing about an ingress node"
            );
            if !warnings
                .iter()
                .any(|x| x.starts_with(label) && x.contains("no node"))
            {
                warnings.push(w);
            }
            CaptureOwner::Unknown
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::CaptureOptions;
    use crate::capture::synth;

    #[test]
    fn label_is_the_base_name() {
        let bytes = synth::demo_scenario();
        let c = Capture::from_bytes(0, "/a/b/x.pcap", &bytes, CaptureOptions::default()).unwrap();
        assert_eq!(capture_label(&c), "x.pcap");
    }
}
