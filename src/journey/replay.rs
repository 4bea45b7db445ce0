//! The replay: every stitched connection, in time order, through the ALB model and its ingress
//! node's netfilter, with each answer's evidence.
//!
//! Per connection ([`FlowFacts`] → [`FlowJourney`]):
//! * ALB: the model's bucket and node (a model: Azure's hash is not public) beside the node whose
//!   capture saw the client's SYN (observed).
//! * Netfilter on the ingress node: one [`NodeEvaluator`] per node replays new connections in
//!   capture-time order, so `recent` tables (sessionAffinity) and nth counters evolve as the
//!   kernel's did. When the endpoint is known — observed (a post-DNAT packet of the connection is
//!   in a capture) or inferred (by elimination) — the walk is forced down the branch that reaches
//!   it; otherwise the seeded RNG draws, and the report shows only the candidates.
//! * SNAT: observed from the post-NAT leg, else modelled from MASQUERADE's rule (node IP towards
//!   another node, the bridge address towards a local pod; the port kept unless
//!   `--random-fully`).
//!
//! The same machinery runs the what-if ([`super::run`]) on rewritten rules.

use super::correlate::{Flow, LegKind};
use super::model::{AlbDecision, Endpoint, EndpointChoice, Evidence, PathStep, PodRef};
use super::scenario::Scenario;
use crate::cluster::{AlbMode, AlbModel, FlowKey as AlbFlowKey};
use crate::netfilter::eval::{Hook, Outcome};
use crate::netfilter::model::TableName;
use crate::netfilter::{
    ChaChaRandom, NodeContext, NodeEvaluator, Origin, Packet, Ruleset, Trace, TraceOptions,
};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// What the captures say about one connection: the input of a replay step. Built from a stitched
/// [`Flow`] ([`FlowFacts::from_flow`]) or generated (benchmark).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowFacts {
    /// IP protocol number (6 TCP, 17 UDP, 132 SCTP).
    pub protocol: u8,
    pub client: SocketAddr,
    pub frontend: SocketAddr,
    pub start_ns: i64,
    /// The SYN is in a capture (else the NAT decision predates the capture).
    pub syn_seen: bool,
    /// The node whose capture saw the client's packets to the frontend.
    pub observed_node: Option<String>,
    /// Post-DNAT destination seen in a capture.
    pub observed_endpoint: Option<SocketAddr>,
    /// Post-NAT source seen in a capture.
    pub observed_source: Option<SocketAddr>,
    /// The observed ingress node's capture shows no post-DNAT leg leaving it: a forwarded
    /// connection would have been seen, so the endpoint is local.
    pub no_egress_on_ingress: bool,
}

impl FlowFacts {
    pub fn from_flow(sc: &Scenario, f: &Flow) -> FlowFacts {
        let conn = |l: &super::correlate::Leg| {
            &sc.captures[l.capture].capture.connections[l.connection as usize]
        };
        let observed_node = f
            .legs_of(LegKind::Front)
            .find_map(|l| sc.captures[l.capture].owner.node().map(str::to_string));
        let back = f.legs_of(LegKind::Back).next();
        let observed_endpoint = back.map(|l| conn(l).server());
        let observed_source = back.map(|l| conn(l).client());
        let no_egress_on_ingress = match &observed_node {
            Some(n) => !f
                .legs_of(LegKind::Back)
                .any(|l| sc.captures[l.capture].owner.node() == Some(n)),
            None => false,
        };
        FlowFacts {
            protocol: f.protocol,
            client: f.client,
            frontend: f.frontend,
            start_ns: f.start_ns,
            syn_seen: f.syn_seen,
            observed_node,
            observed_endpoint,
            observed_source,
            no_egress_on_ingress,
        }
    }
}

