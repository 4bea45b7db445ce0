//! The read-only picture the TUI draws: a [`Snapshot`] of everything the journey layer knows about
//! one scenario under one set of what-if switches.
//!
//! # Brief overview
//!
//! * [`Snapshot`] — requests ([`RequestJourney`], the report JSON record), connections, per-request
//!   [`RequestDetail`] (packets, HTTP heads, the whole chain walk), the rule dumps per node, the
//!   node/pod distribution, the what-if state and warnings.
//! * [`SnapshotSource`] — what the UI holds. It asks for a new snapshot whenever the user toggles a
//!   what-if switch ([`WhatIfSettings`]); the source re-runs the journey model. The UI never decides
//!   which node, rule or pod a packet took.
//! * [`LoadProgress`] — a shared counter the source advances while it works, so the UI can draw a
//!   progress gauge from its own thread while a big capture loads.
//!
//! Every field says whether it is **observed** (a capture or a dump shows it) or **modelled** (a
//! replay of the rules, a hash model or a statistic). Everything is plain data (serde) so a snapshot
//! can be written to JSON, diffed and reloaded.
//!
//! Text that came from packets or input files is kept as it was (bytes or the journey record's
//! already-escaped strings); the UI passes all of it through [`crate::sanitize`] before drawing.

use crate::journey::model::{AlbMode, Endpoint, Evidence, RequestJourney};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Everything the UI draws for one scenario under one [`WhatIfSettings`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// What is being looked at (title, inputs). Observed: names of the inputs given.
    pub scenario: ScenarioInfo,
    /// One record per HTTP request, **sorted by `time` ascending** (replay relies on the order).
    /// When the what-if settings are not the recorded ones, each record's `whatif` says where the
    /// request would have gone; the rest of the record stays as recorded.
    pub requests: Vec<RequestJourney>,
    /// Per-request detail keyed by `RequestJourney::id`. May be sparse (a huge capture may only
    /// carry detail for some requests); the UI says "no detail" for the others.
    pub details: BTreeMap<u64, RequestDetail>,
    /// TCP/UDP connections per capture, sorted by first packet time.
    pub connections: Vec<ConnectionSummary>,
    /// Kubernetes Services found in the rules (for the per-service sessionAffinity switch).
    pub services: Vec<ServiceInfo>,
    /// The rule dumps, one per node (or one entry with `node = "*"` for a dump shared by all nodes).
    pub rules: Vec<NodeRules>,
    /// Requests per node and per pod against the expected share.
    pub distribution: Distribution,
    /// The what-if settings this snapshot was computed with, and what changed.
    pub whatif: WhatIfState,
    /// Things the user should read (unreadable records, guesses made, missing captures). Already
    /// human sentences; sanitised before drawing.
    pub warnings: Vec<String>,
}

/// The scenario's identity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioInfo {
    /// Short title shown in the header, e.g. "3 replicas, keep-alive vs --disable-keepalive".
    pub title: String,
    /// Longer description (one paragraph), shown in help and the tour's first step.
    pub description: String,
    /// The inputs, as given on the command line or found in the scenario folder.
    pub inputs: Vec<String>,
}

/// Per-request detail: the evidence behind one [`RequestJourney`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestDetail {
    /// Observed: the packets of the request's connection, in capture order, from every capture that
    /// saw them (before and after NAT).
    pub packets: Vec<PacketLine>,
    /// Observed: the HTTP request head exactly as captured (request line + headers), raw bytes.
    pub request_head: Vec<u8>,
    /// Observed: the HTTP response head exactly as captured, raw bytes; `None` if not captured.
    pub response_head: Option<Vec<u8>>,
    /// Modelled (replay of the node's rules) unless a step's `evidence` says otherwise: every rule
    /// the first packet of the connection was checked against on the ingress node, in order, with
    /// the result. Rules that acted are also in `RequestJourney::path`.
    pub chain_walk: Vec<ChainWalkStep>,
    /// Modelled: `-m recent` lookups and updates made for this connection (sessionAffinity).
    pub recent: Vec<RecentCheck>,
    /// Which Service (`ServiceInfo::name`) the request went to, when the rules identify one.
    pub service: Option<String>,
    /// How `RequestJourney::masquerade` is known: observed (a capture shows the translated
    /// source) or modelled (the rules say MASQUERADE; the address is the model's).
    #[serde(default)]
    pub masquerade_evidence: Option<Evidence>,
}

