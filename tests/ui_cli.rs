//! The top-level command line (interface.md: `hoptrace [SUBCOMMAND] [INPUT]...`): INPUTs and
//! `--capture/--rules/--cluster` without a subcommand open the TUI on a terminal and print the
//! report otherwise; `tui`/`tour` name embedded recordings; missing files are usage errors.

use std::process::Command;

fn hoptrace(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hoptrace"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run hoptrace")
}

#[test]
fn a_folder_without_subcommand_is_an_input() {
    let out = hoptrace(&["captures/02-no-keepalive"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // No terminal here: the report of the folder, as `hoptrace report DIR` prints it.
    assert!(
        stdout.contains("Summary: 10 request(s) on 10 connection(s)"),
        "{stdout}"
    );
    let report = hoptrace(&["report", "captures/02-no-keepalive"]);
    assert_eq!(out.stdout, report.stdout);
    assert_eq!(out.status.code(), report.status.code());
}

#[test]
fn top_level_flags_name_inputs() {
    let d = "captures/01-keepalive";
    let args: Vec<String> = vec![
        "--capture".into(),
        format!("{d}/client1-eth0.pcap"),
        "--capture".into(),
        format!("node2={d}/node2-eth0.pcap"),
        "--capture".into(),
        format!("node1={d}/node1-eth0.pcap"),
        "--rules".into(),
        format!("node2={d}/node2.rules"),
        "--cluster".into(),
        format!("{d}/cluster.toml"),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = hoptrace(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Summary: 10 request(s) on 1 connection(s)"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn subcommands_still_win_and_bad_inputs_are_usage_errors() {
    let out = hoptrace(&["rules", "captures/03-three-replicas/node0.rules"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("default/testapp"));
    // Not a terminal: the TUI refuses with a clear message; a missing file is exit 2 first.
    let out = hoptrace(&["tui", "/nonexistent/capture.pcap"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent/capture.pcap: no such file")
    );
    let out = hoptrace(&["tour", "02"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs a terminal"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
