//! Merging several inputs into one [`Cluster`], then filling the gaps by inference.
//!
//! Precedence on conflict follows [`Provenance::rank`]: cluster.toml > command line > kubectl
//! text > kubectl JSON > route -n > inferred > default. Every conflict is a warning naming both
//! sources; the winner is kept. After merging, [`ClusterBuilder::build`]:
//! 1. places a `route -n` local pod CIDR on the only node that lacks one;
//! 2. creates nodes that pods name but no node list had;
//! 3. marks host-network pods (pod IP = a node IP);
//! 4. infers pod → node from pod CIDRs, and a node's pod CIDR from its pods' IPs;
//! 5. warns about pods outside every pod CIDR, pods outside their own node's CIDR, overlapping
//!    CIDRs and addresses claimed twice;
//! 6. resolves the load balancer (mode from sessionAffinity as cloud-provider-azure maps it,
//!    backends default to the nodes in input order), marking defaults as such.

use super::alb::{AlbHash, AlbMode, ExternalTrafficPolicy};
use super::error::Diagnostic;
use super::infer::guess_pod_cidr;
use super::model::{
    CidrIndex, Client, Cluster, ClusterSource, LoadBalancer, LoadBalancerSpec, Node, Pod,
};
use super::provenance::{Fact, Provenance};
use ipnet::IpNet;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;

/// Collects sources and inferences; [`ClusterBuilder::build`] yields the [`Cluster`].
#[derive(Debug, Clone, Default)]
pub struct ClusterBuilder {
    nodes: Vec<Node>,
    pods: Vec<Pod>,
    clients: Vec<Client>,
    lb: LoadBalancerSpec,
    node_subnets: Vec<Fact<IpNet>>,
    unplaced_cidrs: Vec<(String, Fact<IpNet>)>,
    diagnostics: Vec<Diagnostic>,
    /// Pod IP → index in `pods` (checked on use: a replaced pod may leave stale entries).
    pod_index: HashMap<IpAddr, usize>,
}

/// The node whose pod CIDR holds `ip`, with that CIDR.
fn owner<'n>(nodes: &'n [Node], index: &CidrIndex, ip: IpAddr) -> Option<(&'n Node, IpNet)> {
    let n = &nodes[index.lookup(ip)?];
    n.pod_cidr_containing(ip).map(|c| (n, c.value))
}

/// File and line a provenance points at, for messages.
fn origin(p: &Provenance) -> (String, Option<u32>) {
    match p {
        Provenance::Given { source } => (source.file.clone(), source.line),
        Provenance::Inferred { .. } => ("(inferred)".into(), None),
        Provenance::Default { .. } => ("(default)".into(), None),
    }
}

fn describe(p: &Provenance) -> String {
    match p {
        Provenance::Given { source } => source.to_string(),
        other => other.to_string(),
    }
}

/// Merge one optional fact: keep the higher-ranked value, warn when two values differ.
fn merge_opt<T: PartialEq + std::fmt::Display + Clone>(
    slot: &mut Option<Fact<T>>,
    incoming: Option<Fact<T>>,
    what: &str,
    diags: &mut Vec<Diagnostic>,
) {
    let Some(new) = incoming else { return };
    match slot {
        None => *slot = Some(new),
        Some(old) => merge_fact(old, new, what, diags),
    }
}

fn merge_fact<T: PartialEq + std::fmt::Display + Clone>(
    old: &mut Fact<T>,
    new: Fact<T>,
    what: &str,
    diags: &mut Vec<Diagnostic>,
) {
    let higher = new.provenance.rank() > old.provenance.rank();
    if old.value == new.value {
        if higher {
            old.provenance = new.provenance;
        }
        return;
    }
    let winner = if higher { &new } else { &*old };
    let (file, line) = origin(&new.provenance);
    diags.push(
        Diagnostic::warning(
            file,
            format!(
                "{what}: {} says {} but {} says {}; using {}",
                describe(&new.provenance),
                new.value,
                describe(&old.provenance),
                old.value,
                winner.value
            ),
        )
        .at_line(line),
    );
    if higher {
        *old = new;
    }
}

