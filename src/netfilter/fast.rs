//! A compact copy of the common rules, for bulk replay.
//!
//! Replaying a million connections over thousands of Services is bound by memory latency: every
//! connection reaches rules no other recent connection touched. A [`FastRule`] (≈48 bytes, stored
//! contiguously per chain) holds what most kube-proxy rules test — IPv4 `-s`/`-d`, `-p`,
//! `--sport`/`--dport` of the protocol match, a trailing `statistic --mode random` — and the
//! simple targets, so a rule costs one cache line instead of several. Any rule with anything else
//! (recent, mark, addrtype, conntrack, interfaces, IPv6, unknown matches …) is marked `slow` and
//! evaluated by the full matcher, which is also always used when the path is recorded (it gives
//! the reasons). `tests/netfilter_eval.rs` checks both give the same answers.

use std::net::IpAddr;

use std::sync::Arc;

use super::model::{Match, NatRange, Protocol, Rule, StatisticMatch, Table, TableName, Target};

/// A chain's place in [`FastTable::rules`], and what the walk needs of the chain without touching
/// the full [`super::model::Chain`].
#[derive(Debug, Clone)]
pub(crate) struct FastChain {
    pub(crate) start: u32,
    pub(crate) len: u32,
    pub(crate) indexed: bool,
    pub(crate) name: Arc<str>,
}

/// All compact rules of a table, chain after chain.
#[derive(Debug, Clone, Default)]
pub(crate) struct FastTable {
    pub(crate) chains: Vec<FastChain>,
    pub(crate) rules: Vec<FastRule>,
}

impl FastTable {
    pub(crate) fn build(table: &Table) -> FastTable {
        let mut t = FastTable::default();
        for c in &table.chains {
            t.chains.push(FastChain {
                start: t.rules.len() as u32,
                len: c.rules.len() as u32,
                indexed: c.index.is_some(),
                name: c.name.clone(),
            });
            t.rules
                .extend(c.rules.iter().map(|r| FastRule::compile(r, table.name)));
        }
        t
    }
}

pub(crate) const HAS_SRC: u16 = 1;
pub(crate) const SRC_NEG: u16 = 1 << 1;
pub(crate) const HAS_DST: u16 = 1 << 2;
pub(crate) const DST_NEG: u16 = 1 << 3;
pub(crate) const HAS_PROTO: u16 = 1 << 4;
pub(crate) const PROTO_NEG: u16 = 1 << 5;
pub(crate) const HAS_DPORT: u16 = 1 << 6;
pub(crate) const DPORT_NEG: u16 = 1 << 7;
pub(crate) const HAS_SPORT: u16 = 1 << 8;
pub(crate) const SPORT_NEG: u16 = 1 << 9;
pub(crate) const HAS_STAT: u16 = 1 << 10;
pub(crate) const STAT_INV: u16 = 1 << 11;
pub(crate) const HAS_PORT_MODULE: u16 = 1 << 12;
/// Evaluate with the full matcher.
pub(crate) const SLOW: u16 = 1 << 15;

/// What a fast rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FastTarget {
    /// No target: counts only.
    None,
    /// Jump to the chain at this position.
    Jump(u32),
    /// `DNAT --to-destination IPv4[:port]` in the nat table.
    Dnat { ip: u32, port: Option<u16> },
    /// Any other target: handled by the full code path.
    Full,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct FastRule {
    pub(crate) src: u32,
    pub(crate) src_mask: u32,
    pub(crate) dst: u32,
    pub(crate) dst_mask: u32,
    pub(crate) dport: (u16, u16),
    pub(crate) sport: (u16, u16),
    pub(crate) stored: u32,
    pub(crate) gid: u32,
    pub(crate) target: FastTarget,
    pub(crate) flags: u16,
    pub(crate) proto: u8,
    /// Protocol number the tcp/udp/sctp match requires.
    pub(crate) port_proto: u8,
}

fn v4(net: &ipnet::IpNet) -> Option<(u32, u32)> {
    match net {
        ipnet::IpNet::V4(n) => Some((n.network().to_bits(), n.netmask().to_bits())),
        ipnet::IpNet::V6(_) => None,
    }
}

