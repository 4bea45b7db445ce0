//! The UI's [`SnapshotSource`] over a real [`Scenario`]: every snapshot re-runs the journey model
//! (stitching, replay, what-if) under the requested switches, so the TUI draws real journeys.

use super::correlate::Flow;
use super::model::{Endpoint, Evidence};
use super::replay::FlowJourney;
use super::run::{Journeys, RunOptions, rfc3339_micros, run};
use super::scenario::Scenario;
use super::snapshot::{
    ChainRules, ChainWalkStep, ClientStickiness, ConnectionState, ConnectionSummary, Counters,
    Direction, DirectionStats, Distribution, Initiator, LoadProgress, NodeRules, PacketLine,
    RecentCheck, RequestDetail, RuleOutcome, RuleRow, ScenarioInfo, ServiceInfo, ShareStat,
    Snapshot, SnapshotSource, TableRules, WhatIfSettings, WhatIfState, WhatIfSummary,
};
use crate::capture::{Connection, TcpState};
use crate::netfilter::recent::RecentEventKind;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Requests that get a [`RequestDetail`] (the first ones, in time order).
pub const MAX_DETAILS: usize = 50_000;
/// Packet lines per request detail (a long keep-alive connection is cut, the rest counted).
pub const MAX_PACKETS_PER_DETAIL: usize = 400;

/// A scenario the UI can re-run under any what-if settings.
pub struct ScenarioSource {
    scenario: Arc<Scenario>,
    seed: u64,
    description: String,
}

impl ScenarioSource {
    pub fn new(scenario: Scenario, seed: u64) -> Self {
        ScenarioSource {
            scenario: Arc::new(scenario),
            seed,
            description: String::new(),
        }
    }

    /// A paragraph shown in help and the tour's first step.
    #[must_use]
    pub fn with_description(mut self, d: impl Into<String>) -> Self {
        self.description = d.into();
        self
    }

    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }
}

impl SnapshotSource for ScenarioSource {
    fn name(&self) -> String {
        self.scenario.title.clone()
    }

    fn snapshot(&self, whatif: &WhatIfSettings, progress: &LoadProgress) -> Snapshot {
        let sc = &*self.scenario;
        progress.begin("replaying connections", 3);
        let js = run(
            sc,
            &RunOptions {
                seed: self.seed,
                whatif: whatif.clone(),
                full_walk: true,
            },
        );
        progress.advance(1);
        let mut snap = build(sc, &js, whatif, &self.description);
        progress.advance(1);
        snap.warnings = sc.warnings.iter().chain(&js.warnings).cloned().collect();
        progress.advance(1);
        snap
    }
}

/// The snapshot of one run.
pub fn build(sc: &Scenario, js: &Journeys, whatif: &WhatIfSettings, description: &str) -> Snapshot {
    let mut requests_of_flow: Vec<Vec<u64>> = vec![Vec::new(); js.flows.len()];
    for (r, s) in js.requests.iter().zip(&js.sources) {
        requests_of_flow[s.flow].push(r.id);
    }
    // Detail for the first requests only on huge captures (the snapshot allows sparse detail).
    let details = js
        .requests
        .iter()
        .zip(&js.sources)
        .take(MAX_DETAILS)
        .map(|(r, s)| {
            (
                r.id,
                detail(sc, &js.flows[s.flow], &js.flow_journeys[s.flow], s),
            )
        })
        .collect();
    Snapshot {
        scenario: ScenarioInfo {
            title: sc.title.clone(),
            description: description.to_string(),
            inputs: sc.inputs.clone(),
        },
        requests: js.requests.clone(),
        details,
        connections: connections(sc, js, &requests_of_flow),
        services: services(sc),
        rules: rules(sc, js),
        distribution: distribution(js),
        whatif: WhatIfState {
            settings: whatif.clone(),
            summary: js.whatif.as_ref().map(|w| WhatIfSummary {
                alb_mode: w.alb_mode,
                requests_total: w.requests_total,
                requests_moved: w.requests_moved,
                clients: w
                    .clients
                    .iter()
                    .map(|c| ClientStickiness {
                        client: c.client,
                        requests: c.requests,
                        pods: c.pods.clone(),
                        nodes: c.nodes.clone(),
                    })
                    .collect(),
            }),
        },
        warnings: Vec::new(),
    }
}

fn conn_of<'a>(sc: &'a Scenario, l: &super::correlate::Leg) -> &'a Connection {
    &sc.captures[l.capture].capture.connections[l.connection as usize]
}

