//! Netfilter engine: iptables-save parser, rule model, evaluator (exhaustive and stateful with
//! conntrack, `recent` and `statistic` state), kube-proxy service map and affinity rewrite.

pub mod index;
pub mod lexer;
pub mod model;
pub mod parse;
pub mod print;

pub use model::*;
pub use parse::{ParseError, parse, parse_lenient};
pub mod eval;
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