impl FastRule {
    pub(crate) fn compile(rule: &Rule, table: TableName) -> FastRule {
        let s = &rule.spec;
        let mut f = FastRule {
            src: 0,
            src_mask: 0,
            dst: 0,
            dst_mask: 0,
            dport: (0, 0),
            sport: (0, 0),
            stored: 0,
            gid: rule.gid,
            target: FastTarget::Full,
            flags: 0,
            proto: 0,
            port_proto: 0,
        };
        let slow = |mut f: FastRule| {
            f.flags |= SLOW;
            f
        };
        if s.in_iface.is_some() || s.out_iface.is_some() || s.fragment.is_some() {
            return slow(f);
        }
        if let Some(p) = &s.proto {
            f.flags |= HAS_PROTO | if p.negated { PROTO_NEG } else { 0 };
            f.proto = p.value.number();
        }
        for (net, has, neg, which) in [(&s.src, HAS_SRC, SRC_NEG, 0), (&s.dst, HAS_DST, DST_NEG, 1)]
        {
            if let Some(n) = net {
                let Some((a, m)) = v4(&n.value) else {
                    return slow(f);
                };
                f.flags |= has | if n.negated { neg } else { 0 };
                if which == 0 {
                    (f.src, f.src_mask) = (a, m);
                } else {
                    (f.dst, f.dst_mask) = (a, m);
                }
            }
        }
        let significant: Vec<&Match> = s
            .matches
            .iter()
            .filter(|m| !matches!(m, Match::Comment(_) | Match::Nfacct(_)))
            .collect();
        for (i, m) in significant.iter().enumerate() {
            let ports = match m {
                Match::Tcp(t) if t.flags.is_none() && t.option.is_none() => {
                    Some((&t.ports, Protocol::Tcp))
                }
                Match::Udp(p) => Some((p, Protocol::Udp)),
                Match::Sctp(p) => Some((p, Protocol::Sctp)),
                Match::Statistic(StatisticMatch::Random { stored, invert })
                    if i + 1 == significant.len() =>
                {
                    f.flags |= HAS_STAT | if *invert { STAT_INV } else { 0 };
                    f.stored = *stored;
                    None
                }
                _ => return slow(f),
            };
            if let Some((p, proto)) = ports {
                if f.flags & HAS_PORT_MODULE != 0 {
                    return slow(f);
                }
                f.flags |= HAS_PORT_MODULE;
                f.port_proto = proto.number();
                if let Some(d) = &p.dport {
                    f.flags |= HAS_DPORT | if d.negated { DPORT_NEG } else { 0 };
                    f.dport = (d.value.first, d.value.last);
                }
                if let Some(sp) = &p.sport {
                    f.flags |= HAS_SPORT | if sp.negated { SPORT_NEG } else { 0 };
                    f.sport = (sp.value.first, sp.value.last);
                }
            }
        }
        f.target = match &s.target {
            None => FastTarget::None,
            Some(Target::Jump(c)) => match c.id {
                Some(id) => FastTarget::Jump(id as u32),
                None => FastTarget::Full,
            },
            Some(Target::Dnat {
                to:
                    NatRange {
                        addrs: Some((IpAddr::V4(a), IpAddr::V4(b))),
                        ports,
                    },
                random: false,
                persistent: false,
            }) if a == b && table == TableName::Nat && ports.is_none_or(|(p, q)| p == q) => {
                FastTarget::Dnat {
                    ip: a.to_bits(),
                    port: ports.map(|(p, _)| p),
                }
            }
            Some(_) => FastTarget::Full,
        };
        f
    }

    pub(crate) fn is_slow(&self) -> bool {
        self.flags & SLOW != 0
    }

    /// The packet tests before the statistic draw: `Some(false)` no match, `Some(true)` match,
    /// `None` the source port is needed but unknown (use the full matcher).
    #[inline]
    pub(crate) fn matches(
        &self,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        sport: Option<u16>,
        dport: u16,
    ) -> Option<bool> {
        let f = self.flags;
        if f & HAS_PROTO != 0 && (self.proto == proto) == (f & PROTO_NEG != 0) {
            return Some(false);
        }
        if f & (HAS_SRC | HAS_DST) != 0 {
            let (IpAddr::V4(s), IpAddr::V4(d)) = (src, dst) else {
                return Some(false);
            };
            if f & HAS_SRC != 0 && ((s.to_bits() & self.src_mask) == self.src) == (f & SRC_NEG != 0)
            {
                return Some(false);
            }
            if f & HAS_DST != 0 && ((d.to_bits() & self.dst_mask) == self.dst) == (f & DST_NEG != 0)
            {
                return Some(false);
            }
        }
        if f & HAS_PORT_MODULE != 0 {
            if proto != self.port_proto {
                return Some(false);
            }
            if f & HAS_DPORT != 0
                && (self.dport.0 <= dport && dport <= self.dport.1) == (f & DPORT_NEG != 0)
            {
                return Some(false);
            }
            if f & HAS_SPORT != 0 {
                let sp = sport?;
                if (self.sport.0 <= sp && sp <= self.sport.1) == (f & SPORT_NEG != 0) {
                    return Some(false);
                }
            }
        }
        Some(true)
    }
}
