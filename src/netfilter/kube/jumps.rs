//! The jumps from built-in chains that kube-proxy installs with `iptables -I` on every sync, and
//! that its `iptables-restore` input (most of the corpus, and many pastes) therefore lacks.
//!
//! Each jump is inserted at the top of its source chain in the order of [`STANDARD_JUMPS`] (the
//! order of `iptablesJumpChains` in proxier.go), so on a clean node later entries end up above
//! earlier ones; [`add_standard_jumps`] reproduces that order.

use std::sync::Arc;

use crate::netfilter::model::*;
use crate::netfilter::parse::parse_rule_spec;

/// (table, from, to, extra match, comment), in kube-proxy's insertion order.
pub const STANDARD_JUMPS: &[(TableName, &str, &str, &str, &str)] = &[
    (
        TableName::Filter,
        "INPUT",
        "KUBE-EXTERNAL-SERVICES",
        "-m conntrack --ctstate NEW",
        "kubernetes externally-visible service portals",
    ),
    (
        TableName::Filter,
        "FORWARD",
        "KUBE-EXTERNAL-SERVICES",
        "-m conntrack --ctstate NEW",
        "kubernetes externally-visible service portals",
    ),
    (
        TableName::Filter,
        "INPUT",
        "KUBE-NODEPORTS",
        "",
        "kubernetes health check service ports",
    ),
    (
        TableName::Filter,
        "FORWARD",
        "KUBE-SERVICES",
        "-m conntrack --ctstate NEW",
        "kubernetes service portals",
    ),
    (
        TableName::Filter,
        "OUTPUT",
        "KUBE-SERVICES",
        "-m conntrack --ctstate NEW",
        "kubernetes service portals",
    ),
    (
        TableName::Filter,
        "FORWARD",
        "KUBE-FORWARD",
        "",
        "kubernetes forwarding rules",
    ),
    (
        TableName::Filter,
        "INPUT",
        "KUBE-PROXY-FIREWALL",
        "-m conntrack --ctstate NEW",
        "kubernetes load balancer firewall",
    ),
    (
        TableName::Filter,
        "OUTPUT",
        "KUBE-PROXY-FIREWALL",
        "-m conntrack --ctstate NEW",
        "kubernetes load balancer firewall",
    ),
    (
        TableName::Filter,
        "FORWARD",
        "KUBE-PROXY-FIREWALL",
        "-m conntrack --ctstate NEW",
        "kubernetes load balancer firewall",
    ),
    (
        TableName::Nat,
        "OUTPUT",
        "KUBE-SERVICES",
        "",
        "kubernetes service portals",
    ),
    (
        TableName::Nat,
        "PREROUTING",
        "KUBE-SERVICES",
        "",
        "kubernetes service portals",
    ),
    (
        TableName::Nat,
        "POSTROUTING",
        "KUBE-POSTROUTING",
        "",
        "kubernetes postrouting rules",
    ),
    (TableName::Filter, "INPUT", "KUBE-FIREWALL", "", ""),
    (TableName::Filter, "OUTPUT", "KUBE-FIREWALL", "", ""),
];

fn jumps_into_kube(table: &Table) -> bool {
    table.chains.iter().filter(|c| c.policy.is_some()).any(|c| {
        c.rules.iter().any(|r| {
            r.spec
                .target
                .as_ref()
                .and_then(|t| t.chain_ref())
                .is_some_and(|c| c.name.starts_with("KUBE-"))
        })
    })
}

/// For each table whose built-in chains do not jump into any `KUBE-*` chain but which has such
/// chains, add kube-proxy's standard jumps (to the chains that exist) and return a warning that
/// says which were added. Returns `None` when nothing was added.
pub fn add_standard_jumps(rs: &mut Ruleset) -> Option<Warning> {
    let mut added = Vec::new();
    for table in &mut rs.tables {
        if jumps_into_kube(table) || !table.chains.iter().any(|c| c.name.starts_with("KUBE-")) {
            continue;
        }
        for &(tn, from, to, extra, comment) in STANDARD_JUMPS {
            if tn != table.name || table.chain(to).is_none() {
                continue;
            }
            let mut spec_text = String::new();
            if !extra.is_empty() {
                spec_text.push_str(extra);
                spec_text.push(' ');
            }
            if !comment.is_empty() {
                spec_text.push_str(&format!("-m comment --comment \"{comment}\" "));
            }
            spec_text.push_str(&format!("-j {to}"));
            let spec = parse_rule_spec(&spec_text).expect("built-in jump text parses");
            let text: Arc<str> = crate::netfilter::print::rule_line(from, &spec, rs.family).into();
            let chain = table.chain_mut(from).expect("built-in chains always exist");
            chain.rules.insert(
                0,
                Rule {
                    spec,
                    counters: None,
                    text,
                    line: 0,
                    gid: 0,
                },
            );
            added.push(format!("{} {from} → {to}", table.name));
        }
    }
    if added.is_empty() {
        return None;
    }
    rs.link()
        .expect("adding jumps from built-in chains cannot create a loop");
    let w = Warning {
        line: None,
        message: format!(
            "the built-in chains do not jump into kube-proxy's chains (a kube-proxy restore dump or a partial paste); \
             added kube-proxy's standard jumps: {}",
            added.join(", ")
        ),
    };
    rs.warnings.push(w.clone());
    Some(w)
}
