//! Exhaustive mode: every branch a packet can take, with its exact probability.
//!
//! This is the semantics of kube-proxy's own test tracer (follow every `statistic` branch),
//! made exact: a random-mode rule matches with probability `stored / 2^31` (the kernel's stored
//! integer), so for the cascade `1/3, 1/2, -` the endpoints get `q0`, `(1-q0)·q1`,
//! `(1-q0)(1-q1)`. The walk is replayed once per branch (depth-first over the decisions), which
//! keeps the walker a plain function and makes every branch's path complete.
//!
//! `recent` lookups see the node's state when one is given (read-only: each branch works on its
//! own copy of the tables it touches), otherwise empty tables, so a traced packet behaves like the
//! first connection of a new client. `statistic --mode nth` follows the node's counters when
//! state is given, otherwise it branches with probability `1/every`.

use serde::Serialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::eval::{self, DecidedBy, Outcome, PathStep, Verdict, WalkEnv, WalkOptions};
use super::model::{RecentMatch, Ruleset};
use super::packet::{NodeContext, Packet};
use super::recent::{RecentEvent, RecentTable};
use super::stateful::NodeState;

/// Options of an exhaustive trace.
#[derive(Debug, Clone, Copy)]
pub struct TraceOptions<'s> {
    /// Stop after this many branches (the trace is then marked truncated).
    pub max_outcomes: usize,
    /// Packet time (for `recent --seconds` against `state`).
    pub time_ns: u64,
    /// The node's state, for `recent` and `nth`; `None` = a fresh node.
    pub state: Option<&'s NodeState>,
    pub record_path: bool,
}

impl Default for TraceOptions<'_> {
    fn default() -> Self {
        TraceOptions {
            max_outcomes: 4096,
            time_ns: 0,
            state: None,
            record_path: true,
        }
    }
}

/// A reachable DNAT endpoint, over all branches that reach it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReachableEndpoint {
    pub ip: IpAddr,
    pub port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
    pub probability: f64,
    /// The chain holding the DNAT rule (KUBE-SEP-…).
    pub chain: Arc<str>,
    /// Branches reaching it are masqueraded (MASQUERADE/SNAT in POSTROUTING).
    pub masquerade: bool,
    /// Index into [`Trace::outcomes`] of the most probable branch reaching it (its path).
    pub outcome: usize,
}

/// Everything that can happen to one packet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trace {
    /// The most probable verdict.
    pub verdict: Verdict,
    pub decided_by: Option<DecidedBy>,
    pub endpoints: Vec<ReachableEndpoint>,
    /// Some branch is masqueraded.
    pub masquerade: bool,
    /// Path of the most probable branch.
    pub path: Vec<PathStep>,
    /// Every branch, in decision order (statistic matched first).
    pub outcomes: Vec<Outcome>,
    /// More than `max_outcomes` branches exist; probabilities do not sum to 1.
    pub truncated: bool,
}

impl Trace {
    /// Probability that the packet is DNATed to `ip:port`.
    pub fn probability_of(&self, ip: IpAddr, port: u16) -> f64 {
        self.endpoints
            .iter()
            .filter(|e| e.ip == ip && e.port == port)
            .map(|e| e.probability)
            .sum()
    }
}

/// Branching environment: replays a fixed prefix of decisions, then takes "match" first.
struct ForkEnv<'s> {
    script: Vec<bool>,
    pos: usize,
    state: Option<&'s NodeState>,
    tables: HashMap<Arc<str>, RecentTable>,
    nth: HashMap<u32, u32>,
    time_ns: u64,
    hz: u32,
}

impl ForkEnv<'_> {
    fn fork(&mut self, p_match: f64) -> (bool, f64) {
        if let Some(certain) = eval::certain(p_match) {
            return (certain, 1.0);
        }
        let choice = match self.script.get(self.pos) {
            Some(&c) => c,
            None => {
                self.script.push(true);
                true
            }
        };
        self.pos += 1;
        (choice, if choice { p_match } else { 1.0 - p_match })
    }
}

impl WalkEnv for ForkEnv<'_> {
    fn random(&mut self, _gid: u32, stored: u32, invert: bool) -> (bool, Option<u32>, f64) {
        let (hit, p) = self.fork(eval::random_match_probability(stored, invert));
        (hit, None, p)
    }

    fn nth(&mut self, gid: u32, every: u32, packet: u32, invert: bool) -> (bool, f64) {
        match self.state {
            Some(st) => {
                let counter = self
                    .nth
                    .entry(gid)
                    .or_insert_with(|| st.nth_counter(gid, every, packet));
                let (hit, next) = super::stateful::nth_step(*counter, every);
                *counter = next;
                (hit != invert, 1.0)
            }
            None => {
                let q = 1.0 / every as f64;
                self.fork(if invert { 1.0 - q } else { q })
            }
        }
    }

    fn recent(
        &mut self,
        m: &RecentMatch,
        addr: IpAddr,
        ttl: u8,
        events: &mut Vec<RecentEvent>,
    ) -> bool {
        let state = self.state;
        let table = self.tables.entry(m.name.clone()).or_insert_with(|| {
            state
                .and_then(|s| s.recent_table(&m.name).cloned())
                .unwrap_or_else(|| RecentTable::for_match(m))
        });
        table.evaluate(m, addr, ttl, self.time_ns, self.hz, events)
    }
}

