//! `hoptrace report` end to end: formats, stdin streaming, NODE=FILE, the embedded scenario.

mod capture_scenarios;

use capture_scenarios::*;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hoptrace"))
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = bin().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn scratch(name: &str, bytes: &[u8]) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("capture_cli");
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn json_has_requests_and_warnings_with_interface_fields() {
    let p = scratch(
        "ka.pcap",
        &pcap(&eth(), keepalive("10.9.0.1:40000", T0).segments()),
    );
    let (code, out, err) = run(&["report", "--format", "json", p.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let reqs = v["requests"].as_array().unwrap();
    assert_eq!(reqs.len(), 3);
    assert_eq!(v["warnings"].as_array().unwrap().len(), 0);
    let r = &reqs[1];
    assert_eq!(r["id"], 2);
    assert_eq!(r["connection"], 1);
    assert_eq!(r["capture"], "ka.pcap");
    assert_eq!(
        r["client"],
        serde_json::json!({"ip": "10.9.0.1", "port": 40000})
    );
    assert_eq!(
        r["frontend"],
        serde_json::json!({"ip": "10.0.0.80", "port": 80})
    );
    assert_eq!(
        (
            r["method"].as_str(),
            r["target"].as_str(),
            r["host"].as_str()
        ),
        (Some("GET"), Some("/yo"), Some("svc.example"))
    );
    assert_eq!(r["status"], 201);
    assert!(
        r["time"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-27T10:06:40.")
            && r["time"].as_str().unwrap().ends_with('Z')
    );
    assert_eq!(
        r["time"].as_str().unwrap().len(),
        "2026-11-21T10:06:27.731204Z".len()
    );
    for k in [
        "alb",
        "node",
        "endpoint",
        "pod",
        "masquerade",
        "crossed_node",
        "crossed_zone",
        "whatif",
    ] {
        assert!(r[k].is_null(), "{k}");
    }
    assert_eq!(r["path"], serde_json::json!([]));
    // Round-trips into the journey record type.
    let _: Vec<hoptrace::journey::model::RequestJourney> =
        serde_json::from_value(v["requests"].clone()).unwrap();
}

#[test]
fn ndjson_csv_table_and_connections() {
    let p = scratch(
        "pl.pcap",
        &pcap(&eth(), pipelined("10.9.0.2:40000", T0).segments()),
    );
    let p = p.to_str().unwrap();
    let (_, nd, _) = run(&["report", "--format", "ndjson", p]);
    assert_eq!(nd.lines().count(), 3);
    for l in nd.lines() {
        let _: serde_json::Value = serde_json::from_str(l).unwrap();
    }
    let (_, csv, _) = run(&["report", "--format", "csv", p]);
    let mut lines = csv.lines();
    // The capture layer's columns first; the journey layer's follow.
    assert!(lines.next().unwrap().starts_with("id,connection,time,capture,client_ip,client_port,frontend_ip,frontend_port,method,target,host,status,"));
    assert!(lines.nth(1).unwrap().contains(",GET,/p2?x=1,h,404"));
    let (_, table, _) = run(&["report", p]);
    assert!(table.starts_with("ID  CONN  TIME"), "{table}");
    assert!(table.contains("/p2?x=1"));
    let (code, conns, _) = run(&["report", "--connections", "--format", "json", p]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&conns).unwrap();
    let c = &v["connections"][0];
    assert_eq!(c["initiator"], "syn");
    assert_eq!(c["http_requests"], 3);
    assert!(c["isn_client"].is_u64() && c["isn_server"].is_u64());
    let (_, t, _) = run(&["report", "--connections", p]);
    assert!(
        t.contains("10.9.0.2:40000") && t.contains("established"),
        "{t}"
    );
}

#[test]
fn stdin_stream_and_node_prefix() {
    let bytes = pcap(&eth(), keepalive("10.9.0.3:40000", T0).segments());
    let mut child = bin()
        .args(["report", "--format", "ndjson", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    assert_eq!(s.lines().count(), 3);
    assert!(s.contains("\"capture\":\"stdin\""));

    let p = scratch("n.pcap", &bytes);
    let arg = format!("node7={}", p.display());
    let (code, out, _) = run(&["report", "--connections", "--format", "json", &arg]);
    assert_eq!(code, 0);
    assert!(out.contains("\"node\": \"node7\""), "{out}");
    let (code, out, _) = run(&[
        "report",
        "--format",
        "ndjson",
        "--capture",
        p.to_str().unwrap(),
    ]);
    assert_eq!((code, out.lines().count()), (0, 3));
}

#[test]
fn several_captures_number_connections_globally() {
    let a = scratch(
        "a.pcap",
        &pcap(&eth(), keepalive("10.9.0.4:40000", T0).segments()),
    );
    let b = scratch(
        "b.pcap",
        &pcap(&eth(), pipelined("10.9.0.5:40000", T0 + 1).segments()),
    );
    let (_, out, _) = run(&[
        "report",
        "--format",
        "json",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let reqs = v["requests"].as_array().unwrap();
    assert_eq!(reqs.len(), 6);
    let conns: std::collections::BTreeSet<u64> = reqs
        .iter()
        .map(|r| r["connection"].as_u64().unwrap())
        .collect();
    assert_eq!(conns.into_iter().collect::<Vec<_>>(), [1, 2]);
    let ids: Vec<u64> = reqs.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (1..=6).collect::<Vec<_>>());
}

#[test]
fn no_arguments_prints_the_embedded_scenario() {
    let (code, out, err) = run(&[]);
    assert_eq!(code, 0, "{err}");
    // The lab recording captures/03-three-replicas, embedded in the binary.
    assert!(
        out.contains("Embedded walkthrough") && out.contains("03-three-replicas"),
        "{out}"
    );
    assert!(out.contains("71.246.222.12:36540") && out.contains("testapp-6f7947bc4b-x7427"));
    let (code, out, _) = run(&["report", "--format", "ndjson"]);
    assert_eq!((code, out.lines().count()), (0, 30));
}

#[test]
fn rules_only_inputs_warn_that_there_is_nothing_to_report() {
    let p = scratch(
        "rules.txt",
        b"# Generated by iptables-save v1.8.9\n*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n",
    );
    let (code, out, err) = run(&["report", "--format", "json", p.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("no capture"), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["requests"].as_array().unwrap().len(), 0);
}
