//! Netfilter engine: iptables-save parser, rule model, evaluator (exhaustive and stateful with
//! conntrack, `recent` and `statistic` state), kube-proxy service map and affinity rewrite.
//!
//! Brief overview:
//! * [`load`] / [`parse()`] / [`parse_lenient`] turn `iptables-save` text (either form) into a
//!   [`Ruleset`] ([`model`]); [`print::save`] prints it back exactly as `iptables-save` would.
//! * [`trace()`] (exhaustive) follows every `statistic` branch of one packet and returns a
//!   [`Trace`]: each reachable DNAT endpoint with its exact probability and its own path.
//! * [`NodeEvaluator`] (stateful) replays connections on one node: kernel-exact `statistic`
//!   draws from an injected [`RandomSource`], `recent` tables ([`recent`]), nth counters,
//!   conntrack NAT bindings; [`NodeEvaluator::new_connection_observed`] forces the branch a
//!   capture showed.
//! * [`kube`]: kube-proxy's standard jumps, chain-name hash, service map, affinity rewrite,
//!   rule writer and generator.
//!
//! Every rule tried is a [`PathStep`] (table, chain, 1-based rule number, the rule's text, matched
//! or why not); a rule the model cannot evaluate makes the verdict [`Verdict::Undecided`] with
//! that rule, never a guess.

pub mod index;
pub mod lexer;
pub mod model;
pub mod parse;
pub mod print;

pub use model::*;
pub use parse::{ParseError, parse, parse_lenient};
pub mod eval;
mod fast;
pub mod packet;
pub mod recent;
pub mod stateful;
pub mod trace;

pub use eval::{DecidedBy, DnatResult, Hook, Outcome, PathStep, RuleAt, SourceNat, Verdict};
pub use packet::{NodeContext, Origin, Packet};
pub use stateful::{ChaChaRandom, Decision, FlowKey, NodeEvaluator, NodeState, RandomSource};
pub use trace::{ReachableEndpoint, Trace, TraceOptions, trace};
pub mod kube;

/// Parse a rules file the way hoptrace's commands do: keep every line that parses (bad lines are
/// returned as errors), then, when the built-in chains lack kube-proxy's jumps, add them (with a
/// warning in [`Ruleset::warnings`]).
pub fn load(text: &[u8], source: &str) -> (Ruleset, Vec<ParseError>) {
    let (mut rs, errors) = parse_lenient(text, source);
    kube::add_standard_jumps(&mut rs);
    (rs, errors)
}
