//! Helpers shared by the netfilter integration tests: where kube-proxy's corpus is, its rule
//! files, and how one harness case (`cases.json`, `cases-nodump.json`) becomes a node and a
//! packet and is compared with a trace (the mapping HARNESS.md describes).
//!
//! Included as `#[path = "common/corpus.rs"] mod corpus;`, so the UI tests' `common` module is
//! not compiled into the netfilter tests.
#![allow(dead_code)]

use hoptrace::netfilter::{
    self, DecidedBy, NodeContext, Packet, Protocol, TableName, Trace, Verdict,
};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Where kube-proxy's corpus sits (`../shared` beside the clone), present or not.
pub fn kube_proxy_path() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/corpus/kube-proxy"
    ))
}

/// [`kube_proxy_path`], or `None` after saying the test is skipped.
pub fn kube_proxy_dir() -> Option<PathBuf> {
    let p = kube_proxy_path();
    if p.is_dir() {
        Some(p)
    } else {
        println!(
            "skipped: {} not found (the shared corpus sits beside the clone in CI)",
            p.display()
        );
        None
    }
}

/// The `*.rules` files of a corpus folder, sorted.
pub fn rules_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rules"))
        .collect();
    v.sort();
    v
}

/// A corpus file parsed strictly (`rel` relative to the corpus folder); panics with the error.
pub fn parse_file(dir: &Path, rel: &str) -> netfilter::Ruleset {
    let p = dir.join(rel);
    netfilter::parse(&std::fs::read(&p).unwrap(), rel).unwrap_or_else(|e| panic!("{e}"))
}

/// A case file's cases.
pub fn cases(dir: &Path, file: &str) -> Vec<Value> {
    serde_json::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap()
}

/// The filter chains kube-proxy's harness walks: a verdict there is part of its answer.
pub const HARNESS_CHAINS: [&str; 4] = [
    "KUBE-SERVICES",
    "KUBE-EXTERNAL-SERVICES",
    "KUBE-NODEPORTS",
    "KUBE-PROXY-FIREWALL",
];

/// One harness case (a JSON object of `cases.json` or `cases-nodump.json`).
pub struct HarnessCase<'a>(pub &'a Value);

impl HarnessCase<'_> {
    pub fn name(&self) -> &str {
        self.0["name"].as_str().unwrap()
    }

    /// The node: its local addresses.
    pub fn context(&self) -> NodeContext {
        let local: Vec<IpAddr> = self.0["local_ips"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().parse().unwrap())
            .collect();
        NodeContext::new(local)
    }

    /// The first packet (source port unknown, as the harness has none).
    pub fn packet(&self) -> Packet {
        let c = self.0;
        let proto = Protocol::parse(c["protocol"].as_str().unwrap())
            .unwrap()
            .unwrap();
        Packet::new(
            proto,
            c["source_ip"].as_str().unwrap().parse().unwrap(),
            None,
            c["dest_ip"].as_str().unwrap().parse().unwrap(),
            c["dest_port"].as_u64().unwrap() as u16,
        )
    }

    /// Expected endpoints (`ip:port`) and verdict word, as a set.
    pub fn expected(&self) -> BTreeSet<String> {
        self.0["expected_output"]
            .as_str()
            .unwrap()
            .split(", ")
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    pub fn expected_masq(&self) -> bool {
        self.0["expected_masq"].as_bool().unwrap()
    }
}

/// A trace in the harness's terms: the reachable endpoints, plus DROP/REJECT/ACCEPT when one of
/// [`HARNESS_CHAINS`] in the filter table decided.
pub fn harness_answer(tr: &Trace) -> BTreeSet<String> {
    let mut got: BTreeSet<String> = tr
        .endpoints
        .iter()
        .map(|e| netfilter::eval::fmt_sock(e.ip, e.port))
        .collect();
    if let Some(DecidedBy::Rule(r)) = &tr.decided_by
        && r.table == TableName::Filter
        && HARNESS_CHAINS.contains(&&*r.chain)
        && tr.verdict != Verdict::Undecided
    {
        got.insert(tr.verdict.as_str().to_string());
    }
    got
}

/// The matched rules of the most probable branch, one per line (for failure messages).
pub fn matched_path(tr: &Trace) -> String {
    tr.path
        .iter()
        .filter(|s| s.matched)
        .map(|s| format!("  {} {} #{} {}", s.table, s.chain, s.rule, s.text))
        .collect::<Vec<_>>()
        .join("\n")
}