/// One connection's journey (shared by all its requests).
#[derive(Debug, Clone, PartialEq)]
pub struct FlowJourney {
    pub alb: Option<AlbDecision>,
    pub node: Option<String>,
    pub path: Vec<PathStep>,
    pub endpoint: Option<EndpointChoice>,
    pub candidates: Vec<EndpointChoice>,
    pub pod: Option<PodRef>,
    pub masquerade: Option<Endpoint>,
    /// Observed (a post-NAT packet shows it) or modeled (from the rule and routes).
    pub masquerade_evidence: Option<Evidence>,
    pub crossed_node: Option<bool>,
    pub crossed_zone: Option<bool>,
    /// The kube-proxy Service port the connection reached (`ns/name:port`).
    pub service: Option<String>,
    /// The full walk on the ingress node (every rule tried), when the rules were replayed.
    pub walk: Option<Arc<Outcome>>,
    /// A `recent --rcheck` rule (sessionAffinity) decided the endpoint, not the `statistic`
    /// cascade.
    pub affinity_hit: bool,
    /// Things the user should know about this connection (contradictions, pre-capture start).
    pub notes: Vec<String>,
}

/// Replay options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayConfig {
    /// Seed of the `statistic` draws where no capture shows the kernel's.
    pub seed: u64,
    /// Record every rule tried (for the TUI's chain walk). Off for bulk runs; `path` is kept.
    pub full_walk: bool,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig {
            seed: 1,
            full_walk: true,
        }
    }
}

/// Per-node netfilter state, created on first use.
pub struct Replayer<'s> {
    sc: &'s Scenario,
    alb: Option<AlbModel>,
    /// Override of the rule set per node (what-if rewrites), by node name; `None` key = shared.
    rules: BTreeMap<Option<String>, Arc<Ruleset>>,
    evaluators: BTreeMap<String, Option<NodeEvaluator<ChaChaRandom>>>,
    /// Remembered branches: (rule set, destination, endpoint) → the `statistic` decisions that
    /// reached it. Checked read-only before each reuse, so a stale branch is never applied.
    scripts: HashMap<(usize, SocketAddr, SocketAddr), Vec<bool>>,
    /// Per rule set (by address): it keeps no `recent`/nth state.
    stateless: HashMap<usize, bool>,
    /// Per rule set (by address): the state a node starts with (scanned once, cloned per node).
    start_states: HashMap<usize, crate::netfilter::NodeState>,
    cfg: ReplayConfig,
    pub warnings: Vec<String>,
}