/// Direction of a packet relative to the connection's initiator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// From the connection's initiator (client side) to the responder.
    ToServer,
    /// From the responder back to the initiator.
    ToClient,
}

/// One captured packet, as a summary line. Observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PacketLine {
    /// RFC 3339 UTC with microseconds.
    pub time: String,
    /// Capture file the packet came from (several captures may show the same packet).
    pub capture: String,
    pub direction: Direction,
    pub src: Endpoint,
    pub dst: Endpoint,
    /// TCP flags as tcpdump prints them: `S`, `S.`, `.`, `P.`, `F.`, `R`.
    pub flags: String,
    /// Payload length in bytes.
    pub payload_len: u32,
    /// A short summary of the payload (e.g. the HTTP request line), raw bytes as captured.
    pub info: Vec<u8>,
}

/// How one rule treated the request's first packet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum RuleOutcome {
    /// All matches held and the target acted (jump, goto, mark, DNAT, MASQUERADE, RETURN …).
    Matched,
    /// A match failed; `reason` names it ("dst 10.200.0.10 ≠ 20.185.96.169", "tcp dpt 53 ≠ 80").
    NotMatched { reason: String },
    /// A `-m statistic --mode random` rule whose other matches held; `taken` says which way the
    /// random draw went (observed when a capture shows the DNAT result, otherwise the branch the
    /// replay followed).
    Statistic { taken: bool },
    /// Never reached, because an earlier rule ended the chain (shown greyed).
    NotReached,
}

/// One rule checked during the chain walk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainWalkStep {
    pub table: String,
    pub chain: String,
    /// 1-based within the chain, as `iptables -t nat -L CHAIN --line-numbers` numbers it.
    pub rule: u32,
    /// The rule as `iptables-save` prints it (`-A CHAIN …`).
    pub text: String,
    pub outcome: RuleOutcome,
    /// `-m statistic --probability` of this rule, if any (the cascade 1/3 → 1/2 → 1).
    pub probability: Option<f64>,
    /// How this step is known: `Observed` when a capture shows its effect (e.g. the DNAT address),
    /// `Affinity` when a `recent` entry decided it, otherwise `Modeled`.
    pub evidence: Evidence,
}

/// One `-m recent` operation. Modelled (the replayed `recent` table), unless seeded from
/// `/proc/net/xt_recent` (then `seen_before` is observed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentCheck {
    /// List name, e.g. `KUBE-SEP-GB5ZXZKDF6JWMI74`.
    pub name: String,
    /// `rcheck`, `update` or `set`.
    pub op: String,
    /// `--seconds` window, if any.
    pub seconds: Option<u32>,
    /// Address looked up or stored (`--rsource`: the packet's source).
    pub address: IpAddr,
    /// Whether the address was in the list (within the window) at that moment.
    pub hit: bool,
    /// RFC 3339 time the address was last seen before this check, if it was.
    pub last_seen: Option<String>,
}

/// Which side opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Initiator {
    /// The SYN was captured, so the client side is known. Observed.
    Syn,
    /// No SYN in the capture; the side talking to the well-known/lower port was taken as the
    /// server. Inferred.
    Inferred,
}

/// TCP state at the end of the capture. Observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectionState {
    /// SYN seen, no SYN-ACK.
    SynSent,
    /// Handshake done (or data seen), not closed.
    Established,
    /// FIN seen from both sides.
    Closed,
    /// A RST ended it.
    Reset,
    /// Only one FIN seen.
    HalfClosed,
    /// Not TCP, or not enough packets to say.
    Unknown,
}

/// Packet and byte counts in one direction. Observed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectionStats {
    pub packets: u64,
    pub bytes: u64,
}

