//! `xt_recent` tables, as `net/netfilter/xt_recent.c` keeps them (see
//! `shared/research/semantics.md` §D):
//!
//! * one table per `--name` per node (network namespace), at most [`IP_LIST_TOT`] = 100 entries;
//!   inserting the 101st address evicts the least recently *set or updated* entry, however fresh;
//! * each entry keeps a ring of timestamps in jiffies (32 by default, or the next power of two of
//!   the largest `--hitcount` of the rules using the table);
//! * `--rcheck` never refreshes; `--set` (and `--update` when it matches) adds a stamp and moves
//!   the entry to the LRU tail;
//! * `--reap` removes at most one entry per evaluation, the LRU head, and only if its newest stamp
//!   is older than the window, and never the entry about to be updated;
//! * a lookup that finds nothing never reaps.
//!
//! Time is given in nanoseconds and converted to jiffies with the node's `HZ` (default 250), so
//! window boundaries fall where the kernel's do (to within the unknown jiffy phase at boot).

use serde::Serialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::model::{RecentMatch, RecentOp};

/// Kernel module parameter `ip_list_tot`: entries per table.
pub const IP_LIST_TOT: usize = 100;

/// Default timestamp ring size (`ip_pkt_list_tot` = 0 on current kernels).
pub const DEFAULT_STAMPS: usize = 32;

/// Nanoseconds → jiffies at `hz`.
pub fn jiffies(time_ns: u64, hz: u32) -> i64 {
    ((time_ns as u128 * hz as u128) / 1_000_000_000u128) as i64
}

/// What happened to a recent table while a packet was evaluated. The UI shows these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecentEvent {
    /// The table (`--name`), e.g. the KUBE-SEP chain name.
    pub table: Arc<str>,
    pub addr: IpAddr,
    pub kind: RecentEventKind,
    /// Packet time, ns.
    pub time_ns: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum RecentEventKind {
    /// A new entry (`--set` on an unknown address).
    Added,
    /// A stamp was added to an existing entry (`--set`, or a matching `--update`).
    Refreshed,
    /// Pushed out because the table was full; `last_seen_ns` is when it was last set or updated.
    Evicted { last_seen_ns: u64 },
    /// Removed by `--reap`: older than `--seconds`.
    Reaped { last_seen_ns: u64 },
    /// Removed by `--remove`.
    Removed,
}

#[derive(Debug, Clone)]
pub struct RecentEntry {
    pub addr: IpAddr,
    pub ttl: u8,
    /// Ring of stamps (jiffies); `nstamps` of them are filled.
    stamps: Vec<i64>,
    /// One past the slot written last (1..=ring size).
    index: usize,
    nstamps: usize,
    /// Position in the LRU order (larger = more recently set/updated).
    lru: u64,
    /// Time of the last set/update, ns (for display).
    pub last_seen_ns: u64,
}

impl RecentEntry {
    /// The newest stamp, jiffies.
    pub fn newest(&self) -> i64 {
        self.stamps[self.index - 1]
    }
    /// Stored stamps, oldest slot first in ring order.
    pub fn stamps(&self) -> &[i64] {
        &self.stamps[..self.nstamps]
    }
}

/// One `xt_recent` table.
#[derive(Debug, Clone)]
pub struct RecentTable {
    pub name: Arc<str>,
    entries: HashMap<IpAddr, RecentEntry>,
    ring: usize,
    next_lru: u64,
    capacity: usize,
}

impl RecentTable {
    pub fn new(name: Arc<str>, ring: usize) -> RecentTable {
        RecentTable {
            name,
            entries: HashMap::new(),
            ring: ring.max(1),
            next_lru: 0,
            capacity: IP_LIST_TOT,
        }
    }

    /// A table with a different `ip_list_tot` (module parameter).
    pub fn with_capacity(mut self, capacity: usize) -> RecentTable {
        self.capacity = capacity.max(1);
        self
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, addr: &IpAddr) -> Option<&RecentEntry> {
        self.entries.get(addr)
    }

    /// Entries from least to most recently set/updated (eviction order).
    pub fn entries_lru(&self) -> Vec<&RecentEntry> {
        let mut v: Vec<_> = self.entries.values().collect();
        v.sort_by_key(|e| e.lru);
        v
    }

    /// The ring size a rule needs (kernel `recent_mt_check`).
    pub fn ring_for(hitcount: Option<u32>) -> usize {
        match hitcount {
            Some(h) if h > 0 => (h as usize).next_power_of_two(),
            _ => DEFAULT_STAMPS,
        }
    }

