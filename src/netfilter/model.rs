//! The rule model: what `iptables-save` describes, normalised to what the kernel stores.
//!
//! Normalisation rules (so that the two forms users meet, kube-proxy's restore input and a node's
//! `iptables-save`, give identical models):
//! * addresses are networks (`10.0.0.1` is `10.0.0.1/32`);
//! * `statistic --probability` is the kernel's stored integer `round(p·2^31)`;
//! * every `MARK` variant (`--or-mark`, `--xor-mark`, `--and-mark`, `--set-mark`) is the kernel's
//!   single operation `mark = (mark & !mask) ^ value` (`--set-xmark value/mask`);
//! * defaults that `iptables-save` prints explicitly (`recent --mask 255.255.255.255 --rsource`,
//!   `REJECT --reject-with icmp-port-unreachable`) are the same as leaving them out;
//! * chains are kept in `iptables-save` order: built-in chains in kernel order, then user chains
//!   sorted by name.
//!
//! Every rule keeps the text it was written as ([`Rule::text`]) and its line, so a trace can show
//! the user their own rule.

use ipnet::IpNet;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use super::index::ChainIndex;

/// The five iptables tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TableName {
    Raw,
    Mangle,
    Nat,
    Filter,
    Security,
}

impl TableName {
    pub fn as_str(self) -> &'static str {
        match self {
            TableName::Raw => "raw",
            TableName::Mangle => "mangle",
            TableName::Nat => "nat",
            TableName::Filter => "filter",
            TableName::Security => "security",
        }
    }

    pub fn parse(s: &str) -> Option<TableName> {
        Some(match s {
            "raw" => TableName::Raw,
            "mangle" => TableName::Mangle,
            "nat" => TableName::Nat,
            "filter" => TableName::Filter,
            "security" => TableName::Security,
            _ => return None,
        })
    }

    /// Built-in chains in the order `iptables-save` prints them (kernel hook order).
    pub fn builtin_chains(self) -> &'static [&'static str] {
        match self {
            TableName::Raw => &["PREROUTING", "OUTPUT"],
            TableName::Mangle => &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
            TableName::Nat => &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
            TableName::Filter | TableName::Security => &["INPUT", "FORWARD", "OUTPUT"],
        }
    }

    pub fn is_builtin(self, chain: &str) -> bool {
        self.builtin_chains().contains(&chain)
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Address family of a rule set (`iptables-save` vs `ip6tables-save`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn of(addr: &IpAddr) -> Family {
        if addr.is_ipv4() {
            Family::Ipv4
        } else {
            Family::Ipv6
        }
    }
}

/// Packet and byte counters (`[pkts:bytes]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
}

/// Policy of a built-in chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Policy {
    Accept,
    Drop,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Accept => "ACCEPT",
            Policy::Drop => "DROP",
        }
    }
}

/// A value with the `!` that may precede it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Neg<T> {
    pub negated: bool,
    pub value: T,
}

impl<T> Neg<T> {
    pub fn new(negated: bool, value: T) -> Self {
        Neg { negated, value }
    }
}

/// A token kept verbatim (arguments of matches and targets hoptrace does not model).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    /// It was written in quotes; it is printed quoted again.
    pub quoted: bool,
}

/// An interface name; a trailing `+` is a prefix wildcard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface(pub String);

impl Iface {
    pub fn matches(&self, name: &str) -> bool {
        match self.0.strip_suffix('+') {
            Some(prefix) => name.starts_with(prefix),
            None => self.0 == name,
        }
    }
}

/// Layer-4 protocol of `-p`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
    Icmp,
    Icmpv6,
    Other(u8),
}

