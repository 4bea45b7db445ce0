//! Netfilter engine: iptables-save parser, rule model, evaluator (exhaustive and stateful with
//! conntrack, `recent` and `statistic` state), kube-proxy service map and affinity rewrite.

pub mod index;
pub mod lexer;
pub mod model;
pub mod parse;
pub mod print;

pub use model::*;
pub use parse::{ParseError, parse, parse_lenient};
