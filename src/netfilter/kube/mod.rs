//! kube-proxy knowledge: the jumps it installs outside its restore input, its chain-name hash,
//! the service map read back from rules, and the session-affinity rewrite.

pub mod jumps;

pub use jumps::{STANDARD_JUMPS, add_standard_jumps};
