//! Journeys: for every captured HTTP request, the ALB decision, the chain path on the ingress node,
//! the endpoint and pod it reached, SNAT and cross-node/zone hops — each answer marked observed or
//! modelled — plus the sessionAffinity / ALB-mode what-if.
//!
//! * [`scenario`] — everything one run knows ([`scenario::Scenario`]): captures attributed to
//!   nodes or clients, one rule set per node, the merged cluster; inference of what is missing.
//! * [`correlate`] — stitching: one [`correlate::Flow`] per client connection across captures and
//!   NAT, by TCP initial sequence numbers.
//! * [`replay`] — per connection in time order: the ALB model beside the observed node, the
//!   stateful netfilter replay on the ingress node (forced to what captures show), endpoint
//!   evidence, SNAT, pod, crossings.
//! * [`run`] — a whole run: records per HTTP request, the what-if, balance statistics.
//! * [`source`] — the UI's [`snapshot::SnapshotSource`] over a scenario.
//! * [`model`] — the `RequestJourney` record (report JSON contract); [`snapshot`], [`tour`] —
//!   the UI data contract; [`stats`] — chi-squared goodness of fit.

pub mod correlate;
pub mod model;
pub mod replay;
pub mod run;
pub mod scenario;
pub mod snapshot;
pub mod source;
pub mod stats;
pub mod tour;
