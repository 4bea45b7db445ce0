//! The kube-proxy service map, read back from the rules: Service ports, their frontends
//! (ClusterIP, external IPs, load-balancer IPs, NodePorts), endpoints with probabilities, session
//! affinity, traffic policies, and which kube-proxy layout wrote them.
//!
//! Names come from comments and are checked against kube-proxy's chain-name hash, so a name is
//! only shown as verified when `sha256` agrees; endpoint chains are checked the same way, which
//! labels them even where kube-proxy dropped per-endpoint comments (above 1000 endpoints).

use ipnet::IpNet;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::hash;
use crate::netfilter::eval::{RuleAt, fmt_sock};
use crate::netfilter::model::*;

/// Which generation of kube-proxy's iptables layout the rules follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// ≤ v1.23 (e.g. 2020): KUBE-XLB, KUBE-FW for every LB IP, KUBE-MARK-MASQ in KUBE-SERVICES.
    Old,
    /// v1.24: KUBE-EXT/KUBE-SVL, but KUBE-FW still ends in KUBE-MARK-DROP.
    Transitional,
    /// ≥ v1.25: KUBE-EXT/KUBE-SVL/KUBE-PROXY-FIREWALL.
    New,
    /// No kube-proxy chains.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FrontendKind {
    ClusterIp,
    ExternalIp,
    LoadBalancerIp,
    /// An external or load-balancer IP whose comment was not kept (kube-proxy jumps to the same
    /// KUBE-EXT chain for both).
    ExternalOrLoadBalancerIp,
    NodePort,
    /// `healthCheckNodePort` of an eTP=Local LoadBalancer (filter KUBE-NODEPORTS ACCEPT).
    HealthCheckNodePort,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Frontend {
    pub kind: FrontendKind,
    /// `None` for NodePorts: every LOCAL address (or the `--nodeport-addresses`).
    pub ip: Option<IpAddr>,
    pub port: u16,
    pub protocol: Option<Protocol>,
    /// The chain it jumps to (KUBE-SVC/SVL/EXT/FW/XLB), or `None` when the Service has no
    /// endpoints and the frontend only exists as a filter REJECT/DROP.
    pub chain: Option<Arc<str>>,
    /// `loadBalancerSourceRanges` (sources the KUBE-FW chain lets through).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_ranges: Vec<IpNet>,
    pub rule: RuleAt,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceEndpoint {
    pub ip: IpAddr,
    pub port: u16,
    /// The KUBE-SEP chain.
    pub chain: Arc<str>,
    /// Probability of being chosen from the cluster-wide chain (KUBE-SVC), exact; `None` when
    /// the endpoint is only in the local chain.
    pub probability: Option<f64>,
    /// In the node-local chain (KUBE-SVL, or old KUBE-XLB): a local endpoint.
    pub local: bool,
    /// Probability within the local chain.
    pub local_probability: Option<f64>,
    /// The chain name agrees with kube-proxy's hash of service name, protocol and endpoint.
    pub chain_verified: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub enum TrafficPolicy {
    Cluster,
    Local,
}

/// The chains of one Service port.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServiceChains {
    pub svc: Option<Arc<str>>,
    pub svl: Option<Arc<str>>,
    pub ext: Option<Arc<str>>,
    pub fw: Option<Arc<str>>,
    pub xlb: Option<Arc<str>>,
}

/// One Service port as kube-proxy programmed it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServicePort {
    /// `namespace/name:port` (or `namespace/name` for an unnamed port), from comments.
    pub name: Option<String>,
    /// `name` hashes to the chain suffix.
    pub name_verified: bool,
    pub protocol: Option<Protocol>,
    /// The 16-character chain suffix.
    pub hash: String,
    pub chains: ServiceChains,
    pub frontends: Vec<Frontend>,
    pub endpoints: Vec<ServiceEndpoint>,
    /// `sessionAffinity: ClientIP` timeout in seconds (from the `--rcheck --seconds` rules).
    pub affinity_timeout: Option<u32>,
    pub external_traffic_policy: TrafficPolicy,
    pub internal_traffic_policy: TrafficPolicy,
    /// The filter verdict when there are no (local) endpoints: REJECT or DROP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_endpoints: Option<&'static str>,
}