impl Protocol {
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
            Protocol::Icmp => 1,
            Protocol::Icmpv6 => 58,
            Protocol::Other(n) => n,
        }
    }

    pub fn from_number(n: u8) -> Protocol {
        match n {
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            132 => Protocol::Sctp,
            1 => Protocol::Icmp,
            58 => Protocol::Icmpv6,
            n => Protocol::Other(n),
        }
    }

    /// `-p` argument, by name or number; `None` for `all`/`0` (which means "any protocol").
    pub fn parse(s: &str) -> Result<Option<Protocol>, UnknownProtocol> {
        let lower = s.to_ascii_lowercase();
        Ok(Some(match lower.as_str() {
            "all" | "0" => return Ok(None),
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "sctp" => Protocol::Sctp,
            "icmp" => Protocol::Icmp,
            "icmpv6" | "ipv6-icmp" | "icmp6" => Protocol::Icmpv6,
            _ => Protocol::from_number(
                lower
                    .parse::<u8>()
                    .map_err(|_| UnknownProtocol(s.to_string()))?,
            ),
        }))
    }

    pub fn name(self) -> String {
        match self {
            Protocol::Tcp => "tcp".into(),
            Protocol::Udp => "udp".into(),
            Protocol::Sctp => "sctp".into(),
            Protocol::Icmp => "icmp".into(),
            Protocol::Icmpv6 => "ipv6-icmp".into(),
            Protocol::Other(n) => n.to_string(),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// A `-p` value that is neither a known protocol name nor a number 0-255.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol `{0}`: expected tcp, udp, sctp, icmp, all or a number")]
pub struct UnknownProtocol(pub String);

/// An inclusive port range (`80` is `80:80`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn single(p: u16) -> Self {
        PortRange { first: p, last: p }
    }
    pub fn contains(&self, p: u16) -> bool {
        self.first <= p && p <= self.last
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}:{}", self.first, self.last)
        }
    }
}

/// `--sport`/`--dport` of the `tcp`, `udp` and `sctp` matches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortsMatch {
    pub sport: Option<Neg<PortRange>>,
    pub dport: Option<Neg<PortRange>>,
}

/// TCP flag bits as the kernel numbers them.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const NAMES: [(&str, u8); 6] = [
        ("FIN", FIN),
        ("SYN", SYN),
        ("RST", RST),
        ("PSH", PSH),
        ("ACK", ACK),
        ("URG", URG),
    ];
}

/// `--tcp-flags mask comp` (`--syn` is `FIN,SYN,RST,ACK SYN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpFlagsMatch {
    pub mask: u8,
    pub comp: u8,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpMatch {
    pub ports: PortsMatch,
    pub option: Option<Neg<u8>>,
    pub flags: Option<Neg<TcpFlagsMatch>>,
}

/// `-m multiport`: at most one of `--sports`, `--dports`, `--ports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiportMatch {
    pub negated: bool,
    pub which: MultiportKind,
    pub ports: Vec<PortRange>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultiportKind {
    Source,
    Destination,
    Either,
}

/// `-m statistic`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatisticMatch {
    /// `--mode random --probability p`: matches when `(rand & 0x7FFFFFFF) < stored`, where the
    /// kernel stores `round(p·2^31)`.
    Random { stored: u32, invert: bool },
    /// `--mode nth --every n --packet p`: the 0-based packets p, p+n, p+2n … that reach the rule.
    Nth {
        every: u32,
        packet: u32,
        invert: bool,
    },
}

impl StatisticMatch {
    /// The kernel's stored integer for a `--probability` string.
    pub fn stored_probability(p: f64) -> u32 {
        (p * 2147483648.0).round() as u32
    }
    /// The exact probability that a random-mode rule matches (before `!`).
    pub fn probability_of(stored: u32) -> f64 {
        (stored as f64 / 2147483648.0).min(1.0)
    }
}

/// Which operation a `recent` match performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecentOp {
    Set,
    Rcheck,
    Update,
    Remove,
}

impl RecentOp {
    pub fn as_str(self) -> &'static str {
        match self {
            RecentOp::Set => "set",
            RecentOp::Rcheck => "rcheck",
            RecentOp::Update => "update",
            RecentOp::Remove => "remove",
        }
    }
}

/// `-m recent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentMatch {
    pub op: RecentOp,
    pub invert: bool,
    pub seconds: Option<u32>,
    pub reap: bool,
    pub hitcount: Option<u32>,
    pub rttl: bool,
    /// The list name (kube-proxy: the KUBE-SEP chain name). Default `DEFAULT`.
    pub name: Arc<str>,
    /// `None` is the all-ones mask (the default that `iptables-save` prints).
    pub mask: Option<IpAddr>,
    /// `--rdest`; `false` is `--rsource` (the default).
    pub rdest: bool,
}

/// `-m mark` / `-m connmark`: `(mark & mask) == value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkMatch {
    pub negated: bool,
    pub value: u32,
    pub mask: u32,
}

