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
/// Service address), more as a span of [`ChainIndex::spill`]. `len == 0`: an empty slot.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    len: u32,
    /// Positions when `len <= 2`, else `[start, _]` in `spill`.
    at: [u32; 2],
}

type Fast = std::hash::BuildHasherDefault<super::stateful::FlowHasher>;

/// A read-only open-addressing table from key to [`Slot`]: key and positions share one
/// 24-byte entry and the table is at most half full, so a lookup usually reads one cache line
/// (a general hash map reads its control bytes and its entry: two).
#[derive(Debug, Clone)]
struct KeyTable {
    entries: Vec<(u64, Slot)>,
    shift: u32,
}

impl KeyTable {
    fn build(items: Vec<(u64, Slot)>) -> KeyTable {
        let bits = (items.len().max(4) * 2)
            .next_power_of_two()
            .trailing_zeros();
        let mut t = KeyTable {
            entries: vec![(0, Slot::default()); 1 << bits],
            shift: 64 - bits,
        };
        let mask = t.entries.len() - 1;
        for (k, slot) in items {
            let mut i = t.home(k);
            while t.entries[i].1.len != 0 {
                i = (i + 1) & mask;
            }
            t.entries[i] = (k, slot);
        }
        t
    }

    /// Fibonacci hashing: the high bits of the product spread sequential addresses and ports.
    fn home(&self, k: u64) -> usize {
        (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    fn get(&self, k: u64) -> Option<&Slot> {
        let mask = self.entries.len() - 1;
        let mut i = self.home(k);
        loop {
            let (key, slot) = &self.entries[i];
            if slot.len == 0 {
                return None;
            }
            if *key == k {
                return Some(slot);
            }
            i = (i + 1) & mask;
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ChainIndex {
    kind: IndexKind,
    keyed: KeyTable,
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
        let keyed = KeyTable::build(
            lists
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
                .collect(),
        );
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
        let keyed: &[u32] = match key.and_then(|k| self.keyed.get(k)) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netfilter::model::TableName;

    fn chain_rules(text: &str) -> Vec<Rule> {
        let rs = crate::netfilter::parse(text.as_bytes(), "t").unwrap();
        let t = rs.table(TableName::Nat).unwrap();
        t.chain("X").unwrap().rules.clone()
    }

    /// What a linear scan would try: every rule whose key is the packet's, or that has none.
    fn brute(rules: &[Rule], dst: IpAddr) -> Vec<u32> {
        (0..rules.len() as u32)
            .filter(|&i| rules[i as usize].spec.dst_host().is_none_or(|d| d == dst))
            .collect()
    }

    #[test]
    fn candidates_keep_rule_order_inline_spilled_and_wildcards() {
        let mut text = String::from("*nat\n:X - [0:0]\n");
        for i in 0..100 {
            // Address 10.0.0.(i % 40): keys with 2 or 3 rules (spilled), and IPv4-only.
            text.push_str(&format!("-A X -d 10.0.0.{}/32 -j ACCEPT\n", i % 40));
            if i % 17 == 0 {
                text.push_str("-A X -p udp -j ACCEPT\n");
            }
        }
        text.push_str("COMMIT\n");
        let rules = chain_rules(&text);
        let ix = ChainIndex::build(&rules).expect("long keyed chain is indexed");
        for last in 0..45u8 {
            let dst = IpAddr::V4([10, 0, 0, last].into());
            let mut c = ix.candidates(dst, Some(80));
            let mut got = Vec::new();
            let mut from = 0;
            while let Some(x) = c.next_from(from) {
                got.push(x);
                from = x + 1;
            }
            assert_eq!(got, brute(&rules, dst), "{dst}");
        }
    }
}
