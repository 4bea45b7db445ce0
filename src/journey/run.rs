//! One run over a scenario: stitch, replay in time order, build one [`RequestJourney`] per HTTP
//! request as the client sent it, and (with what-if switches) replay again as if the Service(s)
//! had that setting; then the balance statistics.
//!
//! What-if semantics (semantics.md A6, D7, F5):
//! * the ALB mode follows the switch as cloud-provider-azure sets it (ClientIP → SourceIP,
//!   None → Default) unless `alb_mode` says otherwise; a changed mode moves connections to the
//!   model's node, an unchanged one keeps the observed node;
//! * the rules are rewritten with the netfilter engine's affinity rewrite, and the replay starts
//!   with empty `recent` tables per node (100 entries each, timeouts from the rules);
//! * where the recorded endpoint came from the kernel's `statistic` draw and a capture (or an
//!   elimination) shows it, the counterfactual reuses that draw: the same endpoint whenever the
//!   cascade is reached; elsewhere the seeded RNG draws.

use super::correlate::{Flow, LegKind};
use super::model::{Endpoint, Evidence, RequestJourney, WhatIf};
use super::replay::{FlowFacts, FlowJourney, ReplayConfig, Replayer};
use super::scenario::{PodPlacement, Scenario};
use super::snapshot::WhatIfSettings;
use super::stats::{GoodnessOfFit, ShareRow, share_rows, share_rows_fit};
use crate::capture::HttpRequest;
/// Timestamps as report text (kept here: the journey API has always exported it).
pub use crate::capture::time::rfc3339_micros;
use crate::cluster::infer::MasqueradeSighting;
use crate::cluster::{AlbMode, SessionAffinity};
use crate::netfilter::kube::{DEFAULT_AFFINITY_TIMEOUT, set_session_affinity};
use crate::netfilter::{NodeContext, Packet, TraceOptions, trace};
use crate::sanitize::escape_bytes;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Options of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOptions {
    pub seed: u64,
    pub whatif: WhatIfSettings,
    /// Keep every rule tried per connection (the TUI's chain walk).
    pub full_walk: bool,
}

/// Where a request record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestSource {
    /// Index into [`Journeys::flows`].
    pub flow: usize,
    pub capture: usize,
    /// Index into that capture's `requests`.
    pub request: usize,
}

/// Balance of one node or pod.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Share {
    pub name: String,
    pub node: Option<String>,
    pub zone: Option<String>,
    pub requests: u64,
    /// New connections (each one NAT decision).
    pub connections: u64,
    /// Share of connections.
    pub share: f64,
    /// The model's share (ALB hash for nodes; ALB × rule probabilities for pods).
    pub expected_share: Option<f64>,
}

/// Per-node and per-pod balance with a chi-squared goodness-of-fit test over connections.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Balance {
    pub nodes: Vec<Share>,
    pub pods: Vec<Share>,
    pub node_fit: Option<GoodnessOfFit>,
    pub pod_fit: Option<GoodnessOfFit>,
    /// Share of connections with a known pod that crossed a zone.
    pub cross_zone_share: Option<f64>,
    pub cross_node_share: Option<f64>,
}

/// One client's spread under the what-if.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stickiness {
    pub client: IpAddr,
    pub requests: u64,
    /// Distinct pods, most requests first.
    pub pods: Vec<String>,
    pub nodes: Vec<String>,
}

/// What the what-if changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WhatIfOutcome {
    pub settings: String,
    pub alb_mode: Option<AlbMode>,
    pub requests_total: u64,
    pub requests_moved: u64,
    pub clients: Vec<Stickiness>,
    pub balance: Balance,
}