/// One connection as one capture saw it. Observed, except where noted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionSummary {
    /// Same number as `RequestJourney::connection`.
    pub id: u64,
    pub capture: String,
    /// Node whose interface the capture was taken on, if known.
    pub node: Option<String>,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// The initiator's address (5-tuple source).
    pub client: Endpoint,
    /// The responder's address (5-tuple destination) as captured (before or after DNAT).
    pub server: Endpoint,
    pub initiator: Initiator,
    /// RFC 3339 times of the first and last packet.
    pub first: String,
    pub last: String,
    pub to_server: DirectionStats,
    pub to_client: DirectionStats,
    pub state: ConnectionState,
    /// `RequestJourney::id`s carried on this connection, in order. More than one = keep-alive.
    pub requests: Vec<u64>,
}

/// A Kubernetes Service as the rules describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// `namespace/name[:port]` from the kube-proxy rule comment, e.g. `default/testapp`.
    pub name: String,
    /// Its `KUBE-SVC-…` chain.
    pub chain: String,
    /// Observed in the dump: the service chain uses `-m recent` (sessionAffinity ClientIP).
    pub session_affinity: bool,
    /// Endpoint chains (`KUBE-SEP-…`) in rule order.
    pub endpoints: Vec<String>,
}

/// Packet/byte counters as `iptables-save -c` prints them (`[packets:bytes]`). Observed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
}

/// One node's rule dump.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeRules {
    /// Node name, or `*` when one dump applies to every node.
    pub node: String,
    /// File the dump came from.
    pub source: String,
    pub tables: Vec<TableRules>,
}

/// One table (`nat`, `filter`, …) of a dump.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableRules {
    pub name: String,
    pub chains: Vec<ChainRules>,
}

/// One chain with its rules, in dump order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChainRules {
    pub name: String,
    /// Built-in chains' policy (`ACCEPT`/`DROP`); `None` for user chains.
    pub policy: Option<String>,
    /// Policy counters from `iptables-save -c`, when the dump had them.
    pub counters: Option<Counters>,
    pub rules: Vec<RuleRow>,
}

/// One rule of a chain.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleRow {
    /// 1-based within the chain.
    pub number: u32,
    /// The rule as `iptables-save` printed it (`-A CHAIN …`), without the counters prefix.
    pub text: String,
    /// The `-j`/`-g` target (a chain name or a built-in target such as `DNAT`).
    pub target: Option<String>,
    /// Observed: counters from `iptables-save -c`, when the dump had them.
    pub counters: Option<Counters>,
    /// Modelled: how many replayed connections matched this rule.
    pub replay_hits: u64,
}

/// Requests per node and per pod. Counts are of requests in this snapshot (under its what-if
/// settings: the what-if destination when one is set).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    /// Ingress nodes (where the ALB sent the requests).
    pub nodes: Vec<ShareStat>,
    /// Destination pods.
    pub pods: Vec<ShareStat>,
    /// Chi-squared goodness-of-fit p-value of node counts against the expected shares (`None` when
    /// fewer than 2 categories or no requests). Small = unlikely to be the expected distribution.
    pub node_p_value: Option<f64>,
    /// Same for pods.
    pub pod_p_value: Option<f64>,
    /// Width of one time bucket of `ShareStat::timeline`, in seconds.
    pub bucket_seconds: f64,
    /// RFC 3339 start of the first time bucket.
    pub start: Option<String>,
}

/// One category (node or pod) of the distribution.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShareStat {
    pub name: String,
    /// For pods: the node it runs on; for nodes: `None`.
    pub node: Option<String>,
    pub zone: Option<String>,
    /// Requests counted (what the journeys say, each with its own evidence).
    pub count: u64,
    /// `count / total`.
    pub share: f64,
    /// Modelled: the share the ALB model / the statistic cascade expects (e.g. 1/3 each).
    pub expected_share: f64,
    /// Requests per time bucket (`Distribution::bucket_seconds` wide), for a sparkline.
    pub timeline: Vec<u64>,
}

/// What-if switches. The empty value (`Default`) is the recorded configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WhatIfSettings {
    /// Per Service (`ServiceInfo::name`): `true` = sessionAffinity ClientIP, `false` = None. A
    /// service not listed keeps its recorded setting.
    pub affinity: BTreeMap<String, bool>,
    /// ALB load distribution mode; `None` = as recorded.
    pub alb_mode: Option<AlbMode>,
}

