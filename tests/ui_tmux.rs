//! End to end in a real terminal: tmux runs the REAL `hoptrace` binary on the embedded
//! walkthrough (the lab's recordings) from a shell; we move, open detail, toggle affinity, filter,
//! open help, follow the tour across recordings, resize, quit, and check the prompt is back and
//! `stty -g` is as before; and after SIGTERM and SIGHUP. The FIXTURE DEMO
//! (examples/tui_fixture.rs, hand-written data, never shown to users) drives the same session on
//! the fixture and a panic (it can panic on purpose; the real binary cannot be made to). Skips
//! (with a message) when tmux is missing or the example was not built (`cargo test` builds it;
//! `cargo test --test ui_tmux` alone does not).

mod common;

use common::tmux::{PROMPT, Tmux};
use std::path::PathBuf;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn fixture_binary() -> Option<PathBuf> {
    // target/debug/deps/ui_tmux-… → target/debug/examples/tui_fixture
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("examples").join("tui_fixture");
    if bin.exists() {
        Some(bin)
    } else {
        println!(
            "skipped: {} not built (run `cargo test` or `cargo build --example tui_fixture`)",
            bin.display()
        );
        None
    }
}

fn dir() -> PathBuf {
    std::env::temp_dir()
}

/// Start the fixture demo in the shell, having saved the terminal settings to `before`.
fn launch(t: &Tmux, bin: &std::path::Path, tag: &str) {
    launch_with(t, bin, tag, "");
    t.wait_for("Requests 60", WAIT);
}

/// Start `bin args` in the shell, having saved the terminal settings for `assert_terminal_sane`.
fn launch_with(t: &Tmux, bin: &std::path::Path, tag: &str, args: &str) {
    let before = dir().join(format!("hoptrace-stty-{tag}-{}-before", std::process::id()));
    t.send_line(&format!(
        // The markers carry the tag: an earlier run's `EXIT=`/`SAVED` may still be on screen.
        "stty -g > {}; {} {args}; echo EXIT-{tag}=$?",
        before.display(),
        bin.display()
    ));
}

/// After the app ended: the alternate screen is off, the prompt is back, the exit status printed,
/// and `stty -g` matches what it was before (raw mode off, echo on, …).
fn assert_terminal_sane(t: &Tmux, tag: &str, exit: &str) {
    let s = t.wait_for(&format!("EXIT-{tag}={exit}"), WAIT);
    assert_eq!(
        t.format("#{alternate_on}"),
        "0",
        "left the alternate screen:\n{s}"
    );
    let before = dir().join(format!("hoptrace-stty-{tag}-{}-before", std::process::id()));
    let after = dir().join(format!("hoptrace-stty-{tag}-{}-after", std::process::id()));
    t.send_line(&format!("stty -g > {}; echo SAVED-{tag}", after.display()));
    let s = t.wait_for(&format!("\nSAVED-{tag}\n{}", PROMPT.trim_end()), WAIT);
    assert!(
        s.trim_end().ends_with(PROMPT.trim_end()),
        "the prompt is back:\n{s}"
    );
    let (b, a) = (
        std::fs::read_to_string(&before).unwrap(),
        std::fs::read_to_string(&after).unwrap(),
    );
    assert_eq!(b, a, "terminal settings restored");
    let _ = std::fs::remove_file(before);
    let _ = std::fs::remove_file(after);
}