fn detail(
    sc: &Scenario,
    f: &Flow,
    j: &FlowJourney,
    s: &super::run::RequestSource,
) -> RequestDetail {
    let req = &sc.captures[s.capture].capture.requests[s.request];
    let mut packets = Vec::new();
    for l in &f.legs {
        let cap = &sc.captures[l.capture];
        if !cap.capture.has_packets() {
            continue;
        }
        let conn = conn_of(sc, l);
        for frame in cap
            .capture
            .frames_of(l.connection)
            .take(MAX_PACKETS_PER_DETAIL)
        {
            let Some(p) = cap.capture.packet(frame) else {
                continue;
            };
            let (Some(src), Some(dst)) = (p.src, p.dst) else {
                continue;
            };
            let to_server = src == conn.client().ip() && p.src_port == conn.client().port();
            let info = if frame == req.first_frame && l.capture == s.capture {
                let line = req.head().split(|b| *b == b'\n').next().unwrap_or_default();
                line.strip_suffix(b"\r").unwrap_or(line).to_vec()
            } else {
                Vec::new()
            };
            packets.push(PacketLine {
                time: rfc3339_micros(p.ts_ns),
                capture: cap.label.clone(),
                direction: if to_server {
                    Direction::ToServer
                } else {
                    Direction::ToClient
                },
                src: Endpoint {
                    ip: src,
                    port: p.src_port,
                },
                dst: Endpoint {
                    ip: dst,
                    port: p.dst_port,
                },
                flags: p.tcp_flags.to_string(),
                payload_len: p.payload_len,
                info,
            });
        }
    }
    packets.sort_by(|a, b| a.time.cmp(&b.time).then(a.capture.cmp(&b.capture)));
    let ep_evidence = j.endpoint.as_ref().map(|e| e.evidence);
    // When the endpoint is known from the packets (observed, or inferred from them), every rule
    // on the way to it is determined by it: the kernel must have walked exactly these rules, so
    // they are inferred, not modelled. Only when nothing shows the endpoint are the statistic
    // draws (and what follows from them) the model's guess.
    let endpoint_known = matches!(
        ep_evidence,
        Some(Evidence::Observed | Evidence::Inferred | Evidence::Affinity)
    );
    let mut drawn = false;
    let (chain_walk, recent) = match &j.walk {
        Some(w) => {
            let steps = w
                .path
                .iter()
                // A chain's policy step (rule 0) says nothing a rule did not.
                .filter(|st| st.rule > 0)
                .map(|st| {
                    let probability = statistic_probability(&st.text);
                    let outcome = if !st.matched {
                        RuleOutcome::NotMatched {
                            reason: st.why_not.clone().unwrap_or_default(),
                        }
                    } else if probability.is_some() {
                        RuleOutcome::Statistic { taken: true }
                    } else {
                        RuleOutcome::Matched
                    };
                    let outcome = match outcome {
                        RuleOutcome::NotMatched { reason }
                            if probability.is_some() && reason.contains("statistic") =>
                        {
                            RuleOutcome::Statistic { taken: false }
                        }
                        o => o,
                    };
                    let evidence = if st.action.as_deref().is_some_and(|a| a.starts_with("DNAT")) {
                        ep_evidence.unwrap_or(Evidence::Modeled)
                    } else if st.text.contains("--rcheck") && st.matched {
                        Evidence::Affinity
                    } else if endpoint_known {
                        Evidence::Inferred
                    } else {
                        // Rules before the first statistic draw follow from the packet's headers
                        // and the rules; from the draw on, the path is one of the model's choices.
                        drawn |= probability.is_some();
                        if drawn {
                            Evidence::Modeled
                        } else {
                            Evidence::Inferred
                        }
                    };
                    ChainWalkStep {
                        table: st.table.as_str().to_string(),
                        chain: st.chain.to_string(),
                        rule: st.rule,
                        text: st.text.to_string(),
                        outcome,
                        probability,
                        evidence,
                    }
                })
                .collect();
            let mut recent: Vec<RecentCheck> = w
                .recent_hits
                .iter()
                .map(|name| RecentCheck {
                    name: name.to_string(),
                    op: "rcheck".into(),
                    seconds: None,
                    address: f.client.ip(),
                    hit: true,
                    last_seen: None,
                })
                .collect();
            for e in &w.recent_events {
                let (op, hit, last) = match e.kind {
                    RecentEventKind::Added => ("set", false, None),
                    RecentEventKind::Refreshed => ("set", true, None),
                    RecentEventKind::Evicted { last_seen_ns } => {
                        ("evict", true, Some(last_seen_ns))
                    }
                    RecentEventKind::Reaped { last_seen_ns } => ("reap", true, Some(last_seen_ns)),
                    RecentEventKind::Removed => ("remove", true, None),
                };
                recent.push(RecentCheck {
                    name: e.table.to_string(),
                    op: op.into(),
                    seconds: None,
                    address: e.addr,
                    hit,
                    last_seen: last.map(|t| rfc3339_micros(t as i64)),
                });
            }
            (steps, recent)
        }
        None => (Vec::new(), Vec::new()),
    };
    RequestDetail {
        packets,
        request_head: req.head().to_vec(),
        response_head: req.response.as_ref().map(|r| r.head().to_vec()),
        chain_walk,
        recent,
        service: j.service.clone(),
        masquerade_evidence: j.masquerade_evidence,
    }
}