/// Everything a run produces.
#[derive(Debug, Clone)]
pub struct Journeys {
    pub flows: Vec<Flow>,
    pub facts: Vec<FlowFacts>,
    pub flow_journeys: Vec<FlowJourney>,
    pub requests: Vec<RequestJourney>,
    pub sources: Vec<RequestSource>,
    pub balance: Balance,
    pub whatif: Option<WhatIfOutcome>,
    /// Counterfactual (node, endpoint) per flow, when a what-if ran.
    pub counterfactual: Vec<(Option<String>, Option<SocketAddr>)>,
    pub warnings: Vec<String>,
}

/// Stitch and replay a scenario.
pub fn run(sc: &Scenario, opts: &RunOptions) -> Journeys {
    let flows = sc.flows().to_vec();
    let facts: Vec<FlowFacts> = flows.iter().map(|f| FlowFacts::from_flow(sc, f)).collect();
    let cfg = ReplayConfig {
        seed: opts.seed,
        full_walk: opts.full_walk,
    };
    let mut rp = Replayer::new(sc, cfg);
    let flow_journeys: Vec<FlowJourney> = facts.iter().map(|f| rp.step(f)).collect();
    let mut warnings = std::mem::take(&mut rp.warnings);
    for (f, j) in flows.iter().zip(&flow_journeys) {
        for n in &j.notes {
            if n.starts_with("contradiction") {
                warnings.push(format!("connection {} → {}: {n}", f.client, f.frontend));
            }
        }
    }
    let disagree = flow_journeys
        .iter()
        .filter(|j| {
            j.alb.as_ref().is_some_and(|a| {
                a.observed_node.is_some()
                    && a.predicted_node.is_some()
                    && a.observed_node != a.predicted_node
            })
        })
        .count();
    if disagree > 0 {
        warnings.push(format!(
            "{disagree} connection(s): the ALB model's node differs from the node whose capture saw the SYN (the model is not Azure's hash; the observed node is used)"
        ));
    }
    let (requests, sources) = records(sc, &flows, &flow_journeys);
    let balance = balance(sc, &flows, &flow_journeys, &sources, |j| {
        (j.node.clone(), j.pod.as_ref().map(pod_name))
    });
    let mut out = Journeys {
        flows,
        facts,
        flow_journeys,
        requests,
        sources,
        balance,
        whatif: None,
        counterfactual: Vec::new(),
        warnings,
    };
    if !opts.whatif.is_recorded() {
        whatif(sc, opts, &mut out);
    }
    out
}

/// What stitched flows say about the cluster: masqueraded sources by ingress node (node IPs),
/// and post-DNAT packets arriving on a node from another node (pod placement).
pub fn sightings(sc: &Scenario) -> (Vec<MasqueradeSighting>, Vec<PodPlacement>) {
    let mut masq = Vec::new();
    let mut place = Vec::new();
    for f in sc.flows() {
        let facts = FlowFacts::from_flow(sc, f);
        if let (Some(src), Some(n)) = (facts.observed_source, &facts.observed_node)
            && src != facts.client
        {
            masq.push(MasqueradeSighting {
                ingress_node: n.clone(),
                snat_source: src.ip(),
            });
        }
        for l in f.legs_of(LegKind::Back) {
            let cap = &sc.captures[l.capture];
            let Some(node) = cap.owner.node() else {
                continue;
            };
            let conn = &cap.capture.connections[l.connection as usize];
            if facts.observed_node.as_deref().is_some_and(|n| n != node) {
                place.push(PodPlacement {
                    node: node.to_string(),
                    pod: conn.server().ip(),
                    capture: cap.label.clone(),
                });
            }
        }
    }
    (masq, place)
}

fn pod_name(p: &super::model::PodRef) -> String {
    p.name.clone().unwrap_or_else(|| p.ip.to_string())
}

/// The leg whose requests are "as the client sent them": the ingress node's capture before NAT
/// (as interface.md's example shows, and where the node is observed), else the client-side
/// capture, else whatever saw it.
fn primary_leg(sc: &Scenario, f: &Flow, node: Option<&str>) -> Option<super::correlate::Leg> {
    f.legs_of(LegKind::Front)
        .find(|l| node.is_some() && sc.captures[l.capture].owner.node() == node)
        .or_else(|| f.legs_of(LegKind::Client).next())
        .or_else(|| f.legs_of(LegKind::Front).next())
        .or_else(|| f.legs.first())
        .copied()
}

