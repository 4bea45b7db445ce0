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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Addr(IpAddr),
    Port(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IndexKind {
    Destination,
    DestinationPort,
}

#[derive(Debug, Clone)]
pub(crate) struct ChainIndex {
    kind: IndexKind,
    /// Most keys have one or two rules: kept inline, so a lookup is one cache miss, not two.
    keyed: HashMap<Key, smallvec::SmallVec<[u32; 2]>>,
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
        let mut keyed: HashMap<Key, smallvec::SmallVec<[u32; 2]>> = HashMap::new();
        let mut wildcard = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            let key = match kind {
                IndexKind::Destination => r.spec.dst_host().map(Key::Addr),
                IndexKind::DestinationPort => r.spec.dport().map(Key::Port),
            };
            match key {
                Some(k) => keyed.entry(k).or_default().push(i as u32),
                None => wildcard.push(i as u32),
            }
        }
        Some(ChainIndex {
            kind,
            keyed,
            wildcard,
        })
    }

    /// Rule positions that could match a packet with this destination, in rule order.
    pub(crate) fn candidates(&self, dst: IpAddr, dport: Option<u16>) -> Candidates<'_> {
        let keyed: &[u32] = match self.kind {
            IndexKind::Destination => self
                .keyed
                .get(&Key::Addr(dst))
                .map(|v| v.as_slice())
                .unwrap_or(&[]),
            IndexKind::DestinationPort => match dport {
                Some(p) => self
                    .keyed
                    .get(&Key::Port(p))
                    .map(|v| v.as_slice())
                    .unwrap_or(&[]),
                None => &[],
            },
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
