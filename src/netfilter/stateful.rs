//! Stateful mode: replay connections on one node the way its kernel would.
//!
//! A [`NodeEvaluator`] holds one node's state — `recent` tables by name, `statistic --mode nth`
//! counters by rule, and conntrack NAT bindings by 5-tuple — and advances it with packet
//! timestamps. Each [`NodeEvaluator::new_connection`] walks the rules once, like the kernel does
//! for the first packet of a connection: `statistic` draws one 32-bit random number per rule
//! evaluated and matches when `(rand & 0x7FFFFFFF) < stored`; `recent` tables are set, refreshed,
//! evicted and reaped; the NAT decision is stored so that a retransmitted SYN (same 5-tuple)
//! reuses it without running the rules again.
//!
//! Randomness is injected ([`RandomSource`]): [`ChaChaRandom`] replays deterministically by seed.
//! When a capture shows which endpoint the kernel chose,
//! [`NodeEvaluator::new_connection_observed`] evaluates with the `statistic` decisions that lead
//! there, while still advancing `recent` and conntrack exactly as the kernel would.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::conntrack::Conntrack;
use super::eval::{self, Outcome, Verdict, WalkEnv, WalkOptions};
use super::model::{Match, Protocol, RecentMatch, Ruleset};
use super::packet::{NodeContext, Packet};
use super::recent::{RecentEvent, RecentTable};
use super::trace::{self, Trace, TraceOptions};

/// Where `statistic --mode random` gets its numbers (the kernel's `get_random_u32()`).
pub trait RandomSource {
    fn next_u32(&mut self) -> u32;
}

/// Seeded ChaCha8: the same seed replays the same choices.
#[derive(Debug, Clone)]
pub struct ChaChaRandom(ChaCha8Rng);

impl ChaChaRandom {
    pub fn seed(seed: u64) -> ChaChaRandom {
        ChaChaRandom(ChaCha8Rng::seed_from_u64(seed))
    }
}

impl RandomSource for ChaChaRandom {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
}

impl<F: FnMut() -> u32> RandomSource for F {
    fn next_u32(&mut self) -> u32 {
        self()
    }
}

/// The kernel's nth step: returns (matched, next counter). `every` as given on the command line.
pub fn nth_step(counter: u32, every: u32) -> (bool, u32) {
    let every_m1 = every - 1;
    let next = if counter == every_m1 { 0 } else { counter + 1 };
    (next == 0, next)
}

/// Connection key: protocol and the original-direction addresses and ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct FlowKey {
    pub proto: Protocol,
    pub src: IpAddr,
    pub src_port: u16,
    pub dst: IpAddr,
    pub dst_port: u16,
}

impl FlowKey {
    pub fn of(p: &Packet) -> FlowKey {
        FlowKey {
            proto: p.proto,
            src: p.src,
            src_port: p.src_port.unwrap_or(0),
            dst: p.dst,
            dst_port: p.dst_port,
        }
    }
}

/// A fast hasher for 5-tuples (multiply-rotate, as rustc's FxHash). Conntrack keys come from
/// captures, so a crafted capture could only slow its own replay down.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlowHasher(u64);

impl std::hash::Hasher for FlowHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(i as u64);
    }
    fn write_u16(&mut self, i: u16) {
        self.write_u64(i as u64);
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(i as u64);
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

/// How long conntrack keeps a NAT binding (kernel defaults as kube-proxy sets them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConntrackTimeouts {
    /// After the first packet, until [`NodeEvaluator::touch`] is called (SYN_SENT: 120 s).
    pub new_ns: u64,
    /// TCP after `touch` (kube-proxy's `--conntrack-tcp-timeout-established`, 24 h).
    pub tcp_established_ns: u64,
    /// UDP/SCTP after `touch` (UDP stream: 120 s).
    pub other_ns: u64,
}

impl Default for ConntrackTimeouts {
    fn default() -> Self {
        ConntrackTimeouts {
            new_ns: 120 * SECOND,
            tcp_established_ns: 86_400 * SECOND,
            other_ns: 120 * SECOND,
        }
    }
}

const SECOND: u64 = 1_000_000_000;

/// One node's netfilter state.
#[derive(Debug, Clone, Default)]
pub struct NodeState {
    recent: HashMap<Arc<str>, RecentTable>,
    nth: HashMap<u32, u32>,
    conntrack: Conntrack,
}

impl NodeState {
    /// State for a freshly loaded rule set: every recent table the rules name, empty, with the
    /// ring size the kernel would give it.
    pub fn for_ruleset(rs: &Ruleset) -> NodeState {
        let mut st = NodeState::default();
        st.adopt_ruleset(rs);
        st
    }

