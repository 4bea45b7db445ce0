//! Conntrack's NAT bindings, laid out for replaying millions of connections.
//!
//! A replay creates a binding per connection and expires it 120 s later, so with random
//! traffic every insert and every expiry lands on memory nobody touched recently. An entry
//! therefore holds no pointers and as few bytes as possible: an IPv4 5-tuple is 13 bytes of key
//! (other families keep the whole [`FlowKey`] in a second map) and the value is the expiry and
//! the index of the connection's NAT decision. Decisions (verdict, DNAT, SNAT, marks) are
//! interned: the thousands of connections DNATed by the same rule share one, so storing a
//! binding writes one cache line and expiring it reads one, and no reference count of a chain
//! name is touched on either path.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use super::eval::{DnatResult, Outcome, SourceNat, Verdict};
use super::stateful::{FlowHasher, FlowKey};

type Fast = std::hash::BuildHasherDefault<FlowHasher>;

/// An IPv4 5-tuple, packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct V4Key {
    src: u32,
    dst: u32,
    src_port: u16,
    dst_port: u16,
    proto: u8,
}

impl V4Key {
    fn of(k: &FlowKey) -> Option<V4Key> {
        match (k.src, k.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => Some(V4Key {
                src: s.to_bits(),
                dst: d.to_bits(),
                src_port: k.src_port,
                dst_port: k.dst_port,
                proto: k.proto.number(),
            }),
            _ => None,
        }
    }
}

impl std::hash::Hash for V4Key {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        // Two words instead of five writes.
        h.write_u64(((self.src as u64) << 32) | self.dst as u64);
        h.write_u64(
            ((self.src_port as u64) << 24) | ((self.dst_port as u64) << 8) | self.proto as u64,
        );
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    expires_ns: u64,
    /// Index into [`NatDecisions::list`].
    nat: u32,
}

/// What conntrack remembers of a connection: its NAT decision (shared by many connections).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NatDecision {
    pub(crate) verdict: Verdict,
    pub(crate) dnat: Option<DnatResult>,
    pub(crate) source_nat: Option<SourceNat>,
    pub(crate) local_delivery: bool,
    pub(crate) mark: u32,
    pub(crate) ct_mark: u32,
}

impl NatDecision {
    fn of(out: &Outcome) -> NatDecision {
        NatDecision {
            verdict: out.verdict,
            dnat: out.dnat.clone(),
            source_nat: out.source_nat.clone(),
            local_delivery: out.local_delivery,
            mark: out.mark,
            ct_mark: out.ct_mark,
        }
    }
}

fn ptr(s: &Arc<str>) -> usize {
    Arc::as_ptr(s) as *const u8 as usize
}

/// Identifies a decision without reading any shared string. Within one rule set (one
/// `generation` of [`Conntrack`]), a DNAT or SNAT rule is identified by its table, the address
/// of its chain's name (an `Arc` the rule set keeps) and its number, and everything the decision
/// records of it besides the DNAT address and port (range, chain, SNAT kind, ports, flags) is
/// written in that rule; the rest is here by value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NatKey {
    generation: u32,
    mark: u32,
    ct_mark: u32,
    dnat_rule: u32,
    snat_rule: u32,
    dnat_port: u16,
    verdict: u8,
    /// local delivery, has DNAT, has SNAT.
    bits: u8,
    dnat_table: u8,
    snat_table: u8,
    dnat_chain: usize,
    snat_chain: usize,
    dnat_ip: IpAddr,
}

impl NatKey {
    fn of(generation: u32, d: &Outcome) -> NatKey {
        let mut k = NatKey {
            generation,
            mark: d.mark,
            ct_mark: d.ct_mark,
            dnat_rule: 0,
            snat_rule: 0,
            dnat_port: 0,
            verdict: d.verdict as u8,
            bits: d.local_delivery as u8,
            dnat_table: 0,
            snat_table: 0,
            dnat_chain: 0,
            snat_chain: 0,
            dnat_ip: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        };
        if let Some(x) = &d.dnat {
            k.bits |= 2;
            k.dnat_rule = x.rule.rule;
            k.dnat_port = x.port;
            k.dnat_table = x.rule.table as u8;
            k.dnat_chain = ptr(&x.rule.chain);
            k.dnat_ip = x.ip;
        }
        if let Some(x) = &d.source_nat {
            k.bits |= 4;
            k.snat_rule = x.rule.rule;
            k.snat_table = x.rule.table as u8;
            k.snat_chain = ptr(&x.rule.chain);
        }
        k
    }
}

