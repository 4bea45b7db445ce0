//! Loading scenarios: inference with nothing but pcaps and rules, kubectl instead of cluster.toml,
//! `route -n` in a folder, and conflicting inputs answered with warnings.

#[path = "capture_scenarios/mod.rs"]
mod capture_scenarios;

use capture_scenarios::*;
use hoptrace::capture::CaptureOptions;
use hoptrace::journey::run::{RunOptions, run};
use hoptrace::journey::scenario::{CaptureOwner, Scenario};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn lab(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("captures")
        .join(name)
}

fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("journey_scenario")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn copy(from: &Path, to: &Path, ext: &[&str]) {
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| ext.contains(&x))
        {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

fn load(args: &[PathBuf]) -> Scenario {
    let a: Vec<String> = args.iter().map(|p| p.display().to_string()).collect();
    hoptrace::cli::scenario::load(&a, &[], &[], &[], CaptureOptions::default()).unwrap()
}

fn truth(name: &str) -> Vec<Value> {
    let v: Value =
        serde_json::from_slice(&std::fs::read(lab(name).join("truth.json")).unwrap()).unwrap();
    v["connections"].as_array().unwrap().clone()
}

/// Endpoint IP, SNAT IP and crossed-node per client port.
fn answers(sc: &Scenario) -> Vec<(u16, String, Option<String>, Option<bool>)> {
    let js = run(
        sc,
        &RunOptions {
            seed: 1,
            ..Default::default()
        },
    );
    let mut v: Vec<_> = js
        .requests
        .iter()
        .map(|r| {
            (
                r.client.port,
                r.endpoint
                    .as_ref()
                    .map(|e| e.ip.to_string())
                    .unwrap_or_default(),
                r.masquerade.map(|m| m.ip.to_string()),
                r.crossed_node,
            )
        })
        .collect();
    v.sort();
    v
}

fn truth_answers(name: &str) -> Vec<(u16, String, Option<String>, Option<bool>)> {
    let mut v: Vec<_> = truth(name)
        .iter()
        .map(|c| {
            (
                c["client"]["port"].as_u64().unwrap() as u16,
                c["endpoint"]["ip"].as_str().unwrap().to_string(),
                c["snat"]["ip"].as_str().map(str::to_string),
                Some(c["crossed_node"].as_bool().unwrap()),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn pcaps_and_rules_alone_are_enough_to_follow_every_connection() {
    let d = scratch("bare");
    copy(&lab("03-three-replicas"), &d, &["pcap", "rules"]);
    let sc = load(&[d]);
    for c in &sc.captures {
        match &c.owner {
            CaptureOwner::Node { name, inferred, .. } => {
                assert!(*inferred, "{}", c.label);
                assert!(c.label.starts_with(name.as_str()), "{} → {name}", c.label);
            }
            CaptureOwner::Client { .. } => assert!(c.label.starts_with("client")),
            CaptureOwner::Unknown => panic!("{} not attributed", c.label),
        }
    }
    // Pods from the DNAT targets, placed by where their packets arrive; node IPs from SNAT.
    let pod = sc
        .cluster
        .pod_by_ip("10.100.2.2".parse().unwrap())
        .expect("pod inferred from DNAT targets");
    assert!(pod.ip.is_inferred());
    assert_eq!(sc.cluster.node_of_pod(pod).map(|n| n.name()), Some("node1"));
    assert_eq!(
        sc.cluster.node("node0").and_then(|n| n.ip()),
        Some("10.220.1.4".parse().unwrap())
    );
    assert!(sc.cluster.node("node0").unwrap().ips[0].is_inferred());
    assert_eq!(answers(&sc), truth_answers("03-three-replicas"));
}

const NODES_WIDE: &str = "\
NAME    STATUS   ROLES   AGE   VERSION   INTERNAL-IP   EXTERNAL-IP   OS-IMAGE             KERNEL-VERSION   CONTAINER-RUNTIME
node0   Ready    agent   9d    v1.30.0   10.220.1.4    <none>        Ubuntu 22.04.4 LTS   5.15.0           containerd://1.7.15
node1   Ready    agent   9d    v1.30.0   10.220.1.5    <none>        Ubuntu 22.04.4 LTS   5.15.0           containerd://1.7.15
node2   Ready    agent   9d    v1.30.0   10.220.1.6    <none>        Ubuntu 22.04.4 LTS   5.15.0           containerd://1.7.15
";

const PODS_WIDE: &str = "\
NAME                       READY   STATUS    RESTARTS   AGE   IP           NODE    NOMINATED NODE   READINESS GATES
testapp-6f7947bc4b-rgm5l   1/1     Running   0          9d    10.100.0.7   node0   <none>           <none>
testapp-6f7947bc4b-x7427   1/1     Running   0          9d    10.100.2.2   node1   <none>           <none>
testapp-6f7947bc4b-cq567   1/1     Running   0          9d    10.100.1.4   node2   <none>           <none>
";

#[test]
fn kubectl_text_instead_of_cluster_toml_names_the_pods() {
    let d = scratch("kubectl");
    copy(&lab("03-three-replicas"), &d, &["pcap", "rules"]);
    std::fs::write(d.join("nodes.txt"), NODES_WIDE).unwrap();
    std::fs::write(d.join("pods.txt"), PODS_WIDE).unwrap();
    let sc = load(&[d]);
    assert!(sc.cluster.node("node1").unwrap().ips[0].is_given());
    let js = run(&sc, &RunOptions::default());
    let by_port: std::collections::BTreeMap<u16, String> = js
        .requests
        .iter()
        .map(|r| {
            (
                r.client.port,
                r.pod
                    .as_ref()
                    .and_then(|p| p.name.clone())
                    .unwrap_or_default(),
            )
        })
        .collect();
    for c in truth("03-three-replicas") {
        let port = c["client"]["port"].as_u64().unwrap() as u16;
        assert_eq!(by_port[&port], c["pod"]["name"].as_str().unwrap());
    }
    assert_eq!(answers(&sc), truth_answers("03-three-replicas"));
}

#[test]
fn route_n_in_a_folder_is_read_as_a_cluster_input() {
    let d = scratch("route");
    copy(&lab("03-three-replicas"), &d, &["pcap", "rules", "toml"]);
    std::fs::write(
        d.join("node0-route.txt"),
        "Kernel IP routing table\n\
Destination     Gateway         Genmask         Flags Metric Ref    Use Iface\n\
0.0.0.0         10.220.1.1      0.0.0.0         UG    0      0        0 eth0\n\
10.100.0.0      0.0.0.0         255.255.255.0   U     0      0        0 cbr0\n\
10.220.1.0      0.0.0.0         255.255.255.0   U     0      0        0 eth0\n",
    )
    .unwrap();
    let sc = load(&[d]);
    assert!(
        sc.inputs.iter().any(|i| i.ends_with("node0-route.txt")),
        "{:?}",
        sc.inputs
    );
    assert!(
        !sc.warnings.iter().any(|w| w.contains("skipped")),
        "{:?}",
        sc.warnings
    );
    assert_eq!(answers(&sc), truth_answers("03-three-replicas"));
}

#[test]
fn a_pod_outside_every_pod_cidr_is_a_warning() {
    let d = scratch("outside");
    copy(&lab("03-three-replicas"), &d, &["pcap", "rules"]);
    let toml = std::fs::read_to_string(lab("03-three-replicas").join("cluster.toml")).unwrap();
    std::fs::write(
        d.join("cluster.toml"),
        format!("{toml}\n[[pods]]\nname = \"stray\"\nip = \"10.99.0.5\"\n"),
    )
    .unwrap();
    let sc = load(&[d]);
    assert!(
        sc.warnings
            .iter()
            .any(|w| w.contains("10.99.0.5") && w.contains("outside")),
        "{:?}",
        sc.warnings
    );
    // The valid part is kept.
    assert_eq!(answers(&sc), truth_answers("03-three-replicas"));
}

#[test]
fn a_capture_matching_no_node_is_a_warning() {
    let d = scratch("stranger");
    copy(&lab("03-three-replicas"), &d, &["pcap", "rules", "toml"]);
    std::fs::write(
        d.join("elsewhere.pcap"),
        pcap(&eth(), keepalive("10.9.0.1:40000", T0).segments()),
    )
    .unwrap();
    let sc = load(&[d]);
    let c = sc
        .captures
        .iter()
        .find(|c| c.label == "elsewhere.pcap")
        .unwrap();
    assert_eq!(c.owner, CaptureOwner::Unknown);
    assert!(
        sc.warnings
            .iter()
            .any(|w| w.contains("elsewhere.pcap") && w.contains("no node")),
        "{:?}",
        sc.warnings
    );
    // Its connection is still reported (3 requests), with nothing claimed about a node.
    let js = run(&sc, &RunOptions::default());
    let stray: Vec<_> = js
        .requests
        .iter()
        .filter(|r| r.capture == "elsewhere.pcap")
        .collect();
    assert_eq!(stray.len(), 3);
    assert!(
        stray
            .iter()
            .all(|r| r.node.is_none() && r.endpoint.is_none())
    );
}

#[test]
fn the_embedded_walkthrough_is_the_lab_recording() {
    let sc = hoptrace::cli::embedded::scenario(CaptureOptions::default()).unwrap();
    assert_eq!(answers(&sc), truth_answers("03-three-replicas"));
}

#[test]
fn names_from_inputs_are_escaped_in_every_format() {
    let d = scratch("evil-names");
    copy(&lab("03-three-replicas"), &d, &["pcap", "rules"]);
    let toml = std::fs::read_to_string(lab("03-three-replicas").join("cluster.toml")).unwrap();
    let toml = toml
        .replace("testapp-6f7947bc4b-x7427", "x7427\\u001b]0;pwn\\u0007")
        .replace("name = \"node1\"", "name = \"node1\\u001b[2J\"")
        .replace("\"node1\"", "\"node1\\u001b[2J\"");
    std::fs::write(d.join("cluster.toml"), toml).unwrap();
    for format in [Format::Table, Format::Json, Format::Ndjson, Format::Csv] {
        let args = ReportArgs {
            inputs: vec![d.display().to_string()],
            format,
            ..Default::default()
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        hoptrace::cli::report::run(&args, &mut out, &mut err).unwrap();
        let out = String::from_utf8(out).unwrap();
        let err = String::from_utf8(err).unwrap();
        assert!(out.contains("x7427"), "{format:?}: {out}");
        assert!(
            !out.contains('\x1b') && !out.contains('\x07'),
            "{format:?}: {out}"
        );
        assert!(
            !err.contains('\x1b') && !err.contains('\x07'),
            "{format:?}: {err}"
        );
    }
}

use hoptrace::cli::report::{Format, ReportArgs};