    /// Grow the ring; like the kernel, growing flushes the table.
    pub fn ensure_ring(&mut self, ring: usize) {
        if ring > self.ring {
            self.ring = ring;
            self.entries.clear();
        }
    }

    fn lru_head(&self) -> Option<IpAddr> {
        self.entries.values().min_by_key(|e| e.lru).map(|e| e.addr)
    }

    fn touch(&mut self, addr: &IpAddr, now_j: i64, now_ns: u64, ttl: u8) {
        let lru = self.next_lru;
        self.next_lru += 1;
        let ring = self.ring;
        if let Some(e) = self.entries.get_mut(addr) {
            e.index %= ring;
            if e.stamps.len() < ring {
                e.stamps.resize(ring, 0);
            }
            e.stamps[e.index] = now_j;
            e.index += 1;
            if e.index > e.nstamps {
                e.nstamps = e.index;
            }
            e.lru = lru;
            e.ttl = ttl;
            e.last_seen_ns = now_ns;
        }
    }

    fn insert(
        &mut self,
        addr: IpAddr,
        ttl: u8,
        now_j: i64,
        now_ns: u64,
        events: &mut Vec<RecentEvent>,
    ) {
        if self.entries.len() >= self.capacity
            && let Some(head) = self.lru_head()
            && let Some(old) = self.entries.remove(&head)
        {
            events.push(RecentEvent {
                table: self.name.clone(),
                addr: old.addr,
                kind: RecentEventKind::Evicted {
                    last_seen_ns: old.last_seen_ns,
                },
                time_ns: now_ns,
            });
        }
        let mut stamps = vec![0; self.ring];
        stamps[0] = now_j;
        let lru = self.next_lru;
        self.next_lru += 1;
        self.entries.insert(
            addr,
            RecentEntry {
                addr,
                ttl,
                stamps,
                index: 1,
                nstamps: 1,
                lru,
                last_seen_ns: now_ns,
            },
        );
        events.push(RecentEvent {
            table: self.name.clone(),
            addr,
            kind: RecentEventKind::Added,
            time_ns: now_ns,
        });
    }

    /// Evaluate one `recent` match (the kernel's `recent_mt`). `addr` is already masked; `ttl` is
    /// the packet's TTL as the match sees it. Returns whether the match matches.
    pub fn evaluate(
        &mut self,
        m: &RecentMatch,
        addr: IpAddr,
        ttl: u8,
        now_ns: u64,
        hz: u32,
        events: &mut Vec<RecentEvent>,
    ) -> bool {
        let now_j = jiffies(now_ns, hz);
        let mut ret = m.invert;
        let found =
            matches!(self.entries.get(&addr), Some(e) if !m.rttl || e.ttl == ttl || e.ttl == 0);
        if !found {
            if m.op != RecentOp::Set {
                return ret;
            }
            self.insert(addr, ttl, now_j, now_ns, events);
            return !ret;
        }
        match m.op {
            RecentOp::Set => ret = !ret,
            RecentOp::Remove => {
                self.entries.remove(&addr);
                events.push(RecentEvent {
                    table: self.name.clone(),
                    addr,
                    kind: RecentEventKind::Removed,
                    time_ns: now_ns,
                });
                return !ret;
            }
            RecentOp::Rcheck | RecentOp::Update => {
                let seconds = m.seconds.unwrap_or(0);
                let window = now_j - seconds as i64 * hz as i64;
                let e = &self.entries[&addr];
                let mut hits = 0u32;
                for &s in &e.stamps[..e.nstamps] {
                    if seconds != 0 && s < window {
                        continue;
                    }
                    hits += 1;
                    if m.hitcount.unwrap_or(0) == 0 || hits >= m.hitcount.unwrap_or(0) {
                        ret = !ret;
                        break;
                    }
                }
                if m.reap {
                    let updating = m.op == RecentOp::Update && ret;
                    if let Some(head) = self.lru_head()
                        && !(head == addr && updating)
                    {
                        let h = &self.entries[&head];
                        if h.newest() < window {
                            let last = h.last_seen_ns;
                            self.entries.remove(&head);
                            events.push(RecentEvent {
                                table: self.name.clone(),
                                addr: head,
                                kind: RecentEventKind::Reaped { last_seen_ns: last },
                                time_ns: now_ns,
                            });
                        }
                    }
                }
            }
        }
        if (m.op == RecentOp::Set || (m.op == RecentOp::Update && ret))
            && self.entries.contains_key(&addr)
        {
            self.touch(&addr, now_j, now_ns, ttl);
            events.push(RecentEvent {
                table: self.name.clone(),
                addr,
                kind: RecentEventKind::Refreshed,
                time_ns: now_ns,
            });
        }
        ret
    }
}