impl std::hash::Hash for NatKey {
    /// A few words that tell decisions apart in practice (equality still compares every field).
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let ip = match self.dnat_ip {
            IpAddr::V4(a) => a.to_bits() as u64,
            IpAddr::V6(a) => {
                let b = a.to_bits();
                (b as u64) ^ ((b >> 64) as u64)
            }
        };
        h.write_u64(
            ((self.generation as u64) << 32) ^ (self.mark ^ self.ct_mark.rotate_left(16)) as u64,
        );
        h.write_u64(ip ^ ((self.dnat_port as u64) << 32) ^ ((self.dnat_rule as u64) << 48));
        h.write_u64(
            self.dnat_chain as u64
                ^ (self.snat_chain as u64).rotate_left(32)
                ^ ((self.bits as u64) << 56)
                ^ ((self.verdict as u64) << 60),
        );
    }
}

#[derive(Debug, Clone, Default)]
struct NatDecisions {
    list: Vec<NatDecision>,
    ids: HashMap<NatKey, u32, Fast>,
    /// Which rule set the keys' rule identities refer to; bumped by every new rule set.
    generation: u32,
}

impl NatDecisions {
    fn intern(&mut self, out: &Outcome) -> u32 {
        let next = self.list.len() as u32;
        let id = *self
            .ids
            .entry(NatKey::of(self.generation, out))
            .or_insert(next);
        if id == next {
            self.list.push(NatDecision::of(out));
        }
        id
    }
}

/// Live NAT bindings by 5-tuple, with expiry.
#[derive(Debug, Clone, Default)]
pub(crate) struct Conntrack {
    v4: HashMap<V4Key, Entry, Fast>,
    other: HashMap<FlowKey, Entry, Fast>,
    /// Bindings in the order they were created, with the expiry they had then: expiry is swept
    /// from the front in amortised O(1) (a binding touched since is re-checked, not removed).
    expiry: VecDeque<(u64, FlowKey)>,
    nat: NatDecisions,
}

impl Conntrack {
    pub(crate) fn len(&self) -> usize {
        self.v4.len() + self.other.len()
    }

    fn entry(&self, key: &FlowKey) -> Option<&Entry> {
        match V4Key::of(key) {
            Some(k) => self.v4.get(&k),
            None => self.other.get(key),
        }
    }

    fn entry_mut(&mut self, key: &FlowKey) -> Option<&mut Entry> {
        match V4Key::of(key) {
            Some(k) => self.v4.get_mut(&k),
            None => self.other.get_mut(key),
        }
    }

    /// The decision of a live binding at `time_ns`; an expired one is removed.
    pub(crate) fn get(&mut self, key: &FlowKey, time_ns: u64) -> Option<&NatDecision> {
        let e = *self.entry(key)?;
        if e.expires_ns > time_ns {
            return self.nat.list.get(e.nat as usize);
        }
        self.remove(key);
        None
    }

    pub(crate) fn remove(&mut self, key: &FlowKey) {
        match V4Key::of(key) {
            Some(k) => {
                self.v4.remove(&k);
            }
            None => {
                self.other.remove(key);
            }
        }
    }

    /// Keep a binding alive until at least `until_ns`.
    pub(crate) fn extend(&mut self, key: &FlowKey, until_ns: u64) {
        if let Some(e) = self.entry_mut(key) {
            e.expires_ns = e.expires_ns.max(until_ns);
        }
    }

    /// Remove the bindings that expired by `time_ns`.
    pub(crate) fn expire(&mut self, time_ns: u64) {
        while let Some(&(exp, k)) = self.expiry.front() {
            if exp > time_ns {
                break;
            }
            self.expiry.pop_front();
            match self.entry(&k).map(|e| e.expires_ns) {
                Some(e) if e <= time_ns => self.remove(&k),
                // Touched since: queue it again at its new expiry.
                Some(e) => self.expiry.push_back((e, k)),
                None => {}
            }
        }
        self.compact_decisions();
    }

    /// Store the NAT decision of a new connection until `expires_ns`.
    pub(crate) fn insert(&mut self, key: FlowKey, out: &Outcome, expires_ns: u64) {
        let nat = self.nat.intern(out);
        self.expiry.push_back((expires_ns, key));
        let e = Entry { expires_ns, nat };
        match V4Key::of(&key) {
            Some(k) => {
                self.v4.insert(k, e);
            }
            None => {
                self.other.insert(key, e);
            }
        }
    }

    /// A new rule set: decisions made from now on are keyed by its rules (bindings made under
    /// the old one keep theirs).
    pub(crate) fn new_ruleset(&mut self) {
        self.nat.generation = self.nat.generation.wrapping_add(1);
        self.nat.ids.clear();
    }