    /// Keep tables still named by the rules (a reload keeps them, as `iptables-restore` does),
    /// drop the others, create new ones.
    pub fn adopt_ruleset(&mut self, rs: &Ruleset) {
        let mut used: HashMap<Arc<str>, usize> = HashMap::new();
        for t in &rs.tables {
            for c in &t.chains {
                for r in &c.rules {
                    for m in &r.spec.matches {
                        if let Match::Recent(rm) = m {
                            let ring = RecentTable::ring_for(rm.hitcount);
                            let e = used.entry(rm.name.clone()).or_insert(ring);
                            *e = (*e).max(ring);
                        }
                    }
                }
            }
        }
        self.recent.retain(|k, _| used.contains_key(k));
        for (name, ring) in used {
            self.recent
                .entry(name.clone())
                .or_insert_with(|| RecentTable::new(name, ring))
                .ensure_ring(ring);
        }
        self.nth.clear();
        self.conntrack.new_ruleset();
    }

    pub fn recent_table(&self, name: &str) -> Option<&RecentTable> {
        self.recent.get(name)
    }

    /// All recent tables, by name.
    pub fn recent_tables(&self) -> impl Iterator<Item = (&Arc<str>, &RecentTable)> {
        self.recent.iter()
    }

    /// Current nth counter of a rule (its load-time value before the first packet).
    pub fn nth_counter(&self, gid: u32, every: u32, packet: u32) -> u32 {
        self.nth
            .get(&gid)
            .copied()
            .unwrap_or((every - 1).saturating_sub(packet))
    }

    /// Number of live conntrack bindings.
    pub fn connections(&self) -> usize {
        self.conntrack.len()
    }
}

/// The outcome of one new connection in stateful mode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub key: FlowKey,
    /// The walk (path, DNAT, masquerade, marks, recent events, statistic draws).
    pub outcome: Outcome,
    /// The 5-tuple was already tracked (e.g. a retransmitted SYN): the stored NAT decision (DNAT,
    /// MASQUERADE/SNAT, marks) was reused and no rule ran. `outcome.path` is then empty.
    pub reused: bool,
    /// The branch was forced to match an observed endpoint (see `new_connection_observed`).
    pub forced: bool,
}

impl Decision {
    /// Evictions from recent tables caused by this connection (affinity silently lost).
    pub fn evictions(&self) -> impl Iterator<Item = &RecentEvent> {
        self.outcome
            .recent_events
            .iter()
            .filter(|e| matches!(e.kind, super::recent::RecentEventKind::Evicted { .. }))
    }
}

/// The observed endpoint cannot be produced by the rules from the current state.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "observed endpoint {observed} is not reachable by the rules from the current state (reachable: {reachable})"
)]
pub struct NotReachable {
    pub observed: String,
    pub reachable: String,
    /// The exhaustive view of what the rules allow.
    pub trace: Box<Trace>,
}

struct LiveEnv<'s, R: RandomSource> {
    state: &'s mut NodeState,
    rng: &'s mut R,
    /// Forced statistic decisions (observed branch), consumed in order.
    script: Option<&'s [bool]>,
    pos: usize,
    time_ns: u64,
    hz: u32,
}

impl<R: RandomSource> WalkEnv for LiveEnv<'_, R> {
    fn random(&mut self, _gid: u32, stored: u32, invert: bool) -> (bool, Option<u32>, f64) {
        if let Some(s) = self.script {
            // Only true forks (0 < p < 1) are in the script, as the exhaustive walk records them.
            if let Some(certain) = eval::certain(eval::random_match_probability(stored, invert)) {
                return (certain, None, 1.0);
            }
            let hit = s.get(self.pos).copied().unwrap_or(false);
            self.pos += 1;
            return (hit, None, 1.0);
        }
        let r = self.rng.next_u32();
        let hit = ((r & 0x7FFF_FFFF) < stored) != invert;
        (hit, Some(r), 1.0)
    }

    fn nth(&mut self, gid: u32, every: u32, packet: u32, invert: bool) -> (bool, f64) {
        let cur = self.state.nth_counter(gid, every, packet);
        let (hit, next) = nth_step(cur, every);
        self.state.nth.insert(gid, next);
        (hit != invert, 1.0)
    }

    fn recent(
        &mut self,
        m: &RecentMatch,
        addr: IpAddr,
        ttl: u8,
        events: &mut Vec<RecentEvent>,
    ) -> bool {
        let table = self
            .state
            .recent
            .entry(m.name.clone())
            .or_insert_with(|| RecentTable::for_match(m));
        table.evaluate(m, addr, ttl, self.time_ns, self.hz, events)
    }
}

