//! The journey record: one per HTTP request as the client sent it. This is the contract shared by
//! `report` (JSON/NDJSON/CSV/table, see `shared/interface.md`) and the TUI, which only draws it.
//!
//! Field names and shapes follow interface.md exactly; extend, never rename.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// An IP address with a port, as `{"ip": "...", "port": N}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

/// How a fact was established. Strongest first. The UI must be able to tell them apart without
/// colour, and nothing may claim `Observed` unless a capture shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Evidence {
    /// A packet in a capture shows it (e.g. the post-DNAT packet of the same connection).
    Observed,
    /// Deduced by elimination from what the captures show and do not show.
    Inferred,
    /// The replayed `recent` table (sessionAffinity) decides it.
    Affinity,
    /// Only the model's probabilities; see `candidates`.
    Modeled,
}

/// Load-balancer mode and hash: defined by the cluster layer (which owns the ALB model), with the
/// serde names interface.md fixes (`default|source-ip|source-ip-protocol`, `jhash|maglev|modulo`).
pub use crate::cluster::{AlbHash, AlbMode};

/// The load balancer's part of the journey. `bucket`/`predicted_node` are a model (Azure's hash is
/// not public); `observed_node` is what a capture showed, `None` when no capture shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlbDecision {
    pub mode: AlbMode,
    pub hash: AlbHash,
    pub bucket: Option<u32>,
    pub predicted_node: Option<String>,
    pub observed_node: Option<String>,
}

/// One rule that matched and acted (jump, mark, DNAT) on the request's connection, in order.
/// `rule` is 1-based within the chain, as `iptables -t nat -L CHAIN --line-numbers` numbers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathStep {
    pub table: String,
    pub chain: String,
    pub rule: u32,
}

/// The DNAT endpoint chosen (or a candidate for it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointChoice {
    pub ip: IpAddr,
    pub port: u16,
    /// The KUBE-SEP-… chain that DNATs to it.
    pub chain: String,
    /// Probability the rules give this endpoint for a new connection (product along the cascade).
    /// Unknown (no rules for the node, or the connection began before the capture): NaN, written
    /// as JSON `null`.
    #[serde(deserialize_with = "nan_when_null")]
    pub probability: f64,
    pub evidence: Evidence,
}

fn nan_when_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// The pod behind an endpoint, with its placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRef {
    pub name: Option<String>,
    pub ip: IpAddr,
    pub node: Option<String>,
    pub zone: Option<String>,
}

/// What the request would have done under the what-if settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhatIf {
    pub node: Option<String>,
    pub pod: Option<String>,
    pub moved: bool,
}

/// One HTTP request as the client sent it, with its whole journey. The same request seen at several
/// capture points (before/after NAT, several nodes) is one record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestJourney {
    pub id: u64,
    pub connection: u64,
    /// RFC 3339 UTC with microseconds, e.g. `2026-11-21T10:06:27.731204Z`.
    pub time: String,
    pub capture: String,
    pub client: Endpoint,
    pub frontend: Endpoint,
    /// Method, target and host are sanitised text (control characters escaped).
    pub method: String,
    pub target: String,
    pub host: Option<String>,
    pub status: Option<u16>,
    pub alb: Option<AlbDecision>,
    /// Ingress node used for the rest of the journey.
    pub node: Option<String>,
    pub path: Vec<PathStep>,
    pub endpoint: Option<EndpointChoice>,
    /// Every reachable endpoint when the endpoint was not observed.
    pub candidates: Vec<EndpointChoice>,
    pub pod: Option<PodRef>,
    /// Source after MASQUERADE/SNAT; `None` when not masqueraded.
    pub masquerade: Option<Endpoint>,
    pub crossed_node: Option<bool>,
    pub crossed_zone: Option<bool>,
    pub whatif: Option<WhatIf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_serialise_as_interface_md_names() {
        assert_eq!(
            serde_json::to_string(&AlbMode::SourceIp).unwrap(),
            "\"source-ip\""
        );
        assert_eq!(
            serde_json::to_string(&AlbMode::SourceIpProtocol).unwrap(),
            "\"source-ip-protocol\""
        );
        assert_eq!(
            serde_json::to_string(&Evidence::Modeled).unwrap(),
            "\"modeled\""
        );
        assert_eq!(serde_json::to_string(&AlbHash::Jhash).unwrap(), "\"jhash\"");
    }

    #[test]
    fn unknown_probability_round_trips_as_null() {
        let e = EndpointChoice {
            ip: "10.0.0.1".parse().unwrap(),
            port: 80,
            chain: String::new(),
            probability: f64::NAN,
            evidence: Evidence::Observed,
        };
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains("\"probability\":null"), "{json}");
        let back: EndpointChoice = serde_json::from_str(&json).unwrap();
        assert!(back.probability.is_nan());
    }
}