/// `--probability X` of a rule's text.
fn statistic_probability(text: &str) -> Option<f64> {
    let i = text.find("--probability ")?;
    text[i + 14..].split_whitespace().next()?.parse().ok()
}

fn connections(
    sc: &Scenario,
    js: &Journeys,
    requests_of_flow: &[Vec<u64>],
) -> Vec<ConnectionSummary> {
    let mut out = Vec::new();
    for (fi, f) in js.flows.iter().enumerate() {
        for l in &f.legs {
            let c = conn_of(sc, l);
            let cap = &sc.captures[l.capture];
            let (pc, ps) = c.packets_cs();
            let (bc, bs) = c.bytes_cs();
            let t = c.tcp;
            let state = if c.protocol != 6 {
                ConnectionState::Unknown
            } else if t.has(TcpState::RST) {
                ConnectionState::Reset
            } else if t.has(TcpState::FIN_FROM_CLIENT) && t.has(TcpState::FIN_FROM_SERVER) {
                ConnectionState::Closed
            } else if t.has(TcpState::FIN_FROM_CLIENT) || t.has(TcpState::FIN_FROM_SERVER) {
                ConnectionState::HalfClosed
            } else if t.has(TcpState::HANDSHAKE) || t.has(TcpState::MID_STREAM) {
                ConnectionState::Established
            } else if t.has(TcpState::SYN) {
                ConnectionState::SynSent
            } else {
                ConnectionState::Unknown
            };
            out.push(ConnectionSummary {
                id: fi as u64 + 1,
                capture: cap.label.clone(),
                node: cap.owner.node().map(str::to_string),
                protocol: c.protocol_name(),
                client: Endpoint {
                    ip: c.client().ip(),
                    port: c.client().port(),
                },
                server: Endpoint {
                    ip: c.server().ip(),
                    port: c.server().port(),
                },
                initiator: if c.initiator_evidence == crate::capture::InitiatorEvidence::Syn {
                    Initiator::Syn
                } else {
                    Initiator::Inferred
                },
                first: rfc3339_micros(c.first_ts_ns),
                last: rfc3339_micros(c.last_ts_ns),
                to_server: DirectionStats {
                    packets: pc,
                    bytes: bc,
                },
                to_client: DirectionStats {
                    packets: ps,
                    bytes: bs,
                },
                state,
                requests: requests_of_flow[fi].clone(),
            });
        }
    }
    out.sort_by(|a, b| {
        a.first
            .cmp(&b.first)
            .then(a.capture.cmp(&b.capture))
            .then(a.id.cmp(&b.id))
    });
    out
}

fn services(sc: &Scenario) -> Vec<ServiceInfo> {
    let mut by: BTreeMap<String, ServiceInfo> = BTreeMap::new();
    for r in &sc.rules {
        for s in &r.services.services {
            if s.endpoints.is_empty() {
                continue;
            }
            by.entry(s.label()).or_insert_with(|| ServiceInfo {
                name: s.label(),
                chain: s
                    .chains
                    .svc
                    .as_deref()
                    .or(s.chains.svl.as_deref())
                    .unwrap_or_default()
                    .to_string(),
                session_affinity: s.affinity_timeout.is_some(),
                endpoints: s.endpoints.iter().map(|e| e.chain.to_string()).collect(),
            });
        }
    }
    by.into_values().collect()
}

fn target_of(text: &str) -> Option<String> {
    let mut it = text.split_whitespace();
    while let Some(w) = it.next() {
        if w == "-j" || w == "-g" || w == "--jump" || w == "--goto" {
            return it.next().map(str::to_string);
        }
    }
    None
}