    /// Interned decisions outnumbering live bindings (connections to endpoints long gone, rule
    /// sets since replaced) are dropped, keeping memory proportional to the live bindings.
    fn compact_decisions(&mut self) {
        if self.nat.list.len() <= 4096 + 2 * self.len() {
            return;
        }
        let mut remap: HashMap<u32, u32, Fast> = HashMap::default();
        let mut kept = NatDecisions {
            generation: self.nat.generation,
            ..NatDecisions::default()
        };
        let old = std::mem::take(&mut self.nat.list);
        let entries = self.v4.values_mut().chain(self.other.values_mut());
        for e in entries {
            let id = *remap.entry(e.nat).or_insert_with(|| {
                let d = &old[e.nat as usize];
                kept.list.push(d.clone());
                kept.list.len() as u32 - 1
            });
            e.nat = id;
        }
        // Only decisions of the current rule set can be found again by key (older ones are
        // reached through their bindings only).
        let old_ids = std::mem::take(&mut self.nat.ids);
        for (k, id) in old_ids {
            if k.generation == kept.generation
                && let Some(&new_id) = remap.get(&id)
            {
                kept.ids.insert(k, new_id);
            }
        }
        self.nat = kept;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netfilter::eval::RuleAt;
    use crate::netfilter::model::{Protocol, TableName};

    fn key(i: u32) -> FlowKey {
        FlowKey {
            proto: Protocol::Tcp,
            src: IpAddr::V4((0xC633_0000 + i).into()),
            src_port: 40000,
            dst: "10.96.0.1".parse().unwrap(),
            dst_port: 80,
        }
    }

    fn dnat_to(chain: &Arc<str>, last_octet: u8, mark: u32) -> Outcome {
        let mut o = Outcome::new();
        o.mark = mark;
        o.dnat = Some(DnatResult {
            ip: IpAddr::V4([10, 128, 0, last_octet].into()),
            port: 8080,
            range: None,
            chain: chain.clone(),
            rule: RuleAt {
                table: TableName::Nat,
                chain: chain.clone(),
                rule: 2,
            },
        });
        o
    }

    #[test]
    fn connections_with_the_same_decision_share_it_and_expire() {
        let sep: Arc<str> = "KUBE-SEP-A".into();
        let mut ct = Conntrack::default();
        ct.new_ruleset();
        for i in 0..10 {
            ct.insert(key(i), &dnat_to(&sep, 5, 0x4000), 100 + i as u64);
        }
        assert_eq!((ct.len(), ct.nat.list.len()), (10, 1));
        let got = ct.get(&key(3), 50).unwrap();
        assert_eq!(
            got.dnat.as_ref().unwrap().ip,
            "10.128.0.5".parse::<IpAddr>().unwrap()
        );
        assert_eq!(got.mark, 0x4000);
        // An IPv6 connection lives in the other map.
        let mut v6 = key(0);
        v6.src = "2001:db8::1".parse().unwrap();
        ct.insert(v6, &dnat_to(&sep, 6, 0), 200);
        assert_eq!((ct.len(), ct.nat.list.len()), (11, 2));
        assert_eq!(ct.get(&v6, 150).unwrap().dnat.as_ref().unwrap().port, 8080);
        ct.expire(105);
        assert_eq!(ct.len(), 5);
        assert!(ct.get(&key(3), 105).is_none());
        ct.extend(&key(9), 1000);
        ct.expire(300);
        assert_eq!(ct.len(), 1, "only the extended binding is left");
        assert!(ct.get(&key(9), 999).is_some());
    }

    #[test]
    fn decisions_are_compacted_and_a_new_rule_set_keys_afresh() {
        let sep: Arc<str> = "KUBE-SEP-A".into();
        let mut ct = Conntrack::default();
        ct.new_ruleset();
        // 6000 distinct decisions (marks), all but the last 10 expire.
        for i in 0..6000u32 {
            ct.insert(
                key(i),
                &dnat_to(&sep, 5, i),
                if i < 5990 { 10 } else { 1000 },
            );
        }
        ct.expire(20);
        assert_eq!(ct.len(), 10);
        assert_eq!(ct.nat.list.len(), 10, "unreferenced decisions dropped");
        for i in 5990..6000 {
            assert_eq!(ct.get(&key(i), 20).unwrap().mark, i);
        }
        // Same decision after a reload: a new entry (rule identities belong to a rule set), and
        // the old binding keeps its own.
        ct.new_ruleset();
        ct.insert(key(7000), &dnat_to(&sep, 5, 5995), 1000);
        assert_eq!(ct.nat.list.len(), 11);
        assert_eq!(ct.get(&key(5995), 20).unwrap().mark, 5995);
        assert_eq!(ct.get(&key(7000), 20).unwrap().mark, 5995);
    }
}