impl ServicePort {
    /// Display name: the name, or the chain suffix when no comment names it.
    pub fn label(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("(unnamed {})", self.hash))
    }
}

/// The MASQUERADE rule of KUBE-POSTROUTING.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MasqueradeRule {
    pub rule: RuleAt,
    pub random_fully: bool,
    /// The mark bit that requests masquerading (0x4000 by default).
    pub mark: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceMap {
    pub layout: Layout,
    pub services: Vec<ServicePort>,
    pub masquerade: Option<MasqueradeRule>,
}

impl ServiceMap {
    /// A Service port by name (`ns/svc:port`, or `ns/svc` matching a single port) or chain suffix.
    pub fn find(&self, key: &str) -> Option<&ServicePort> {
        let key = key.trim_start_matches("KUBE-SVC-");
        self.services
            .iter()
            .find(|s| s.name.as_deref() == Some(key) || s.hash == key)
            .or_else(|| {
                let mut it = self.services.iter().filter(|s| {
                    s.name
                        .as_deref()
                        .is_some_and(|n| n.split(':').next() == Some(key))
                });
                match (it.next(), it.next()) {
                    (Some(s), None) => Some(s),
                    _ => None,
                }
            })
    }
}

/// Strip kube-proxy's comment suffixes to get `ns/svc:port`.
fn name_from_comment(c: &str) -> Option<(&str, Option<FrontendKind>)> {
    for (suffix, kind) in [
        (" cluster IP", Some(FrontendKind::ClusterIp)),
        (" external IP", Some(FrontendKind::ExternalIp)),
        (" loadbalancer IP", Some(FrontendKind::LoadBalancerIp)),
        (
            " health check node port",
            Some(FrontendKind::HealthCheckNodePort),
        ),
        (" has no endpoints", None),
        (" has no local endpoints", None),
    ] {
        if let Some(n) = c.strip_suffix(suffix) {
            return Some((n, kind));
        }
    }
    if let Some((n, _)) = c.split_once(" -> ") {
        return Some((n, None));
    }
    if let Some(n) = c
        .strip_prefix("Balancing rule ")
        .and_then(|r| r.split_once(" for "))
        .map(|(_, n)| n)
    {
        return Some((n, None));
    }
    if let Some(rest) = c.strip_prefix("traffic not accepted by ") {
        let _ = rest;
        return None;
    }
    if let Some(n) = c.split_once(" traffic not accepted by ").map(|(n, _)| n) {
        return Some((n, None));
    }
    // Bare `ns/svc:port` (NodePort and SEP rules).
    (c.contains('/') && !c.contains(' ')).then_some((c, None))
}

fn rule_proto(spec: &RuleSpec) -> Option<Protocol> {
    spec.proto.filter(|p| !p.negated).map(|p| p.value)
}

fn target_chain(spec: &RuleSpec) -> Option<&str> {
    match &spec.target {
        Some(Target::Jump(c) | Target::Goto(c)) => Some(&c.name),
        _ => None,
    }
}

#[derive(Default)]
struct Builder {
    name_candidates: Vec<String>,
    protocol: Option<Protocol>,
    chains: ServiceChains,
    frontends: Vec<Frontend>,
    no_endpoints: Option<&'static str>,
    etp_local: bool,
    itp_local: bool,
}

