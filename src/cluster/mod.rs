//! Cluster model: nodes, pods, zones, the load balancer (modes, hashes, backend pool) and loaders.

pub mod alb;
pub mod jhash;
pub mod maglev;

pub use alb::{
    AlbBucket, AlbConfig, AlbError, AlbFlowTable, AlbHash, AlbMode, AlbModel, AlbRoute,
    ExternalTrafficPolicy, FlowKey, SessionAffinity,
};
