//! Maglev consistent hashing (Eisenbud et al., NSDI 2016, §3.4): a lookup table of prime size `M`
//! filled from per-backend permutations `(offset + j·skip) mod M`, so that each backend owns
//! ⌊M/N⌋ or ⌈M/N⌉ slots and a change of the pool moves few slots of the backends that stay.
//!
//! Azure's real hash is not public; this is one of the interchangeable *models* of it
//! (semantics.md §A2), seeded so that results are reproducible.

use super::jhash::jhash;

/// The paper's default table size (prime). Over 100× any realistic node count, which keeps the
/// slot-count imbalance between backends under 1%.
pub const DEFAULT_TABLE_SIZE: u32 = 65_537;

/// Largest accepted table size, so that a hostile `table_size` in a cluster file cannot make us
/// allocate gigabytes.
pub const MAX_TABLE_SIZE: u32 = 1 << 24;

// Distinct initvals for the two permutation hashes, derived from the model seed.
const OFFSET_SALT: u32 = 0x6d61_676c; // "magl"
const SKIP_SALT: u32 = 0x6576_736b; // "evsk"

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaglevError {
    #[error("Maglev table size {0} is not a prime number")]
    NotPrime(u32),
    #[error("Maglev table size {size} must be between 2 and {max}", max = MAX_TABLE_SIZE)]
    BadSize { size: u32 },
}

/// A filled Maglev lookup table: `slots[i]` is the index of the backend owning slot `i`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaglevTable {
    slots: Vec<u32>,
    backends: usize,
}

