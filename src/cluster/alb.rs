//! The Azure Load Balancer model: which backend node a new flow is sent to.
//!
//! * Modes (`loadDistribution`): [`AlbMode::Default`] hashes the 5-tuple, [`AlbMode::SourceIp`]
//!   (source IP, destination IP), [`AlbMode::SourceIpProtocol`] adds the protocol.
//! * Hashes: [`AlbHash::Jhash`] is Linux nftables' `jhash … mod N seed S`, bit-exact, over exactly
//!   the keys interface.md gives (so a lab balancing with nft is predicted exactly);
//!   [`AlbHash::Maglev`] a seeded Maglev table; [`AlbHash::Modulo`] the naive `jhash % N`.
//!   Azure's own hash is not public: every answer here is a *model* (semantics.md §A2).
//! * The pool is the configured backend order minus unhealthy nodes and, with
//!   externalTrafficPolicy Local, minus nodes without a local endpoint (their health probe
//!   fails, §A5). Bucket `i` is the `i`-th node of that pool.
//! * [`AlbFlowTable`] keeps established flows on their node when the pool changes, as Ananta's
//!   per-flow state does (§A2/§A3).

use super::jhash::{NftKey, jhash, reciprocal_scale};
use super::maglev::{DEFAULT_TABLE_SIZE, MaglevError, MaglevTable};
use super::model::Cluster;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// IP protocol numbers used in flow keys.
pub mod ip_proto {
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const SCTP: u8 = 132;
}

/// Load-balancer distribution mode (Azure `loadDistribution`). Serialised with interface.md's
/// names: `default`, `source-ip`, `source-ip-protocol`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, PartialOrd, Ord,
)]
#[serde(rename_all = "kebab-case")]
pub enum AlbMode {
    /// 5-tuple: source IP, source port, destination IP, destination port, protocol.
    #[default]
    Default,
    /// 2-tuple: source IP, destination (frontend) IP.
    SourceIp,
    /// 3-tuple: source IP, destination IP, protocol.
    SourceIpProtocol,
}

/// Which hash function models the load balancer's bucket choice. Serialised lowercase.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum AlbHash {
    /// Linux nftables `jhash … mod N seed S`, bit-exact.
    #[default]
    Jhash,
    /// Seeded Maglev lookup table (prime size, offset/skip permutations).
    Maglev,
    /// `jhash(key, seed) % N`: the naive reduction, for comparison.
    Modulo,
}

/// Kubernetes `spec.sessionAffinity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum SessionAffinity {
    #[default]
    None,
    #[serde(rename = "ClientIP")]
    ClientIp,
}

/// Kubernetes `spec.externalTrafficPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ExternalTrafficPolicy {
    #[default]
    Cluster,
    Local,
}

impl AlbMode {
    pub const ALL: [AlbMode; 3] = [
        AlbMode::Default,
        AlbMode::SourceIp,
        AlbMode::SourceIpProtocol,
    ];

    /// cloud-provider-azure (`getExpectedLoadBalancingRulePropertiesForPort`): `ClientIP` ⇒
    /// `SourceIP`, anything else ⇒ `Default`. It never emits `SourceIPProtocol`.
    pub fn for_session_affinity(affinity: SessionAffinity) -> Self {
        match affinity {
            SessionAffinity::ClientIp => AlbMode::SourceIp,
            SessionAffinity::None => AlbMode::Default,
        }
    }

    /// interface.md's name (`default`, `source-ip`, `source-ip-protocol`).
    pub fn as_str(self) -> &'static str {
        match self {
            AlbMode::Default => "default",
            AlbMode::SourceIp => "source-ip",
            AlbMode::SourceIpProtocol => "source-ip-protocol",
        }
    }

    /// Azure's REST name (`Default`, `SourceIP`, `SourceIPProtocol`).
    pub fn azure_name(self) -> &'static str {
        match self {
            AlbMode::Default => "Default",
            AlbMode::SourceIp => "SourceIP",
            AlbMode::SourceIpProtocol => "SourceIPProtocol",
        }
    }

    /// Next mode in the TUI's `m` cycle.
    pub fn cycle(self) -> Self {
        match self {
            AlbMode::Default => AlbMode::SourceIp,
            AlbMode::SourceIp => AlbMode::SourceIpProtocol,
            AlbMode::SourceIpProtocol => AlbMode::Default,
        }
    }

    /// The nft expression the `jhash` model reproduces, for explanations
    /// (e.g. `jhash ip saddr . tcp sport . ip daddr . tcp dport`).
    pub fn nft_expression(self, ipv6: bool, protocol: u8) -> String {
        let ip = if ipv6 { "ip6" } else { "ip" };
        let l4 = match protocol {
            ip_proto::UDP => "udp",
            ip_proto::SCTP => "sctp",
            _ => "tcp",
        };
        match self {
            AlbMode::Default => {
                format!("jhash {ip} saddr . {l4} sport . {ip} daddr . {l4} dport")
            }
            AlbMode::SourceIp => format!("jhash {ip} saddr . {ip} daddr"),
            AlbMode::SourceIpProtocol => format!("jhash {ip} saddr . {ip} daddr . meta l4proto"),
        }
    }
}