/// Per capture: its requests' indices by connection, in capture order.
fn requests_by_connection(sc: &Scenario) -> Vec<HashMap<u32, Vec<usize>>> {
    sc.captures
        .iter()
        .map(|c| {
            let mut m: HashMap<u32, Vec<usize>> = HashMap::new();
            for (i, r) in c.capture.requests.iter().enumerate() {
                m.entry(r.connection).or_default().push(i);
            }
            m
        })
        .collect()
}

fn records(
    sc: &Scenario,
    flows: &[Flow],
    js: &[FlowJourney],
) -> (Vec<RequestJourney>, Vec<RequestSource>) {
    let index = requests_by_connection(sc);
    let on = |capture: usize, conn: u32| -> Vec<(usize, &HttpRequest)> {
        index[capture].get(&conn).map_or_else(Vec::new, |v| {
            v.iter()
                .map(|&i| (i, &sc.captures[capture].capture.requests[i]))
                .collect()
        })
    };
    let mut all: Vec<(i64, usize, RequestJourney, RequestSource)> = Vec::new();
    for (fi, (f, j)) in flows.iter().zip(js).enumerate() {
        let Some(leg) = primary_leg(sc, f, j.node.as_deref()) else {
            continue;
        };
        let cap = &sc.captures[leg.capture];
        let reqs = on(leg.capture, leg.connection);
        // Other legs' requests, by position, fill what this leg lacks (a response cut off).
        let others: Vec<Vec<&HttpRequest>> = f
            .legs
            .iter()
            .filter(|l| **l != leg)
            .map(|l| {
                on(l.capture, l.connection)
                    .into_iter()
                    .map(|(_, r)| r)
                    .collect()
            })
            .collect();
        for (k, (ri, r)) in reqs.iter().enumerate() {
            let status = r.response.as_ref().map(|s| s.status).or_else(|| {
                others
                    .iter()
                    .find_map(|o| o.get(k).and_then(|x| x.response.as_ref().map(|s| s.status)))
            });
            let http = HttpFields {
                method: escape_bytes(r.method()),
                target: escape_bytes(r.target()),
                host: r.host().map(escape_bytes),
                status,
            };
            let rec = request_record(
                0,
                fi as u64 + 1,
                r.ts_ns,
                &cap.label,
                f.client,
                f.frontend,
                http,
                j,
            );
            all.push((
                r.ts_ns,
                fi,
                rec,
                RequestSource {
                    flow: fi,
                    capture: leg.capture,
                    request: *ri,
                },
            ));
        }
    }
    all.sort_by_key(|(t, fi, _, s)| (*t, *fi, s.request));
    let mut reqs = Vec::with_capacity(all.len());
    let mut srcs = Vec::with_capacity(all.len());
    for (i, (_, _, mut r, s)) in all.into_iter().enumerate() {
        r.id = i as u64 + 1;
        reqs.push(r);
        srcs.push(s);
    }
    (reqs, srcs)
}

/// The HTTP part of a record (already escaped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpFields {
    pub method: String,
    pub target: String,
    pub host: Option<String>,
    pub status: Option<u16>,
}

/// One request's record: its HTTP fields and its connection's journey.
#[allow(clippy::too_many_arguments)]
pub fn request_record(
    id: u64,
    connection: u64,
    time_ns: i64,
    capture: &str,
    client: SocketAddr,
    frontend: SocketAddr,
    http: HttpFields,
    j: &FlowJourney,
) -> RequestJourney {
    RequestJourney {
        id,
        connection,
        time: rfc3339_micros(time_ns),
        capture: capture.to_string(),
        client: ep(client),
        frontend: ep(frontend),
        method: http.method,
        target: http.target,
        host: http.host,
        status: http.status,
        alb: j.alb.clone(),
        node: j.node.clone(),
        path: j.path.clone(),
        endpoint: j.endpoint.clone(),
        candidates: j.candidates.clone(),
        pod: j.pod.clone(),
        masquerade: j.masquerade,
        crossed_node: j.crossed_node,
        crossed_zone: j.crossed_zone,
        whatif: None,
    }
}

