//! First-match-preserving dispatch for long chains.
//!
//! kube-proxy's `KUBE-SERVICES` has one rule per Service frontend (tens of thousands on a big
//! cluster), each with `-d VIP/32`; `KUBE-NODEPORTS` has one per NodePort, each with `--dport N`.
//! Scanning them linearly per packet is what the kernel does, but a replay of millions of
//! connections cannot afford it. The index maps the key (destination address or destination port)
//! to the rules that could match it; rules without such a key ("wildcards", e.g. the final
//! `--dst-type LOCAL -j KUBE-NODEPORTS`) are kept in a second list. A lookup merges the two
//! sorted lists, so rules are still tried in their original order and the first match still wins:
//! a rule left out can never match, because its key differs from the packet's.

use std::collections::HashMap;
use std::net::IpAddr;

use super::model::Rule;

/// Chains shorter than this are scanned linearly (the trace then shows every rule tried).
pub const INDEX_MIN_RULES: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IndexKind {
    Destination,
    DestinationPort,
}

/// The key of an address (IPv6 folded to 64 bits) or a port. Two keys that fold together only
/// make a lookup return more candidates, which are then matched in full: never a wrong answer.
fn addr_key(a: IpAddr) -> u64 {
    match a {
        IpAddr::V4(v) => v.to_bits() as u64,
        IpAddr::V6(v) => {
            let b = v.to_bits();
            (b as u64) ^ ((b >> 64) as u64)
        }
    }
}

/// Rule positions of one key: up to two inline (the common case: one or two rules per
/// Service address), more as a span of [`ChainIndex::spill`].
#[derive(Debug, Clone, Copy)]
struct Slot {
    len: u32,
    /// Positions when `len <= 2`, else `[start, _]` in `spill`.
    at: [u32; 2],
}

type Fast = std::hash::BuildHasherDefault<super::stateful::FlowHasher>;

#[derive(Debug, Clone)]
pub(crate) struct ChainIndex {
    kind: IndexKind,
    /// 16-byte entries with a multiply hash: the lookup is one cache line, no SipHash.
    keyed: HashMap<u64, Slot, Fast>,
    spill: Vec<u32>,
    wildcard: Vec<u32>,
}

impl ChainIndex {
    pub(crate) fn build(rules: &[Rule]) -> Option<ChainIndex> {
        if rules.len() < INDEX_MIN_RULES {
            return None;
        }
        let by_dst = rules.iter().filter(|r| r.spec.dst_host().is_some()).count();
        let by_port = rules.iter().filter(|r| r.spec.dport().is_some()).count();
        let (kind, keyed_count) = if by_dst >= by_port {
            (IndexKind::Destination, by_dst)
        } else {
            (IndexKind::DestinationPort, by_port)
        };
        if keyed_count * 2 < rules.len() {
            return None;
        }
        let mut lists: HashMap<u64, Vec<u32>, Fast> = HashMap::default();
        let mut wildcard = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            let key = match kind {
                IndexKind::Destination => r.spec.dst_host().map(addr_key),
                IndexKind::DestinationPort => r.spec.dport().map(u64::from),
            };
            match key {
                Some(k) => lists.entry(k).or_default().push(i as u32),
                None => wildcard.push(i as u32),
            }
        }
        let mut spill = Vec::new();
        let keyed = lists
            .into_iter()
            .map(|(k, v)| {
                let slot = match v[..] {
                    [a] => Slot { len: 1, at: [a, 0] },
                    [a, b] => Slot { len: 2, at: [a, b] },
                    _ => {
                        spill.extend_from_slice(&v);
                        Slot {
                            len: v.len() as u32,
                            at: [(spill.len() - v.len()) as u32, 0],
                        }
                    }
                };
                (k, slot)
            })
            .collect();
        Some(ChainIndex {
            kind,
            keyed,
            spill,
            wildcard,
        })
    }

    /// Rule positions that could match a packet with this destination, in rule order.
    pub(crate) fn candidates(&self, dst: IpAddr, dport: Option<u16>) -> Candidates<'_> {
        let key = match self.kind {
            IndexKind::Destination => Some(addr_key(dst)),
            IndexKind::DestinationPort => dport.map(u64::from),
        };
        let keyed: &[u32] = match key.and_then(|k| self.keyed.get(&k)) {
            Some(s) if s.len <= 2 => &s.at[..s.len as usize],
            Some(s) => {
                let start = s.at[0] as usize;
                &self.spill[start..start + s.len as usize]
            }
            None => &[],
        };
        Candidates {
            a: keyed,
            b: &self.wildcard,
        }
    }
}
/// Merge of two ascending lists of rule positions.
pub(crate) struct Candidates<'a> {
    a: &'a [u32],
    b: &'a [u32],
}

impl Candidates<'_> {
    /// The first candidate at or after position `from`.
    pub(crate) fn next_from(&mut self, from: u32) -> Option<u32> {
        while self.a.first().is_some_and(|&x| x < from) {
            self.a = &self.a[1..];
        }
        while self.b.first().is_some_and(|&x| x < from) {
            self.b = &self.b[1..];
        }
        match (self.a.first(), self.b.first()) {
            (Some(&x), Some(&y)) => Some(x.min(y)),
            (Some(&x), None) => Some(x),
            (None, Some(&y)) => Some(y),
            (None, None) => None,
        }
    }
}
