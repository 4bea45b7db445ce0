//! kube-proxy knowledge: the jumps it installs outside its restore input, its chain-name hash,
//! the service map read back from rules, and the session-affinity rewrite.

pub mod affinity;
pub mod generate;
pub mod hash;
pub mod jumps;
pub mod services;
pub mod write;

pub use affinity::{
    AffinityError, DEFAULT_AFFINITY_TIMEOUT, set_session_affinity, set_session_affinity_text,
};
pub use jumps::{STANDARD_JUMPS, add_standard_jumps};
pub use services::{
    Frontend, FrontendKind, Layout, MasqueradeRule, ServiceChains, ServiceEndpoint, ServiceMap,
    ServicePort, TrafficPolicy, service_map,
};