fn ep(a: SocketAddr) -> Endpoint {
    Endpoint {
        ip: a.ip(),
        port: a.port(),
    }
}

/// Expected pod shares: Σ over ingress nodes of P(node) · P(endpoint | node's rules, fresh state).
fn expected_pods(
    sc: &Scenario,
    flows: &[Flow],
    node_shares: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    let mut out: BTreeMap<String, f64> = BTreeMap::new();
    // The most used frontend stands for the Service.
    let mut by_frontend: BTreeMap<(SocketAddr, SocketAddr), usize> = BTreeMap::new();
    for f in flows.iter().filter(|f| f.protocol == 6) {
        *by_frontend.entry((f.frontend, f.client)).or_default() += 1;
    }
    let Some(((frontend, client), _)) = by_frontend
        .into_iter()
        .max_by_key(|(k, n)| (*n, std::cmp::Reverse(*k)))
    else {
        return out;
    };
    for (node, p_node) in node_shares {
        let Some(nr) = sc.rules_for(node) else {
            continue;
        };
        let mut local: Vec<IpAddr> = Vec::new();
        if let Some(n) = sc.cluster.node(node) {
            local.extend(n.ips.iter().map(|f| f.value));
        }
        let pkt = Packet::tcp(
            client.ip(),
            Some(client.port()),
            frontend.ip(),
            frontend.port(),
        )
        .with_in_iface("eth0")
        .with_origin(crate::netfilter::Origin::Incoming);
        // (Expected shares are for the HTTP traffic being explained: TCP.)
        let tr = trace(
            &nr.ruleset,
            &NodeContext::new(local),
            &pkt,
            TraceOptions {
                record_path: false,
                ..Default::default()
            },
        );
        for e in &tr.endpoints {
            let name = sc
                .cluster
                .pod_by_ip(e.ip)
                .and_then(|p| p.name().map(str::to_string))
                .unwrap_or_else(|| e.ip.to_string());
            *out.entry(name).or_default() += p_node * e.probability;
        }
    }
    out
}

fn to_shares(
    rows: Vec<ShareRow<String>>,
    requests: &BTreeMap<String, u64>,
    place: impl Fn(&str) -> (Option<String>, Option<String>),
) -> Vec<Share> {
    rows.into_iter()
        .map(|r| {
            let (node, zone) = place(&r.key);
            Share {
                requests: requests.get(&r.key).copied().unwrap_or(0),
                connections: r.count,
                share: r.share,
                expected_share: r.expected_share,
                node,
                zone,
                name: r.key,
            }
        })
        .collect()
}