/// Read the service map from a rule set.
pub fn service_map(rs: &Ruleset) -> ServiceMap {
    let nat = rs.table(TableName::Nat);
    let filter = rs.table(TableName::Filter);
    let mut by_hash: BTreeMap<String, Builder> = BTreeMap::new();

    // 1. Chains by suffix.
    if let Some(nat) = nat {
        for c in &nat.chains {
            if let Some((prefix, h)) = hash::chain_suffix(&c.name) {
                if prefix == "KUBE-SEP-" {
                    continue;
                }
                let b = by_hash.entry(h.to_string()).or_default();
                let slot = match prefix {
                    "KUBE-SVC-" => &mut b.chains.svc,
                    "KUBE-SVL-" => &mut b.chains.svl,
                    "KUBE-EXT-" => &mut b.chains.ext,
                    "KUBE-FW-" => &mut b.chains.fw,
                    _ => &mut b.chains.xlb,
                };
                *slot = Some(c.name.clone());
                for r in &c.rules {
                    if let Some(n) = r.spec.comment().and_then(name_from_comment) {
                        b.name_candidates.push(n.0.to_string());
                    }
                    if b.protocol.is_none() {
                        b.protocol = rule_proto(&r.spec);
                    }
                }
            }
        }
    }

    // 2. Frontends: nat KUBE-SERVICES and KUBE-NODEPORTS.
    let at = |t: &Table, c: &Chain, i: usize| RuleAt {
        table: t.name,
        chain: c.name.clone(),
        rule: i as u32 + 1,
    };
    if let Some(nat) = nat {
        for (chain_name, nodeports) in [("KUBE-SERVICES", false), ("KUBE-NODEPORTS", true)] {
            let Some(c) = nat.chain(chain_name) else {
                continue;
            };
            for (i, r) in c.rules.iter().enumerate() {
                let Some(tc) = target_chain(&r.spec) else {
                    continue;
                };
                let Some((prefix, h)) = hash::chain_suffix(tc) else {
                    continue;
                };
                if prefix == "KUBE-SEP-" {
                    continue;
                }
                let Some(port) = r.spec.dport() else { continue };
                let comment = r.spec.comment();
                let named = comment.and_then(name_from_comment);
                let kind = if nodeports {
                    FrontendKind::NodePort
                } else {
                    match (named.and_then(|n| n.1), prefix) {
                        (Some(k), _) => k,
                        (None, "KUBE-SVC-" | "KUBE-SVL-") => FrontendKind::ClusterIp,
                        (None, "KUBE-FW-") => FrontendKind::LoadBalancerIp,
                        (None, _) => FrontendKind::ExternalOrLoadBalancerIp,
                    }
                };
                let b = by_hash.entry(h.to_string()).or_default();
                if let Some(n) = named {
                    b.name_candidates.push(n.0.to_string());
                }
                if b.protocol.is_none() {
                    b.protocol = rule_proto(&r.spec);
                }
                if kind == FrontendKind::ClusterIp && prefix == "KUBE-SVL-" {
                    b.itp_local = true;
                }
                let ip = if nodeports { None } else { r.spec.dst_host() };
                if b.frontends
                    .iter()
                    .any(|f| f.kind == kind && f.ip == ip && f.port == port)
                {
                    continue; // old layout writes several rules per external IP
                }
                b.frontends.push(Frontend {
                    kind,
                    ip,
                    port,
                    protocol: rule_proto(&r.spec),
                    chain: Some(tc.into()),
                    source_ranges: Vec::new(),
                    rule: at(nat, c, i),
                });
            }
        }
    }

    // 3. Filter rules: services without (local) endpoints, health-check node ports.
    if let Some(filter) = filter {
        for chain_name in ["KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-NODEPORTS"] {
            let Some(c) = filter.chain(chain_name) else {
                continue;
            };
            for (i, r) in c.rules.iter().enumerate() {
                let Some(comment) = r.spec.comment() else {
                    continue;
                };
                let Some((name, kind)) = name_from_comment(comment) else {
                    continue;
                };
                let verdict = match &r.spec.target {
                    Some(Target::Reject { .. }) => "REJECT",
                    Some(Target::Drop) => "DROP",
                    Some(Target::Accept) => "ACCEPT",
                    _ => continue,
                };
                let proto = rule_proto(&r.spec);
                let h = hash::service_suffix(
                    name,
                    &proto.map(|p| p.name()).unwrap_or_else(|| "tcp".into()),
                );
                let b = by_hash.entry(h).or_default();
                b.name_candidates.push(name.to_string());
                if b.protocol.is_none() {
                    b.protocol = proto;
                }
                let Some(port) = r.spec.dport() else { continue };
                let local_only = comment.ends_with(" has no local endpoints");
                if verdict == "ACCEPT" {
                    if kind == Some(FrontendKind::HealthCheckNodePort) {
                        b.frontends.push(Frontend {
                            kind: FrontendKind::HealthCheckNodePort,
                            ip: None,
                            port,
                            protocol: proto,
                            chain: None,
                            source_ranges: Vec::new(),
                            rule: at(filter, c, i),
                        });
                    }
                    continue;
                }
                if local_only {
                    if chain_name == "KUBE-SERVICES" {
                        b.itp_local = true;
                    } else {
                        b.etp_local = true;
                    }
                }
                if b.no_endpoints.is_none() || verdict == "REJECT" {
                    b.no_endpoints = Some(verdict);
                }
                let ip = r.spec.dst_host();
                let fkind = match (chain_name, ip) {
                    ("KUBE-SERVICES", _) => FrontendKind::ClusterIp,
                    (_, None) => FrontendKind::NodePort,
                    (_, Some(_)) => FrontendKind::ExternalOrLoadBalancerIp,
                };
                if !b.frontends.iter().any(|f| {
                    f.port == port
                        && (f.ip == ip || (ip.is_none() && f.kind == FrontendKind::NodePort))
                }) {
                    b.frontends.push(Frontend {
                        kind: fkind,
                        ip,
                        port,
                        protocol: proto,
                        chain: None,
                        source_ranges: Vec::new(),
                        rule: at(filter, c, i),
                    });
                }
            }
        }
    }

    // 4. Per service: name check, endpoints, affinity, policies, source ranges.
    let mut services = Vec::new();
    for (h, b) in by_hash {
        let protos: Vec<String> = match b.protocol {
            Some(p) => vec![p.name()],
            None => vec!["tcp".into(), "udp".into(), "sctp".into()],
        };
        let mut name = None;
        let mut verified = false;
        let mut protocol = b.protocol;
        for cand in &b.name_candidates {
            if let Some(p) = protos.iter().find(|p| hash::service_suffix(cand, p) == h) {
                name = Some(cand.clone());
                verified = true;
                if protocol.is_none() {
                    protocol = Protocol::parse(p).ok().flatten();
                }
                break;
            }
        }
        if name.is_none() {
            name = b.name_candidates.first().cloned();
        }
        let mut endpoints: Vec<ServiceEndpoint> = Vec::new();
        let mut affinity = None;
        let mut etp_local = b.etp_local || b.chains.xlb.is_some();
        if let (Some(nat), Some(ext)) = (nat, &b.chains.ext)
            && let Some(c) = nat.chain(ext)
            && c.rules
                .iter()
                .any(|r| target_chain(&r.spec).is_some_and(|t| t.starts_with("KUBE-SVL-")))
        {
            etp_local = true;
        }
        // Endpoints from the cluster chain, then the local chain.
        for (chain, local) in [
            (&b.chains.svc, false),
            (&b.chains.svl, true),
            (&b.chains.xlb, true),
        ] {
            let (Some(nat), Some(chain)) = (nat, chain) else {
                continue;
            };
            let Some(c) = nat.chain(chain) else { continue };
            let mut remaining = 1.0f64;
            for r in &c.rules {
                let Some(tc) = target_chain(&r.spec) else {
                    continue;
                };
                if !tc.starts_with("KUBE-SEP-") {
                    continue;
                }
                if let Some(rm) = r.spec.recent()
                    && rm.op == RecentOp::Rcheck
                {
                    affinity = affinity.or(rm.seconds);
                    continue;
                }
                let p = match r.spec.statistic() {
                    Some(StatisticMatch::Random {
                        stored,
                        invert: false,
                    }) => remaining * StatisticMatch::probability_of(*stored),
                    Some(_) => f64::NAN,
                    None => remaining,
                };
                if let Some(StatisticMatch::Random {
                    stored,
                    invert: false,
                }) = r.spec.statistic()
                {
                    remaining *= 1.0 - StatisticMatch::probability_of(*stored);
                } else if r.spec.statistic().is_none() {
                    remaining = 0.0;
                }
                let Some((ip, port)) = sep_destination(nat, tc) else {
                    continue;
                };
                let idx = match endpoints.iter().position(|e| *e.chain == *tc) {
                    Some(i) => i,
                    None => {
                        let chain_verified = match (&name, hash::chain_suffix(tc)) {
                            (Some(n), Some((_, suffix))) => protos
                                .iter()
                                .chain(protocol.map(|p| p.name()).iter())
                                .any(|p| {
                                    hash::endpoint_suffix(n, p, &fmt_sock(ip, port)) == suffix
                                }),
                            _ => false,
                        };
                        endpoints.push(ServiceEndpoint {
                            ip,
                            port,
                            chain: tc.into(),
                            probability: None,
                            local: false,
                            local_probability: None,
                            chain_verified,
                        });
                        endpoints.len() - 1
                    }
                };
                let e = &mut endpoints[idx];
                if local {
                    e.local = true;
                    e.local_probability = Some(p);
                } else {
                    e.probability = Some(p);
                }
            }
        }
        let mut frontends = b.frontends;
        if let (Some(nat), Some(fw)) = (nat, &b.chains.fw)
            && let Some(c) = nat.chain(fw)
        {
            let ranges: Vec<IpNet> = c
                .rules
                .iter()
                .filter(|r| target_chain(&r.spec).is_some_and(|t| !t.starts_with("KUBE-MARK")))
                .filter_map(|r| r.spec.src.filter(|s| !s.negated).map(|s| s.value))
                .collect();
            for f in frontends
                .iter_mut()
                .filter(|f| f.chain.as_deref() == Some(&**fw))
            {
                f.source_ranges = ranges.clone();
            }
        }
        services.push(ServicePort {
            name,
            name_verified: verified,
            protocol,
            hash: h,
            chains: b.chains,
            frontends,
            endpoints,
            affinity_timeout: affinity,
            external_traffic_policy: if etp_local {
                TrafficPolicy::Local
            } else {
                TrafficPolicy::Cluster
            },
            internal_traffic_policy: if b.itp_local {
                TrafficPolicy::Local
            } else {
                TrafficPolicy::Cluster
            },
            no_endpoints: b.no_endpoints,
        });
    }
    services.sort_by_key(|s| s.label());
    ServiceMap {
        layout: layout(rs),
        services,
        masquerade: masquerade_rule(rs),
    }
}