/// Route types of `-m addrtype`, as bits in kernel order.
pub mod addr_types {
    pub const NAMES: [&str; 12] = [
        "UNSPEC",
        "UNICAST",
        "LOCAL",
        "BROADCAST",
        "ANYCAST",
        "MULTICAST",
        "BLACKHOLE",
        "UNREACHABLE",
        "PROHIBIT",
        "THROW",
        "NAT",
        "XRESOLVE",
    ];
    pub const UNICAST: u16 = 1 << 1;
    pub const LOCAL: u16 = 1 << 2;
    pub const BROADCAST: u16 = 1 << 3;
    pub const MULTICAST: u16 = 1 << 5;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddrtypeMatch {
    pub src: Option<Neg<u16>>,
    pub dst: Option<Neg<u16>>,
    pub limit_iface_in: bool,
    pub limit_iface_out: bool,
}

/// Conntrack states of `--ctstate`/`--state`, bits in the order libxt_conntrack prints them.
pub mod ct_states {
    pub const NAMES: [(&str, u8); 7] = [
        ("INVALID", INVALID),
        ("NEW", NEW),
        ("RELATED", RELATED),
        ("ESTABLISHED", ESTABLISHED),
        ("UNTRACKED", UNTRACKED),
        ("SNAT", SNAT),
        ("DNAT", DNAT),
    ];
    pub const INVALID: u8 = 1 << 0;
    pub const NEW: u8 = 1 << 1;
    pub const RELATED: u8 = 1 << 2;
    pub const ESTABLISHED: u8 = 1 << 3;
    pub const UNTRACKED: u8 = 1 << 4;
    pub const SNAT: u8 = 1 << 5;
    pub const DNAT: u8 = 1 << 6;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConntrackMatch {
    pub ctstate: Option<Neg<u8>>,
}

/// `-m physdev`: only `--physdev-is-in/out/bridged` are modelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PhysdevMatch {
    pub is_in: Option<bool>,
    pub is_out: Option<bool>,
    pub is_bridged: Option<bool>,
}

/// One `-m MODULE ...` of a rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Match {
    Comment(String),
    Tcp(TcpMatch),
    Udp(PortsMatch),
    Sctp(PortsMatch),
    Multiport(MultiportMatch),
    Statistic(StatisticMatch),
    Recent(RecentMatch),
    Mark(MarkMatch),
    Connmark(MarkMatch),
    Addrtype(AddrtypeMatch),
    Conntrack(ConntrackMatch),
    /// `-m state --state`: same states as conntrack's `--ctstate`.
    State(Neg<u8>),
    /// Accounting only; always matches.
    Nfacct(String),
    Physdev(PhysdevMatch),
    /// A module or option hoptrace does not model: kept verbatim; evaluating it is undecidable.
    Unknown {
        module: String,
        args: Vec<Word>,
    },
}

impl Match {
    pub fn module_name(&self) -> &str {
        match self {
            Match::Comment(_) => "comment",
            Match::Tcp(_) => "tcp",
            Match::Udp(_) => "udp",
            Match::Sctp(_) => "sctp",
            Match::Multiport(_) => "multiport",
            Match::Statistic(_) => "statistic",
            Match::Recent(_) => "recent",
            Match::Mark(_) => "mark",
            Match::Connmark(_) => "connmark",
            Match::Addrtype(_) => "addrtype",
            Match::Conntrack(_) => "conntrack",
            Match::State(_) => "state",
            Match::Nfacct(_) => "nfacct",
            Match::Physdev(_) => "physdev",
            Match::Unknown { module, .. } => module,
        }
    }
}

/// A NAT mapping `--to-destination`/`--to-source`: `[ip[-ip]][:port[-port]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatRange {
    pub addrs: Option<(IpAddr, IpAddr)>,
    pub ports: Option<(u16, u16)>,
}

/// A reference to a user chain, resolved to its position when the rule set is linked.
#[derive(Debug, Clone)]
pub struct ChainRef {
    pub name: Arc<str>,
    pub id: Option<usize>,
}

impl PartialEq for ChainRef {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

/// CONNMARK operations in the kernel's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnmarkOp {
    /// `ctmark = (ctmark & !mask) ^ value`
    SetXmark { value: u32, mask: u32 },
    /// `ctmark = (ctmark & !ctmask) ^ (mark & nfmask)`
    Save { nfmask: u32, ctmask: u32 },
    /// `mark = (mark & !nfmask) ^ (ctmark & ctmask)`
    Restore { nfmask: u32, ctmask: u32 },
}