/// One node's netfilter, replaying connections in time order.
#[derive(Debug, Clone)]
pub struct NodeEvaluator<R: RandomSource = ChaChaRandom> {
    ruleset: Arc<Ruleset>,
    ctx: NodeContext,
    state: NodeState,
    rng: R,
    /// Record every rule tried (off for bulk replay).
    pub record_path: bool,
    pub timeouts: ConntrackTimeouts,
}

impl NodeEvaluator<ChaChaRandom> {
    /// An evaluator drawing from ChaCha8 seeded with `seed`.
    pub fn seeded(ruleset: Arc<Ruleset>, ctx: NodeContext, seed: u64) -> Self {
        NodeEvaluator::new(ruleset, ctx, ChaChaRandom::seed(seed))
    }
}

impl<R: RandomSource> NodeEvaluator<R> {
    pub fn new(ruleset: Arc<Ruleset>, ctx: NodeContext, rng: R) -> Self {
        let state = NodeState::for_ruleset(&ruleset);
        NodeEvaluator::with_state(ruleset, ctx, rng, state)
    }

    pub fn ruleset(&self) -> &Arc<Ruleset> {
        &self.ruleset
    }

    pub fn context(&self) -> &NodeContext {
        &self.ctx
    }

    pub fn state(&self) -> &NodeState {
        &self.state
    }

    /// Load another rule set (a kube-proxy resync): recent tables still named survive with their
    /// entries; conntrack bindings survive (established connections keep their DNAT).
    pub fn set_ruleset(&mut self, ruleset: Arc<Ruleset>) {
        self.state.adopt_ruleset(&ruleset);
        self.ruleset = ruleset;
    }

    fn lookup(&mut self, key: &FlowKey, time_ns: u64) -> Option<Decision> {
        let b = self.state.conntrack.get(key, time_ns)?;
        // A reused binding: no rule ran.
        let mut outcome = Outcome::new();
        outcome.verdict = b.verdict;
        outcome.dnat = b.dnat.clone();
        outcome.source_nat = b.source_nat.clone();
        outcome.local_delivery = b.local_delivery;
        outcome.mark = b.mark;
        outcome.ct_mark = b.ct_mark;
        Some(Decision {
            key: *key,
            outcome,
            reused: true,
            forced: false,
        })
    }

    fn remember(&mut self, key: FlowKey, out: &Outcome, time_ns: u64) {
        self.state.conntrack.expire(time_ns);
        if out.verdict != Verdict::Accept {
            // Dropped/rejected first packets do not create a confirmed conntrack entry.
            return;
        }
        let expires_ns = time_ns.saturating_add(self.timeouts.new_ns);
        self.state.conntrack.insert(key, out, expires_ns);
    }

    /// Walk the rules for a new connection (drawing, or following `script`'s forced
    /// `statistic` decisions) and store its NAT binding.
    fn walk_and_remember(
        &mut self,
        pkt: &Packet,
        key: FlowKey,
        time_ns: u64,
        script: Option<&[bool]>,
    ) -> Outcome {
        let mut env = LiveEnv {
            state: &mut self.state,
            rng: &mut self.rng,
            script,
            pos: 0,
            time_ns,
            hz: self.ctx.hz,
        };
        let out = eval::walk(
            &self.ruleset,
            &self.ctx,
            pkt,
            &mut env,
            WalkOptions {
                record_path: self.record_path,
            },
        );
        self.remember(key, &out, time_ns);
        out
    }

    /// The first packet of a connection at `time_ns`: walk the rules (or reuse the binding of a
    /// live connection with the same 5-tuple) and advance the node's state.
    pub fn new_connection(&mut self, pkt: &Packet, time_ns: u64) -> Decision {
        let key = FlowKey::of(pkt);
        if let Some(d) = self.lookup(&key, time_ns) {
            return d;
        }
        let out = self.walk_and_remember(pkt, key, time_ns, None);
        Decision {
            key,
            outcome: out,
            reused: false,
            forced: false,
        }
    }

