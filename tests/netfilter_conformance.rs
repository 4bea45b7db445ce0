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

#[path = "common/corpus.rs"]
mod corpus;

use corpus::HarnessCase;
use hoptrace::netfilter;
use serde_json::Value;
use std::path::Path;

fn run_case(dir: &Path, form: &str, case: &Value) -> Option<Result<(), String>> {
    let dump = case["dump"].as_str().unwrap();
    let path = dir.join(form).join(dump);
    if !path.exists() {
        return None;
    }
    let (rs, errors) = netfilter::load(&std::fs::read(&path).unwrap(), &path.display().to_string());
    assert!(errors.is_empty(), "{}: {errors:?}", path.display());
    let case = HarnessCase(case);
    let ctx = case.context();
    let pkt = case.packet();
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
    let got = corpus::harness_answer(&tr);
    let expected = case.expected();
    let masq = case.expected_masq();
    let sum: f64 = tr.endpoints.iter().map(|e| e.probability).sum();
    let ok = got == expected
        && tr.masquerade == masq
        && (tr.endpoints.is_empty() || (sum - 1.0).abs() < 1e-9);
    Some(if ok {
        Ok(())
    } else {
        Err(format!(
            "{form}/{dump} [{}]: {} -> {}:{} expected {expected:?} masq={masq}, got {got:?} masq={} verdict={:?} by {:?} (p sum {sum})\n{}",
            case.name(),
            pkt.src,
            pkt.dst,
            pkt.dst_port,
            tr.masquerade,
            tr.verdict,
            tr.decided_by,
            corpus::matched_path(&tr)
        ))
    })
}

#[test]
fn all_kube_proxy_cases_pass_on_both_forms() {
    let Some(dir) = corpus::kube_proxy_dir() else {
        return;
    };
    let cases = corpus::cases(&dir, "cases.json");
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