/// What `-j`/`-g` does.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Accept,
    Drop,
    Return,
    /// `None` is the default `icmp-port-unreachable` (`icmp6-port-unreachable` for IPv6).
    Reject {
        with: Option<String>,
    },
    Jump(ChainRef),
    Goto(ChainRef),
    Dnat {
        to: NatRange,
        random: bool,
        persistent: bool,
    },
    Snat {
        to: NatRange,
        random: bool,
        random_fully: bool,
        persistent: bool,
    },
    Masquerade {
        to_ports: Option<(u16, u16)>,
        random: bool,
        random_fully: bool,
    },
    Redirect {
        to_ports: Option<(u16, u16)>,
        random: bool,
    },
    /// `MARK`: `mark = (mark & !mask) ^ value`.
    Mark {
        value: u32,
        mask: u32,
    },
    Connmark(ConnmarkOp),
    /// `LOG`, `NFLOG`, `TRACE`: observe, never decide. Arguments kept verbatim.
    Log {
        name: String,
        args: Vec<Word>,
    },
    /// `CT --notrack` / `NOTRACK`.
    Notrack {
        legacy: bool,
    },
    /// A target hoptrace does not model: kept verbatim; reaching it is undecidable.
    Unknown {
        name: String,
        args: Vec<Word>,
    },
}

impl Target {
    pub fn chain_ref(&self) -> Option<&ChainRef> {
        match self {
            Target::Jump(c) | Target::Goto(c) => Some(c),
            _ => None,
        }
    }
}

/// The matches of a rule. kube-proxy's rules have at most three, kept inline so that a rule and
/// its matches share cache lines (evaluation at scale is bound by memory latency).
pub type Matches = smallvec::SmallVec<[Match; 3]>;

/// Everything a rule says, apart from where it came from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RuleSpec {
    pub src: Option<Neg<IpNet>>,
    pub dst: Option<Neg<IpNet>>,
    pub in_iface: Option<Neg<Iface>>,
    pub out_iface: Option<Neg<Iface>>,
    pub proto: Option<Neg<Protocol>>,
    /// `-f` (second and later fragments); `Some(true)` is `! -f`.
    pub fragment: Option<bool>,
    pub matches: Matches,
    /// `None`: a rule without target (counts packets, does nothing).
    pub target: Option<Target>,
}

impl RuleSpec {
    /// The text of the first `--comment`, if any.
    pub fn comment(&self) -> Option<&str> {
        self.matches.iter().find_map(|m| match m {
            Match::Comment(c) => Some(c.as_str()),
            _ => None,
        })
    }

    pub fn recent(&self) -> Option<&RecentMatch> {
        self.matches.iter().find_map(|m| match m {
            Match::Recent(r) => Some(r),
            _ => None,
        })
    }

    pub fn statistic(&self) -> Option<&StatisticMatch> {
        self.matches.iter().find_map(|m| match m {
            Match::Statistic(s) => Some(s),
            _ => None,
        })
    }

    /// A single destination port (`--dport N` of tcp/udp/sctp), not negated.
    pub fn dport(&self) -> Option<u16> {
        self.matches.iter().find_map(|m| match m {
            Match::Tcp(TcpMatch {
                ports: PortsMatch { dport: Some(d), .. },
                ..
            })
            | Match::Udp(PortsMatch { dport: Some(d), .. })
            | Match::Sctp(PortsMatch { dport: Some(d), .. })
                if !d.negated && d.value.first == d.value.last =>
            {
                Some(d.value.first)
            }
            _ => None,
        })
    }

    /// A single destination address (`-d A/32` or `/128`), not negated.
    pub fn dst_host(&self) -> Option<IpAddr> {
        match &self.dst {
            Some(d) if !d.negated && d.value.prefix_len() == d.value.max_prefix_len() => {
                Some(d.value.addr())
            }
            _ => None,
        }
    }
}

/// One rule: what it says, and where it came from.
#[derive(Debug, Clone)]
pub struct Rule {
    pub spec: RuleSpec,
    pub counters: Option<Counters>,
    /// The rule as written (`-A CHAIN …`), or as hoptrace printed it when it made the rule.
    pub text: Arc<str>,
    /// 1-based line in the source file; 0 for rules hoptrace added.
    pub line: u32,
    /// Unique within a linked [`Ruleset`]; keys per-rule state such as `statistic --mode nth`.
    pub gid: u32,
}