    /// Like [`new_connection`](Self::new_connection), but a capture showed the connection reach
    /// `observed` (post-DNAT `ip:port`). The `statistic` decisions are taken so that the walk
    /// reaches it (the most probable such branch); `recent` tables, nth counters and conntrack
    /// advance exactly as the kernel's did. No random number is drawn. Fails when no branch from
    /// the current state reaches `observed` (e.g. affinity pins the client elsewhere), leaving
    /// the state unchanged.
    pub fn new_connection_observed(
        &mut self,
        pkt: &Packet,
        time_ns: u64,
        observed: (IpAddr, u16),
    ) -> Result<Decision, NotReachable> {
        let key = FlowKey::of(pkt);
        if let Some(d) = self.lookup(&key, time_ns) {
            if d.outcome
                .dnat
                .as_ref()
                .is_some_and(|x| (x.ip, x.port) == observed)
            {
                return Ok(d);
            }
            // The capture contradicts the stored binding: treat as a new connection (the old
            // entry must have died without us seeing it).
            self.state.conntrack.remove(&key);
        }
        // Only the branches' statistic decisions are needed here, not their paths.
        let tr = trace::trace(
            &self.ruleset,
            &self.ctx,
            pkt,
            TraceOptions {
                max_outcomes: 4096,
                time_ns,
                state: Some(&self.state),
                record_path: false,
            },
        );
        let best = tr
            .outcomes
            .iter()
            .enumerate()
            .filter(|(_, o)| o.dnat.as_ref().is_some_and(|d| (d.ip, d.port) == observed))
            .max_by(|a, b| a.1.probability.total_cmp(&b.1.probability));
        let Some((_, chosen)) = best else {
            let reachable = tr
                .endpoints
                .iter()
                .map(|e| eval::fmt_sock(e.ip, e.port))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(NotReachable {
                observed: eval::fmt_sock(observed.0, observed.1),
                reachable: if reachable.is_empty() {
                    "none".into()
                } else {
                    reachable
                },
                trace: Box::new(tr),
            });
        };
        let script: Vec<bool> = chosen
            .statistic
            .iter()
            .filter(|s| s.probability < 1.0)
            .map(|s| s.matched)
            .collect();
        let out = self.walk_and_remember(pkt, key, time_ns, Some(&script));
        Ok(Decision {
            key,
            outcome: out,
            reused: false,
            forced: true,
        })
    }

    /// Every branch the next new connection of `pkt` could take from the current state, with
    /// probabilities (read-only).
    pub fn preview(&self, pkt: &Packet, time_ns: u64) -> Trace {
        trace::trace(
            &self.ruleset,
            &self.ctx,
            pkt,
            TraceOptions {
                max_outcomes: 4096,
                time_ns,
                state: Some(&self.state),
                record_path: true,
            },
        )
    }

    /// A later packet of a live connection: keeps its binding alive (as conntrack's timers do).
    pub fn touch(&mut self, key: &FlowKey, time_ns: u64) {
        let t = if key.proto == Protocol::Tcp {
            self.timeouts.tcp_established_ns
        } else {
            self.timeouts.other_ns
        };
        self.state.conntrack.extend(key, time_ns.saturating_add(t));
    }

    /// The connection ended (FIN/RST seen): the next SYN with this 5-tuple is a new connection.
    pub fn close_connection(&mut self, key: &FlowKey) {
        self.state.conntrack.remove(key);
    }
}

/// Scripted replay and shared start states (added for the journey layer's bulk replay).
impl<R: RandomSource> NodeEvaluator<R> {
    /// An evaluator starting from `state` instead of scanning the rules for it: many nodes that
    /// share one rule set clone one `NodeState::for_ruleset(&rs)`.
    pub fn with_state(ruleset: Arc<Ruleset>, ctx: NodeContext, rng: R, state: NodeState) -> Self {
        NodeEvaluator {
            ruleset,
            ctx,
            state,
            rng,
            record_path: true,
            timeouts: ConntrackTimeouts::default(),
        }
    }

    /// A new connection whose `statistic` decisions are given (true forks only, in order, as
    /// [`Decision::outcome`]'s `statistic` of an earlier forced decision lists them): `recent`
    /// tables, nth counters and conntrack advance as in [`new_connection`](Self::new_connection).
    /// The caller checks the result (e.g. with [`super::trace::follow`] first); no random number
    /// is drawn.
    pub fn new_connection_scripted(
        &mut self,
        pkt: &Packet,
        time_ns: u64,
        script: &[bool],
    ) -> Decision {
        let key = FlowKey::of(pkt);
        if let Some(d) = self.lookup(&key, time_ns) {
            return d;
        }
        let outcome = self.walk_and_remember(pkt, key, time_ns, Some(script));
        Decision {
            key,
            outcome,
            reused: false,
            forced: true,
        }
    }
}
