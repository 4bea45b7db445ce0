//! hoptrace: how Kubernetes load balancing treated real traffic.
//!
//! Layers, one-directional (each may use only those above it in this list):
//!
//! * [`capture`]   — bytes → packets → connections → HTTP requests (no I/O beyond reading inputs)
//! * [`netfilter`] — iptables-save model, parser, evaluator with conntrack/recent/statistic state
//! * [`cluster`]   — nodes, pods, zones, the load-balancer model and its hashes, loaders
//! * [`journey`]   — correlates each request with ALB decision, chain path and pod; what-if
//! * [`ui`]        — ratatui views, keys, event loop (no domain logic)
//! * [`cli`]       — clap arguments and the thin `report` / `trace` / `rules` views
//!
//! Everything below `ui` is usable and tested without a terminal.

pub mod capture;
pub mod cli;
pub mod cluster;
pub mod journey;
pub mod netfilter;
pub mod sanitize;
pub mod ui;