fn balance(
    sc: &Scenario,
    flows: &[Flow],
    js: &[FlowJourney],
    sources: &[RequestSource],
    key: impl Fn(&FlowJourney) -> (Option<String>, Option<String>),
) -> Balance {
    let keys: Vec<(Option<String>, Option<String>)> = js.iter().map(&key).collect();
    let mut node_conns: BTreeMap<String, u64> = BTreeMap::new();
    let mut pod_conns: BTreeMap<String, u64> = BTreeMap::new();
    let mut node_reqs: BTreeMap<String, u64> = BTreeMap::new();
    let mut pod_reqs: BTreeMap<String, u64> = BTreeMap::new();
    let has_requests: BTreeSet<usize> = sources.iter().map(|s| s.flow).collect();
    for (i, (n, p)) in keys.iter().enumerate() {
        // Connections that carried HTTP (others, e.g. health probes without a request, are not
        // the traffic being explained).
        if !has_requests.contains(&i) {
            continue;
        }
        if let Some(n) = n {
            *node_conns.entry(n.clone()).or_default() += 1;
        }
        if let Some(p) = p {
            *pod_conns.entry(p.clone()).or_default() += 1;
        }
    }
    for s in sources {
        let (n, p) = &keys[s.flow];
        if let Some(n) = n {
            *node_reqs.entry(n.clone()).or_default() += 1;
        }
        if let Some(p) = p {
            *pod_reqs.entry(p.clone()).or_default() += 1;
        }
    }
    let alb_shares: BTreeMap<String, f64> = Replayer::new(sc, ReplayConfig::default())
        .alb()
        .filter(|_| {
            flows
                .iter()
                .any(|f| sc.cluster.is_frontend(f.frontend.ip()))
        })
        .map(|m| m.expected_shares().into_iter().collect())
        .unwrap_or_default();
    let node_for_expectation: BTreeMap<String, f64> = if alb_shares.is_empty() {
        let total: u64 = node_conns.values().sum();
        node_conns
            .iter()
            .map(|(k, v)| (k.clone(), *v as f64 / total.max(1) as f64))
            .collect()
    } else {
        alb_shares.clone()
    };
    let exp_pods = expected_pods(sc, flows, &node_for_expectation);
    let node_rows = share_rows(&node_conns, &alb_shares);
    let pod_rows = share_rows(&pod_conns, &exp_pods);
    let node_fit = if alb_shares.is_empty() {
        None
    } else {
        share_rows_fit(&node_rows)
    };
    let pod_fit = share_rows_fit(&pod_rows);
    let c = &sc.cluster;
    let nodes = to_shares(node_rows, &node_reqs, |n| {
        (Some(n.to_string()), c.zone_of_node(n).map(str::to_string))
    });
    let pods = to_shares(pod_rows, &pod_reqs, |p| {
        let pod = c
            .pods()
            .iter()
            .find(|x| x.name() == Some(p))
            .map(|x| x.ip.value)
            .or_else(|| p.parse().ok());
        let node = pod.and_then(|ip| c.node_of_endpoint(ip));
        (
            node.map(|n| n.name().to_string()),
            node.and_then(|n| n.zone().map(str::to_string)),
        )
    });
    let mut zone_known = 0u64;
    let mut zone_crossed = 0u64;
    let mut node_known = 0u64;
    let mut node_crossed = 0u64;
    for (i, j) in js.iter().enumerate() {
        if !has_requests.contains(&i) {
            continue;
        }
        if let Some(z) = j.crossed_zone {
            zone_known += 1;
            zone_crossed += u64::from(z);
        }
        if let Some(z) = j.crossed_node {
            node_known += 1;
            node_crossed += u64::from(z);
        }
    }
    Balance {
        nodes,
        pods,
        node_fit,
        pod_fit,
        cross_zone_share: (zone_known > 0).then(|| zone_crossed as f64 / zone_known as f64),
        cross_node_share: (node_known > 0).then(|| node_crossed as f64 / node_known as f64),
    }
}

/// The services named in the rules (for `--affinity` without a service: all of them).
pub fn service_names(sc: &Scenario) -> Vec<String> {
    let mut out: BTreeSet<String> = BTreeSet::new();
    for r in &sc.rules {
        for s in &r.services.services {
            if !s.endpoints.is_empty() {
                out.insert(s.label());
            }
        }
    }
    out.into_iter().collect()
}