/// Deterministic primality test for the table sizes we accept (≤ 2^24): trial division.
pub fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) {
        return n == 2;
    }
    let mut d = 3u32;
    while u64::from(d) * u64::from(d) <= u64::from(n) {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

impl MaglevTable {
    /// Build the table for `backends` (their names, in pool order) with `size` slots.
    /// Backend names — not their positions — seed the permutations, so a backend keeps its
    /// preferences when others join or leave; that is what makes the disruption small.
    pub fn build<S: AsRef<str>>(backends: &[S], size: u32, seed: u32) -> Result<Self, MaglevError> {
        if !(2..=MAX_TABLE_SIZE).contains(&size) {
            return Err(MaglevError::BadSize { size });
        }
        if !is_prime(size) {
            return Err(MaglevError::NotPrime(size));
        }
        let m = size as usize;
        let n = backends.len();
        const EMPTY: u32 = u32::MAX;
        let mut slots = vec![EMPTY; if n == 0 { 0 } else { m }];
        if n == 0 {
            return Ok(Self { slots, backends: 0 });
        }
        let perms: Vec<(u64, u64)> = backends
            .iter()
            .map(|b| {
                let name = b.as_ref().as_bytes();
                let offset = jhash(name, seed ^ OFFSET_SALT) % size;
                let skip = jhash(name, seed ^ SKIP_SALT) % (size - 1) + 1;
                (u64::from(offset), u64::from(skip))
            })
            .collect();
        let mut next = vec![0u64; n];
        let mut filled = 0usize;
        let m64 = m as u64;
        'fill: loop {
            for (i, &(offset, skip)) in perms.iter().enumerate() {
                // M is prime and 1 ≤ skip < M, so the preference list is a full permutation and
                // this inner loop always finds an empty slot while any remain.
                let mut c = ((offset + next[i] * skip) % m64) as usize;
                while slots[c] != EMPTY {
                    next[i] += 1;
                    c = ((offset + next[i] * skip) % m64) as usize;
                }
                slots[c] = i as u32;
                next[i] += 1;
                filled += 1;
                if filled == m {
                    break 'fill;
                }
            }
        }
        Ok(Self { slots, backends: n })
    }

    /// Table size M (0 for an empty pool).
    pub fn size(&self) -> u32 {
        self.slots.len() as u32
    }

    pub fn backend_count(&self) -> usize {
        self.backends
    }

    /// Backend index for a 32-bit flow hash, `None` for an empty pool.
    #[inline]
    pub fn lookup(&self, flow_hash: u32) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        Some(self.slots[(flow_hash % self.slots.len() as u32) as usize])
    }

    /// The slot a flow hash falls into (the "bucket" shown to users).
    #[inline]
    pub fn slot(&self, flow_hash: u32) -> Option<u32> {
        if self.slots.is_empty() {
            None
        } else {
            Some(flow_hash % self.slots.len() as u32)
        }
    }

    /// How many slots each backend owns, by backend index.
    pub fn slot_counts(&self) -> Vec<u32> {
        let mut counts = vec![0u32; self.backends];
        for &s in &self.slots {
            counts[s as usize] += 1;
        }
        counts
    }

    pub fn slots(&self) -> &[u32] {
        &self.slots
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node{i}")).collect()
    }

    #[test]
    fn primes() {
        assert!(is_prime(2) && is_prime(251) && is_prime(4093) && is_prime(65_537));
        assert!(!is_prime(0) && !is_prime(1) && !is_prime(65_536) && !is_prime(4095));
    }

    #[test]
    fn rejects_bad_sizes() {
        assert_eq!(
            MaglevTable::build(&names(3), 100, 0),
            Err(MaglevError::NotPrime(100))
        );
        assert_eq!(
            MaglevTable::build(&names(3), 1, 0),
            Err(MaglevError::BadSize { size: 1 })
        );
        assert!(MaglevTable::build(&names(3), MAX_TABLE_SIZE + 1, 0).is_err());
    }

    #[test]
    fn every_backend_gets_floor_or_ceil_of_m_over_n() {
        for n in [1usize, 2, 3, 5, 7, 10] {
            let t = MaglevTable::build(&names(n), 65_537, 42).unwrap();
            let lo = 65_537 / n as u32;
            for c in t.slot_counts() {
                assert!(
                    c == lo || c == lo + 1,
                    "n={n}: {c} not in {lo}..={}",
                    lo + 1
                );
            }
        }
    }

    #[test]
    fn empty_pool_has_no_answer() {
        let t = MaglevTable::build::<String>(&[], 251, 0).unwrap();
        assert_eq!(t.lookup(123), None);
        assert_eq!(t.size(), 0);
    }

    /// Removing one backend: every slot it owned moves (it must), and only a small fraction of
    /// the other backends' slots move. The paper reports this as near-minimal, not minimal.
    #[test]
    fn removal_disrupts_few_slots_of_remaining_backends() {
        let before_names = names(10);
        let before = MaglevTable::build(&before_names, 65_537, 7).unwrap();
        let mut after_names = before_names.clone();
        after_names.remove(4);
        let after = MaglevTable::build(&after_names, 65_537, 7).unwrap();
        let mut kept_owner_moved = 0u32;
        let mut kept_owner_total = 0u32;
        for (s, &b) in before.slots().iter().enumerate() {
            let before_name = &before_names[b as usize];
            let after_name = &after_names[after.slots()[s] as usize];
            if b != 4 {
                kept_owner_total += 1;
                if before_name != after_name {
                    kept_owner_moved += 1;
                }
            } else {
                assert_ne!(after_name, "node4");
            }
        }
        let frac = f64::from(kept_owner_moved) / f64::from(kept_owner_total);
        assert!(
            frac < 0.03,
            "{:.2}% of surviving backends' slots moved",
            frac * 100.0
        );
    }

    /// Adding one backend: it takes ≈ M/(N+1) slots, and about N/(N+1) of the keys stay put.
    #[test]
    fn addition_keeps_most_keys() {
        let before_names = names(5);
        let mut after_names = before_names.clone();
        after_names.push("node-new".into());
        let before = MaglevTable::build(&before_names, 65_537, 1).unwrap();
        let after = MaglevTable::build(&after_names, 65_537, 1).unwrap();
        let same = (0..65_537usize)
            .filter(|&s| {
                before_names[before.slots()[s] as usize] == after_names[after.slots()[s] as usize]
            })
            .count();
        let frac = same as f64 / 65_537.0;
        // Ideal is 5/6 ≈ 0.833; allow the paper's small extra disruption.
        assert!(frac > 0.80 && frac <= 5.0 / 6.0 + 0.001, "kept {frac:.4}");
    }

    #[test]
    fn seed_changes_the_table_and_build_is_deterministic() {
        let a = MaglevTable::build(&names(3), 251, 1).unwrap();
        let b = MaglevTable::build(&names(3), 251, 2).unwrap();
        assert_ne!(a.slots(), b.slots());
        // Deterministic.
        assert_eq!(a, MaglevTable::build(&names(3), 251, 1).unwrap());
    }
}
