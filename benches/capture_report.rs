//! Capture engine throughput vs tshark and cat (not a timed test: prints numbers).
//!
//! `cargo bench --bench capture_report` generates (once) a ≥ 1 GiB pcap of short HTTP connections
//! under `target/bench/`, then in one run times, with GNU time (wall clock, user + system CPU time and peak RSS):
//!
//! * `cat FILE > /dev/null`
//! * `hoptrace report --format ndjson FILE` (memory-mapped, default threads: one on this 2-CPU
//!   machine), the same with `--threads 2`, and `hoptrace report --format ndjson - < FILE` (streamed from standard
//!   input, one thread)
//! * `tshark -r FILE -Y http.request -T fields -e ip.src -e tcp.srcport -e http.request.method
//!   -e http.request.uri`
//!
//! `HOPTRACE_BENCH_BYTES` overrides the size (default 1 GiB); `HOPTRACE_BENCH_SKIP_TSHARK=1` skips
//! tshark. All outputs go to files under `target/bench/` and the request counts are compared.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

struct Run {
    wall_s: f64,
    peak_rss_kib: u64,
    /// User + system CPU time: on a shared machine the wall clock mostly measures the others.
    cpu_s: f64,
    lines: usize,
}

fn timed(label: &str, shell: &str, out: &Path) -> Option<Run> {
    let time_file = out.with_extension("time");
    let status = Command::new("/usr/bin/time")
        .args(["-f", "%e %M %U %S", "-o"])
        .arg(&time_file)
        .args(["bash", "-c", shell])
        .stdout(Stdio::from(std::fs::File::create(out).ok()?))
        .stderr(Stdio::null())
        .status()
        .ok()?;
    if !status.success() && status.code() != Some(1) {
        eprintln!("{label}: exited with {status}");
    }
    let t = std::fs::read_to_string(&time_file).ok()?;
    let last = t.lines().last()?;
    let mut it = last.split_whitespace();
    let wall_s: f64 = it.next()?.parse().ok()?;
    let peak_rss_kib: u64 = it.next()?.parse().ok()?;
    let cpu_s: f64 = it.next()?.parse::<f64>().ok()? + it.next()?.parse::<f64>().ok()?;
    let lines = std::fs::read_to_string(out)
        .map(|s| s.lines().count())
        .unwrap_or(0);
    Some(Run {
        wall_s,
        peak_rss_kib,
        cpu_s,
        lines,
    })
}

fn main() {
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("bench");
    std::fs::create_dir_all(&target).expect("target/bench");
    let min_bytes: u64 = std::env::var("HOPTRACE_BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 30);
    let file = target.join(format!("capture-{min_bytes}.pcap"));
    let packets_file = file.with_extension("packets");
    let packets: u64 = match (
        std::fs::metadata(&file),
        std::fs::read_to_string(&packets_file),
    ) {
        (Ok(m), Ok(p)) if m.len() >= min_bytes => p.trim().parse().expect("packet count"),
        _ => {
            eprintln!("generating {} (≥ {min_bytes} bytes) …", file.display());
            let f = std::fs::File::create(&file).expect("create bench capture");
            let n = hoptrace::capture::synth::write_bench_pcap(f, min_bytes)
                .expect("write bench capture");
            std::fs::write(&packets_file, n.to_string()).expect("write packet count");
            n
        }
    };
    let size = std::fs::metadata(&file).expect("bench capture").len();
    let mb = size as f64 / 1e6;
    let f = file.display();
    let bin = env!("CARGO_BIN_EXE_hoptrace");
    println!("capture: {f}: {size} bytes, {packets} packets");
    // Warm the page cache so every tool reads from memory.
    let cat = timed(
        "cat",
        &format!("cat '{f}' > /dev/null; cat '{f}' > /dev/null"),
        &target.join("cat.out"),
    );
    let cat = cat.map(|r| Run {
        wall_s: r.wall_s / 2.0,
        cpu_s: r.cpu_s / 2.0,
        ..r
    });
    let ours = timed(
        "hoptrace",
        &format!("'{bin}' report --format ndjson '{f}'"),
        &target.join("hoptrace.ndjson"),
    );
    let ours_two = timed(
        "hoptrace 2 threads",
        &format!("'{bin}' report --threads 2 --format ndjson '{f}'"),
        &target.join("hoptrace-2.ndjson"),
    );
    let ours_stdin = timed(
        "hoptrace stdin",
        &format!("'{bin}' report --format ndjson - < '{f}'"),
        &target.join("hoptrace-stdin.ndjson"),
    );
    let skip_tshark = std::env::var("HOPTRACE_BENCH_SKIP_TSHARK").is_ok_and(|v| v == "1");
    let tshark = if skip_tshark || Command::new("tshark").arg("--version").output().is_err() {
        None
    } else {
        timed(
            "tshark",
            &format!(
                "tshark -n -r '{f}' -Y http.request -T fields -e ip.src -e tcp.srcport -e http.request.method -e http.request.uri"
            ),
            &target.join("tshark.tsv"),
        )
    };
    let line = |name: &str, r: &Option<Run>| match r {
        Some(r) => println!(
            "{name:<22} {:>8.2} s {:>9.1} MB/s {:>12.0} packets/s  CPU {:>7.2} s ({:>7.1} MB/s)  peak RSS {:>8.1} MiB  ({} lines)",
            r.wall_s,
            mb / r.wall_s,
            packets as f64 / r.wall_s,
            r.cpu_s,
            mb / r.cpu_s.max(0.001),
            r.peak_rss_kib as f64 / 1024.0,
            r.lines
        ),
        None => println!("{name:<22} not run"),
    };
    line("cat", &cat);
    line("hoptrace (mmap)", &ours);
    line("hoptrace (mmap, 2 thr)", &ours_two);
    line("hoptrace (stdin)", &ours_stdin);
    line("tshark", &tshark);
    if let Some(o) = &ours {
        let beyond = (o.peak_rss_kib * 1024) as f64 - size as f64;
        println!(
            "hoptrace (mmap) peak RSS beyond the file: {:.1} bytes/packet",
            beyond.max(0.0) / packets as f64
        );
    }
    if let Some(o) = &ours_stdin {
        println!(
            "hoptrace (stdin) peak RSS: {:.1} bytes/packet",
            (o.peak_rss_kib * 1024) as f64 / packets as f64
        );
    }
    if let (Some(o), Some(t)) = (&ours, &tshark) {
        println!(
            "throughput ratio hoptrace/tshark: {:.1}x",
            t.wall_s / o.wall_s
        );
        if let Some(o2) = &ours_two {
            println!(
                "throughput ratio hoptrace (2 threads)/tshark: {:.1}x",
                t.wall_s / o2.wall_s
            );
        }
        println!("requests: hoptrace {} tshark {}", o.lines, t.lines);
    }
    if let (Some(o), Some(c)) = (&ours, &cat) {
        println!("throughput ratio hoptrace/cat: {:.3}", c.wall_s / o.wall_s);
    }
}