/// The Service ports the captured connections were addressed to (by LB IP, external IP,
/// ClusterIP or NodePort), from every node's service map.
pub fn traffic_services(sc: &Scenario) -> Vec<String> {
    use crate::netfilter::kube::FrontendKind;
    // The Services the explained traffic (connections that carried HTTP) went to.
    let carried_http = |f: &Flow| {
        f.legs.iter().any(|l| {
            sc.captures[l.capture].capture.connections[l.connection as usize].http_requests > 0
        })
    };
    let targets: BTreeSet<SocketAddr> = sc
        .flows()
        .iter()
        .filter(|f| carried_http(f))
        .map(|f| f.frontend)
        .collect();
    let mut out: BTreeSet<String> = BTreeSet::new();
    for r in &sc.rules {
        for s in &r.services.services {
            let hit = s.frontends.iter().any(|f| {
                targets.iter().any(|t| {
                    f.port == t.port()
                        && match f.ip {
                            Some(ip) => ip == t.ip(),
                            None => {
                                f.kind == FrontendKind::NodePort && sc.cluster.is_node_ip(t.ip())
                            }
                        }
                })
            });
            if hit && !s.endpoints.is_empty() {
                out.insert(s.label());
            }
        }
    }
    out.into_iter().collect()
}

/// What-if settings turning affinity on/off for the Services the traffic reached (all Services
/// with endpoints when none can be told), and/or the ALB mode.
pub fn whatif_settings(
    sc: &Scenario,
    affinity: Option<bool>,
    alb_mode: Option<AlbMode>,
) -> WhatIfSettings {
    let mut w = WhatIfSettings {
        alb_mode,
        ..Default::default()
    };
    if let Some(on) = affinity {
        let mut names = traffic_services(sc);
        if names.is_empty() {
            names = service_names(sc);
        }
        for s in names {
            w.affinity.insert(s, on);
        }
    }
    w
}

