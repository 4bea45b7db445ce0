//! The replayed `recent` tables (sessionAffinity) against the kernel's own: after replaying a
//! recording in time order, every node's tables hold exactly the addresses
//! `/proc/net/xt_recent` listed at the end of the recording (`truth/xt_recent-<node>-final.txt`),
//! including the 100-entry evictions of `07-affinity-eviction`.

use hoptrace::capture::CaptureOptions;
use hoptrace::journey::replay::{FlowFacts, ReplayConfig, Replayer};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Table name → addresses, from a `/proc/net/xt_recent` dump as the lab writes it; and per
/// (table, address) how long before the dump it was last seen, in ms.
#[allow(clippy::type_complexity)]
fn kernel_tables(
    text: &str,
) -> (
    BTreeMap<String, BTreeSet<String>>,
    BTreeMap<(String, String), i64>,
    i64,
) {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut age = BTreeMap::new();
    let mut cur: Option<String> = None;
    // "# /proc/net/xt_recent/* in ht-lab-node1 at 2026-…+00:00, jiffies 4295079781, HZ 250, …"
    let header = text.lines().next().unwrap();
    let at = header
        .split(" at ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    let now_us = hoptrace::journey::snapshot::time_micros(at).expect("dump time");
    let field = |k: &str| -> i64 {
        header
            .split(k)
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let (now_j, hz) = (field("jiffies "), field("HZ "));
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("## ") {
            cur = Some(name.trim().to_string());
            out.entry(name.trim().to_string()).or_default();
        } else if let (Some(c), Some(rest)) = (&cur, line.strip_prefix("src=")) {
            let addr = rest.split_whitespace().next().unwrap().to_string();
            let last: i64 = rest
                .split("last_seen: ")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap();
            age.insert((c.clone(), addr.clone()), (now_j - last) * 1000 / hz);
            out.get_mut(c).unwrap().insert(addr);
        }
    }
    (out, age, now_us)
}

#[test]
fn replayed_recent_tables_match_the_kernels() {
    let mut compared = 0;
    for scenario in ["04-affinity-sourceip", "07-affinity-eviction"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("captures")
            .join(scenario);
        let sc = hoptrace::cli::scenario::load(
            &[dir.display().to_string()],
            &[],
            &[],
            &[],
            CaptureOptions::default(),
        )
        .unwrap();
        let mut rp = Replayer::new(
            &sc,
            ReplayConfig {
                seed: 1,
                full_walk: false,
            },
        );
        for f in sc.flows() {
            rp.step(&FlowFacts::from_flow(&sc, f));
        }
        for node in ["node0", "node1", "node2"] {
            let path = dir
                .join("truth")
                .join(format!("xt_recent-{node}-final.txt"));
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let (kernel, kernel_age, now_us) = kernel_tables(&text);
            let ours: BTreeMap<String, BTreeSet<String>> = match rp.node_state(node) {
                Some(st) => st
                    .recent_tables()
                    .map(|(name, t)| {
                        (
                            name.to_string(),
                            t.entries_lru().iter().map(|e| e.addr.to_string()).collect(),
                        )
                    })
                    .collect(),
                None => BTreeMap::new(),
            };
            for (name, addrs) in &kernel {
                let mine = ours.get(name).cloned().unwrap_or_default();
                assert_eq!(&mine, addrs, "{scenario} {node} {name}: replayed vs kernel");
                compared += addrs.len();
            }
            // The stamps advance with capture time: each entry's age at the dump agrees with the
            // kernel's to within a few jiffies (capture and kernel clocks, 4 ms jiffies).
            if let Some(st) = rp.node_state(node) {
                for (name, t) in st.recent_tables() {
                    for e in t.entries_lru() {
                        let Some(k) = kernel_age.get(&(name.to_string(), e.addr.to_string()))
                        else {
                            continue;
                        };
                        let ours_ms = now_us / 1000 - (e.last_seen_ns / 1_000_000) as i64;
                        assert!(
                            (ours_ms - k).abs() <= 20,
                            "{scenario} {node} {name} {}: last seen {ours_ms} ms before the dump, kernel {k} ms",
                            e.addr
                        );
                    }
                }
            }
            for (name, addrs) in &ours {
                if !kernel.contains_key(name) {
                    assert!(
                        addrs.is_empty(),
                        "{scenario} {node} {name}: replay has entries the kernel did not list"
                    );
                }
            }
        }
    }
    assert!(compared > 100, "compared {compared} entries");
}
