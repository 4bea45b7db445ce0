//! Journeys: for every captured HTTP request, the ALB decision, the chain path on the ingress node,
//! the endpoint and pod it reached, SNAT and cross-node/zone hops — each answer marked observed or
//! modelled — plus the sessionAffinity / ALB-mode what-if.

pub mod model;
pub mod snapshot;
pub mod stats;
pub mod tour;
pub mod correlate;
pub mod replay;
pub mod run;
pub mod scenario;
pub mod source;
