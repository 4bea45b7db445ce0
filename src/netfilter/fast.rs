//! A compact copy of the common rules, for bulk replay.
//!
//! Replaying a million connections over thousands of Services is bound by memory latency: every
//! connection reaches rules no other recent connection touched. A [`FastRule`] (one cache line, stored
//! contiguously per chain) holds what most kube-proxy rules test — IPv4 `-s`/`-d`, `-p`,
//! `--sport`/`--dport` of the protocol match, `-m mark`, `-m conntrack --ctstate`, a trailing
//! `statistic --mode random` — and the simple targets (jump, RETURN, MARK, DNAT), so a rule costs
//! one cache line instead of several. Any rule with anything else
//! (recent, addrtype, interfaces, IPv6, unknown matches …) is marked `slow` and
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
    /// Rules from this position to the end form a [`CascadeStep`] run (`len` when none).
    pub(crate) cascade_from: u32,
    /// Where that run starts in [`FastTable::cascade`].
    pub(crate) cascade_start: u32,
    pub(crate) name: Arc<str>,
}

/// A rule that only draws and jumps (`[-m statistic --mode random --probability P] -j CHAIN`),
/// as kube-proxy writes a Service's endpoint choice. A Service's whole cascade fits in one or
/// two cache lines this way, where its full compact rules take one line each.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CascadeStep {
    /// Stored probability; `u32::MAX` for the last rule (no statistic: always jumps).
    pub(crate) stored: u32,
    pub(crate) gid: u32,
    /// The chain jumped to.
    pub(crate) target: u32,
    pub(crate) invert: bool,
}

/// All compact rules of a table, chain after chain.
#[derive(Debug, Clone, Default)]
pub(crate) struct FastTable {
    pub(crate) chains: Vec<FastChain>,
    pub(crate) rules: Vec<FastRule>,
    pub(crate) cascade: Vec<CascadeStep>,
}

impl FastTable {
    pub(crate) fn build(table: &Table) -> FastTable {
        let mut t = FastTable::default();
        for c in &table.chains {
            let start = t.rules.len();
            t.rules
                .extend(c.rules.iter().map(|r| FastRule::compile(r, table.name)));
            let compiled = &t.rules[start..];
            // The longest tail of draw-and-jump rules (an indexed chain is walked by its
            // index instead).
            let tail = if c.index.is_some() {
                0
            } else {
                compiled
                    .iter()
                    .rev()
                    .take_while(|r| r.cascade_step().is_some())
                    .count()
            };
            let tail = if tail >= 2 { tail } else { 0 };
            let cascade_start = t.cascade.len() as u32;
            t.cascade.extend(
                compiled[compiled.len() - tail..]
                    .iter()
                    .filter_map(FastRule::cascade_step),
            );
            t.chains.push(FastChain {
                start: start as u32,
                len: c.rules.len() as u32,
                indexed: c.index.is_some(),
                cascade_from: (compiled.len() - tail) as u32,
                cascade_start,
                name: c.name.clone(),
            });
        }
        t
    }
}

pub(crate) const HAS_SRC: u32 = 1;
pub(crate) const SRC_NEG: u32 = 1 << 1;
pub(crate) const HAS_DST: u32 = 1 << 2;
pub(crate) const DST_NEG: u32 = 1 << 3;
pub(crate) const HAS_PROTO: u32 = 1 << 4;
pub(crate) const PROTO_NEG: u32 = 1 << 5;
pub(crate) const HAS_DPORT: u32 = 1 << 6;
pub(crate) const DPORT_NEG: u32 = 1 << 7;
pub(crate) const HAS_SPORT: u32 = 1 << 8;
pub(crate) const SPORT_NEG: u32 = 1 << 9;
pub(crate) const HAS_STAT: u32 = 1 << 10;
pub(crate) const STAT_INV: u32 = 1 << 11;
pub(crate) const HAS_PORT_MODULE: u32 = 1 << 12;
pub(crate) const HAS_MARK: u32 = 1 << 13;
pub(crate) const MARK_NEG: u32 = 1 << 14;
pub(crate) const HAS_CTSTATE: u32 = 1 << 16;
pub(crate) const CTSTATE_NEG: u32 = 1 << 17;
/// Evaluate with the full matcher.
pub(crate) const SLOW: u32 = 1 << 15;

