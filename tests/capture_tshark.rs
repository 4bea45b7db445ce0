//! Acceptance: on captures with no NAT inside them, `report` lists exactly the requests tshark
//! finds as `http.request` — same client address and port, method and target. Runs tshark when
//! it is installed (Debian package `tshark`), otherwise prints "skipped".

mod capture_scenarios;

use capture_scenarios::all_captures;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

fn tshark_available() -> bool {
    Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn scratch_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("capture_tshark");
    std::fs::create_dir_all(&d).unwrap();
    d
}

type Key = (String, u16, String, String);

/// Multiset of (client ip, client port, method, target).
fn tshark_requests(path: &std::path::Path) -> BTreeMap<Key, usize> {
    let out = Command::new("tshark")
        .args(["-n", "-o", "tcp.reassemble_out_of_order:TRUE", "-r"])
        .arg(path)
        .args(["-Y", "http.request", "-T", "fields", "-E", "separator=\t"])
        .args([
            "-e",
            "ip.src",
            "-e",
            "ipv6.src",
            "-e",
            "tcp.srcport",
            "-e",
            "http.request.method",
            "-e",
            "http.request.uri",
        ])
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "tshark failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut m = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 5, "unexpected tshark line {line:?}");
        let ip = if f[0].is_empty() { f[1] } else { f[0] };
        // Several requests in one frame (pipelining) come out comma-separated.
        let methods: Vec<&str> = f[3].split(',').collect();
        let uris: Vec<&str> = f[4].split(',').collect();
        assert_eq!(methods.len(), uris.len(), "{line:?}");
        for (mth, uri) in methods.iter().zip(&uris) {
            *m.entry((
                ip.to_string(),
                f[2].parse().unwrap(),
                mth.to_string(),
                uri.to_string(),
            ))
            .or_insert(0) += 1;
        }
    }
    m
}

fn our_requests(path: &std::path::Path) -> BTreeMap<Key, usize> {
    let cap = hoptrace::capture::Capture::open(0, path, Default::default()).unwrap();
    let mut m = BTreeMap::new();
    for r in &cap.requests {
        let key = (
            r.client.ip().to_string(),
            r.client.port(),
            String::from_utf8(r.method().to_vec()).unwrap(),
            String::from_utf8(r.target().to_vec()).unwrap(),
        );
        *m.entry(key).or_insert(0) += 1;
    }
    m
}

#[test]
fn report_matches_tshark_http_request() {
    if !tshark_available() {
        eprintln!("skipped: tshark is not installed (apt-get install tshark)");
        return;
    }
    let dir = scratch_dir();
    let mut checked = 0;
    for (name, bytes) in all_captures() {
        let path = dir.join(&name);
        std::fs::write(&path, &bytes).unwrap();
        let theirs = tshark_requests(&path);
        let ours = our_requests(&path);
        assert!(!ours.is_empty(), "{name}: no requests found");
        assert_eq!(ours, theirs, "{name}: hoptrace (left) vs tshark (right)");
        checked += 1;
    }
    assert!(checked >= 10);
}