/// Every branch of `pkt` through `rs` on the node `ctx`.
pub fn trace(rs: &Ruleset, ctx: &NodeContext, pkt: &Packet, opts: TraceOptions<'_>) -> Trace {
    let mut outcomes = Vec::new();
    let mut script: Vec<bool> = Vec::new();
    let mut truncated = false;
    loop {
        let mut env = ForkEnv {
            script,
            pos: 0,
            state: opts.state,
            tables: HashMap::new(),
            nth: HashMap::new(),
            time_ns: opts.time_ns,
            hz: ctx.hz,
        };
        let out = eval::walk(
            rs,
            ctx,
            pkt,
            &mut env,
            WalkOptions {
                record_path: opts.record_path,
            },
        );
        outcomes.push(out);
        let mut s = env.script;
        // Only the decisions actually made in this walk count (a shorter branch ignores the rest).
        s.truncate(env.pos);
        while s.last() == Some(&false) {
            s.pop();
        }
        match s.last_mut() {
            Some(last) => *last = false,
            None => break,
        }
        if outcomes.len() >= opts.max_outcomes {
            truncated = true;
            break;
        }
        script = s;
    }
    summarize(outcomes, truncated)
}

/// One branch, read-only: the walk that takes the given `statistic` decisions (true forks only,
/// in order; "match" past the end) against `state`. The journey replay uses it to check a
/// remembered branch before replaying it for real with
/// [`super::stateful::NodeEvaluator::new_connection_scripted`].
pub fn follow(
    rs: &Ruleset,
    ctx: &NodeContext,
    pkt: &Packet,
    state: Option<&NodeState>,
    time_ns: u64,
    script: &[bool],
) -> Outcome {
    let mut env = ForkEnv {
        script: script.to_vec(),
        pos: 0,
        state,
        tables: HashMap::new(),
        nth: HashMap::new(),
        time_ns,
        hz: ctx.hz,
    };
    eval::walk(rs, ctx, pkt, &mut env, WalkOptions { record_path: false })
}

fn summarize(outcomes: Vec<Outcome>, truncated: bool) -> Trace {
    let mut endpoints: Vec<ReachableEndpoint> = Vec::new();
    for (i, o) in outcomes.iter().enumerate() {
        let Some(d) = &o.dnat else { continue };
        if !matches!(o.verdict, Verdict::Accept) && o.verdict != Verdict::Undecided {
            // Dropped after DNAT: the endpoint is not reached.
            continue;
        }
        match endpoints
            .iter_mut()
            .find(|e| e.ip == d.ip && e.port == d.port && e.chain == d.chain && e.range == d.range)
        {
            Some(e) => {
                if o.probability > outcomes[e.outcome].probability {
                    e.outcome = i;
                }
                e.probability += o.probability;
                e.masquerade |= o.masquerade();
            }
            None => endpoints.push(ReachableEndpoint {
                ip: d.ip,
                port: d.port,
                range: d.range.clone(),
                probability: o.probability,
                chain: d.chain.clone(),
                masquerade: o.masquerade(),
                outcome: i,
            }),
        }
    }
    // Most probable verdict (ties: the first in branch order).
    let mut by_verdict: Vec<(Verdict, f64, usize)> = Vec::new();
    for (i, o) in outcomes.iter().enumerate() {
        match by_verdict.iter_mut().find(|(v, _, _)| *v == o.verdict) {
            Some(x) => x.1 += o.probability,
            None => by_verdict.push((o.verdict, o.probability, i)),
        }
    }
    let (verdict, _, first) = by_verdict
        .iter()
        .copied()
        .fold(None::<(Verdict, f64, usize)>, |best, x| match best {
            Some(b) if b.1 >= x.1 => Some(b),
            _ => Some(x),
        })
        .unwrap_or((Verdict::Accept, 1.0, 0));
    let best = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| o.verdict == verdict)
        .fold(first, |b, (i, o)| {
            if o.probability > outcomes[b].probability {
                i
            } else {
                b
            }
        });
    Trace {
        verdict,
        decided_by: outcomes.get(best).and_then(|o| o.decided_by.clone()),
        masquerade: outcomes
            .iter()
            .any(|o| o.masquerade() && o.verdict == Verdict::Accept),
        path: outcomes
            .get(best)
            .map(|o| o.path.clone())
            .unwrap_or_default(),
        endpoints,
        outcomes,
        truncated,
    }
}