fn rules(sc: &Scenario, js: &Journeys) -> Vec<NodeRules> {
    // Replay hits: rules that matched in the recorded walks, by (rule source, table, chain, rule).
    let mut hits: HashMap<(String, &'static str, String, u32), u64> = HashMap::new();
    for j in &js.flow_journeys {
        let (Some(w), Some(node)) = (&j.walk, &j.node) else {
            continue;
        };
        let Some(nr) = sc.rules_for(node) else {
            continue;
        };
        for st in w.path.iter().filter(|s| s.matched && s.rule > 0) {
            *hits
                .entry((
                    nr.source.clone(),
                    st.table.as_str(),
                    st.chain.to_string(),
                    st.rule,
                ))
                .or_default() += 1;
        }
    }
    sc.rules
        .iter()
        .map(|nr| NodeRules {
            node: nr.node.clone().unwrap_or_else(|| "*".into()),
            source: nr.source.clone(),
            tables: nr
                .ruleset
                .tables
                .iter()
                .map(|t| TableRules {
                    name: t.name.as_str().to_string(),
                    chains: t
                        .chains
                        .iter()
                        .map(|c| ChainRules {
                            name: c.name.to_string(),
                            policy: c.policy.map(|p| p.as_str().to_string()),
                            counters: c.policy.map(|_| Counters {
                                packets: c.counters.packets,
                                bytes: c.counters.bytes,
                            }),
                            rules: c
                                .rules
                                .iter()
                                .enumerate()
                                .map(|(i, r)| RuleRow {
                                    number: i as u32 + 1,
                                    text: r.text.to_string(),
                                    target: target_of(&r.text),
                                    counters: r.counters.map(|k| Counters {
                                        packets: k.packets,
                                        bytes: k.bytes,
                                    }),
                                    replay_hits: hits
                                        .get(&(
                                            nr.source.clone(),
                                            t.name.as_str(),
                                            c.name.to_string(),
                                            i as u32 + 1,
                                        ))
                                        .copied()
                                        .unwrap_or(0),
                                })
                                .collect(),
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect()
}

fn distribution(js: &Journeys) -> Distribution {
    let bal = js.whatif.as_ref().map_or(&js.balance, |w| &w.balance);
    let times: Vec<i64> = js
        .requests
        .iter()
        .filter_map(|r| super::snapshot::time_micros(&r.time))
        .collect();
    let start = times.iter().copied().min();
    let end = times.iter().copied().max();
    const BUCKETS: i64 = 30;
    let width_us = match (start, end) {
        (Some(a), Some(b)) if b > a => ((b - a) / BUCKETS).max(1) + 1,
        _ => 1_000_000,
    };
    // Requests per node / pod per time bucket, under this snapshot's settings.
    let mut node_tl: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut pod_tl: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in &js.requests {
        let Some(t) = super::snapshot::time_micros(&r.time) else {
            continue;
        };
        let b = ((t - start.unwrap_or(t)) / width_us).clamp(0, BUCKETS - 1) as usize;
        let (node, pod) = match &r.whatif {
            Some(w) => (w.node.clone(), w.pod.clone()),
            None => (
                r.node.clone(),
                r.pod
                    .as_ref()
                    .map(|p| p.name.clone().unwrap_or_else(|| p.ip.to_string())),
            ),
        };
        if let Some(n) = node {
            node_tl
                .entry(n)
                .or_insert_with(|| vec![0; BUCKETS as usize])[b] += 1;
        }
        if let Some(p) = pod {
            pod_tl.entry(p).or_insert_with(|| vec![0; BUCKETS as usize])[b] += 1;
        }
    }
    let stat =
        |s: &super::run::Share, tl: &BTreeMap<String, Vec<u64>>, total: u64, pod: bool| ShareStat {
            name: s.name.clone(),
            node: if pod { s.node.clone() } else { None },
            zone: s.zone.clone(),
            count: s.requests,
            share: if total == 0 {
                0.0
            } else {
                s.requests as f64 / total as f64
            },
            expected_share: s.expected_share.unwrap_or(0.0),
            timeline: tl
                .get(&s.name)
                .cloned()
                .unwrap_or_else(|| vec![0; BUCKETS as usize]),
        };
    let nt: u64 = bal.nodes.iter().map(|s| s.requests).sum();
    let pt: u64 = bal.pods.iter().map(|s| s.requests).sum();
    Distribution {
        nodes: bal
            .nodes
            .iter()
            .map(|s| stat(s, &node_tl, nt, false))
            .collect(),
        pods: bal
            .pods
            .iter()
            .map(|s| stat(s, &pod_tl, pt, true))
            .collect(),
        node_p_value: js
            .balance
            .node_fit
            .as_ref()
            .filter(|_| js.whatif.is_none())
            .map(|f| f.p_value),
        pod_p_value: js
            .balance
            .pod_fit
            .as_ref()
            .filter(|_| js.whatif.is_none())
            .map(|f| f.p_value),
        bucket_seconds: width_us as f64 / 1e6,
        start: start.map(|s| rfc3339_micros(s * 1000)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probability_from_rule_text() {
        assert_eq!(
            statistic_probability(
                "-A KUBE-SVC-X -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-Y"
            ),
            Some(0.33333333349)
        );
        assert_eq!(statistic_probability("-A KUBE-SVC-X -j KUBE-SEP-Y"), None);
        assert_eq!(
            target_of("-A KUBE-SVC-X -m comment --comment \"a b\" -j KUBE-SEP-Y"),
            Some("KUBE-SEP-Y".into())
        );
    }
}
