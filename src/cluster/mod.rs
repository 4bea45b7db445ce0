//! Cluster model: nodes, pods, zones, the load balancer (modes, hashes, backend pool) and loaders.

pub mod alb;
pub mod error;
pub mod infer;
pub mod jhash;
pub mod load;
pub mod maglev;
pub mod merge;
pub mod model;
pub mod provenance;

pub use alb::{
    AlbBucket, AlbConfig, AlbError, AlbFlowTable, AlbHash, AlbMode, AlbModel, AlbRoute, NodeName,
    ExternalTrafficPolicy, FlowKey, SessionAffinity,
};
pub use error::{Diagnostic, LoadError, LoadErrorKind, Severity};
pub use merge::ClusterBuilder;
pub use model::{Cluster, ClusterSource, IpRole, LoadBalancer, LoadBalancerSpec, Node, Pod};
pub use provenance::{Fact, Provenance, SourceKind, SourceRef};
