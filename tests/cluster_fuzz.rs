//! No loader panics, hangs or allocates without bound on arbitrary input; the ALB model keeps
//! its invariants on arbitrary flows. Under plain `cargo test` bolero feeds random bytes for a
//! short while and proptest runs 512 cases per property; for a longer run:
//! `BOLERO_RANDOM_ITERATIONS=300000 PROPTEST_CASES=20000 cargo test --test cluster_fuzz`.

use hoptrace::cluster::load::{
    load_bytes, looks_like_cluster_toml, looks_like_ip_route, looks_like_kubectl_json,
    looks_like_kubectl_text, looks_like_route_n, parse_cluster_toml, parse_ip_route,
    parse_kubectl_json, parse_kubectl_text, parse_route_n, sniff,
};
use hoptrace::cluster::{AlbConfig, AlbHash, AlbMode, AlbModel, ClusterBuilder, FlowKey};
use proptest::prelude::*;
use std::net::IpAddr;
use std::path::Path;

/// Run every loader and the merge on `bytes`; errors are fine, panics are not.
fn exercise(bytes: &[u8]) {
    let _ = (
        looks_like_cluster_toml(bytes),
        looks_like_kubectl_text(bytes),
        looks_like_kubectl_json(bytes),
        looks_like_route_n(bytes),
        looks_like_ip_route(bytes),
        sniff(bytes),
    );
    let text = String::from_utf8_lossy(bytes);
    let mut b = ClusterBuilder::new();
    if let Ok(s) = parse_cluster_toml(&text, "f", Path::new(".")) {
        b.add_source(s);
    }
    if let Ok(s) = parse_kubectl_text(&text, "f") {
        b.add_source(s);
    }
    if let Ok(s) = parse_kubectl_json(&text, "f") {
        b.add_source(s);
    }
    if let Ok(t) = parse_route_n(&text, "f") {
        b.add_source(t.clone().into_source(None));
        b.add_source(t.into_source(Some("n")));
    }
    if let Ok(t) = parse_ip_route(&text, "f") {
        b.add_source(t.into_source(Some("n")));
    }
    if let Ok(s) = load_bytes(bytes, "f", Path::new("."), None) {
        b.add_source(s);
    }
    let (cluster, diags) = b.build();
    for d in &diags {
        let shown = d.to_string();
        assert!(
            !shown.chars().any(|c| c.is_control()),
            "unescaped control character in {shown:?}"
        );
    }
    if let Ok(model) = AlbModel::from_cluster(&cluster) {
        let _ = model.decide(&FlowKey::tcp(
            "1.2.3.4".parse().unwrap(),
            1,
            "5.6.7.8".parse().unwrap(),
            80,
        ));
    }
}

#[test]
fn fuzz_loaders_bytes() {
    bolero::check!().for_each(exercise);
}

/// Seeds that reach deep into each format, then mutated byte-wise.
const SEEDS: &[&str] = &[
    "[load_balancer]\nfrontends = [\"1.2.3.4\"]\nseed = 0x1\nbackends = [\"a\"]\n[[nodes]]\nname = \"a\"\nip = \"10.0.0.1\"\npod_cidr = \"10.1.0.0/24\"\n[[pods]]\nip = \"10.1.0.2\"\n",
    "NAME   STATUS   INTERNAL-IP   ZONE\nn0     Ready    10.0.0.1      z1\n\nNAME   IP         NODE   NOMINATED NODE\np      10.1.0.2   n0     <none>\n",
    "{\"kind\":\"List\",\"items\":[{\"kind\":\"Node\",\"metadata\":{\"name\":\"n\"},\"spec\":{\"podCIDR\":\"10.1.0.0/24\"},\"status\":{\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"10.0.0.1\"}]}}]}",
    "default via 10.0.0.254 dev eth0 src 10.0.0.1\n10.1.0.0/24 dev cbr0 proto kernel scope link src 10.1.0.1\n10.1.1.0/24 via 10.0.0.2 dev eth0\n",
    "Kernel IP routing table\nDestination Gateway Genmask Flags Metric Ref Use Iface\n0.0.0.0 10.0.0.254 0.0.0.0 UG 0 0 0 eth0\n10.1.0.0 0.0.0.0 255.255.255.0 U 0 0 0 cbr0\n10.1.1.0 10.0.0.2 255.255.255.0 UG 0 0 0 eth0\n",
];