fn whatif(sc: &Scenario, opts: &RunOptions, out: &mut Journeys) {
    let w = &opts.whatif;
    let mut rp = Replayer::new(
        sc,
        ReplayConfig {
            seed: opts.seed,
            full_walk: false,
        },
    );
    let recorded_mode = rp.alb().map(|m| m.mode());
    // cloud-provider-azure: ClientIP → SourceIP, None → Default.
    let derived = if w.affinity.values().any(|on| *on) {
        Some(AlbMode::for_session_affinity(SessionAffinity::ClientIp))
    } else if !w.affinity.is_empty() {
        Some(AlbMode::for_session_affinity(SessionAffinity::None))
    } else {
        None
    };
    let mode = w.alb_mode.or(derived).or(recorded_mode);
    if let Some(m) = mode {
        rp.set_alb_mode(m);
    }
    let mode_changed = mode != recorded_mode;
    // Rewrite every rule set.
    for nr in &sc.rules {
        let mut rs = (*nr.ruleset).clone();
        let mut changed = false;
        for (svc, on) in &w.affinity {
            let Some(sp) = nr.services.find(svc) else {
                continue;
            };
            let timeout = on.then(|| sp.affinity_timeout.unwrap_or(DEFAULT_AFFINITY_TIMEOUT));
            match set_session_affinity(&rs, svc, timeout) {
                Ok(x) => {
                    rs = x;
                    changed = true;
                }
                Err(e) => out.warnings.push(format!("what-if on {}: {e}", nr.source)),
            }
        }
        if changed {
            rp.override_rules(nr.node.clone(), Arc::new(rs));
        }
    }
    let mut cf = Vec::with_capacity(out.flows.len());
    for (f, j) in out.facts.iter().zip(&out.flow_journeys) {
        let node = if mode_changed && sc.cluster.is_frontend(f.frontend.ip()) {
            rp.alb_decision(f).and_then(|a| a.predicted_node)
        } else {
            j.node.clone()
        };
        // Reuse the kernel's draw when a capture showed it (and no affinity decided it).
        let drawn = j
            .endpoint
            .as_ref()
            .filter(|e| {
                matches!(e.evidence, Evidence::Observed | Evidence::Inferred) && !j.affinity_hit
            })
            .map(|e| SocketAddr::new(e.ip, e.port));
        let endpoint = match &node {
            Some(n) if f.observed_endpoint != Some(f.frontend) => rp.whatif_endpoint(f, n, drawn),
            _ => j.endpoint.as_ref().map(|e| SocketAddr::new(e.ip, e.port)),
        };
        cf.push((node, endpoint));
    }
    out.warnings.append(&mut rp.warnings);
    let pod_of = |ep: Option<SocketAddr>| {
        ep.map(|e| {
            sc.cluster
                .pod_by_ip(e.ip())
                .and_then(|p| p.name().map(str::to_string))
                .unwrap_or_else(|| e.ip().to_string())
        })
    };
    let mut moved = 0u64;
    /// Requests, requests per pod, requests per node.
    type Spread = (u64, BTreeMap<String, u64>, BTreeMap<String, u64>);
    let mut per_client: BTreeMap<IpAddr, Spread> = BTreeMap::new();
    for (r, s) in out.requests.iter_mut().zip(&out.sources) {
        let (node, endpoint) = &cf[s.flow];
        let pod = pod_of(*endpoint);
        let rec_pod = r.pod.as_ref().map(pod_name);
        let is_moved = node != &r.node
            || (rec_pod.is_some() && pod != rec_pod)
            || (rec_pod.is_none() && pod.is_some());
        moved += u64::from(is_moved);
        let e = per_client.entry(r.client.ip).or_default();
        e.0 += 1;
        if let Some(p) = &pod {
            *e.1.entry(p.clone()).or_default() += 1;
        }
        if let Some(n) = node {
            *e.2.entry(n.clone()).or_default() += 1;
        }
        r.whatif = Some(WhatIf {
            node: node.clone(),
            pod,
            moved: is_moved,
        });
    }
    let sorted = |m: BTreeMap<String, u64>| {
        let mut v: Vec<(String, u64)> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.into_iter().map(|x| x.0).collect::<Vec<_>>()
    };
    let clients = per_client
        .into_iter()
        .map(|(client, (requests, pods, nodes))| Stickiness {
            client,
            requests,
            pods: sorted(pods),
            nodes: sorted(nodes),
        })
        .collect();
    // Counterfactual balance, in the same shape as the recorded one.
    let cjs: Vec<FlowJourney> = out
        .flow_journeys
        .iter()
        .zip(&cf)
        .map(|(j, (node, endpoint))| {
            let mut k = j.clone();
            k.node = node.clone();
            k.pod = endpoint.map(|e| {
                let n = sc.cluster.node_of_endpoint(e.ip());
                super::model::PodRef {
                    name: sc
                        .cluster
                        .pod_by_ip(e.ip())
                        .and_then(|p| p.name().map(str::to_string)),
                    ip: e.ip(),
                    node: n.map(|n| n.name().to_string()),
                    zone: n.and_then(|n| n.zone().map(str::to_string)),
                }
            });
            k.crossed_node = match (&k.node, k.pod.as_ref().and_then(|p| p.node.clone())) {
                (Some(a), Some(b)) => Some(*a != b),
                _ => None,
            };
            k.crossed_zone = match (
                k.node.as_deref().and_then(|n| sc.cluster.zone_of_node(n)),
                k.pod.as_ref().and_then(|p| p.zone.clone()),
            ) {
                (Some(a), Some(b)) => Some(a != b),
                _ => None,
            };
            k
        })
        .collect();
    let sc_bal = {
        let mut b = balance(sc, &out.flows, &cjs, &out.sources, |j| {
            (j.node.clone(), j.pod.as_ref().map(pod_name))
        });
        // Expected node shares follow the what-if mode's model (uniform hash either way).
        b.node_fit = None;
        b.pod_fit = None;
        b
    };
    out.whatif = Some(WhatIfOutcome {
        settings: w.describe(),
        alb_mode: mode,
        requests_total: out.requests.len() as u64,
        requests_moved: moved,
        clients,
        balance: sc_bal,
    });
    out.counterfactual = cf;
}
