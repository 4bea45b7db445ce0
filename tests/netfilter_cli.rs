//! `hoptrace trace` and `hoptrace rules` as documented in interface.md and README.md: output
//! shapes, exit statuses, error messages.

use hoptrace::netfilter::kube::generate::{self, ClusterShape};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hoptrace"))
}

/// A temporary file, removed on drop.
struct Temp(PathBuf);
impl Temp {
    fn new(name: &str, content: &str) -> Temp {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("htnf-{}-{n}-{name}", std::process::id()));
        std::fs::write(&p, content).unwrap();
        Temp(p)
    }
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}
impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn complete_rules() -> (Temp, generate::GeneratedService) {
    let shape = ClusterShape {
        services: 3,
        endpoints: 3,
        ..Default::default()
    };
    (
        Temp::new("complete.rules", &generate::generate(&shape)),
        generate::services(&shape).remove(1),
    )
}

#[test]
fn trace_json_follows_the_contract() {
    let (f, svc) = complete_rules();
    let out = bin()
        .args([
            "trace",
            "--rules",
            f.path(),
            "--src",
            "203.0.113.9:40000",
            "--dst",
            &format!("{}:80", svc.cluster_ip),
        ])
        .args(["--local-ip", "10.220.1.4", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "ACCEPT");
    assert_eq!(v["decided_by"]["table"], "filter");
    assert_eq!(v["decided_by"]["chain"], "KUBE-FORWARD");
    assert_eq!(v["decided_by"]["rule"], 2);
    assert_eq!(v["masquerade"], true);
    let eps = v["endpoints"].as_array().unwrap();
    assert_eq!(eps.len(), 3);
    let total: f64 = eps.iter().map(|e| e["probability"].as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-12);
    for e in eps {
        assert!(
            e["ip"].is_string()
                && e["port"] == 8080
                && e["chain"].as_str().unwrap().starts_with("KUBE-SEP-")
        );
        assert_eq!(e["masquerade"], true);
        let last = e["path"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["chain"], "KUBE-POSTROUTING");
    }
    let path = v["path"].as_array().unwrap();
    for s in path {
        for k in ["table", "chain", "rule", "text", "matched"] {
            assert!(!s[k].is_null(), "path step without {k}: {s}");
        }
    }
    assert!(path.iter().any(|s| {
        s["matched"] == false
            && s["why_not"]
                .as_str()
                .is_some_and(|w| w.contains("source is 203.0.113.9"))
    }));
}

#[test]
fn trace_text_reads_like_iptables_and_policy_is_reported() {
    let (f, _) = complete_rules();
    let out = bin()
        .args([
            "trace",
            "--rules",
            f.path(),
            "--src",
            "203.0.113.9",
            "--dst",
            "8.8.8.8:53",
            "--proto",
            "udp",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("verdict  ACCEPT  (decided by filter FORWARD policy ACCEPT)"),
        "{text}"
    );
    assert!(text.contains("endpoints none"), "{text}");
    let out = bin()
        .args([
            "trace",
            "--rules",
            f.path(),
            "--src",
            "203.0.113.9",
            "--dst",
            "8.8.8.8:53",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decided_by"], "policy");
    assert_eq!(v["policy"]["chain"], "FORWARD");
}

#[test]
fn restore_dump_warns_with_exit_1_and_bad_input_exits_2_naming_the_line() {
    let dump = "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-X - [0:0]\n-A KUBE-SERVICES -d 172.30.0.1/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-X\n\
                -A KUBE-SVC-X -j DNAT --to-destination 10.0.0.1:80\nCOMMIT\n";
    let f = Temp::new("dump.rules", dump);
    let out = bin()
        .args([
            "trace",
            "--rules",
            f.path(),
            "--src",
            "10.1.1.1",
            "--dst",
            "172.30.0.1:80",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("added kube-proxy's standard jumps"));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["endpoints"][0]["ip"], "10.0.0.1");

    let bad = Temp::new(
        "bad.rules",
        "*nat\n:X - [0:0]\n-A X -p tcp --dport nope -j ACCEPT\nCOMMIT\n",
    );
    let out = bin().args(["rules", bad.path()]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a bad line is skipped with a warning"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":3:21: expected a port number"), "{err}");

    let garbage = Temp::new("garbage.bin", "\u{0}\u{1}\u{2}binary\n");
    let out = bin().args(["rules", garbage.path()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = bin()
        .args([
            "trace",
            "--rules",
            garbage.path(),
            "--src",
            "1.1.1.1",
            "--dst",
            "2.2.2.2",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "usage error: --dst needs a port"
    );
}

#[test]
fn rules_json_and_affinity_what_if() {
    let (f, svc) = complete_rules();
    let out = bin()
        .args(["rules", f.path(), "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["layout"], "new");
    let s = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == svc.name.as_str())
        .unwrap();
    assert_eq!(s["name_verified"], true);
    assert_eq!(s["endpoints"].as_array().unwrap().len(), 3);
    assert!(
        s["frontends"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "node_port" && f["port"] == svc.node_port)
    );

    let out = bin()
        .args([
            "rules",
            f.path(),
            "--set-affinity",
            &format!("{}=900", svc.name),
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.matches("--rcheck --seconds 900 --reap").count(), 3);
    assert_eq!(text.matches("-m recent --set").count(), 3);
    let listed = bin().args(["rules", f.path(), "--list"]).output().unwrap();
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(
        listed.contains("Chain KUBE-SERVICES (2 references)")
            && listed.contains("Chain PREROUTING (policy ACCEPT 0 packets, 0 bytes)"),
        "{listed}"
    );
}
