//! The cluster layer against the lab recordings (`captures/<scenario>/`): every `cluster.toml`
//! loads without a warning, and for every connection in `truth.json` the jhash ALB model
//! predicts the bucket and node the lab's nft ALB really chose (`ct_mark` = 100 + bucket), the
//! pod's node and zone resolve as the truth says, and each capture is attributed to its node or
//! client.
//!
//! Recordings live in `captures/` at the crate root (or `HOPTRACE_CAPTURES=DIR`); without them
//! the test says "skipped: …" and passes.

use hoptrace::cluster::infer::{CaptureAttribution, attribute_capture};
use hoptrace::cluster::load::load_path;
use hoptrace::cluster::{AlbMode, AlbModel, ClusterBuilder, FlowKey, Severity};
use serde_json::Value;
use std::net::IpAddr;
use std::path::PathBuf;

fn captures_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("HOPTRACE_CAPTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/captures")));
    dir.is_dir().then_some(dir)
}

fn ip(v: &Value) -> IpAddr {
    v.as_str().unwrap().parse().unwrap()
}

#[test]
fn lab_scenarios_agree_with_truth() {
    let Some(dir) = captures_dir() else {
        eprintln!("skipped: no captures/ directory (set HOPTRACE_CAPTURES to a recordings folder)");
        return;
    };
    let mut scenarios: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("cluster.toml").is_file() && p.join("truth.json").is_file())
        .collect();
    scenarios.sort();
    if scenarios.is_empty() {
        eprintln!(
            "skipped: no scenario with cluster.toml and truth.json in {}",
            dir.display()
        );
        return;
    }
    let (mut alb_checked, mut pods_checked) = (0usize, 0usize);
    for scen in &scenarios {
        let name = scen.file_name().unwrap().to_string_lossy().into_owned();
        let src = load_path(&scen.join("cluster.toml"), None).unwrap_or_else(|e| panic!("{e}"));
        let mut b = ClusterBuilder::new();
        b.add_source(src);
        let (cluster, diags) = b.build();
        let warnings: Vec<String> = diags
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .map(ToString::to_string)
            .collect();
        assert!(warnings.is_empty(), "{name}: {warnings:?}");

        let truth: Value =
            serde_json::from_str(&std::fs::read_to_string(scen.join("truth.json")).unwrap())
                .unwrap();
        let model = AlbModel::from_cluster(&cluster).unwrap();
        for conn in truth["connections"].as_array().unwrap() {
            let id = &conn["id"];
            if let Some(alb) = conn["alb"].as_object() {
                let key = FlowKey::tcp(
                    ip(&conn["client"]["ip"]),
                    conn["client"]["port"].as_u64().unwrap() as u16,
                    ip(&conn["frontend"]["ip"]),
                    conn["frontend"]["port"].as_u64().unwrap() as u16,
                );
                let mode: AlbMode = alb["mode"].as_str().unwrap().parse().unwrap();
                let d = model.decide(&key).unwrap();
                assert_eq!(d.mode, mode, "{name} #{id}");
                assert_eq!(
                    u64::from(d.bucket),
                    alb["bucket"].as_u64().unwrap(),
                    "{name} #{id} {key}"
                );
                assert_eq!(d.node, alb["node"].as_str().unwrap(), "{name} #{id} {key}");
                assert_eq!(
                    u64::from(d.bucket) + 100,
                    alb["ct_mark"].as_u64().unwrap(),
                    "{name} #{id}"
                );
                assert_eq!(
                    d.node,
                    conn["ingress_node"].as_str().unwrap(),
                    "{name} #{id}"
                );
                alb_checked += 1;
            }
            if let Some(pod) = conn["pod"].as_object() {
                let pod_ip = ip(&pod["ip"]);
                let node = cluster
                    .node_of_endpoint(pod_ip)
                    .unwrap_or_else(|| panic!("{name} #{id}: no node for {pod_ip}"));
                assert_eq!(node.name(), pod["node"].as_str().unwrap(), "{name} #{id}");
                assert_eq!(node.zone(), pod["zone"].as_str(), "{name} #{id}");
                if let Some(p) = cluster.pod_by_ip(pod_ip) {
                    assert_eq!(p.name(), pod["name"].as_str(), "{name} #{id}");
                }
                let ingress = conn["ingress_node"].as_str().unwrap();
                assert_eq!(
                    cluster.crosses_zone(ingress, node.name()),
                    conn["crossed_zone"].as_bool(),
                    "{name} #{id}"
                );
                assert_eq!(
                    Some(ingress != node.name()),
                    conn["crossed_node"].as_bool(),
                    "{name} #{id}"
                );
                pods_checked += 1;
            }
        }

        // Every pcap in the folder belongs to the node or client the cluster file lists it under.
        for entry in std::fs::read_dir(scen).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().and_then(|e| e.to_str()) != Some("pcap") {
                continue;
            }
            let file = p.file_name().unwrap().to_string_lossy().into_owned();
            let (a, d) = attribute_capture(&p.to_string_lossy(), &[], &cluster);
            assert!(d.is_empty(), "{name}/{file}: {d:?}");
            match a {
                CaptureAttribution::Node { node, .. } => {
                    assert!(file.starts_with(&node), "{name}/{file} → {node}")
                }
                CaptureAttribution::Client { name: Some(c), .. } => {
                    assert!(file.starts_with(&c), "{name}/{file} → {c}")
                }
                other => panic!("{name}/{file}: {other:?}"),
            }
        }
    }
    eprintln!(
        "{} scenarios: {alb_checked} ALB decisions and {pods_checked} pod placements agree with truth.json",
        scenarios.len()
    );
    assert!(alb_checked > 0);
}
