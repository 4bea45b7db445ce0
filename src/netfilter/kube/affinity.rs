//! The rules kube-proxy would write for a Service port with `sessionAffinity: ClientIP` switched
//! on (or off): used by the what-if.
//!
//! On (proxier.go `writeServiceToEndpointRules`):
//! * at the top of each policy chain (KUBE-SVC, KUBE-SVL, or old KUBE-XLB), before the first
//!   endpoint jump (so after the masquerade rule of a new-layout KUBE-SVC), one rule per endpoint
//!   of that chain, in endpoint order:
//!   `-m comment --comment "<svc> -> <ip:port>" -m recent --name KUBE-SEP-e --rcheck --seconds T --reap -j KUBE-SEP-e`
//!   (old layout: the comment is just `<svc>`);
//! * in each endpoint chain, `-m recent --name KUBE-SEP-e --set` on the DNAT rule, after its
//!   comment.
//!
//! Off removes both. The result is a linked rule set; [`crate::netfilter::print::save`] turns it
//! into text that `iptables-restore` accepts.

use std::sync::Arc;

use super::services::{Layout, ServicePort, service_map};
use crate::netfilter::eval::fmt_sock;
use crate::netfilter::model::*;
use crate::netfilter::print;

/// kube-proxy's default `timeoutSeconds` (3 h).
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10800;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AffinityError {
    #[error("no Service port {0} in the rules (give ns/name:port or the chain suffix)")]
    UnknownService(String),
    #[error("Service port {0} has no endpoints: kube-proxy writes no affinity rules for it")]
    NoEndpoints(String),
    #[error("timeout {0} s is outside 1..=86400 (the API's range)")]
    BadTimeout(u32),
    #[error("the rewritten rule set does not link: {0}")]
    Link(String),
}

fn is_sticky(r: &Rule) -> bool {
    r.spec.recent().is_some_and(|m| m.op == RecentOp::Rcheck)
        && matches!(&r.spec.target, Some(Target::Jump(c)) if c.name.starts_with("KUBE-SEP-"))
}

fn sep_of(r: &Rule) -> Option<Arc<str>> {
    match &r.spec.target {
        Some(Target::Jump(c)) if c.name.starts_with("KUBE-SEP-") => Some(c.name.clone()),
        _ => None,
    }
}

fn remake(
    chain: &str,
    spec: RuleSpec,
    family: Option<Family>,
    line: u32,
    counters: Option<Counters>,
) -> Rule {
    let text: Arc<str> = print::rule_line(chain, &spec, family).into();
    Rule {
        spec,
        counters,
        text,
        line,
        gid: 0,
    }
}

/// Switch ClientIP affinity of one Service port on (`Some(timeout)`) or off (`None`).
pub fn set_session_affinity(
    rs: &Ruleset,
    service: &str,
    timeout: Option<u32>,
) -> Result<Ruleset, AffinityError> {
    if let Some(t) = timeout
        && !(1..=86400).contains(&t)
    {
        return Err(AffinityError::BadTimeout(t));
    }
    let map = service_map(rs);
    let svc: &ServicePort = map
        .find(service)
        .ok_or_else(|| AffinityError::UnknownService(service.to_string()))?;
    if svc.endpoints.is_empty() {
        return Err(AffinityError::NoEndpoints(svc.label()));
    }
    let old = map.layout == Layout::Old;
    let family = rs.family;
    let mut out = rs.clone();
    let nat = out
        .table_mut(TableName::Nat)
        .expect("a service map implies a nat table");
    let policy_chains: Vec<Arc<str>> = [&svc.chains.svc, &svc.chains.svl, &svc.chains.xlb]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    for chain_name in &policy_chains {
        let Some(chain) = nat.chain_mut(chain_name) else {
            continue;
        };
        chain.rules.retain(|r| !is_sticky(r));
        let Some(timeout) = timeout else { continue };
        let Some(first) = chain.rules.iter().position(|r| sep_of(r).is_some()) else {
            continue;
        };
        let mut sticky = Vec::new();
        for r in &chain.rules {
            let Some(sep) = sep_of(r) else { continue };
            let Some(ep) = svc.endpoints.iter().find(|e| e.chain == sep) else {
                continue;
            };
            let comment = match (&svc.name, old) {
                (Some(n), false) => Some(format!("{n} -> {}", fmt_sock(ep.ip, ep.port))),
                (Some(n), true) => Some(n.clone()),
                (None, _) => r.spec.comment().map(str::to_string),
            };
            let mut spec = RuleSpec::default();
            if let Some(c) = comment {
                spec.matches.push(Match::Comment(c));
            }
            spec.matches.push(Match::Recent(RecentMatch {
                op: RecentOp::Rcheck,
                invert: false,
                seconds: Some(timeout),
                reap: true,
                hitcount: None,
                rttl: false,
                name: sep.clone(),
                mask: None,
                rdest: false,
            }));
            spec.target = Some(Target::Jump(ChainRef {
                name: sep.clone(),
                id: None,
            }));
            sticky.push(remake(chain_name, spec, family, 0, None));
        }
        chain.rules.splice(first..first, sticky);
    }
    for ep in &svc.endpoints {
        let Some(chain) = nat.chain_mut(&ep.chain) else {
            continue;
        };
        let name = chain.name.clone();
        for r in chain.rules.iter_mut() {
            if !matches!(r.spec.target, Some(Target::Dnat { .. })) {
                continue;
            }
            let mut spec = r.spec.clone();
            spec.matches
                .retain(|m| !matches!(m, Match::Recent(rm) if rm.op == RecentOp::Set));
            if timeout.is_some() {
                let at = spec
                    .matches
                    .iter()
                    .position(|m| matches!(m, Match::Comment(_)))
                    .map(|i| i + 1)
                    .unwrap_or(0);
                spec.matches.insert(
                    at,
                    Match::Recent(RecentMatch {
                        op: RecentOp::Set,
                        invert: false,
                        seconds: None,
                        reap: false,
                        hitcount: None,
                        rttl: false,
                        name: name.clone(),
                        mask: None,
                        rdest: false,
                    }),
                );
            }
            if spec != r.spec {
                *r = remake(&name, spec, family, r.line, r.counters);
            }
        }
    }
    out.link().map_err(|e| AffinityError::Link(e.to_string()))?;
    Ok(out)
}

/// [`set_session_affinity`] and the rule set as `iptables-save` text.
pub fn set_session_affinity_text(
    rs: &Ruleset,
    service: &str,
    timeout: Option<u32>,
) -> Result<(Ruleset, String), AffinityError> {
    let out = set_session_affinity(rs, service, timeout)?;
    let text = print::save(&out, Default::default());
    Ok((out, text))
}