impl fmt::Display for AlbMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mode or hash name that is not one of the accepted spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}; expected one of: {expected}")]
pub struct UnknownName {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl FromStr for AlbMode {
    type Err = UnknownName;
    /// Accepts interface.md's names and Azure's (`SourceIP`, `SourceIPProtocol`), any case,
    /// with `-`/`_` optional.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm: String = s
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .flat_map(char::to_lowercase)
            .collect();
        match norm.as_str() {
            "default" | "none" | "5tuple" => Ok(AlbMode::Default),
            "sourceip" | "clientip" | "2tuple" => Ok(AlbMode::SourceIp),
            "sourceipprotocol" | "3tuple" => Ok(AlbMode::SourceIpProtocol),
            _ => Err(UnknownName {
                what: "ALB mode",
                value: s.to_owned(),
                expected: "default, source-ip, source-ip-protocol",
            }),
        }
    }
}

impl AlbHash {
    pub fn as_str(self) -> &'static str {
        match self {
            AlbHash::Jhash => "jhash",
            AlbHash::Maglev => "maglev",
            AlbHash::Modulo => "modulo",
        }
    }
}

impl fmt::Display for AlbHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AlbHash {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "jhash" => Ok(AlbHash::Jhash),
            "maglev" => Ok(AlbHash::Maglev),
            "modulo" | "mod" => Ok(AlbHash::Modulo),
            _ => Err(UnknownName {
                what: "ALB hash",
                value: s.to_owned(),
                expected: "jhash, maglev, modulo",
            }),
        }
    }
}

impl fmt::Display for SessionAffinity {
    /// Kubernetes' spelling: `None`, `ClientIP`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SessionAffinity::None => "None",
            SessionAffinity::ClientIp => "ClientIP",
        })
    }
}

impl fmt::Display for ExternalTrafficPolicy {
    /// Kubernetes' spelling: `Cluster`, `Local`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExternalTrafficPolicy::Cluster => "Cluster",
            ExternalTrafficPolicy::Local => "Local",
        })
    }
}

impl FromStr for SessionAffinity {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "none" | "off" => Ok(SessionAffinity::None),
            "clientip" | "on" => Ok(SessionAffinity::ClientIp),
            _ => Err(UnknownName {
                what: "session affinity",
                value: s.to_owned(),
                expected: "None, ClientIP",
            }),
        }
    }
}

impl FromStr for ExternalTrafficPolicy {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "cluster" => Ok(ExternalTrafficPolicy::Cluster),
            "local" => Ok(ExternalTrafficPolicy::Local),
            _ => Err(UnknownName {
                what: "external traffic policy",
                value: s.to_owned(),
                expected: "Cluster, Local",
            }),
        }
    }
}

/// A flow as the load balancer sees it: the client's packet towards the frontend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FlowKey {
    pub src: IpAddr,
    pub src_port: u16,
    pub dst: IpAddr,
    pub dst_port: u16,
    /// IP protocol number ([`ip_proto`]).
    pub protocol: u8,
}

impl FlowKey {
    pub fn tcp(src: IpAddr, src_port: u16, dst: IpAddr, dst_port: u16) -> Self {
        Self {
            src,
            src_port,
            dst,
            dst_port,
            protocol: ip_proto::TCP,
        }
    }

    /// The key bytes nft hashes for `mode` (interface.md's expressions):
    /// * default: `saddr . sport . daddr . dport`
    /// * source-ip: `saddr . daddr`
    /// * source-ip-protocol: `saddr . daddr . meta l4proto`
    pub fn nft_key(&self, mode: AlbMode) -> Result<NftKey, AlbError> {
        if self.src.is_ipv4() != self.dst.is_ipv4() {
            return Err(AlbError::MixedFamilies {
                src: self.src,
                dst: self.dst,
            });
        }
        let mut k = NftKey::new();
        // At most 16+4+16+4 (+4) bytes = 44 = MAX_KEY_LEN, so the pushes cannot fail.
        k.push_ip(self.src);
        if mode == AlbMode::Default {
            k.push_port(self.src_port);
        }
        k.push_ip(self.dst);
        match mode {
            AlbMode::Default => {
                k.push_port(self.dst_port);
            }
            AlbMode::SourceIp => {}
            AlbMode::SourceIpProtocol => {
                k.push_l4proto(self.protocol);
            }
        }
        Ok(k)
    }

    /// Key for the non-nft models: the nft key, plus the protocol for Default mode, so that
    /// Default really is Azure's 5-tuple. (nft's Default expression carries the protocol only
    /// implicitly — the rule itself is per protocol — so `jhash` leaves it out to stay exact.)
    fn model_key(&self, mode: AlbMode) -> Result<NftKey, AlbError> {
        let mut k = self.nft_key(mode)?;
        if mode == AlbMode::Default {
            k.push_l4proto(self.protocol);
        }
        Ok(k)
    }
}

impl fmt::Display for FlowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ep = |ip: IpAddr, port: u16| match ip {
            IpAddr::V4(v4) => format!("{v4}:{port}"),
            IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        };
        write!(
            f,
            "{} → {} proto {}",
            ep(self.src, self.src_port),
            ep(self.dst, self.dst_port),
            self.protocol
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlbError {
    #[error("no backend is eligible: pool of {configured} nodes, {unhealthy} unhealthy{local}",
        local = if *.local_policy { ", externalTrafficPolicy Local leaves none with a local endpoint" } else { "" })]
    EmptyPool {
        configured: usize,
        unhealthy: usize,
        local_policy: bool,
    },
    #[error("flow mixes address families: {src} → {dst}")]
    MixedFamilies { src: IpAddr, dst: IpAddr },
    #[error("node {0:?} is not in the load balancer's backend pool")]
    UnknownBackend(String),
    #[error("backend {0:?} is listed twice in the pool")]
    DuplicateBackend(String),
    #[error(transparent)]
    Maglev(#[from] MaglevError),
}

