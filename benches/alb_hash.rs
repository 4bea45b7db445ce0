//! ALB model throughput: raw nft `jhash`, `AlbModel::decide` per hash, the flow table, and
//! Maglev table builds, with Rust's std SipHash over the same key bytes as a reference point.
//!
//! Also: merging a 5,000-node / 50,000-pod cluster and the per-request lookups on it.
//!
//! Run: `cargo bench --bench alb_hash` (prints one line per measurement).

use hoptrace::cluster::jhash::jhash;
use hoptrace::cluster::load::{parse_cluster_toml, parse_kubectl_text};
use hoptrace::cluster::maglev::MaglevTable;
use hoptrace::cluster::{
    AlbConfig, AlbFlowTable, AlbHash, AlbMode, AlbModel, ClusterBuilder, FlowKey,
};
use std::hash::{BuildHasher, Hasher};
use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant};

const N: u32 = 5_000_000;

fn keys(n: u32) -> Vec<FlowKey> {
    (0..n)
        .map(|i| {
            FlowKey::tcp(
                IpAddr::from((0x4700_0000u32 | (i.wrapping_mul(2_654_435_761) >> 8)).to_be_bytes()),
                1024 + (i % 60_000) as u16,
                IpAddr::from([20, 185, 96, 169]),
                80,
            )
        })
        .collect()
}

fn report(what: &str, n: u64, t: Duration) {
    let per = t.as_nanos() as f64 / n as f64;
    println!("{what:<44} {:>8.1} ns/op {:>10.2} M/s", per, 1e3 / per);
}

fn main() {
    let ks = keys(1 << 16);
    let bytes: Vec<[u8; 16]> = ks
        .iter()
        .map(|k| {
            k.nft_key(AlbMode::Default)
                .unwrap()
                .as_bytes()
                .try_into()
                .unwrap()
        })
        .collect();

    let t = Instant::now();
    let mut acc = 0u32;
    for i in 0..N {
        acc ^= jhash(black_box(&bytes[(i & 0xffff) as usize]), 0x5eed_0001);
    }
    black_box(acc);
    report("jhash, 16-byte key", u64::from(N), t.elapsed());

    let sip = std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default();
    let t = Instant::now();
    let mut acc = 0u64;
    for i in 0..N {
        let mut h = sip.build_hasher();
        h.write(black_box(&bytes[(i & 0xffff) as usize]));
        acc ^= h.finish();
    }
    black_box(acc);
    report(
        "reference: std SipHash-1-3, same 16 bytes",
        u64::from(N),
        t.elapsed(),
    );

    for hash in [AlbHash::Jhash, AlbHash::Modulo, AlbHash::Maglev] {
        for mode in [AlbMode::Default, AlbMode::SourceIp] {
            let m = AlbModel::new(AlbConfig {
                mode,
                hash,
                seed: 0x5eed_0001,
                backends: (0..3).map(|i| format!("node{i}")).collect(),
                ..AlbConfig::default()
            })
            .unwrap();
            let t = Instant::now();
            let mut acc = 0u32;
            for i in 0..N {
                acc ^= m
                    .decide(black_box(&ks[(i & 0xffff) as usize]))
                    .unwrap()
                    .bucket;
            }
            black_box(acc);
            report(
                &format!("AlbModel::decide {hash} {mode}, 3 nodes"),
                u64::from(N),
                t.elapsed(),
            );
        }
    }

    let m = AlbModel::new(AlbConfig {
        backends: (0..3).map(|i| format!("node{i}")).collect(),
        ..AlbConfig::default()
    })
    .unwrap();
    let flows = keys(1_000_000);
    let mut table = AlbFlowTable::default();
    let t = Instant::now();
    for (i, k) in flows.iter().enumerate() {
        black_box(table.route(&m, k, Duration::from_micros(i as u64)).unwrap());
    }
    report("AlbFlowTable::route, 1M new flows", 1_000_000, t.elapsed());
    let t = Instant::now();
    for (i, k) in flows.iter().enumerate() {
        black_box(
            table
                .route(
                    &m,
                    k,
                    Duration::from_secs(1) + Duration::from_micros(i as u64),
                )
                .unwrap(),
        );
    }
    report(
        "AlbFlowTable::route, 1M established flows",
        1_000_000,
        t.elapsed(),
    );

    for n in [3usize, 100] {
        let names: Vec<String> = (0..n).map(|i| format!("node{i}")).collect();
        let reps = 20u32;
        let t = Instant::now();
        for s in 0..reps {
            black_box(MaglevTable::build(&names, 65_537, s).unwrap());
        }
        let per = t.elapsed() / reps;
        println!(
            "{:<44} {:>8.2} ms/build",
            format!("MaglevTable::build M=65537, {n} backends"),
            per.as_secs_f64() * 1e3
        );
    }

    // A big cluster: 5,000 nodes (cluster.toml) and 50,000 pods (kubectl text), merged.
    let mut toml = String::new();
    for n in 0..5_000u32 {
        toml.push_str(&format!(
            "[[nodes]]\nname = \"node{n}\"\nip = \"10.{}.{}.{}\"\npod_cidr = \"10.{}.{}.0/24\"\nzone = \"{}\"\n",
            200 + n / 65_536, (n / 256) % 256, n % 256, 100 + n / 256, n % 256, n % 3
        ));
    }
    let mut pods = String::from("NAME         IP              NODE\n");
    for p in 0..50_000u32 {
        let n = p % 5_000;
        pods.push_str(&format!(
            "pod{p:<9} 10.{}.{}.{:<5} node{n}\n",
            100 + n / 256,
            n % 256,
            2 + p / 5_000
        ));
    }
    let t = Instant::now();
    let mut b = ClusterBuilder::new();
    b.add_source(parse_cluster_toml(&toml, "big.toml", std::path::Path::new(".")).unwrap());
    b.add_source(parse_kubectl_text(&pods, "pods.txt").unwrap());
    let (cluster, diags) = b.build();
    println!(
        "{:<44} {:>8.1} ms ({} warnings)",
        "parse + merge 5,000 nodes, 50,000 pods",
        t.elapsed().as_secs_f64() * 1e3,
        diags.len()
    );
    let probes: Vec<IpAddr> = (0..1_000_000u32)
        .map(|i| {
            IpAddr::from([
                10,
                (100 + (i % 5_000) / 256) as u8,
                ((i % 5_000) % 256) as u8,
                (2 + i % 12) as u8,
            ])
        })
        .collect();
    let t = Instant::now();
    let mut zones = 0usize;
    for ip in &probes {
        if let Some(n) = cluster.node_of_endpoint(black_box(*ip)) {
            zones += usize::from(n.zone().is_some());
        }
    }
    black_box(zones);
    report(
        "Cluster::node_of_endpoint, 5,000 nodes",
        1_000_000,
        t.elapsed(),
    );
}