impl WhatIfSettings {
    /// True when nothing is overridden: the snapshot shows what was recorded.
    #[must_use]
    pub fn is_recorded(&self) -> bool {
        self.affinity.is_empty() && self.alb_mode.is_none()
    }

    /// Human description, e.g. `sessionAffinity ClientIP (default/testapp), ALB source-ip`.
    #[must_use]
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (svc, on) in &self.affinity {
            let mode = if *on { "ClientIP" } else { "None" };
            parts.push(format!("sessionAffinity {mode} ({svc})"));
        }
        if let Some(mode) = self.alb_mode {
            parts.push(format!("ALB {}", alb_mode_name(mode)));
        }
        if parts.is_empty() {
            "recorded".to_string()
        } else {
            parts.join(", ")
        }
    }
}

/// The interface.md spelling of an ALB mode.
#[must_use]
pub fn alb_mode_name(mode: AlbMode) -> &'static str {
    match mode {
        AlbMode::Default => "default",
        AlbMode::SourceIp => "source-ip",
        AlbMode::SourceIpProtocol => "source-ip-protocol",
    }
}

/// The what-if state of a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WhatIfState {
    pub settings: WhatIfSettings,
    /// `None` when `settings.is_recorded()`.
    pub summary: Option<WhatIfSummary>,
}

/// What the what-if changed. Modelled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WhatIfSummary {
    pub requests_total: u64,
    /// Requests whose node or pod differs from the recorded journey.
    pub requests_moved: u64,
    /// Per client address: where its requests would go.
    pub clients: Vec<ClientStickiness>,
    /// The ALB mode the what-if ran with (the model switches it with sessionAffinity, as
    /// cloud-provider-azure does: ClientIP → SourceIP); `None` when unknown.
    #[serde(default)]
    pub alb_mode: Option<AlbMode>,
}

/// Where one client's requests go under the what-if settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientStickiness {
    pub client: IpAddr,
    pub requests: u64,
    /// Distinct pods its requests reach, most requests first.
    pub pods: Vec<String>,
    /// Distinct ingress nodes.
    pub nodes: Vec<String>,
}

/// Progress of a snapshot computation, shared between the source (writer, any thread) and the UI
/// (reader). Units are whatever the current phase counts (bytes read, packets, requests).
#[derive(Debug, Default)]
pub struct LoadProgress {
    done: AtomicU64,
    total: AtomicU64,
    phase: Mutex<String>,
}