/// A backend node's name, cheap to clone (shared), compared and printed as a string.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeName(Arc<str>);

impl NodeName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for NodeName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for NodeName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for NodeName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for NodeName {
    fn from(s: &str) -> Self {
        NodeName(Arc::from(s))
    }
}

impl From<String> for NodeName {
    fn from(s: String) -> Self {
        NodeName(Arc::from(s))
    }
}

impl PartialEq<str> for NodeName {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for NodeName {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for NodeName {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl Serialize for NodeName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// The model's answer for one flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlbBucket {
    /// Index into the eligible pool (jhash, modulo) or Maglev slot (maglev).
    pub bucket: u32,
    /// The node that bucket maps to.
    pub node: NodeName,
    pub mode: AlbMode,
    pub hash: AlbHash,
    /// Raw 32-bit hash of the flow key.
    pub hash_value: u32,
    /// Number of eligible backends when the decision was taken.
    pub pool_size: u32,
}

/// Everything that configures the model; [`AlbModel::new`] validates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlbConfig {
    pub mode: AlbMode,
    pub hash: AlbHash,
    pub seed: u32,
    /// Pool order = bucket order.
    pub backends: Vec<String>,
    /// Maglev table size (prime).
    pub maglev_table_size: u32,
}

impl Default for AlbConfig {
    fn default() -> Self {
        Self {
            mode: AlbMode::Default,
            hash: AlbHash::Jhash,
            seed: 0,
            backends: Vec::new(),
            maglev_table_size: DEFAULT_TABLE_SIZE,
        }
    }
}

/// The load-balancer model. Pure: [`AlbModel::decide`] depends only on the flow key and the
/// configuration; flow stickiness lives in [`AlbFlowTable`].
#[derive(Debug, Clone)]
pub struct AlbModel {
    config: AlbConfig,
    unhealthy: BTreeSet<String>,
    /// `Some` under externalTrafficPolicy Local: the nodes that have a local ready endpoint.
    local_endpoints: Option<BTreeSet<String>>,
    /// `config.backends` as shared names (a decision clones one, it does not allocate).
    names: Vec<NodeName>,
    /// Indices into `config.backends`, eligible ones, in pool order.
    pool: Vec<usize>,
    maglev: Option<MaglevTable>,
}

impl AlbModel {
    pub fn new(config: AlbConfig) -> Result<Self, AlbError> {
        let mut seen = BTreeSet::new();
        for b in &config.backends {
            if !seen.insert(b.as_str()) {
                return Err(AlbError::DuplicateBackend(b.clone()));
            }
        }
        let names = config
            .backends
            .iter()
            .map(|b| NodeName::from(b.as_str()))
            .collect();
        let mut model = Self {
            names,
            config,
            unhealthy: BTreeSet::new(),
            local_endpoints: None,
            pool: Vec::new(),
            maglev: None,
        };
        model.rebuild()?;
        Ok(model)
    }

    /// The model a merged cluster describes: its mode, hash, seed and backend order, minus the
    /// nodes marked unhealthy. Under externalTrafficPolicy Local the pool is first narrowed to
    /// nodes that run a known non-host-network pod; callers that know the Service's endpoints
    /// (from the rules) should refine it with [`AlbModel::set_local_endpoints`].
    pub fn from_cluster(cluster: &Cluster) -> Result<Self, AlbError> {
        let lb = cluster.load_balancer();
        let mut model = Self::new(AlbConfig {
            mode: lb.mode.value,
            hash: lb.hash.value,
            seed: lb.seed.value,
            backends: lb.backends.value.clone(),
            maglev_table_size: lb
                .maglev_table_size
                .as_ref()
                .map_or(DEFAULT_TABLE_SIZE, |f| f.value),
        })?;
        for u in &lb.unhealthy {
            if model.config.backends.contains(&u.value) {
                model.unhealthy.insert(u.value.clone());
            }
        }
        if lb.external_traffic_policy.value == ExternalTrafficPolicy::Local {
            let with_pods: BTreeSet<String> = cluster
                .pods()
                .iter()
                .filter(|p| !p.host_network)
                .filter_map(|p| cluster.node_of_pod(p).map(|n| n.name().to_owned()))
                .collect();
            model.local_endpoints = Some(with_pods);
        }
        model.rebuild()?;
        Ok(model)
    }

    /// Recompute the eligible pool (and the Maglev table) after any configuration change.
    fn rebuild(&mut self) -> Result<(), AlbError> {
        self.pool = (0..self.config.backends.len())
            .filter(|&i| {
                let name = &self.config.backends[i];
                !self.unhealthy.contains(name)
                    && self
                        .local_endpoints
                        .as_ref()
                        .is_none_or(|l| l.contains(name))
            })
            .collect();
        self.maglev = if self.config.hash == AlbHash::Maglev {
            let names: Vec<&str> = self
                .pool
                .iter()
                .map(|&i| self.config.backends[i].as_str())
                .collect();
            Some(MaglevTable::build(
                &names,
                self.config.maglev_table_size,
                self.config.seed,
            )?)
        } else {
            None
        };
        Ok(())
    }

