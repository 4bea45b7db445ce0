//! kube-proxy's own packet-flow expectations (`shared/corpus/kube-proxy/cases.json`, 73 cases)
//! replayed against both forms of each rule set: kube-proxy's restore input (`dumps/`) and what
//! `iptables-save` printed on a real kernel (`saved/`).
//!
//! How hoptrace's answer maps onto the harness's output string (HARNESS.md):
//! * endpoints: the set of reachable DNAT targets;
//! * verdict word: the harness only walks filter KUBE-SERVICES, KUBE-EXTERNAL-SERVICES,
//!   KUBE-NODEPORTS and KUBE-PROXY-FIREWALL, so a DROP/REJECT/ACCEPT is reported when one of
//!   those chains decided it. hoptrace walks the real hooks, so it may also see e.g.
//!   KUBE-FIREWALL drop a martian localhost packet; the harness prints nothing for that;
//! * masquerade: a MASQUERADE in nat POSTROUTING is reached.

use hoptrace::netfilter::{self, DecidedBy, NodeContext, Packet, Protocol, TableName, Verdict};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn corpus() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/corpus/kube-proxy"
    ));
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

const HARNESS_CHAINS: [&str; 4] = [
    "KUBE-SERVICES",
    "KUBE-EXTERNAL-SERVICES",
    "KUBE-NODEPORTS",
    "KUBE-PROXY-FIREWALL",
];

fn run_case(dir: &Path, form: &str, case: &Value) -> Option<Result<(), String>> {
    let dump = case["dump"].as_str().unwrap();
    let path = dir.join(form).join(dump);
    if !path.exists() {
        return None;
    }
    let (rs, errors) = netfilter::load(&std::fs::read(&path).unwrap(), &path.display().to_string());
    assert!(errors.is_empty(), "{}: {errors:?}", path.display());
    let local: Vec<_> = case["local_ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().parse().unwrap())
        .collect();
    let ctx = NodeContext::new(local);
    let proto = Protocol::parse(case["protocol"].as_str().unwrap())
        .unwrap()
        .unwrap();
    let pkt = Packet::new(
        proto,
        case["source_ip"].as_str().unwrap().parse().unwrap(),
        None,
        case["dest_ip"].as_str().unwrap().parse().unwrap(),
        case["dest_port"].as_u64().unwrap() as u16,
    );
    let tr = netfilter::trace(&rs, &ctx, &pkt, Default::default());
    // Without the path, the compact fast path decides; it must agree.
    let quick = netfilter::trace(
        &rs,
        &ctx,
        &pkt,
        netfilter::TraceOptions {
            record_path: false,
            ..Default::default()
        },
    );
    assert_eq!(
        (
            &quick.endpoints,
            quick.verdict,
            &quick.decided_by,
            quick.masquerade
        ),
        (&tr.endpoints, tr.verdict, &tr.decided_by, tr.masquerade),
        "{}",
        path.display()
    );
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
    let expected: BTreeSet<String> = case["expected_output"]
        .as_str()
        .unwrap()
        .split(", ")
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let masq = case["expected_masq"].as_bool().unwrap();
    let sum: f64 = tr.endpoints.iter().map(|e| e.probability).sum();
    let ok = got == expected
        && tr.masquerade == masq
        && (tr.endpoints.is_empty() || (sum - 1.0).abs() < 1e-9);
    Some(if ok {
        Ok(())
    } else {
        let path_text: Vec<String> = tr
            .path
            .iter()
            .filter(|s| s.matched)
            .map(|s| format!("  {} {} #{} {}", s.table, s.chain, s.rule, s.text))
            .collect();
        Err(format!(
            "{form}/{dump} [{}]: {} -> {}:{} expected {expected:?} masq={masq}, got {got:?} masq={} verdict={:?} by {:?} (p sum {sum})\n{}",
            case["name"].as_str().unwrap(),
            pkt.src,
            pkt.dst,
            pkt.dst_port,
            tr.masquerade,
            tr.verdict,
            tr.decided_by,
            path_text.join("\n")
        ))
    })
}

#[test]
fn all_kube_proxy_cases_pass_on_both_forms() {
    let Some(dir) = corpus() else { return };
    let cases: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    assert_eq!(cases.len(), 73);
    let (mut run, mut failures) = (0, Vec::new());
    for c in &cases {
        for form in ["dumps", "saved"] {
            match run_case(&dir, form, c) {
                Some(Ok(())) => run += 1,
                Some(Err(e)) => failures.push(e),
                None => {}
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        run + failures.len(),
        failures.join("\n\n")
    );
    // Every case on dumps/, and on saved/ wherever the kernel accepted the dump.
    assert!(run >= 73 + 60, "only {run} case runs");
    println!("{run} case runs passed");
}