/// A chain and its rules.
#[derive(Debug, Clone)]
pub struct Chain {
    pub name: Arc<str>,
    /// `Some` for built-in chains.
    pub policy: Option<Policy>,
    pub counters: Counters,
    pub rules: Vec<Rule>,
    /// First-match-preserving dispatch index for long chains (KUBE-SERVICES, KUBE-NODEPORTS).
    pub(crate) index: Option<ChainIndex>,
}

impl Chain {
    pub fn new(name: &str, policy: Option<Policy>) -> Chain {
        Chain {
            name: name.into(),
            policy,
            counters: Counters::default(),
            rules: Vec::new(),
            index: None,
        }
    }
}

/// One table (`*nat … COMMIT`).
#[derive(Debug, Clone)]
pub struct Table {
    pub name: TableName,
    pub chains: Vec<Chain>,
    pub(crate) by_name: HashMap<Arc<str>, usize>,
    hook_chains: [Option<usize>; 5],
    /// Compact copies of the chains and rules for bulk replay (see `fast.rs`).
    pub(crate) fast: super::fast::FastTable,
}

const HOOK_CHAINS: [&str; 5] = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];

impl Table {
    /// A table with its built-in chains (policy ACCEPT), as the kernel always has them.
    pub fn new(name: TableName) -> Table {
        let mut t = Table {
            name,
            chains: Vec::new(),
            by_name: HashMap::new(),
            hook_chains: [None; 5],
            fast: super::fast::FastTable::default(),
        };
        for b in name.builtin_chains() {
            t.chains.push(Chain::new(b, Some(Policy::Accept)));
        }
        t.reindex();
        t
    }

    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.by_name.get(name).map(|&i| &self.chains[i])
    }

    pub fn chain_id(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    pub fn chain_mut(&mut self, name: &str) -> Option<&mut Chain> {
        match self.by_name.get(name) {
            Some(&i) => Some(&mut self.chains[i]),
            None => None,
        }
    }

    /// Put chains in `iptables-save` order and rebuild the name map.
    pub(crate) fn reindex(&mut self) {
        let builtins = self.name.builtin_chains();
        let rank = |c: &Chain| {
            builtins
                .iter()
                .position(|b| **b == *c.name)
                .unwrap_or(usize::MAX)
        };
        self.chains
            .sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.name.cmp(&b.name)));
        self.by_name = self
            .chains
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        for (slot, hook) in self.hook_chains.iter_mut().zip(HOOK_CHAINS) {
            *slot = self.by_name.get(hook).copied();
        }
    }

    /// Position of the built-in chain of a hook (`PREROUTING`, `INPUT`, `FORWARD`, `OUTPUT`,
    /// `POSTROUTING`), without hashing.
    pub(crate) fn hook_chain(&self, chain: &str) -> Option<usize> {
        HOOK_CHAINS
            .iter()
            .position(|h| *h == chain)
            .and_then(|i| self.hook_chains[i])
    }
}

/// Something the user should read: not an error, but the answer depends on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// 1-based line, when the warning is about one line.
    pub line: Option<u32>,
    pub message: String,
}

/// A whole rule set of one node and one family, parsed once and shared (`Arc<Ruleset>`) by every
/// evaluator that needs it.
#[derive(Debug, Clone)]
pub struct Ruleset {
    /// Where it came from (file name), for messages.
    pub source: Arc<str>,
    /// After changing rules here, call [`Ruleset::link`]: evaluation uses indexes and compact
    /// copies built from the rules.
    pub tables: Vec<Table>,
    /// `None` when no address in the file tells.
    pub family: Option<Family>,
    pub warnings: Vec<Warning>,
    pub(crate) rule_count: u32,
}

impl Ruleset {
    pub fn empty(source: &str) -> Ruleset {
        Ruleset {
            source: source.into(),
            tables: Vec::new(),
            family: None,
            warnings: Vec::new(),
            rule_count: 0,
        }
    }

