//! Cluster model: nodes, pods, zones, the load balancer (modes, hashes, backend pool) and loaders.
//!
//! * [`model`] — [`Cluster`] (nodes, pods, clients, load balancer; lookups) and the per-input
//!   [`ClusterSource`]; every value is a [`Fact`] with its [`Provenance`].
//! * [`load`] — cluster.toml, kubectl text/JSON, `route -n`/`ip route` loaders and sniffers.
//! * [`merge`] — [`ClusterBuilder`]: merge sources (conflicts become warnings), then infer.
//! * [`infer`] — pure inference helpers (pod CIDRs, masqueraded node IPs, capture ownership).
//! * [`alb`] — the load-balancer model ([`AlbModel`], [`AlbFlowTable`]) over [`jhash`] (nft,
//!   bit-exact) and [`maglev`] tables.

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
    AlbBucket, AlbConfig, AlbError, AlbFlowTable, AlbHash, AlbMode, AlbModel, AlbRoute,
    ExternalTrafficPolicy, FlowKey, NodeName, SessionAffinity,
};
pub use error::{Diagnostic, LoadError, LoadErrorKind, Severity};
pub use merge::ClusterBuilder;
pub use model::{
    Client, Cluster, ClusterSource, IpRole, LoadBalancer, LoadBalancerSpec, Node, Pod,
};
pub use provenance::{Fact, Provenance, SourceKind, SourceRef};