proptest! {
    // 512 cases by default (the whole suite stays quick); PROPTEST_CASES=N runs N.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutated_seeds_never_panic(seed in 0..SEEDS.len(), edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 0..12)) {
        let mut bytes = SEEDS[seed].as_bytes().to_vec();
        for (pos, byte, op) in edits {
            if bytes.is_empty() { bytes.push(byte); continue; }
            let p = pos % bytes.len();
            match op {
                0 => bytes[p] = byte,
                1 => { bytes.insert(p, byte); }
                _ => { bytes.truncate(p); }
            }
        }
        exercise(&bytes);
    }

    /// Arbitrary cells (spaces, unicode, `<none>`, empty) in a pods table: rows come out
    /// either as pods or as located warnings, never as a panic or a silent loss.
    #[test]
    fn arbitrary_pod_tables(rows in proptest::collection::vec(
        (r"[a-z0-9\-]{0,12}|<none>|ümlaut pod", r"10\.1\.[0-9]{1,3}\.[0-9]{1,3}|<none>|garbage|", r"[a-z0-9]{0,8}|<none>"), 0..20))
    {
        let mut t = String::from("NAME                 IP                 NODE\n");
        for (n, i, node) in &rows {
            t.push_str(&format!("{n:<21}{i:<19}{node}\n"));
        }
        if let Ok(src) = parse_kubectl_text(&t, "p.txt") {
            // Every non-blank row is accounted for: a pod, or a diagnostic naming its line.
            let accounted = src.pods.len() + src.diagnostics.len();
            let nonblank = t.lines().skip(1).filter(|l| !l.trim().is_empty()).count();
            prop_assert!(accounted >= nonblank, "{accounted} < {nonblank}\n{t}");
            for d in &src.diagnostics {
                prop_assert!(d.line.is_some());
            }
        }
    }

    #[test]
    fn alb_buckets_stay_in_range(
        n in 1usize..20,
        seed in any::<u32>(),
        hash in prop_oneof![Just(AlbHash::Jhash), Just(AlbHash::Maglev), Just(AlbHash::Modulo)],
        mode in prop_oneof![Just(AlbMode::Default), Just(AlbMode::SourceIp), Just(AlbMode::SourceIpProtocol)],
        v6 in any::<bool>(),
        a in any::<u128>(), b in any::<u128>(), sp in any::<u16>(), dp in any::<u16>(), proto in any::<u8>(),
    ) {
        let model = AlbModel::new(AlbConfig {
            mode, hash, seed,
            backends: (0..n).map(|i| format!("n{i}")).collect(),
            maglev_table_size: 251,
        }).unwrap();
        let (src, dst): (IpAddr, IpAddr) = if v6 {
            (IpAddr::from(a.to_be_bytes()), IpAddr::from(b.to_be_bytes()))
        } else {
            (IpAddr::from((a as u32).to_be_bytes()), IpAddr::from((b as u32).to_be_bytes()))
        };
        let key = FlowKey { src, src_port: sp, dst, dst_port: dp, protocol: proto };
        let d = model.decide(&key).unwrap();
        prop_assert!(model.backends().iter().any(|b| d.node == *b));
        match hash {
            AlbHash::Maglev => prop_assert!(d.bucket < 251),
            _ => prop_assert!((d.bucket as usize) < n),
        }
        // Deterministic.
        prop_assert_eq!(model.decide(&key).unwrap(), d);
    }
}