impl LoadProgress {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Start a new phase (e.g. "reading node0-eth0.pcap") of `total` units.
    pub fn begin(&self, phase: &str, total: u64) {
        if let Ok(mut p) = self.phase.lock() {
            phase.clone_into(&mut p);
        }
        self.done.store(0, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
    }

    /// Record `n` more units done.
    pub fn advance(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    /// `(phase, done, total)` right now.
    #[must_use]
    pub fn read(&self) -> (String, u64, u64) {
        let phase = self.phase.lock().map(|p| p.clone()).unwrap_or_default();
        (
            phase,
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }

    /// Fraction done in `0.0..=1.0` (0 when the total is unknown).
    #[must_use]
    pub fn ratio(&self) -> f64 {
        let (_, done, total) = self.read();
        if total == 0 {
            0.0
        } else {
            (done as f64 / total as f64).clamp(0.0, 1.0)
        }
    }
}

/// What the UI holds: something that can (re)compute a [`Snapshot`] for a set of what-if switches.
/// Implementations may take long (loading a 1 GiB capture); the UI calls them off its event loop
/// and reads `progress` meanwhile.
pub trait SnapshotSource: Send + Sync {
    /// A short name for the header while the first snapshot loads (e.g. the scenario folder).
    fn name(&self) -> String;

    /// Compute the snapshot under `whatif`. Must not panic on bad input: problems become
    /// `Snapshot::warnings`.
    fn snapshot(&self, whatif: &WhatIfSettings, progress: &LoadProgress) -> Snapshot;

    /// The names of the scenarios this source can switch between (a guided tour's steps name
    /// them); empty for a source of one scenario.
    fn scenarios(&self) -> Vec<String> {
        Vec::new()
    }

    /// The snapshot of scenario `scenario` (one of [`Self::scenarios`]; `None`: the default one).
    fn snapshot_in(
        &self,
        scenario: Option<&str>,
        whatif: &WhatIfSettings,
        progress: &LoadProgress,
    ) -> Snapshot {
        let _ = scenario;
        self.snapshot(whatif, progress)
    }
}

/// A source serving one fixed snapshot, e.g. one read back from JSON. It cannot re-run the model,
/// so any what-if request returns the same journeys with a warning saying so.
#[derive(Debug, Clone)]
pub struct StaticSource {
    snapshot: Snapshot,
}

impl StaticSource {
    #[must_use]
    pub fn new(snapshot: Snapshot) -> Self {
        Self { snapshot }
    }
}

impl SnapshotSource for StaticSource {
    fn name(&self) -> String {
        self.snapshot.scenario.title.clone()
    }

    fn snapshot(&self, whatif: &WhatIfSettings, progress: &LoadProgress) -> Snapshot {
        progress.begin("snapshot", 1);
        let mut snap = self.snapshot.clone();
        if !whatif.is_recorded() {
            snap.warnings.push(format!(
                "what-if ({}) not available: this snapshot was loaded without its inputs, so the \
                 model cannot be re-run",
                whatif.describe()
            ));
        }
        progress.advance(1);
        snap
    }
}

/// Parse an RFC 3339 UTC timestamp as the journey records write it (`2026-11-21T10:06:27.731204Z`,
/// fraction optional, `Z` or `+00:00`) into microseconds since the Unix epoch. `None` if malformed.
#[must_use]
pub fn time_micros(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(r)?;
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || (b[10] != b'T' && b[10] != b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 6 {
                micros = micros * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..6 {
            micros *= 10;
        }
    }
    match &text[i..] {
        "Z" | "+00:00" => {}
        _ => return None,
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hour * 3600 + min * 60 + sec) * 1_000_000) + micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_record_times() {
        assert_eq!(time_micros("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(time_micros("1970-01-01T00:00:01.5Z"), Some(1_500_000));
        assert_eq!(
            time_micros("2026-11-21T10:06:27.731204Z"),
            Some(1_795_255_587_731_204)
        );
        assert_eq!(
            time_micros("2026-11-21T10:06:27.731204+00:00"),
            time_micros("2026-11-21T10:06:27.731204Z")
        );
        assert_eq!(time_micros("2026-11-21T10:06:27.Z"), None);
        assert_eq!(time_micros("2026-13-21T10:06:27Z"), None);
        assert_eq!(time_micros("garbage"), None);
        assert_eq!(time_micros("2026-11-21T10:06:27.123+01:00"), None);
    }

    #[test]
    fn whatif_description() {
        let mut w = WhatIfSettings::default();
        assert!(w.is_recorded());
        assert_eq!(w.describe(), "recorded");
        w.affinity.insert("default/testapp".into(), true);
        w.alb_mode = Some(AlbMode::SourceIp);
        assert_eq!(
            w.describe(),
            "sessionAffinity ClientIP (default/testapp), ALB source-ip"
        );
    }

    #[test]
    fn static_source_warns_on_whatif() {
        let src = StaticSource::new(Snapshot::default());
        let p = LoadProgress::new();
        assert!(
            src.snapshot(&WhatIfSettings::default(), &p)
                .warnings
                .is_empty()
        );
        let w = WhatIfSettings {
            alb_mode: Some(AlbMode::SourceIp),
            ..Default::default()
        };
        assert_eq!(src.snapshot(&w, &p).warnings.len(), 1);
        assert!((p.ratio() - 1.0).abs() < f64::EPSILON);
    }

    #[test]
    fn snapshot_round_trips_through_json() {
        let mut s = Snapshot::default();
        s.details.insert(
            7,
            RequestDetail {
                request_head: b"GET / HTTP/1.1\r\n".to_vec(),
                ..Default::default()
            },
        );
        let json = serde_json::to_string(&s).unwrap();
        let back: Snapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }
}
