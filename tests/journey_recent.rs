//! The replayed `recent` tables (sessionAffinity) against the kernel's own: after replaying a
//! recording in time order, every node's tables hold exactly the addresses
//! `/proc/net/xt_recent` listed at the end of the recording (`truth/xt_recent-<node>-final.txt`),
//! including the 100-entry evictions of `07-affinity-eviction`.

use hoptrace::capture::CaptureOptions;
use hoptrace::journey::replay::{FlowFacts, ReplayConfig, Replayer};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Table name → addresses, from a `/proc/net/xt_recent` dump as the lab writes it.
fn kernel_tables(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("## ") {
            cur = Some(name.trim().to_string());
            out.entry(name.trim().to_string()).or_default();
        } else if let (Some(c), Some(rest)) = (&cur, line.strip_prefix("src=")) {
            out.get_mut(c).unwrap().insert(rest.split_whitespace().next().unwrap().to_string());
        }
    }
    out
}

#[test]
fn replayed_recent_tables_match_the_kernels() {
    let mut compared = 0;
    for scenario in ["04-affinity-sourceip", "07-affinity-eviction"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures").join(scenario);
        let sc = hoptrace::cli::scenario::load(&[dir.display().to_string()], &[], &[], &[], CaptureOptions::default()).unwrap();
        let mut rp = Replayer::new(&sc, ReplayConfig { seed: 1, full_walk: false });
        for f in sc.flows() {
            rp.step(&FlowFacts::from_flow(&sc, f));
        }
        for node in ["node0", "node1", "node2"] {
            let path = dir.join("truth").join(format!("xt_recent-{node}-final.txt"));
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            let kernel = kernel_tables(&text);
            let ours: BTreeMap<String, BTreeSet<String>> = match rp.node_state(node) {
                Some(st) => st
                    .recent_tables()
                    .map(|(name, t)| (name.to_string(), t.entries_lru().iter().map(|e| e.addr.to_string()).collect()))
                    .collect(),
                None => BTreeMap::new(),
            };
            for (name, addrs) in &kernel {
                let mine = ours.get(name).cloned().unwrap_or_default();
                assert_eq!(&mine, addrs, "{scenario} {node} {name}: replayed vs kernel");
                compared += addrs.len();
            }
            for (name, addrs) in &ours {
                if !kernel.contains_key(name) {
                    assert!(addrs.is_empty(), "{scenario} {node} {name}: replay has entries the kernel did not list");
                }
            }
        }
    }
    assert!(compared > 100, "compared {compared} entries");
}