/// Apply a recent match's `--mask` to an address.
pub fn masked(addr: IpAddr, mask: Option<IpAddr>) -> IpAddr {
    match (addr, mask) {
        (IpAddr::V4(a), Some(IpAddr::V4(m))) => IpAddr::V4((a.to_bits() & m.to_bits()).into()),
        (IpAddr::V6(a), Some(IpAddr::V6(m))) => IpAddr::V6((a.to_bits() & m.to_bits()).into()),
        _ => addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HZ: u32 = 250;
    const S: u64 = 1_000_000_000;

    fn m(op: RecentOp, seconds: Option<u32>, reap: bool, hitcount: Option<u32>) -> RecentMatch {
        RecentMatch {
            op,
            invert: false,
            seconds,
            reap,
            hitcount,
            rttl: false,
            name: "T".into(),
            mask: None,
            rdest: false,
        }
    }

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4((0x0a00_0000 + n).into())
    }

    #[test]
    fn rcheck_never_refreshes_and_seconds_window_is_inclusive() {
        let mut t = RecentTable::new("T".into(), 32);
        let mut ev = Vec::new();
        assert!(t.evaluate(
            &m(RecentOp::Set, None, false, None),
            ip(1),
            64,
            0,
            HZ,
            &mut ev
        ));
        let rc = m(RecentOp::Rcheck, Some(10), true, None);
        assert!(t.evaluate(&rc, ip(1), 64, 5 * S, HZ, &mut ev));
        // Exactly at the window start still counts; rcheck at 5 s did not move it.
        assert!(t.evaluate(&rc, ip(1), 64, 10 * S, HZ, &mut ev));
        assert!(!t.evaluate(&rc, ip(1), 64, 10 * S + S / HZ as u64, HZ, &mut ev));
        // …and --reap removed the stale entry (it is the LRU head).
        assert!(t.get(&ip(1)).is_none());
        assert!(matches!(
            ev.last().unwrap().kind,
            RecentEventKind::Reaped { .. }
        ));
    }

    #[test]
    fn the_101st_address_evicts_the_least_recently_set() {
        let mut t = RecentTable::new("T".into(), 32);
        let mut ev = Vec::new();
        let set = m(RecentOp::Set, None, false, None);
        for i in 0..100 {
            t.evaluate(&set, ip(i), 64, i as u64 * S, HZ, &mut ev);
        }
        // Refresh the oldest; rcheck on the second oldest must not save it.
        t.evaluate(&set, ip(0), 64, 200 * S, HZ, &mut ev);
        t.evaluate(
            &m(RecentOp::Rcheck, None, false, None),
            ip(1),
            64,
            201 * S,
            HZ,
            &mut ev,
        );
        ev.clear();
        t.evaluate(&set, ip(500), 64, 202 * S, HZ, &mut ev);
        assert_eq!(t.len(), 100);
        assert!(t.get(&ip(1)).is_none() && t.get(&ip(0)).is_some());
        assert_eq!(ev[0].kind, RecentEventKind::Evicted { last_seen_ns: S });
    }

    #[test]
    fn hitcount_counts_stamps_in_window_and_update_refreshes_only_on_match() {
        let mut t = RecentTable::new("T".into(), RecentTable::ring_for(Some(3)));
        let mut ev = Vec::new();
        let set = m(RecentOp::Set, None, false, None);
        let upd = m(RecentOp::Update, Some(60), false, Some(3));
        t.evaluate(&set, ip(1), 64, 0, HZ, &mut ev);
        assert!(!t.evaluate(&upd, ip(1), 64, S, HZ, &mut ev)); // 1 stamp, no refresh
        t.evaluate(&set, ip(1), 64, 2 * S, HZ, &mut ev);
        t.evaluate(&set, ip(1), 64, 3 * S, HZ, &mut ev);
        assert!(t.evaluate(&upd, ip(1), 64, 4 * S, HZ, &mut ev)); // 3 stamps in window
        assert_eq!(t.get(&ip(1)).unwrap().stamps().len(), 4); // ring of 4, the update added one
    }

    #[test]
    fn lookup_miss_does_not_reap() {
        let mut t = RecentTable::new("T".into(), 32);
        let mut ev = Vec::new();
        t.evaluate(
            &m(RecentOp::Set, None, false, None),
            ip(1),
            64,
            0,
            HZ,
            &mut ev,
        );
        assert!(!t.evaluate(
            &m(RecentOp::Rcheck, Some(1), true, None),
            ip(2),
            64,
            100 * S,
            HZ,
            &mut ev
        ));
        assert!(t.get(&ip(1)).is_some());
    }
}