/// The DNAT destination of a KUBE-SEP chain.
fn sep_destination(nat: &Table, sep: &str) -> Option<(IpAddr, u16)> {
    nat.chain(sep)?
        .rules
        .iter()
        .find_map(|r| match &r.spec.target {
            Some(Target::Dnat {
                to:
                    NatRange {
                        addrs: Some((a, _)),
                        ports,
                    },
                ..
            }) => Some((*a, ports.map(|p| p.0).unwrap_or(0))),
            _ => None,
        })
}

fn layout(rs: &Ruleset) -> Layout {
    let Some(nat) = rs.table(TableName::Nat) else {
        return Layout::None;
    };
    let has = |p: &str| nat.chains.iter().any(|c| c.name.starts_with(p));
    let jumps_to = |from: &str, to: &str| {
        nat.chain(from)
            .is_some_and(|c| c.rules.iter().any(|r| target_chain(&r.spec) == Some(to)))
    };
    let any_jump_to = |to: &str| {
        nat.chains
            .iter()
            .any(|c| c.rules.iter().any(|r| target_chain(&r.spec) == Some(to)))
    };
    if has("KUBE-XLB-")
        || jumps_to("KUBE-SERVICES", "KUBE-MARK-MASQ")
        || (has("KUBE-FW-") && !has("KUBE-EXT-"))
    {
        Layout::Old
    } else if has("KUBE-EXT-") && any_jump_to("KUBE-MARK-DROP") {
        Layout::Transitional
    } else if has("KUBE-SVC-") || has("KUBE-EXT-") || has("KUBE-SERVICES") {
        Layout::New
    } else {
        Layout::None
    }
}

fn masquerade_rule(rs: &Ruleset) -> Option<MasqueradeRule> {
    let nat = rs.table(TableName::Nat)?;
    let c = nat.chain("KUBE-POSTROUTING")?;
    let mark = c.rules.iter().find_map(|r| {
        r.spec.matches.iter().find_map(|m| match m {
            Match::Mark(mk) => Some(mk.mask),
            _ => None,
        })
    });
    c.rules
        .iter()
        .enumerate()
        .find_map(|(i, r)| match &r.spec.target {
            Some(Target::Masquerade { random_fully, .. }) => Some(MasqueradeRule {
                rule: RuleAt {
                    table: TableName::Nat,
                    chain: c.name.clone(),
                    rule: i as u32 + 1,
                },
                random_fully: *random_fully,
                mark,
            }),
            _ => None,
        })
}