/// The real binary, on the embedded walkthrough (`hoptrace tui`: 03-three-replicas).
#[test]
fn real_binary_on_the_embedded_walkthrough() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_hoptrace"));
    let Some(t) = Tmux::start("real", 80, 24, &dir()) else {
        return;
    };
    launch_with(&t, &bin, "real", "tui");
    let s = t.wait_for("Requests 30", WAIT);
    assert!(
        s.contains("03-three-replicas") || s.contains("recorded · 30 requests"),
        "{s}"
    );
    assert!(s.contains("▸    1 10:47:49.945"), "{s}");

    // Move: request 3 entered node0 and went to x7427 on node1.
    t.keys(&["j", "j"]);
    let s = t.wait_for("Journey #3", WAIT);
    assert!(s.contains("x7427") && s.contains("node0"), "{s}");
    t.keys(&["Enter"]);
    let s = t.wait_for("Request #3 — detail", WAIT);
    assert!(s.contains("DNAT → 10.100.2.2:80"), "{s}");
    t.keys(&["Escape"]);
    t.wait_for("Journey #3", WAIT);

    // sessionAffinity what-if, and back.
    t.keys(&["a"]);
    let s = t.wait_for("30 of 30 requests moved", WAIT);
    assert!(
        s.contains("sessionAffinity ClientIP") && s.contains("WHAT-IF"),
        "{s}"
    );
    assert!(s.contains("71.246.222.12 → testapp-…-cq567 only"), "{s}");
    t.keys(&["a"]);
    let s = t.wait_for("recorded · 30 requests on 30 client connections", WAIT);
    assert!(
        !s.contains("WHAT-IF"),
        "toggling back restores the recorded view:\n{s}"
    );

    // Filter by pod.
    t.keys(&["/"]);
    t.text("rgm5l");
    t.keys(&["Enter"]);
    t.wait_for("Requests 9 of 30 · /rgm5l", WAIT);
    t.keys(&["Escape"]);
    t.wait_for("Requests 30 ", WAIT);

    t.keys(&["?"]);
    let s = t.wait_for("Help: Requests view", WAIT);
    assert!(s.contains("move down"), "{s}");
    t.keys(&["Escape"]);
    t.wait_gone("Help: Requests view", WAIT);

    // The tour switches recordings: step 1 is 01-keepalive, step 10 04-affinity-sourceip.
    t.keys(&["t"]);
    let s = t.wait_for("Tour 1/13", WAIT);
    t.wait_for("recorded · 10 requests on 1 client connection", WAIT);
    assert!(s.contains("Keep-alive keeps one node"), "{s}");
    for _ in 0..9 {
        t.keys(&["]"]);
    }
    t.wait_for("Tour 10/13", WAIT);
    t.wait_for("recorded · 24 requests", WAIT);

    t.resize(160, 48);
    let s = t.wait_for("1 Requests  2 Connections  3 Rules  4 Nodes/pods", WAIT);
    assert!(s.contains("04-affinity-sourceip"), "{s}");
    t.resize(80, 24);
    t.wait_for("1 Req  2 Conn", WAIT);

    t.keys(&["q"]);
    assert_terminal_sane(&t, "real", "0");
}

/// `hoptrace DIR` (no subcommand) opens the TUI on the folder; `hoptrace` alone opens the tour.
#[test]
fn real_binary_top_level_inputs_and_no_args() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_hoptrace"));
    let Some(t) = Tmux::start("toplevel", 80, 24, &dir()) else {
        return;
    };
    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/captures/02-no-keepalive");
    launch_with(&t, &bin, "toplevel", folder);
    t.wait_for("recorded · 10 requests on 10 client connections", WAIT);
    t.keys(&["q"]);
    assert_terminal_sane(&t, "toplevel", "0");

    launch_with(&t, &bin, "noargs", "");
    let s = t.wait_for("Tour 1/13", WAIT);
    assert!(s.contains("01-keepalive"), "{s}");
    t.keys(&["q"]);
    assert_terminal_sane(&t, "noargs", "0");
}

/// `q` while a big capture is still being read ends the program at once (the load task does not
/// hold the exit), and the terminal is sane.
#[test]
fn quitting_while_a_big_capture_loads_is_immediate() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_hoptrace"));
    let Some(t) = Tmux::start("bigload", 80, 24, &dir()) else {
        return;
    };
    let pcap = dir().join(format!("hoptrace-bigload-{}.pcap", std::process::id()));
    let file = std::fs::File::create(&pcap).unwrap();
    // 128 MiB: ~9 s of reading and replaying in a debug build, far longer than the bound below.
    hoptrace::capture::synth::write_bench_pcap(file, 128 << 20).unwrap();
    launch_with(&t, &bin, "bigload", &pcap.display().to_string());
    t.wait_for("Loading", WAIT);
    let start = std::time::Instant::now();
    t.keys(&["q"]);
    t.wait_for("EXIT-bigload=0", WAIT);
    let took = start.elapsed();
    let _ = std::fs::remove_file(&pcap);
    assert_terminal_sane(&t, "bigload", "0");
    assert!(took < Duration::from_secs(3), "quit took {took:?}");
}