    pub fn table(&self, name: TableName) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }

    pub fn table_mut(&mut self, name: TableName) -> Option<&mut Table> {
        self.tables.iter_mut().find(|t| t.name == name)
    }

    /// Total number of rules over all tables.
    pub fn rule_count(&self) -> usize {
        self.tables
            .iter()
            .map(|t| t.chains.iter().map(|c| c.rules.len()).sum::<usize>())
            .sum()
    }

    /// Number of distinct rule ids (`Rule::gid` is below this).
    pub fn gid_bound(&self) -> u32 {
        self.rule_count
    }

    /// Remove the dispatch indexes and the compact rules (every chain is then scanned linearly
    /// with the full matcher, as the kernel does). For checking that neither changes an answer.
    pub fn without_indexes(mut self) -> Ruleset {
        for t in &mut self.tables {
            for c in &mut t.chains {
                c.index = None;
            }
            t.fast = super::fast::FastTable::default();
        }
        self
    }

    /// Do two rule sets say the same thing (ignoring source lines, text and counters)?
    pub fn same_rules(&self, other: &Ruleset) -> bool {
        if self.tables.len() != other.tables.len() {
            return false;
        }
        self.tables.iter().zip(&other.tables).all(|(a, b)| {
            a.name == b.name
                && a.chains.len() == b.chains.len()
                && a.chains.iter().zip(&b.chains).all(|(x, y)| {
                    x.name == y.name
                        && x.policy == y.policy
                        && x.rules.len() == y.rules.len()
                        && x.rules.iter().zip(&y.rules).all(|(r, s)| r.spec == s.spec)
                })
        })
    }

    /// Resolve jump targets to chain positions, number rules, build dispatch indexes, and check
    /// for jump loops. Called after parsing and after every rewrite.
    pub fn link(&mut self) -> Result<(), LinkError> {
        let mut gid = 0u32;
        let mut undeclared = Vec::new();
        for table in &mut self.tables {
            table.reindex();
            let names = table.by_name.clone();
            for chain in &mut table.chains {
                for rule in &mut chain.rules {
                    rule.gid = gid;
                    gid += 1;
                    if let Some(Target::Jump(c) | Target::Goto(c)) = &mut rule.spec.target {
                        c.id = names.get(&c.name).copied();
                        if c.id.is_none() {
                            undeclared.push((table.name, c.name.clone(), rule.line));
                        }
                    }
                }
                chain.index = ChainIndex::build(&chain.rules);
            }
            table.fast = super::fast::FastTable::build(table);
            check_loops(table)?;
        }
        self.rule_count = gid;
        self.warnings
            .retain(|w| !w.message.starts_with("jump to undeclared chain"));
        for (table, name, line) in undeclared {
            self.warnings.push(Warning {
                line: (line > 0).then_some(line),
                message: format!(
                    "jump to undeclared chain {} in table {table}: the kernel would refuse this rule set; \
                     a packet reaching the rule cannot be decided",
                    crate::sanitize::escape_str(&name)
                ),
            });
        }
        Ok(())
    }
}

/// A rule set that cannot be evaluated because its chains jump in a circle (the kernel refuses
/// such a rule set too).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{source_name}: chain {chain} in table {table} can reach itself through jumps (the kernel refuses loops)"
)]
pub struct LinkError {
    pub source_name: String,
    pub table: TableName,
    pub chain: String,
}

fn check_loops(table: &Table) -> Result<(), LinkError> {
    // Iterative DFS colouring: 0 unvisited, 1 on stack, 2 done.
    let n = table.chains.len();
    let mut colour = vec![0u8; n];
    for start in 0..n {
        if colour[start] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        colour[start] = 1;
        while let Some(&(c, start_at)) = stack.last() {
            let rules = &table.chains[c].rules;
            let mut next = start_at;
            let mut child = None;
            while next < rules.len() {
                let r = &rules[next];
                next += 1;
                if let Some(id) = r
                    .spec
                    .target
                    .as_ref()
                    .and_then(|t| t.chain_ref())
                    .and_then(|c| c.id)
                {
                    match colour[id] {
                        1 => {
                            return Err(LinkError {
                                source_name: String::new(),
                                table: table.name,
                                chain: table.chains[id].name.to_string(),
                            });
                        }
                        0 => {
                            child = Some(id);
                            break;
                        }
                        _ => {}
                    }
                }
            }
            if let Some(top) = stack.last_mut() {
                top.1 = next;
            }
            match child {
                Some(id) => {
                    colour[id] = 1;
                    stack.push((id, 0));
                }
                None => {
                    colour[c] = 2;
                    stack.pop();
                }
            }
        }
    }
    Ok(())
}