    /// The same model with another mode (the what-if `--alb-mode`, the TUI's `m`).
    #[must_use]
    pub fn with_mode(mut self, mode: AlbMode) -> Self {
        self.config.mode = mode;
        self
    }

    /// The same model as cloud-provider-azure would configure it for `affinity`.
    #[must_use]
    pub fn with_session_affinity(self, affinity: SessionAffinity) -> Self {
        self.with_mode(AlbMode::for_session_affinity(affinity))
    }

    pub fn with_hash(mut self, hash: AlbHash) -> Result<Self, AlbError> {
        self.config.hash = hash;
        self.rebuild()?;
        Ok(self)
    }

    pub fn with_seed(mut self, seed: u32) -> Result<Self, AlbError> {
        self.config.seed = seed;
        self.rebuild()?;
        Ok(self)
    }

    /// Mark a backend healthy or not (its probe failing takes it out of the pool for new flows).
    pub fn set_health(&mut self, node: &str, healthy: bool) -> Result<(), AlbError> {
        if !self.config.backends.iter().any(|b| b == node) {
            return Err(AlbError::UnknownBackend(node.to_owned()));
        }
        if healthy {
            self.unhealthy.remove(node);
        } else {
            self.unhealthy.insert(node.to_owned());
        }
        self.rebuild()
    }

    /// externalTrafficPolicy Local: only `nodes` (those with a local ready endpoint) pass the
    /// health probe. Names not in the pool are ignored (a pod may run on a node outside it).
    pub fn set_local_endpoints<I, S>(&mut self, nodes: I) -> Result<(), AlbError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.local_endpoints = Some(nodes.into_iter().map(Into::into).collect());
        self.rebuild()
    }

    /// externalTrafficPolicy Cluster: every backend with a working kube-proxy is eligible.
    pub fn clear_local_endpoints(&mut self) -> Result<(), AlbError> {
        self.local_endpoints = None;
        self.rebuild()
    }

    pub fn mode(&self) -> AlbMode {
        self.config.mode
    }
    pub fn hash(&self) -> AlbHash {
        self.config.hash
    }
    pub fn seed(&self) -> u32 {
        self.config.seed
    }
    pub fn config(&self) -> &AlbConfig {
        &self.config
    }
    pub fn external_traffic_policy(&self) -> ExternalTrafficPolicy {
        if self.local_endpoints.is_some() {
            ExternalTrafficPolicy::Local
        } else {
            ExternalTrafficPolicy::Cluster
        }
    }

    /// Every configured backend, in pool order.
    pub fn backends(&self) -> &[String] {
        &self.config.backends
    }