/// What a fast rule tests of a packet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FastPacket {
    pub(crate) src: IpAddr,
    pub(crate) dst: IpAddr,
    /// Protocol number.
    pub(crate) proto: u8,
    pub(crate) sport: Option<u16>,
    pub(crate) dport: u16,
    pub(crate) mark: u32,
}

/// What a fast rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FastTarget {
    /// No target: counts only.
    None,
    /// Jump to the chain at this position.
    Jump(u32),
    /// `RETURN`.
    Return,
    /// `MARK`: mark := (mark & !mask) ^ value.
    Mark { value: u32, mask: u32 },
    /// `DNAT --to-destination IPv4[:port]` in the nat table.
    Dnat { ip: u32, port: Option<u16> },
    /// Any other target: handled by the full code path.
    Full,
}

/// One cache line each (60 bytes of fields): a rule never straddles two lines.
#[derive(Debug, Clone, Copy)]
#[repr(align(64))]
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
    pub(crate) mark: u32,
    pub(crate) mark_mask: u32,
    pub(crate) flags: u32,
    pub(crate) ctstate: u8,
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
            mark: 0,
            mark_mask: 0,
            flags: 0,
            ctstate: 0,
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
                Match::Mark(mk) if f.flags & HAS_MARK == 0 => {
                    f.flags |= HAS_MARK | if mk.negated { MARK_NEG } else { 0 };
                    (f.mark, f.mark_mask) = (mk.value, mk.mask);
                    None
                }
                Match::Conntrack(c) => {
                    match &c.ctstate {
                        Some(st) if f.flags & HAS_CTSTATE == 0 => {
                            f.flags |= HAS_CTSTATE | if st.negated { CTSTATE_NEG } else { 0 };
                            f.ctstate = st.value;
                        }
                        Some(_) => return slow(f),
                        // `-m conntrack` without a state test matches every packet.
                        None => {}
                    }
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
            Some(Target::Return) => FastTarget::Return,
            Some(Target::Mark { value, mask }) => FastTarget::Mark {
                value: *value,
                mask: *mask,
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

    /// This rule as a [`CascadeStep`], when it only draws (or not) and jumps.
    fn cascade_step(&self) -> Option<CascadeStep> {
        let FastTarget::Jump(target) = self.target else {
            return None;
        };
        if self.flags & !(HAS_STAT | STAT_INV) != 0 {
            return None;
        }
        Some(CascadeStep {
            stored: if self.flags & HAS_STAT != 0 {
                self.stored
            } else {
                u32::MAX
            },
            gid: self.gid,
            target,
            invert: self.flags & STAT_INV != 0,
        })
    }

    pub(crate) fn is_slow(&self) -> bool {
        self.flags & SLOW != 0
    }

    /// The packet tests before the statistic draw: `Some(false)` no match, `Some(true)` match,
    /// `None` the source port is needed but unknown (use the full matcher). `ctstate` is asked
    /// only of rules that test it.
    #[inline]
    pub(crate) fn matches(&self, p: &FastPacket, ctstate: impl FnOnce() -> u8) -> Option<bool> {
        let FastPacket {
            src,
            dst,
            proto,
            sport,
            dport,
            mark,
        } = *p;
        let f = self.flags;
        if f & HAS_MARK != 0 && ((mark & self.mark_mask) == self.mark) == (f & MARK_NEG != 0) {
            return Some(false);
        }
        if f & HAS_CTSTATE != 0 && ((ctstate() & self.ctstate) != 0) == (f & CTSTATE_NEG != 0) {
            return Some(false);
        }
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_fast_rule_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<super::FastRule>(), 64);
    }
}