#[test]
fn session_move_detail_affinity_filter_help_resize_quit() {
    let Some(bin) = fixture_binary() else { return };
    let Some(t) = Tmux::start("session", 80, 24, &dir()) else {
        return;
    };
    launch(&t, &bin, "session");
    let s = t.screen();
    assert!(s.contains("▸    1 10:06:20.000"), "{s}");
    assert!(s.contains("Journey #1"), "{s}");

    t.keys(&["j", "j"]);
    t.wait_for("Journey #3", WAIT);
    t.keys(&["Enter"]);
    let s = t.wait_for("Request #3 — detail", WAIT);
    assert!(s.contains("DNAT → 10.100.1.4:80"), "{s}");
    t.keys(&["Escape"]);
    t.wait_for("Journey #3", WAIT);

    t.keys(&["a"]);
    let s = t.wait_for(
        "sessionAffinity ClientIP (what-if): 53 of 60 requests moved",
        WAIT,
    );
    assert!(s.contains("WHAT-IF") && s.contains("cq567 → zp4ns"), "{s}");
    t.keys(&["a"]);
    let s = t.wait_for("recorded · 60 requests", WAIT);
    assert!(
        !s.contains("WHAT-IF") && !s.contains("→ zp4ns"),
        "toggling back restores the recorded view:\n{s}"
    );

    t.keys(&["/"]);
    t.text("52.168");
    t.keys(&["Enter"]);
    t.wait_for("Requests 10 of 60 · /52.168", WAIT);
    t.keys(&["Escape"]);
    t.wait_for("Requests 60 ", WAIT);

    t.keys(&["?"]);
    t.wait_for("Help: Requests view", WAIT);
    t.keys(&["Escape"]);
    t.wait_gone("Help: Requests view", WAIT);

    t.resize(160, 48);
    let s = t.wait_for("ALB b→node", WAIT);
    assert!(
        s.contains("1 Requests  2 Connections  3 Rules  4 Nodes/pods"),
        "wide header after resize:\n{s}"
    );
    t.resize(80, 24);
    t.wait_for("1 Req  2 Conn", WAIT);

    t.keys(&["q"]);
    assert_terminal_sane(&t, "session", "0");
}

/// The real binary (embedded walkthrough) killed by `sig` from outside, as an SSH drop does.
fn signal_restores(sig: &str) {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_hoptrace"));
    let Some(t) = Tmux::start(&format!("sig{sig}"), 80, 24, &dir()) else {
        return;
    };
    launch_with(&t, &bin, sig, "tui");
    t.wait_for("Requests 30", WAIT);
    let shell = t.format("#{pane_pid}");
    let out = std::process::Command::new("ps")
        .args(["-o", "pid=", "--ppid", &shell])
        .output()
        .unwrap();
    let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(!pid.is_empty(), "the app runs under the shell");
    let status = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid])
        .status()
        .unwrap();
    assert!(status.success());
    assert_terminal_sane(&t, sig, "0");
}

#[test]
fn sigterm_restores_the_terminal() {
    signal_restores("TERM");
}

#[test]
fn sighup_restores_the_terminal() {
    signal_restores("HUP");
}

#[test]
fn a_panic_restores_the_terminal() {
    let Some(bin) = fixture_binary() else { return };
    let Some(t) = Tmux::start("panic", 80, 24, &dir()) else {
        return;
    };
    launch_with(&t, &bin, "panic", "--panic 2>/dev/null");
    assert_terminal_sane(&t, "panic", "101");
}