    /// The eligible backends, in bucket order.
    pub fn pool(&self) -> impl Iterator<Item = &str> + '_ {
        self.pool.iter().map(|&i| self.config.backends[i].as_str())
    }

    pub fn pool_size(&self) -> usize {
        self.pool.len()
    }

    /// Which node the model sends a new flow `key` to.
    pub fn decide(&self, key: &FlowKey) -> Result<AlbBucket, AlbError> {
        let n = self.pool.len();
        if n == 0 {
            return Err(AlbError::EmptyPool {
                configured: self.config.backends.len(),
                unhealthy: self.unhealthy.len(),
                local_policy: self.local_endpoints.is_some(),
            });
        }
        let mode = self.config.mode;
        let seed = self.config.seed;
        let (bucket, pool_index, hash_value) = match self.config.hash {
            AlbHash::Jhash => {
                let h = jhash(key.nft_key(mode)?.as_bytes(), seed);
                let b = reciprocal_scale(h, n as u32);
                (b, b as usize, h)
            }
            AlbHash::Modulo => {
                let h = jhash(key.model_key(mode)?.as_bytes(), seed);
                let b = h % n as u32;
                (b, b as usize, h)
            }
            AlbHash::Maglev => {
                let h = jhash(key.model_key(mode)?.as_bytes(), seed);
                let table = self
                    .maglev
                    .as_ref()
                    .expect("maglev table built for maglev hash");
                // The table was built for this pool, so both lookups succeed for n > 0.
                let slot = table.slot(h).unwrap_or(0);
                let idx = table.lookup(h).unwrap_or(0) as usize;
                (slot, idx, h)
            }
        };
        Ok(AlbBucket {
            bucket,
            node: self.names[self.pool[pool_index]].clone(),
            mode,
            hash: self.config.hash,
            hash_value,
            pool_size: n as u32,
        })
    }

    /// One line saying how `decision` was reached for `key`, for detail views: the key, the
    /// hash, the reduction and the pool, e.g. `jhash ip saddr . tcp sport . ip daddr . tcp dport
    /// (71.246.222.12 . 58796 . 20.185.96.169 . 80) seed 0x5eed0001 = 0x1b2c3d4e; (h·3)>>32 =
    /// bucket 2 of [node0, node1, node2] → node2 (model)`.
    pub fn explain(&self, key: &FlowKey, decision: &AlbBucket) -> String {
        // The non-nft models hash the protocol too in Default mode (see `FlowKey::model_key`).
        let with_proto = decision.hash != AlbHash::Jhash && decision.mode == AlbMode::Default;
        let mut fields = match decision.mode {
            AlbMode::Default => format!(
                "{} . {} . {} . {}",
                key.src, key.src_port, key.dst, key.dst_port
            ),
            AlbMode::SourceIp => format!("{} . {}", key.src, key.dst),
            AlbMode::SourceIpProtocol => format!("{} . {} . {}", key.src, key.dst, key.protocol),
        };
        let mut expr = decision
            .mode
            .nft_expression(key.src.is_ipv6(), key.protocol);
        if with_proto {
            expr.push_str(" . meta l4proto");
            fields.push_str(&format!(" . {}", key.protocol));
        }
        let pool: Vec<&str> = self.pool().collect();
        let (n, b) = (decision.pool_size, decision.bucket);
        let reduction = match decision.hash {
            AlbHash::Jhash => format!("(h·{n})>>32 = bucket {b} of"),
            AlbHash::Modulo => format!("h mod {n} = bucket {b} of"),
            AlbHash::Maglev => {
                let m = self.maglev.as_ref().map_or(0, MaglevTable::size);
                format!("h mod {m} = Maglev slot {b}, owned in")
            }
        };
        format!(
            "{expr} ({fields}) seed {seed:#x} = {h:#010x}; {reduction} [{pool}] → {node} (model)",
            seed = self.config.seed,
            h = decision.hash_value,
            pool = pool.join(", "),
            node = decision.node,
        )
    }

    /// Expected share of new flows per eligible node under a uniform hash, in pool order:
    /// what the statistics compare observed counts against.
    pub fn expected_shares(&self) -> Vec<(String, f64)> {
        let n = self.pool.len();
        if n == 0 {
            return Vec::new();
        }
        let names = self.pool();
        match (self.config.hash, &self.maglev) {
            (AlbHash::Maglev, Some(t)) => {
                let m = f64::from(t.size());
                names
                    .zip(t.slot_counts())
                    .map(|(nm, c)| (nm.to_owned(), f64::from(c) / m))
                    .collect()
            }
            (AlbHash::Jhash, _) => {
                // reciprocal_scale gives bucket i the hash range [⌈i·2³²/n⌉, ⌈(i+1)·2³²/n⌉).
                let span = |i: u64| (i << 32).div_ceil(n as u64);
                names
                    .enumerate()
                    .map(|(i, nm)| {
                        let w = span(i as u64 + 1) - span(i as u64);
                        (nm.to_owned(), w as f64 / 4_294_967_296.0)
                    })
                    .collect()
            }
            _ => {
                // h % n: the first 2³² mod n buckets get one extra hash value.
                let extra = (1u64 << 32) % n as u64;
                let base = (1u64 << 32) / n as u64;
                names
                    .enumerate()
                    .map(|(i, nm)| {
                        let w = base + u64::from((i as u64) < extra);
                        (nm.to_owned(), w as f64 / 4_294_967_296.0)
                    })
                    .collect()
            }
        }
    }
}

/// Per-flow state: an established flow keeps its node when the pool changes (Ananta's flow
/// table), until it ends or idles out. The clock is injected: `now` is capture time.
#[derive(Debug, Clone)]
pub struct AlbFlowTable {
    flows: HashMap<FlowKey, FlowEntry>,
    idle_timeout: Duration,
    capacity: usize,
}

#[derive(Debug, Clone)]
struct FlowEntry {
    decision: AlbBucket,
    last_seen: Duration,
}

/// Where a packet of a flow goes, and whether flow state (not the hash) decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlbRoute {
    pub decision: AlbBucket,
    /// `true` when an existing flow entry decided (the current hash might say otherwise).
    pub pinned: bool,
}

/// Azure's default TCP idle timeout (`IdleTimeoutInMinutes` = 4, semantics.md §A5).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(4 * 60);

impl Default for AlbFlowTable {
    fn default() -> Self {
        Self::new(DEFAULT_IDLE_TIMEOUT, 1 << 20)
    }
}

impl AlbFlowTable {
    /// `capacity` bounds the state: when full, new flows are routed by the hash alone and not
    /// remembered, which is what Ananta's Mux does when its flow memory runs out.
    pub fn new(idle_timeout: Duration, capacity: usize) -> Self {
        Self {
            flows: HashMap::new(),
            idle_timeout,
            capacity,
        }
    }

    /// Route one packet of `key` at time `now`.
    pub fn route(
        &mut self,
        model: &AlbModel,
        key: &FlowKey,
        now: Duration,
    ) -> Result<AlbRoute, AlbError> {
        if let Some(e) = self.flows.get_mut(key) {
            let idle = now.saturating_sub(e.last_seen) > self.idle_timeout;
            // A flow survives pool changes, but not the removal of its node from the
            // configuration altogether.
            let still_configured = model.names.contains(&e.decision.node);
            if !idle && still_configured {
                e.last_seen = e.last_seen.max(now);
                return Ok(AlbRoute {
                    decision: e.decision.clone(),
                    pinned: true,
                });
            }
            self.flows.remove(key);
        }
        let decision = model.decide(key)?;
        if self.flows.len() < self.capacity {
            self.flows.insert(
                *key,
                FlowEntry {
                    decision: decision.clone(),
                    last_seen: now,
                },
            );
        }
        Ok(AlbRoute {
            decision,
            pinned: false,
        })
    }

    /// The flow ended (FIN/RST seen): forget it.
    pub fn end(&mut self, key: &FlowKey) {
        self.flows.remove(key);
    }