/// Merge per-family values (node IPs, pod CIDRs): one value per address family.
fn merge_family<T: PartialEq + std::fmt::Display + Clone>(
    list: &mut Vec<Fact<T>>,
    incoming: Vec<Fact<T>>,
    is_v6: impl Fn(&T) -> bool,
    what: &str,
    diags: &mut Vec<Diagnostic>,
) {
    for new in incoming {
        if let Some(same) = list.iter_mut().find(|f| f.value == new.value) {
            if new.provenance.rank() > same.provenance.rank() {
                same.provenance = new.provenance;
            }
        } else if let Some(old) = list
            .iter_mut()
            .find(|f| is_v6(&f.value) == is_v6(&new.value))
        {
            merge_fact(old, new, what, diags);
        } else {
            list.push(new);
        }
    }
}

fn is_v6_ip(ip: &IpAddr) -> bool {
    ip.is_ipv6()
}
fn is_v6_net(n: &IpNet) -> bool {
    n.addr().is_ipv6()
}

impl ClusterBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuild from an existing cluster, to add inferences and build again. Defaults are
    /// dropped so that they are re-resolved.
    pub fn from_cluster(cluster: &Cluster) -> Self {
        let lb = cluster.load_balancer();
        let keep = |p: &Provenance| !matches!(p, Provenance::Default { .. });
        let spec = LoadBalancerSpec {
            frontends: lb.frontends.clone(),
            mode: Some(lb.mode.clone()).filter(|f| keep(&f.provenance)),
            hash: Some(lb.hash.clone()).filter(|f| keep(&f.provenance)),
            seed: Some(lb.seed.clone()).filter(|f| keep(&f.provenance)),
            backends: Some(lb.backends.clone()).filter(|f| keep(&f.provenance)),
            session_affinity: lb.session_affinity.clone(),
            external_traffic_policy: Some(lb.external_traffic_policy.clone())
                .filter(|f| keep(&f.provenance)),
            maglev_table_size: lb.maglev_table_size.clone(),
            unhealthy: lb.unhealthy.clone(),
        };
        let pods = cluster.pods().to_vec();
        let pod_index = pods
            .iter()
            .enumerate()
            .flat_map(|(i, p)| p.ips().map(move |ip| (ip, i)))
            .collect();
        Self {
            nodes: cluster.nodes().to_vec(),
            pods,
            clients: cluster.clients().to_vec(),
            lb: spec,
            node_subnets: cluster.node_subnets().to_vec(),
            unplaced_cidrs: Vec::new(),
            diagnostics: Vec::new(),
            pod_index,
        }
    }

    /// Add everything one loader produced.
    pub fn add_source(&mut self, src: ClusterSource) -> &mut Self {
        self.diagnostics.extend(src.diagnostics);
        for n in src.nodes {
            self.add_node(n);
        }
        for p in src.pods {
            self.add_pod(p);
        }
        for c in src.clients {
            self.add_client(c);
        }
        self.merge_lb(src.load_balancer);
        for s in src.node_subnets {
            if !self.node_subnets.iter().any(|x| x.value == s.value) {
                self.node_subnets.push(s);
            }
        }
        if let Some(c) = src.unplaced_local_pod_cidr {
            self.unplaced_cidrs.push((src.file, c));
        }
        self
    }

    fn find_node(&self, n: &Node) -> Option<usize> {
        self.nodes
            .iter()
            .position(|x| x.name.value == n.name.value)
            .or_else(|| {
                // A node named only after its address (route -n) is the node with that address.
                self.nodes.iter().position(|x| {
                    (x.name.is_inferred() || n.name.is_inferred())
                        && n.ips.iter().any(|ip| x.has_ip(ip.value))
                })
            })
    }

    /// Merge one node record into the model.
    pub fn add_node(&mut self, n: Node) -> &mut Self {
        let Some(i) = self.find_node(&n) else {
            self.nodes.push(n);
            return self;
        };
        let diags = &mut self.diagnostics;
        let old = &mut self.nodes[i];
        if old.name.value != n.name.value && old.name.is_inferred() && !n.name.is_inferred() {
            // Re-point pods that used the provisional name.
            let provisional = std::mem::replace(&mut old.name, n.name.clone()).value;
            for p in &mut self.pods {
                if let Some(node) = p.node.as_mut().filter(|f| f.value == provisional) {
                    node.value = n.name.value.clone();
                }
            }
        }
        let old = &mut self.nodes[i];
        if old.name.value == n.name.value && n.name.provenance.rank() > old.name.provenance.rank() {
            old.name.provenance = n.name.provenance.clone();
        }
        let label = format!("node {}", old.name.value);
        merge_family(
            &mut old.ips,
            n.ips,
            is_v6_ip,
            &format!("{label} address"),
            diags,
        );
        merge_family(
            &mut old.pod_cidrs,
            n.pod_cidrs,
            is_v6_net,
            &format!("{label} pod CIDR"),
            diags,
        );
        merge_opt(&mut old.zone, n.zone, &format!("{label} zone"), diags);
        merge_opt(&mut old.ready, n.ready, &format!("{label} ready"), diags);
        if let Some(r) = n.rules {
            let shown = r.clone().map(|p| p.display().to_string());
            let mut cur = old
                .rules
                .clone()
                .map(|f| f.map(|p| p.display().to_string()));
            merge_opt(&mut cur, Some(shown), &format!("{label} rules file"), diags);
            if cur
                .as_ref()
                .is_some_and(|c| c.value == r.value.display().to_string())
            {
                old.rules = Some(r);
            }
        }
        for c in n.captures {
            if !old.captures.iter().any(|x| x.value == c.value) {
                old.captures.push(c);
            }
        }
        self
    }

    /// Merge one pod record. Pods are identified by IP; two different names for one IP is a
    /// conflict (stale kubectl output, a reused IP) and the higher-ranked record wins.
    pub fn add_pod(&mut self, p: Pod) -> &mut Self {
        let ips: Vec<IpAddr> = p.ips().collect();
        let found = ips.iter().find_map(|ip| {
            self.pod_index
                .get(ip)
                .copied()
                .filter(|&i| self.pods.get(i).is_some_and(|x| x.ips().any(|a| a == *ip)))
        });
        let Some(i) = found else {
            for ip in &ips {
                self.pod_index.insert(*ip, self.pods.len());
            }
            self.pods.push(p);
            return self;
        };
        for ip in &ips {
            self.pod_index.entry(*ip).or_insert(i);
        }
        let old = &mut self.pods[i];
        let diags = &mut self.diagnostics;
        if let (Some(a), Some(b)) = (&old.name, &p.name)
            && a.value != b.value
        {
            let (file, line) = origin(&b.provenance);
            let keep_new = b.provenance.rank() > a.provenance.rank();
            diags.push(
                Diagnostic::warning(
                    file,
                    format!(
                        "pod IP {}: {} names pod {} but {} names pod {}; keeping {}",
                        p.ip.value,
                        describe(&b.provenance),
                        b.value,
                        describe(&a.provenance),
                        a.value,
                        if keep_new { &b.value } else { &a.value }
                    ),
                )
                .at_line(line),
            );
            if keep_new {
                *old = p;
            }
            return self;
        }
        let label = format!(
            "pod {}",
            p.name()
                .or(old.name())
                .map_or_else(|| p.ip.value.to_string(), str::to_owned)
        );
        merge_opt(&mut old.name, p.name, &format!("{label} name"), diags);
        merge_opt(
            &mut old.namespace,
            p.namespace,
            &format!("{label} namespace"),
            diags,
        );
        merge_opt(&mut old.node, p.node, &format!("{label} node"), diags);
        for ip in std::iter::once(p.ip).chain(p.other_ips) {
            if ip.value == old.ip.value {
                if ip.provenance.rank() > old.ip.provenance.rank() {
                    old.ip.provenance = ip.provenance;
                }
            } else if !old.ips().any(|a| a == ip.value) {
                old.other_ips.push(ip);
            }
        }
        old.host_network |= p.host_network;
        self
    }

    /// Merge a client: same name (or, unnamed, a shared address) is the same client.
    pub fn add_client(&mut self, c: Client) -> &mut Self {
        let same = self
            .clients
            .iter()
            .position(|x| match (x.name(), c.name()) {
                (Some(a), Some(b)) => a == b,
                _ => x
                    .addresses
                    .iter()
                    .any(|a| c.addresses.iter().any(|b| a.value == b.value)),
            });
        let Some(i) = same else {
            self.clients.push(c);
            return self;
        };
        let old = &mut self.clients[i];
        if old.name.is_none() {
            old.name = c.name;
        }
        for a in c.addresses {
            if !old.addresses.iter().any(|x| x.value == a.value) {
                old.addresses.push(a);
            }
        }
        for p in c.captures {
            if !old.captures.iter().any(|x| x.value == p.value) {
                old.captures.push(p);
            }
        }
        self
    }

    /// A pod known only by its address (e.g. a DNAT target in the rules).
    pub fn add_inferred_pod(&mut self, ip: IpAddr, reason: impl Into<String>) -> &mut Self {
        self.add_pod(Pod::new(Fact::inferred(ip, reason)))
    }

    /// A load-balancer frontend (e.g. from kube-proxy's "loadbalancer IP" rule comments).
    pub fn add_frontend(&mut self, ip: Fact<IpAddr>) -> &mut Self {
        match self.lb.frontends.iter_mut().find(|f| f.value == ip.value) {
            Some(f) if ip.provenance.rank() > f.provenance.rank() => f.provenance = ip.provenance,
            Some(_) => {}
            None => self.lb.frontends.push(ip),
        }
        self
    }

    /// Say that `capture` was taken on `node` (creating the node if it is new).
    pub fn assign_capture(
        &mut self,
        node: &str,
        capture: PathBuf,
        provenance: Provenance,
    ) -> &mut Self {
        let mut n = Node::new(Fact::new(node.to_owned(), provenance.clone()));
        n.captures.push(Fact::new(capture, provenance));
        self.add_node(n)
    }

    /// A node address learnt from traffic (e.g. masqueraded sources).
    pub fn add_node_ip(&mut self, node: &str, ip: Fact<IpAddr>) -> &mut Self {
        let mut n = Node::new(Fact::new(node.to_owned(), ip.provenance.clone()));
        n.ips.push(ip);
        self.add_node(n)
    }

    /// Merge load-balancer settings.
    pub fn merge_lb(&mut self, spec: LoadBalancerSpec) -> &mut Self {
        for f in spec.frontends {
            self.add_frontend(f);
        }
        let d = &mut self.diagnostics;
        let lb = &mut self.lb;
        merge_opt(&mut lb.mode, spec.mode, "load balancer mode", d);
        merge_opt(&mut lb.hash, spec.hash, "load balancer hash", d);
        merge_opt(&mut lb.seed, spec.seed, "load balancer seed", d);
        if let Some(b) = spec.backends {
            let shown = b.clone().map(|v| v.join(", "));
            let mut cur = lb.backends.clone().map(|f| f.map(|v| v.join(", ")));
            merge_opt(&mut cur, Some(shown), "load balancer backends", d);
            if cur.is_some_and(|c| c.value == b.value.join(", ")) {
                lb.backends = Some(b);
            }
        }
        merge_opt(
            &mut lb.session_affinity,
            spec.session_affinity,
            "session affinity",
            d,
        );
        merge_opt(
            &mut lb.external_traffic_policy,
            spec.external_traffic_policy,
            "external traffic policy",
            d,
        );
        merge_opt(
            &mut lb.maglev_table_size,
            spec.maglev_table_size,
            "Maglev table size",
            d,
        );
        for u in spec.unhealthy {
            if !lb.unhealthy.iter().any(|x| x.value == u.value) {
                lb.unhealthy.push(u);
            }
        }
        self
    }

    /// Diagnostics so far (loader warnings and merge conflicts).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// Run the inferences and consistency checks, and index the result.
    pub fn build(mut self) -> (Cluster, Vec<Diagnostic>) {
        self.place_unplaced_cidrs();
        self.create_nodes_named_by_pods();
        self.mark_host_network();
        self.infer_pod_nodes();
        self.guess_missing_cidrs();
        // Guessed CIDRs can place pods that had no node yet.
        self.infer_pod_nodes();
        self.check_consistency();
        let lb = self.resolve_lb();
        let cluster =
            Cluster::from_parts(self.nodes, self.pods, self.clients, lb, self.node_subnets);
        (cluster, self.diagnostics)
    }

    fn place_unplaced_cidrs(&mut self) {
        for (file, cidr) in std::mem::take(&mut self.unplaced_cidrs) {
            let v6 = is_v6_net(&cidr.value);
            if self
                .nodes
                .iter()
                .any(|n| n.pod_cidrs.iter().any(|c| c.value == cidr.value))
            {
                continue; // another source already says whose it is
            }
            let without: Vec<usize> = (0..self.nodes.len())
                .filter(|&i| {
                    !self.nodes[i]
                        .pod_cidrs
                        .iter()
                        .any(|c| is_v6_net(&c.value) == v6)
                })
                .collect();
            if let [i] = without.as_slice() {
                let reason = format!(
                    "{file} shows {} as a local pod CIDR and {} is the only node without one",
                    cidr.value, self.nodes[*i].name.value
                );
                self.nodes[*i]
                    .pod_cidrs
                    .push(Fact::inferred(cidr.value, reason));
            } else {
                self.diagnostics.push(Diagnostic::warning(
                    &file,
                    format!(
                        "local pod CIDR {} cannot be attributed to a node ({} nodes lack one); give the node as NODE={file}",
                        cidr.value,
                        without.len()
                    ),
                ));
            }
        }
    }

    fn create_nodes_named_by_pods(&mut self) {
        let mut known: HashSet<String> = self.nodes.iter().map(|n| n.name.value.clone()).collect();
        for p in &self.pods {
            let Some(n) = &p.node else { continue };
            if known.insert(n.value.clone()) {
                self.nodes.push(Node::new(n.clone()));
            }
        }
    }

    fn mark_host_network(&mut self) {
        let node_ips: HashSet<IpAddr> = self
            .nodes
            .iter()
            .flat_map(|n| n.ips.iter().map(|f| f.value))
            .collect();
        for p in &mut self.pods {
            if !p.host_network && node_ips.contains(&p.ip.value) {
                p.host_network = true;
            }
        }
    }

    fn infer_pod_nodes(&mut self) {
        let index = CidrIndex::new(&self.nodes);
        for p in &mut self.pods {
            if p.node.is_some() || p.host_network {
                continue;
            }
            if let Some((n, cidr)) = owner(&self.nodes, &index, p.ip.value) {
                p.node = Some(Fact::inferred(
                    n.name.value.clone(),
                    format!(
                        "pod IP {} is in {}'s pod CIDR {cidr}",
                        p.ip.value, n.name.value
                    ),
                ));
            }
        }
        // Host-network pods sit on the node with their address.
        for p in &mut self.pods {
            if p.node.is_none()
                && p.host_network
                && let Some(n) = self.nodes.iter().find(|n| n.has_ip(p.ip.value))
            {
                p.node = Some(Fact::inferred(
                    n.name.value.clone(),
                    format!("host-network pod with {}'s address", n.name.value),
                ));
            }
        }
    }

    fn guess_missing_cidrs(&mut self) {
        for v6 in [false, true] {
            let prefix = if v6 { 64 } else { 24 };
            // Pods placed on a node are the evidence. A placement inferred from a pod CIDR
            // cannot feed back here: it names a node that already has a CIDR of this family,
            // and only nodes without one are guessed for.
            let mut per_node: HashMap<String, Vec<IpAddr>> = HashMap::new();
            for p in &self.pods {
                if p.host_network {
                    continue;
                }
                if let Some(n) = p.node.as_ref() {
                    per_node
                        .entry(n.value.clone())
                        .or_default()
                        .extend(p.ips().filter(|ip| ip.is_ipv6() == v6));
                }
            }
            for i in 0..self.nodes.len() {
                if self.nodes[i]
                    .pod_cidrs
                    .iter()
                    .any(|c| is_v6_net(&c.value) == v6)
                {
                    continue;
                }
                let Some(ips) = per_node
                    .get(&self.nodes[i].name.value)
                    .filter(|v| !v.is_empty())
                else {
                    continue;
                };
                let Some(g) = guess_pod_cidr(ips, prefix) else {
                    continue;
                };
                let clash = self.nodes.iter().enumerate().find(|(j, n)| {
                    *j != i
                        && n.pod_cidrs.iter().any(|c| {
                            c.value.contains(&g.net.network()) || g.net.contains(&c.value.network())
                        })
                });
                if let Some((_, other)) = clash {
                    self.diagnostics.push(Diagnostic::warning(
                        "(inferred)",
                        format!(
                            "node {}: guessed pod CIDR {} overlaps node {}'s; not used",
                            self.nodes[i].name.value, g.net, other.name.value
                        ),
                    ));
                    continue;
                }
                self.nodes[i]
                    .pod_cidrs
                    .push(Fact::inferred(g.net, g.reason));
            }
        }
    }

    fn check_consistency(&mut self) {
        let d = &mut self.diagnostics;
        // Overlapping pod CIDRs.
        for (i, a) in self.nodes.iter().enumerate() {
            for b in &self.nodes[i + 1..] {
                for ca in &a.pod_cidrs {
                    for cb in &b.pod_cidrs {
                        if ca.value.contains(&cb.value.network())
                            || cb.value.contains(&ca.value.network())
                        {
                            let (file, line) = origin(&cb.provenance);
                            d.push(Diagnostic::warning(file, format!(
                                "pod CIDR {} of node {} overlaps pod CIDR {} of node {} ({})",
                                cb.value, b.name.value, ca.value, a.name.value, describe(&ca.provenance)
                            )).at_line(line));
                        }
                    }
                }
            }
        }
        // One address on two nodes.
        let mut seen: HashMap<IpAddr, &str> = HashMap::new();
        for n in &self.nodes {
            for ip in &n.ips {
                if let Some(other) = seen.insert(ip.value, &n.name.value)
                    && other != n.name.value
                {
                    let (file, line) = origin(&ip.provenance);
                    d.push(
                        Diagnostic::warning(
                            file,
                            format!(
                                "address {} is given for both node {other} and node {}",
                                ip.value, n.name.value
                            ),
                        )
                        .at_line(line),
                    );
                }
            }
        }
        // Pods against pod CIDRs.
        let index = CidrIndex::new(&self.nodes);
        for p in &self.pods {
            if p.host_network {
                continue;
            }
            let ip = p.ip.value;
            let v6 = ip.is_ipv6();
            let (file, line) = origin(&p.ip.provenance);
            let name = p
                .name()
                .map_or_else(|| ip.to_string(), |n| format!("{n} ({ip})"));
            let any_cidr = self
                .nodes
                .iter()
                .any(|n| n.pod_cidrs.iter().any(|c| is_v6_net(&c.value) == v6));
            match (&p.node, owner(&self.nodes, &index, ip)) {
                (Some(n), Some((o, cidr))) if o.name.value != n.value && !n.is_inferred() => {
                    d.push(Diagnostic::warning(file, format!(
                        "pod {name} is said to run on {} ({}) but its IP is in {}'s pod CIDR {cidr}",
                        n.value, describe(&n.provenance), o.name.value
                    )).at_line(line));
                }
                (_, None) if any_cidr => {
                    d.push(
                        Diagnostic::warning(
                            file,
                            format!("pod {name} is outside every node's pod CIDR"),
                        )
                        .at_line(line),
                    );
                }
                _ => {}
            }
        }
    }

    fn resolve_lb(&mut self) -> LoadBalancer {
        let spec = std::mem::take(&mut self.lb);
        let d = &mut self.diagnostics;
        let mode = match (spec.mode, &spec.session_affinity) {
            (Some(m), Some(a)) => {
                let mapped = AlbMode::for_session_affinity(a.value);
                if m.value != mapped {
                    let (file, line) = origin(&m.provenance);
                    d.push(Diagnostic::warning(file, format!(
                        "mode {} disagrees with sessionAffinity {} ({}), for which cloud-provider-azure would configure {}; using {}",
                        m.value, a.value, describe(&a.provenance), mapped, m.value
                    )).at_line(line));
                }
                m
            }
            (Some(m), None) => m,
            (None, Some(a)) => Fact::inferred(
                AlbMode::for_session_affinity(a.value),
                format!(
                    "sessionAffinity {}: cloud-provider-azure sets loadDistribution {}",
                    a.value,
                    AlbMode::for_session_affinity(a.value).azure_name()
                ),
            ),
            (None, None) => Fact::default(
                AlbMode::Default,
                "Azure's default loadDistribution (5-tuple)",
            ),
        };
        let hash = spec
            .hash
            .unwrap_or_else(|| Fact::default(AlbHash::Jhash, "jhash model (nft-compatible)"));
        let seed = spec
            .seed
            .unwrap_or_else(|| Fact::default(0, "no seed given; 0 assumed"));
        let backends = match spec.backends {
            Some(b) => {
                for name in &b.value {
                    if !self.nodes.iter().any(|n| n.name.value == *name) {
                        let (file, line) = origin(&b.provenance);
                        d.push(
                            Diagnostic::warning(
                                file,
                                format!("backend {name} is not a known node"),
                            )
                            .at_line(line),
                        );
                    }
                }
                b
            }
            None => Fact::default(
                self.nodes.iter().map(|n| n.name.value.clone()).collect(),
                "all nodes, in input order",
            ),
        };
        for u in &spec.unhealthy {
            if !backends.value.contains(&u.value) {
                let (file, line) = origin(&u.provenance);
                d.push(
                    Diagnostic::warning(
                        file,
                        format!("unhealthy node {} is not a backend", u.value),
                    )
                    .at_line(line),
                );
            }
        }
        let external_traffic_policy = spec
            .external_traffic_policy
            .unwrap_or_else(|| Fact::default(ExternalTrafficPolicy::Cluster, "Kubernetes default"));
        LoadBalancer {
            frontends: spec.frontends,
            mode,
            hash,
            seed,
            backends,
            session_affinity: spec.session_affinity,
            external_traffic_policy,
            maglev_table_size: spec.maglev_table_size,
            unhealthy: spec.unhealthy,
        }
    }
}