fn node_seed(seed: u64, node: &str) -> u64 {
    // FNV-1a over the name: each node draws its own deterministic stream.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in node.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The nat PREROUTING rules that matched and acted, as interface.md's `path`.
pub fn acting_path(out: &Outcome) -> Vec<PathStep> {
    out.path
        .iter()
        .filter(|s| {
            s.hook == Hook::Prerouting
                && s.table == TableName::Nat
                && s.matched
                && s.rule > 0
                && s.action
                    .as_deref()
                    .is_some_and(|a| !a.starts_with("no target"))
        })
        .map(|s| PathStep {
            table: s.table.as_str().to_string(),
            chain: s.chain.to_string(),
            rule: s.rule,
        })
        .collect()
}

impl<'s> Replayer<'s> {
    /// A replayer of the scenario as recorded.
    pub fn new(sc: &'s Scenario, cfg: ReplayConfig) -> Self {
        let mut warnings = Vec::new();
        let alb = if sc.cluster.nodes().is_empty() {
            None
        } else {
            match AlbModel::from_cluster(&sc.cluster) {
                Ok(m) => Some(m),
                Err(e) => {
                    warnings.push(format!("load-balancer model: {e}"));
                    None
                }
            }
        };
        Replayer {
            sc,
            alb,
            rules: BTreeMap::new(),
            evaluators: BTreeMap::new(),
            scripts: HashMap::new(),
            stateless: HashMap::new(),
            start_states: HashMap::new(),
            cfg,
            warnings,
        }
    }

    /// Use another ALB mode (what-if).
    pub fn set_alb_mode(&mut self, mode: AlbMode) {
        if let Some(m) = self.alb.take() {
            self.alb = Some(m.with_mode(mode));
        }
    }

    pub fn alb(&self) -> Option<&AlbModel> {
        self.alb.as_ref()
    }

    /// The replayed netfilter state of `node` so far (`recent` tables, conntrack), when it has
    /// rules and saw a connection.
    pub fn node_state(&self, node: &str) -> Option<&crate::netfilter::NodeState> {
        self.evaluators
            .get(node)?
            .as_ref()
            .map(NodeEvaluator::state)
    }

    /// Replace rule sets (what-if): by node name, `None` = the shared set.
    pub fn override_rules(&mut self, node: Option<String>, rs: Arc<Ruleset>) {
        self.rules.insert(node, rs);
        self.evaluators.clear();
    }

    fn ruleset_for(&self, node: &str) -> Option<Arc<Ruleset>> {
        let nr = self.sc.rules_for(node)?;
        self.rules
            .get(&nr.node)
            .cloned()
            .or_else(|| Some(nr.ruleset.clone()))
    }

    fn evaluator(&mut self, node: &str) -> Option<&mut NodeEvaluator<ChaChaRandom>> {
        if !self.evaluators.contains_key(node) {
            let ev = self.ruleset_for(node).map(|rs| {
                let mut local: Vec<IpAddr> = Vec::new();
                if let Some(n) = self.sc.cluster.node(node) {
                    local.extend(n.ips.iter().map(|f| f.value));
                    local.extend(
                        [false, true]
                            .into_iter()
                            .filter_map(|v6| n.bridge_address(v6)),
                    );
                }
                let ctx = NodeContext::new(local);
                let start = self
                    .start_states
                    .entry(Arc::as_ptr(&rs) as usize)
                    .or_insert_with(|| crate::netfilter::NodeState::for_ruleset(&rs))
                    .clone();
                let rng = ChaChaRandom::seed(node_seed(self.cfg.seed, node));
                let mut ev = NodeEvaluator::with_state(rs, ctx, rng, start);
                ev.record_path = true;
                ev
            });
            if let Some(e) = &ev {
                let rs = e.ruleset();
                self.stateless
                    .entry(Arc::as_ptr(rs) as usize)
                    .or_insert_with(|| stateless(rs));
            }
            if ev.is_none() && !self.sc.rules.is_empty() {
                self.warnings.push(format!(
                    "node {node}: no rules: its chain paths and endpoints are not modelled"
                ));
            }
            self.evaluators.insert(node.to_string(), ev);
        }
        self.evaluators.get_mut(node).and_then(Option::as_mut)
    }

    /// The ALB's model decision for a connection to an LB frontend.
    pub fn alb_decision(&self, f: &FlowFacts) -> Option<AlbDecision> {
        if !self.sc.cluster.is_frontend(f.frontend.ip()) {
            return None;
        }
        let m = self.alb.as_ref()?;
        let key = AlbFlowKey {
            protocol: f.protocol,
            ..AlbFlowKey::tcp(
                f.client.ip(),
                f.client.port(),
                f.frontend.ip(),
                f.frontend.port(),
            )
        };
        let d = m.decide(&key).ok();
        Some(AlbDecision {
            mode: m.mode(),
            hash: m.hash(),
            bucket: d.as_ref().map(|d| d.bucket),
            predicted_node: d.map(|d| d.node.as_str().to_string()),
            observed_node: f.observed_node.clone(),
        })
    }

    fn pod_ref(&self, ip: IpAddr) -> PodRef {
        let c = &self.sc.cluster;
        let node = c.node_of_endpoint(ip);
        PodRef {
            name: c.pod_by_ip(ip).and_then(|p| p.name().map(str::to_string)),
            ip,
            node: node.map(|n| n.name().to_string()),
            zone: node.and_then(|n| n.zone().map(str::to_string)),
        }
    }

    /// Replay one connection on `node` (the ingress node to use). `known` forces the endpoint
    /// (observed or inferred elsewhere); otherwise evidence is worked out here.
    fn netfilter(
        &mut self,
        f: &FlowFacts,
        node: &str,
        known: Option<(SocketAddr, Evidence)>,
        j: &mut FlowJourney,
    ) {
        let time = f.start_ns.max(0) as u64;
        let Some(pkt) = first_packet(f) else {
            if let Some((ep, e)) = known {
                j.endpoint = Some(EndpointChoice {
                    ip: ep.ip(),
                    port: ep.port(),
                    chain: String::new(),
                    probability: f64::NAN,
                    evidence: e,
                });
            }
            return;
        };
        let full = self.cfg.full_walk;
        let sc = self.sc;
        let is_local = |ip: IpAddr| sc.cluster.node_of_endpoint(ip).map(|n| n.name() == node);
        self.evaluator(node);
        let scripts = &mut self.scripts;
        let stateless_map = &self.stateless;
        let Some(ev) = self.evaluators.get_mut(node).and_then(Option::as_mut) else {
            if let Some((ep, ev)) = known {
                j.endpoint = Some(EndpointChoice {
                    ip: ep.ip(),
                    port: ep.port(),
                    chain: String::new(),
                    probability: f64::NAN,
                    evidence: ev,
                });
            }
            return;
        };
        if !f.syn_seen {
            // The kernel decided before the capture began: no rule runs now.
            j.notes.push(
                "the connection began before the capture: its NAT decision is not replayed".into(),
            );
            if let Some((ep, e)) = known {
                j.endpoint = Some(EndpointChoice {
                    ip: ep.ip(),
                    port: ep.port(),
                    chain: String::new(),
                    probability: f64::NAN,
                    evidence: e,
                });
            } else {
                let tr = ev.preview(&pkt, time);
                j.candidates = candidates(&tr);
            }
            return;
        }
        // An observed endpoint forces the walk directly (one exhaustive preview inside the
        // evaluator); otherwise the preview here tells the candidates and the evidence.
        let tr: Option<Trace> = if known.is_some() {
            None
        } else {
            let opts = TraceOptions {
                max_outcomes: 4096,
                time_ns: time,
                state: Some(ev.state()),
                record_path: false,
            };
            Some(crate::netfilter::trace(
                ev.ruleset(),
                ev.context(),
                &pkt,
                opts,
            ))
        };
        let mut choice = known;
        if let Some(tr) = tr.as_ref().filter(|t| !t.endpoints.is_empty()) {
            if f.no_egress_on_ingress && f.observed_node.as_deref() == Some(node) {
                let local: Vec<_> = tr
                    .endpoints
                    .iter()
                    .filter(|e| is_local(e.ip) == Some(true))
                    .collect();
                if let [one] = local.as_slice() {
                    choice = Some((SocketAddr::new(one.ip, one.port), Evidence::Inferred));
                    j.notes.push(format!(
                        "endpoint inferred: {node}'s capture shows no packet of this connection leaving towards another node, and {} is its only local endpoint",
                        SocketAddr::new(one.ip, one.port)
                    ));
                }
            }
            if choice.is_none()
                && tr.endpoints.len() == 1
                && (tr.endpoints[0].probability - 1.0).abs() < 1e-9
            {
                let e = &tr.endpoints[0];
                let o = &tr.outcomes[e.outcome];
                let ev = if o.recent_hits.is_empty() {
                    Evidence::Inferred
                } else {
                    Evidence::Affinity
                };
                choice = Some((SocketAddr::new(e.ip, e.port), ev));
            }
        }
        let decision = match choice {
            Some((ep, _)) => match force(
                ev,
                scripts,
                stateless_map.get(&(Arc::as_ptr(ev.ruleset()) as usize)) == Some(&true),
                &pkt,
                time,
                ep,
            ) {
                Ok(d) => Some(d),
                Err(e) => {
                    j.notes.push(format!("contradiction: {e}"));
                    j.candidates = candidates(&e.trace);
                    None
                }
            },
            None => Some(ev.new_connection(&pkt, time)),
        };
        if let Some((ep, e)) = choice {
            let chain = decision
                .as_ref()
                .and_then(|d| d.outcome.dnat.as_ref().map(|x| x.chain.clone()));
            // From this state: 1 when a `recent` entry pinned it, else the cascade's product.
            let probability = match (&decision, &chain) {
                (Some(d), _) if !d.outcome.recent_hits.is_empty() => 1.0,
                (Some(d), Some(c)) => nr_probability(sc, node, c, &d.outcome).unwrap_or(f64::NAN),
                _ => tr
                    .as_ref()
                    .map_or(f64::NAN, |t| t.probability_of(ep.ip(), ep.port())),
            };
            j.endpoint = Some(EndpointChoice {
                ip: ep.ip(),
                port: ep.port(),
                chain: chain.map(|c| c.to_string()).unwrap_or_default(),
                probability,
                evidence: e,
            });
        } else if let Some(tr) = &tr {
            j.candidates = candidates(tr);
        }
        match &decision {
            Some(d) if choice.is_some() => j.path = acting_path(&d.outcome),
            Some(d) => j.path = path_before_draw(&d.outcome),
            None => {}
        }
        if let Some(d) = decision {
            if let Some(sn) = &d.outcome.source_nat {
                // Masqueraded: model the source unless a capture shows it.
                if j.masquerade.is_none()
                    && let Some(ep) = &j.endpoint
                {
                    let n = sc.cluster.node(node);
                    let local = is_local(ep.ip) == Some(true);
                    let ip = if local {
                        n.and_then(|n| n.bridge_address(ep.ip.is_ipv6()))
                    } else {
                        n.and_then(|n| {
                            n.ips
                                .iter()
                                .map(|f| f.value)
                                .find(|a| a.is_ipv6() == ep.ip.is_ipv6())
                        })
                    };
                    let ip = sn.to_source.or(ip);
                    if let Some(ip) = ip {
                        let port = if sn.random_fully { 0 } else { f.client.port() };
                        j.masquerade = Some(Endpoint { ip, port });
                        j.masquerade_evidence = Some(Evidence::Modeled);
                        if sn.random_fully {
                            j.notes.push("MASQUERADE --random-fully: the source port cannot be predicted (shown as 0)".into());
                        }
                    }
                }
            }
            for e in d.evictions() {
                if let crate::netfilter::recent::RecentEventKind::Evicted { last_seen_ns } = e.kind
                {
                    j.notes.push(format!(
                        "recent table {} was full (100 entries): {} evicted (last set {}), its affinity silently lost",
                        e.table,
                        e.addr,
                        super::run::rfc3339_micros(last_seen_ns as i64)
                    ));
                }
            }
            j.service = service_of(sc, node, &d.outcome);
            j.affinity_hit = !d.outcome.recent_hits.is_empty();
            if full {
                j.walk = Some(Arc::new(d.outcome));
            }
        }
    }

    /// What-if: the endpoint a new connection would reach on `node` from the counterfactual
    /// state. `reuse` is the kernel's draw a capture showed: taken whenever the rules can still
    /// reach it (the cascade), otherwise (affinity pins the client elsewhere, the endpoint is
    /// not in this node's chain) the state and the seeded RNG decide.
    pub fn whatif_endpoint(
        &mut self,
        f: &FlowFacts,
        node: &str,
        reuse: Option<SocketAddr>,
    ) -> Option<SocketAddr> {
        let time = f.start_ns.max(0) as u64;
        let Some(pkt) = first_packet(f) else {
            return reuse;
        };
        self.evaluator(node);
        let scripts = &mut self.scripts;
        let stateless_map = &self.stateless;
        let Some(ev) = self.evaluators.get_mut(node).and_then(Option::as_mut) else {
            return reuse;
        };
        if !f.syn_seen {
            // Established before the capture: it keeps its DNAT.
            return reuse;
        }
        if let Some(ep) = reuse
            && let Ok(d) = force(
                ev,
                scripts,
                stateless_map.get(&(Arc::as_ptr(ev.ruleset()) as usize)) == Some(&true),
                &pkt,
                time,
                ep,
            )
        {
            return d.outcome.dnat.map(|x| SocketAddr::new(x.ip, x.port));
        }
        ev.new_connection(&pkt, time)
            .outcome
            .dnat
            .map(|x| SocketAddr::new(x.ip, x.port))
    }

    /// One connection, in time order.
    pub fn step(&mut self, f: &FlowFacts) -> FlowJourney {
        let mut j = FlowJourney {
            alb: self.alb_decision(f),
            node: None,
            path: Vec::new(),
            endpoint: None,
            candidates: Vec::new(),
            pod: None,
            masquerade: None,
            masquerade_evidence: None,
            crossed_node: None,
            crossed_zone: None,
            service: None,
            walk: None,
            affinity_hit: false,
            notes: Vec::new(),
        };
        let c = &self.sc.cluster;
        // Ingress node: observed, else the model's, else by address (NodePort, or a masqueraded
        // source when only post-NAT legs were captured).
        j.node = f
            .observed_node
            .clone()
            .or_else(|| j.alb.as_ref().and_then(|a| a.predicted_node.clone()))
            .or_else(|| c.node_by_ip(f.frontend.ip()).map(|n| n.name().to_string()));
        if j.node.is_none()
            && f.observed_endpoint == Some(f.frontend)
            && let Some(n) = c
                .node_by_ip(f.client.ip())
                .or_else(|| c.node_owning_pod_cidr(f.client.ip()))
        {
            j.node = Some(n.name().to_string());
        }
        if let (Some(src), Some(_)) = (f.observed_source, f.observed_endpoint)
            && src != f.client
        {
            j.masquerade = Some(Endpoint {
                ip: src.ip(),
                port: src.port(),
            });
            j.masquerade_evidence = Some(Evidence::Observed);
        }
        let known = f.observed_endpoint.map(|e| (e, Evidence::Observed));
        // Only post-NAT legs were captured: the frontend is unknown, so the rules cannot be
        // replayed; the endpoint is still observed.
        let back_only = f.observed_endpoint == Some(f.frontend);
        if let (Some(node), false) = (j.node.clone(), back_only) {
            self.netfilter(f, &node, known, &mut j);
        } else if let Some((ep, e)) = known {
            j.endpoint = Some(EndpointChoice {
                ip: ep.ip(),
                port: ep.port(),
                chain: String::new(),
                probability: f64::NAN,
                evidence: e,
            });
        }
        if let Some(ep) = &j.endpoint {
            let pod = self.pod_ref(ep.ip);
            if let (Some(pn), Some(n)) = (&pod.node, &j.node) {
                j.crossed_node = Some(pn != n);
                let zi = c.zone_of_node(n);
                if let (Some(a), Some(b)) = (zi, pod.zone.as_deref()) {
                    j.crossed_zone = Some(a != b);
                }
            }
            j.pod = Some(pod);
        }
        j
    }
}

fn candidates(tr: &Trace) -> Vec<EndpointChoice> {
    tr.endpoints
        .iter()
        .map(|e| EndpointChoice {
            ip: e.ip,
            port: e.port,
            chain: e.chain.to_string(),
            probability: e.probability,
            evidence: Evidence::Modeled,
        })
        .collect()
}

/// The first packet of a connection as it reaches the ingress node's eth0 (TCP SYN, UDP or SCTP
/// first packet); `None` for protocols kube-proxy does not balance.
pub fn first_packet(f: &FlowFacts) -> Option<Packet> {
    use crate::netfilter::model::Protocol;
    let proto = match f.protocol {
        6 => Protocol::Tcp,
        17 => Protocol::Udp,
        132 => Protocol::Sctp,
        _ => return None,
    };
    Some(
        Packet::new(
            proto,
            f.client.ip(),
            Some(f.client.port()),
            f.frontend.ip(),
            f.frontend.port(),
        )
        .with_in_iface("eth0")
        .with_origin(Origin::Incoming),
    )
}

/// The rule set keeps no per-node state a walk could change (`recent`, `statistic --mode nth`).
fn stateless(rs: &Ruleset) -> bool {
    use crate::netfilter::model::{Match, StatisticMatch};
    rs.tables
        .iter()
        .flat_map(|t| &t.chains)
        .flat_map(|c| &c.rules)
        .all(|r| {
            r.spec.matches.iter().all(|m| {
                !matches!(
                    m,
                    Match::Recent(_) | Match::Statistic(StatisticMatch::Nth { .. })
                )
            })
        })
}

/// Force a new connection to `ep`: a remembered branch when a read-only walk confirms it still
/// leads there, else the evaluator's exhaustive search (whose branch is then remembered).
fn force(
    ev: &mut NodeEvaluator<ChaChaRandom>,
    scripts: &mut HashMap<(usize, SocketAddr, SocketAddr), Vec<bool>>,
    stateless_rules: bool,
    pkt: &Packet,
    time: u64,
    ep: SocketAddr,
) -> Result<crate::netfilter::Decision, crate::netfilter::stateful::NotReachable> {
    let key = (
        Arc::as_ptr(ev.ruleset()) as usize,
        SocketAddr::new(pkt.dst, pkt.dst_port),
        ep,
    );
    let reaches = |o: &Outcome| {
        o.dnat
            .as_ref()
            .is_some_and(|d| d.ip == ep.ip() && d.port == ep.port())
    };
    if let Some(script) = scripts.get(&key) {
        if !stateless_rules {
            // `recent`/nth state could change the branch: check it read-only first.
            let dry = crate::netfilter::trace::follow(
                ev.ruleset(),
                ev.context(),
                pkt,
                Some(ev.state()),
                time,
                script,
            );
            if reaches(&dry) {
                let d = ev.new_connection_scripted(pkt, time, script);
                if reaches(&d.outcome) {
                    return Ok(d);
                }
            }
        } else {
            // No state but conntrack: a wrong branch is undone by dropping its binding.
            let d = ev.new_connection_scripted(pkt, time, script);
            if reaches(&d.outcome) {
                return Ok(d);
            }
            if !d.reused {
                ev.close_connection(&d.key);
            }
        }
    }
    let d = ev.new_connection_observed(pkt, time, (ep.ip(), ep.port()))?;
    if !d.reused {
        let script: Vec<bool> = d
            .outcome
            .statistic
            .iter()
            .filter(|s| {
                let q = crate::netfilter::model::StatisticMatch::probability_of(s.stored);
                q > 0.0 && q < 1.0
            })
            .map(|s| s.matched)
            .collect();
        scripts.insert(key, script);
    }
    Ok(d)
}

/// The cascade probability of the endpoint behind `sep` in `node`'s rules, from the chain the
/// walk went through (node-local for externalTrafficPolicy Local, else cluster-wide).
fn nr_probability(sc: &Scenario, node: &str, sep: &str, out: &Outcome) -> Option<f64> {
    let info = sc.rules_for(node)?.endpoints.get(sep)?;
    let local = out.path.iter().any(|s| {
        s.matched && (s.chain.starts_with("KUBE-SVL-") || s.chain.starts_with("KUBE-XLB-"))
    });
    if local {
        info.local_probability.or(info.probability)
    } else {
        info.probability.or(info.local_probability)
    }
}

/// The Service port whose chains the walk went through (from the node's service map).
fn service_of(sc: &Scenario, node: &str, out: &Outcome) -> Option<String> {
    let dnat = out.dnat.as_ref()?;
    Some(
        sc.rules_for(node)?
            .endpoints
            .get(&dnat.chain)?
            .service
            .to_string(),
    )
}

/// The acting steps of a sampled walk up to (not including) the first `statistic` rule: what
/// every branch shares, when the branch itself is only a model.
fn path_before_draw(out: &Outcome) -> Vec<PathStep> {
    let mut v = Vec::new();
    for s in out
        .path
        .iter()
        .filter(|s| s.hook == Hook::Prerouting && s.table == TableName::Nat && s.rule > 0)
    {
        if s.text.contains(" -m statistic ") {
            break;
        }
        if s.matched
            && s.action
                .as_deref()
                .is_some_and(|a| !a.starts_with("no target"))
        {
            v.push(PathStep {
                table: s.table.as_str().to_string(),
                chain: s.chain.to_string(),
                rule: s.rule,
            });
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netfilter::model::Protocol;

    fn facts(protocol: u8) -> FlowFacts {
        FlowFacts {
            protocol,
            client: "71.0.0.1:5353".parse().unwrap(),
            frontend: "10.96.0.10:53".parse().unwrap(),
            start_ns: 0,
            syn_seen: true,
            observed_node: None,
            observed_endpoint: None,
            observed_source: None,
            no_egress_on_ingress: false,
        }
    }

    #[test]
    fn first_packet_keeps_the_protocol() {
        assert_eq!(first_packet(&facts(6)).unwrap().proto, Protocol::Tcp);
        assert_eq!(first_packet(&facts(17)).unwrap().proto, Protocol::Udp);
        assert_eq!(first_packet(&facts(132)).unwrap().proto, Protocol::Sctp);
        assert!(first_packet(&facts(1)).is_none());
        let p = first_packet(&facts(17)).unwrap();
        assert_eq!(
            (p.src_port, p.dst_port, p.in_iface.as_deref()),
            (Some(5353), 53, Some("eth0"))
        );
    }

    #[test]
    fn node_seeds_differ_per_node_and_seed() {
        assert_ne!(node_seed(1, "node0"), node_seed(1, "node1"));
        assert_ne!(node_seed(1, "node0"), node_seed(2, "node0"));
        assert_eq!(node_seed(7, "node0"), node_seed(7, "node0"));
    }
}