    /// Drop flows idle longer than the timeout at `now`.
    pub fn expire(&mut self, now: Duration) {
        let t = self.idle_timeout;
        self.flows
            .retain(|_, e| now.saturating_sub(e.last_seen) <= t);
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn model(hash: AlbHash, mode: AlbMode, n: usize, seed: u32) -> AlbModel {
        AlbModel::new(AlbConfig {
            mode,
            hash,
            seed,
            backends: (0..n).map(|i| format!("node{i}")).collect(),
            ..AlbConfig::default()
        })
        .unwrap()
    }

    /// Kernel-observed (Linux 6.18.44, nftables 1.0.6, netns, `ct mark set jhash … mod 3 seed
    /// 0x5eed0001` over `ip saddr . udp sport . ip daddr . udp dport`): 127.0.0.1:4000x →
    /// 127.0.0.2:8092, sports 40000..=40005 landed in buckets 2,2,0,2,1,1.
    #[test]
    fn jhash_default_mode_matches_kernel_buckets() {
        let m = model(AlbHash::Jhash, AlbMode::Default, 3, 0x5eed_0001);
        let got: Vec<u32> = (40000..=40005)
            .map(|sp| {
                let k = FlowKey {
                    protocol: ip_proto::UDP,
                    ..FlowKey::tcp(ip("127.0.0.1"), sp, ip("127.0.0.2"), 8092)
                };
                m.decide(&k).unwrap().bucket
            })
            .collect();
        assert_eq!(got, [2, 2, 0, 2, 1, 1]);
        let d = m
            .decide(&FlowKey::tcp(ip("127.0.0.1"), 40002, ip("127.0.0.2"), 8092))
            .unwrap();
        assert_eq!(
            (d.bucket, d.node.as_str()),
            (0, "node0"),
            "ports layout is the same for tcp"
        );
    }

    /// Kernel-observed raw hashes (`mod 4294967295` ⇒ mark = h − 1), same kernel.
    #[test]
    fn jhash_all_modes_match_kernel_marks_v4_and_v6() {
        let k4 = FlowKey {
            protocol: ip_proto::UDP,
            ..FlowKey::tcp(ip("127.0.0.1"), 40000, ip("127.0.0.2"), 8080)
        };
        let k6 = FlowKey {
            protocol: ip_proto::UDP,
            ..FlowKey::tcp(ip("fd00::1"), 40000, ip("fd00::2"), 8080)
        };
        let mark = |k: &FlowKey, mode, seed| {
            reciprocal_scale(jhash(k.nft_key(mode).unwrap().as_bytes(), seed), u32::MAX)
        };
        assert_eq!(mark(&k4, AlbMode::Default, 0x1234_5678), 1_454_631_855);
        assert_eq!(mark(&k4, AlbMode::SourceIp, 0x5eed_0001), 3_379_305_656);
        assert_eq!(
            mark(&k4, AlbMode::SourceIpProtocol, 0x5eed_0001),
            816_399_803
        );
        assert_eq!(mark(&k6, AlbMode::Default, 0x1234_5678), 4_138_941_136);
        assert_eq!(mark(&k6, AlbMode::SourceIp, 0x5eed_0001), 2_007_417_990);
        assert_eq!(
            mark(&k6, AlbMode::SourceIpProtocol, 0x5eed_0001),
            499_160_216
        );
        assert_eq!(k6.nft_key(AlbMode::Default).unwrap().as_bytes().len(), 40);
    }

    #[test]
    fn explanations_name_key_hash_and_pool() {
        let m = model(AlbHash::Jhash, AlbMode::Default, 3, 0x5eed_0001);
        let k = FlowKey::tcp(ip("71.246.222.12"), 58796, ip("20.185.96.169"), 80);
        let d = m.decide(&k).unwrap();
        let e = m.explain(&k, &d);
        assert!(e.starts_with("jhash ip saddr . tcp sport . ip daddr . tcp dport (71.246.222.12 . 58796 . 20.185.96.169 . 80) seed 0x5eed0001 = 0x"), "{e}");
        assert!(
            e.contains(&format!(
                "(h·3)>>32 = bucket {} of [node0, node1, node2] → {} (model)",
                d.bucket, d.node
            )),
            "{e}"
        );
        let m = model(AlbHash::Maglev, AlbMode::SourceIpProtocol, 3, 1);
        let d = m.decide(&k).unwrap();
        let e = m.explain(&k, &d);
        assert!(
            e.starts_with(
                "jhash ip saddr . ip daddr . meta l4proto (71.246.222.12 . 20.185.96.169 . 6)"
            ),
            "{e}"
        );
        assert!(e.contains("h mod 65537 = Maglev slot"), "{e}");
        let m = model(AlbHash::Modulo, AlbMode::Default, 3, 1);
        let d = m.decide(&k).unwrap();
        let e = m.explain(&k, &d);
        assert!(
            e.contains("tcp dport . meta l4proto (71.246.222.12 . 58796 . 20.185.96.169 . 80 . 6)"),
            "{e}"
        );
        assert_eq!(
            d.hash_value,
            jhash(k.model_key(AlbMode::Default).unwrap().as_bytes(), 1)
        );
    }

    #[test]
    fn session_affinity_mapping_is_cloud_provider_azures() {
        assert_eq!(
            AlbMode::for_session_affinity(SessionAffinity::ClientIp),
            AlbMode::SourceIp
        );
        assert_eq!(
            AlbMode::for_session_affinity(SessionAffinity::None),
            AlbMode::Default
        );
        let m = model(AlbHash::Jhash, AlbMode::Default, 3, 1)
            .with_session_affinity(SessionAffinity::ClientIp);
        assert_eq!(m.mode(), AlbMode::SourceIp);
    }

    #[test]
    fn source_ip_mode_ignores_ports_default_does_not() {
        let m = model(AlbHash::Jhash, AlbMode::SourceIp, 5, 9);
        let nodes: BTreeSet<NodeName> = (1000..1100)
            .map(|p| {
                m.decide(&FlowKey::tcp(
                    ip("71.246.222.12"),
                    p,
                    ip("20.185.96.169"),
                    80,
                ))
                .unwrap()
                .node
            })
            .collect();
        assert_eq!(nodes.len(), 1);
        let m = m.with_mode(AlbMode::Default);
        let nodes: BTreeSet<NodeName> = (1000..1100)
            .map(|p| {
                m.decide(&FlowKey::tcp(
                    ip("71.246.222.12"),
                    p,
                    ip("20.185.96.169"),
                    80,
                ))
                .unwrap()
                .node
            })
            .collect();
        assert_eq!(nodes.len(), 5);
    }

    #[test]
    fn protocol_matters_only_in_modes_that_hash_it() {
        for hash in [AlbHash::Jhash, AlbHash::Modulo, AlbHash::Maglev] {
            let m = model(hash, AlbMode::SourceIpProtocol, 7, 3);
            let differs = (0..50u8).any(|i| {
                let t = FlowKey::tcp(ip("10.0.0.1"), 1, IpAddr::from([20, 0, 0, i]), 80);
                let u = FlowKey {
                    protocol: ip_proto::UDP,
                    ..t
                };
                m.decide(&t).unwrap().hash_value != m.decide(&u).unwrap().hash_value
            });
            assert!(differs, "{hash}");
            let m = m.with_mode(AlbMode::SourceIp);
            let t = FlowKey::tcp(ip("10.0.0.1"), 1, ip("20.0.0.1"), 80);
            let u = FlowKey {
                protocol: ip_proto::UDP,
                ..t
            };
            assert_eq!(m.decide(&t).unwrap(), m.decide(&u).unwrap());
        }
    }

    #[test]
    fn mixed_families_and_empty_pools_are_errors() {
        let m = model(AlbHash::Jhash, AlbMode::Default, 3, 0);
        let k = FlowKey::tcp(ip("10.0.0.1"), 1, ip("::1"), 80);
        assert!(matches!(m.decide(&k), Err(AlbError::MixedFamilies { .. })));
        let empty = model(AlbHash::Maglev, AlbMode::Default, 0, 0);
        assert!(matches!(
            empty.decide(&FlowKey::tcp(ip("1.1.1.1"), 1, ip("2.2.2.2"), 2)),
            Err(AlbError::EmptyPool { .. })
        ));
        let dup = AlbModel::new(AlbConfig {
            backends: vec!["a".into(), "a".into()],
            ..AlbConfig::default()
        });
        assert!(matches!(dup, Err(AlbError::DuplicateBackend(_))));
    }

    #[test]
    fn modulo_is_h_mod_n_and_differs_from_reciprocal_scale() {
        let m = model(AlbHash::Modulo, AlbMode::Default, 7, 0x1234_5678);
        let k = FlowKey::tcp(ip("127.0.0.1"), 40000, ip("127.0.0.2"), 8081);
        let d = m.decide(&k).unwrap();
        assert_eq!(d.bucket, d.hash_value % 7);
    }

    #[test]
    fn local_policy_and_health_shrink_the_pool_in_order() {
        let mut m = model(AlbHash::Jhash, AlbMode::Default, 4, 5);
        m.set_local_endpoints(["node1", "node3", "elsewhere"])
            .unwrap();
        assert_eq!(m.pool().collect::<Vec<_>>(), ["node1", "node3"]);
        assert_eq!(m.external_traffic_policy(), ExternalTrafficPolicy::Local);
        m.set_health("node3", false).unwrap();
        assert_eq!(m.pool().collect::<Vec<_>>(), ["node1"]);
        for p in 0..100 {
            let d = m
                .decide(&FlowKey::tcp(ip("1.2.3.4"), p, ip("5.6.7.8"), 80))
                .unwrap();
            assert_eq!((d.node.as_str(), d.bucket, d.pool_size), ("node1", 0, 1));
        }
        m.set_health("node1", false).unwrap();
        assert!(matches!(
            m.decide(&FlowKey::tcp(ip("1.2.3.4"), 1, ip("5.6.7.8"), 80)),
            Err(AlbError::EmptyPool {
                local_policy: true,
                ..
            })
        ));
        assert!(matches!(
            m.set_health("nope", true),
            Err(AlbError::UnknownBackend(_))
        ));
        m.clear_local_endpoints().unwrap();
        assert_eq!(m.pool().collect::<Vec<_>>(), ["node0", "node2"]);
    }

    /// semantics.md §A2: going from N to N+1 buckets, reciprocal_scale keeps ≈ 1/2 of the keys
    /// in the same bucket index, `h mod N` only ≈ 1/(N+1), Maglev ≈ N/(N+1) on the same node.
    #[test]
    fn disruption_when_a_node_is_added() {
        let kept = |hash: AlbHash| {
            let a = model(hash, AlbMode::Default, 4, 11);
            let b = model(hash, AlbMode::Default, 5, 11);
            let total = 20_000u32;
            let same = (0..total)
                .filter(|i| {
                    let k = FlowKey::tcp(
                        IpAddr::from(i.to_be_bytes()),
                        (*i % 60000) as u16,
                        ip("20.0.0.1"),
                        80,
                    );
                    a.decide(&k).unwrap().node == b.decide(&k).unwrap().node
                })
                .count();
            same as f64 / f64::from(total)
        };
        let j = kept(AlbHash::Jhash);
        let md = kept(AlbHash::Modulo);
        let mg = kept(AlbHash::Maglev);
        assert!((j - 0.5).abs() < 0.03, "jhash kept {j}");
        assert!((md - 0.2).abs() < 0.03, "modulo kept {md}");
        assert!(mg > 0.75, "maglev kept {mg}");
    }

    #[test]
    fn flow_table_pins_established_flows_across_pool_changes() {
        let mut m = model(AlbHash::Jhash, AlbMode::Default, 3, 77);
        let mut table = AlbFlowTable::default();
        let keys: Vec<FlowKey> = (0..200)
            .map(|p| FlowKey::tcp(ip("9.9.9.9"), 30000 + p, ip("20.0.0.1"), 80))
            .collect();
        let t0 = Duration::from_secs(0);
        let first: Vec<AlbBucket> = keys
            .iter()
            .map(|k| table.route(&m, k, t0).unwrap().decision)
            .collect();
        // node2 fails its probe: existing flows keep their node, new ones avoid node2.
        m.set_health("node2", false).unwrap();
        let t1 = Duration::from_secs(10);
        for (k, d) in keys.iter().zip(&first) {
            let r = table.route(&m, k, t1).unwrap();
            assert!(r.pinned);
            assert_eq!(&r.decision, d);
        }
        let fresh = FlowKey::tcp(ip("9.9.9.9"), 1, ip("20.0.0.1"), 80);
        let r = table.route(&m, &fresh, t1).unwrap();
        assert!(!r.pinned && r.decision.node != "node2");
        // After the idle timeout the flow is re-hashed over the new pool.
        let late = t1 + DEFAULT_IDLE_TIMEOUT + Duration::from_secs(1);
        let moved = keys
            .iter()
            .filter(|k| {
                let r = table.route(&m, k, late).unwrap();
                assert!(!r.pinned);
                r.decision.node == "node2"
            })
            .count();
        assert_eq!(moved, 0);
        table.end(&fresh);
        table.expire(late + DEFAULT_IDLE_TIMEOUT * 2);
        assert!(table.is_empty());
    }

    #[test]
    fn flow_table_capacity_falls_back_to_hash() {
        let m = model(AlbHash::Jhash, AlbMode::Default, 3, 1);
        let mut t = AlbFlowTable::new(DEFAULT_IDLE_TIMEOUT, 2);
        for p in 0..10 {
            t.route(
                &m,
                &FlowKey::tcp(ip("1.1.1.1"), p, ip("2.2.2.2"), 80),
                Duration::ZERO,
            )
            .unwrap();
        }
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn expected_shares_sum_to_one() {
        for hash in [AlbHash::Jhash, AlbHash::Modulo, AlbHash::Maglev] {
            let m = model(hash, AlbMode::Default, 3, 4);
            let s = m.expected_shares();
            assert_eq!(s.len(), 3);
            let total: f64 = s.iter().map(|(_, w)| w).sum();
            assert!((total - 1.0).abs() < 1e-9, "{hash}: {total}");
            for (_, w) in &s {
                assert!((w - 1.0 / 3.0).abs() < 0.001);
            }
        }
    }

    #[test]
    fn names_parse_and_serialise_as_interface_md() {
        assert_eq!("source-ip".parse::<AlbMode>().unwrap(), AlbMode::SourceIp);
        assert_eq!(
            "SourceIPProtocol".parse::<AlbMode>().unwrap(),
            AlbMode::SourceIpProtocol
        );
        assert_eq!("Default".parse::<AlbMode>().unwrap(), AlbMode::Default);
        assert!("sticky".parse::<AlbMode>().is_err());
        assert_eq!("maglev".parse::<AlbHash>().unwrap(), AlbHash::Maglev);
        assert_eq!(
            "ClientIP".parse::<SessionAffinity>().unwrap(),
            SessionAffinity::ClientIp
        );
        assert_eq!(
            serde_json::to_string(&AlbMode::SourceIpProtocol).unwrap(),
            "\"source-ip-protocol\""
        );
        assert_eq!(
            serde_json::to_string(&AlbHash::Modulo).unwrap(),
            "\"modulo\""
        );
        assert_eq!(
            serde_json::to_string(&SessionAffinity::ClientIp).unwrap(),
            "\"ClientIP\""
        );
        for m in AlbMode::ALL {
            assert_eq!(m.as_str().parse::<AlbMode>().unwrap(), m);
            assert_eq!(m.azure_name().parse::<AlbMode>().unwrap(), m);
        }
        assert_eq!(AlbMode::Default.cycle().cycle().cycle(), AlbMode::Default);
        assert_eq!(
            AlbMode::Default.nft_expression(false, ip_proto::TCP),
            "jhash ip saddr . tcp sport . ip daddr . tcp dport"
        );
    }
}
