//! Netfilter engine at kube-proxy scale: 5,000 Services × 5 endpoints (old and new layout).
//!
//! Measures parse time, stateful traces per second over 1M random new connections on one core
//! (with conntrack, recent and statistic state), exhaustive traces per second, and memory.
//! Reference tool in the same run: `iptables-restore --test` parsing the same file (kernel
//! userspace parser), when running as root with `ip netns` available.
//!
//! Run: `cargo bench --bench netfilter_bench` (add `-- --quick` for 100k connections).

use hoptrace::netfilter::kube::Layout;
use hoptrace::netfilter::kube::generate::{self, ClusterShape};
use hoptrace::netfilter::{self, NodeContext, NodeEvaluator, Packet, TraceOptions};
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Nanoseconds this thread has run on a CPU (the machine is shared: wall time is not ours).
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// xorshift64*: cheap, deterministic packet generator.
struct Gen(u64);
impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn iptables_restore_test_ms(text: &str) -> Option<f64> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .is_some_and(|o| o.stdout.starts_with(b"0"));
    if !root {
        return None;
    }
    let ns = format!("htnf-bench-{}", std::process::id());
    Command::new("ip")
        .args(["netns", "add", &ns])
        .status()
        .ok()
        .filter(|s| s.success())?;
    let run = || -> Option<f64> {
        let t = Instant::now();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns, "iptables-restore", "--test"])
            .stdin(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        use std::io::Write as _;
        child.stdin.take()?.write_all(text.as_bytes()).ok()?;
        let ok = child.wait().ok()?.success();
        ok.then(|| t.elapsed().as_secs_f64() * 1e3)
    };
    let r = run();
    let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    r
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let connections: usize = if quick { 100_000 } else { 1_000_000 };
    let only = args
        .iter()
        .position(|a| a == "--layout")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let Some(only) = only else {
        // One process per layout, so that each one's memory is measured from a clean heap.
        println!(
            "netfilter benchmark: 5,000 services x 5 endpoints; {connections} stateful connections; one core"
        );
        for l in ["new", "old"] {
            let mut cmd = Command::new(std::env::current_exe().expect("own path"));
            cmd.args(["--layout", l]);
            if quick {
                cmd.arg("--quick");
            }
            let _ = cmd.status();
        }
        return;
    };
    let layouts = if only == "old" {
        [Layout::Old]
    } else {
        [Layout::New]
    };
    for layout in layouts {
        let shape = ClusterShape {
            services: 5000,
            endpoints: 5,
            layout,
            ..Default::default()
        };
        let text = generate::generate(&shape);
        let lines = text.lines().count();
        println!(
            "\n== layout {layout:?}: {lines} lines, {:.1} MB",
            text.len() as f64 / 1e6
        );

        // Memory of one parsed rule set, then parse time: best and median of 5 (each result
        // dropped before the next parse).
        let rss0 = rss_kib("VmRSS:");
        let rs = Arc::new(
            netfilter::parse(text.as_bytes(), "generated").expect("generated rules parse"),
        );
        let rss1 = rss_kib("VmRSS:");
        let mut times = Vec::new();
        let mut cpu_times = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let c0 = cpu_ns();
            let r = netfilter::parse(text.as_bytes(), "generated").expect("generated rules parse");
            times.push(t.elapsed().as_secs_f64() * 1e3);
            cpu_times.push((cpu_ns() - c0) as f64 / 1e6);
            drop(std::hint::black_box(r));
        }
        times.sort_by(f64::total_cmp);
        cpu_times.sort_by(f64::total_cmp);
        println!(
            "parse            CPU best {:.1} ms, median {:.1} ms (wall median {:.1} ms) ({} rules); the parsed rule set takes {:.1} MiB resident",
            cpu_times[0],
            cpu_times[2],
            times[2],
            rs.rule_count(),
            (rss1.saturating_sub(rss0)) as f64 / 1024.0
        );
        match iptables_restore_test_ms(&text) {
            Some(ms) => println!(
                "reference        iptables-restore --test (same file, in a netns): {ms:.1} ms"
            ),
            None => println!(
                "reference        iptables-restore --test: not run (needs root and ip netns)"
            ),
        }

        // Packets: random client, random Service ClusterIP.
        let svcs = generate::services(&shape);
        let mut g = Gen(0x5eed_0001);
        let packets: Vec<Packet> = (0..connections)
            .map(|_| {
                let r = g.next();
                let s = &svcs[(r % svcs.len() as u64) as usize];
                let client = IpAddr::V4((0xC633_0000u32 | ((r >> 16) as u32 & 0xffff)).into());
                Packet::tcp(
                    client,
                    Some(1024 + ((r >> 32) as u16 % 60000)),
                    IpAddr::V4(s.cluster_ip),
                    s.port,
                )
            })
            .collect();
        let ctx = NodeContext::new(["10.220.1.4".parse().unwrap()]);

        let rss2 = rss_kib("VmRSS:");
        let mut ev = NodeEvaluator::seeded(rs.clone(), ctx.clone(), 42);
        ev.record_path = false;
        let t = Instant::now();
        let c0 = cpu_ns();
        let mut dnat = 0usize;
        for (i, p) in packets.iter().enumerate() {
            // 1 ms apart: conntrack bindings expire after 120 s, so ~120k are live at a time.
            let d = ev.new_connection(p, i as u64 * 1_000_000);
            dnat += d.outcome.dnat.is_some() as usize;
        }
        let el = t.elapsed().as_secs_f64();
        let cpu = (cpu_ns() - c0) as f64 / 1e9;
        println!(
            "stateful         {:.2} M new connections/s of CPU time ({:.2} M/s wall; {:.0} ns CPU each; {dnat} DNATed; {} conntrack bindings live; +{:.1} MiB)",
            connections as f64 / cpu / 1e6,
            connections as f64 / el / 1e6,
            cpu * 1e9 / connections as f64,
            ev.state().connections(),
            rss_kib("VmRSS:").saturating_sub(rss2) as f64 / 1024.0
        );

        // The same, when the traffic goes to 50 Services (a capture replay): the rules in use stay
        // in cache, which shows how much of the cost above is memory latency.
        let mut ev = NodeEvaluator::seeded(rs.clone(), ctx.clone(), 42);
        ev.record_path = false;
        let hot: Vec<Packet> = packets
            .iter()
            .map(|p| {
                let s = &svcs[(u32::from(match p.dst {
                    IpAddr::V4(a) => a,
                    IpAddr::V6(_) => unreachable!(),
                }) % 50) as usize];
                Packet {
                    dst: IpAddr::V4(s.cluster_ip),
                    ..p.clone()
                }
            })
            .collect();
        let c0 = cpu_ns();
        for (i, p) in hot.iter().enumerate() {
            std::hint::black_box(ev.new_connection(p, i as u64 * 1_000_000));
        }
        let cpu = (cpu_ns() - c0) as f64 / 1e9;
        println!(
            "stateful, 50 svc {:.2} M new connections/s of CPU time ({:.0} ns CPU each)",
            connections as f64 / cpu / 1e6,
            cpu * 1e9 / connections as f64
        );
        drop(hot);

        let n = connections / 10;
        let mut ev = NodeEvaluator::seeded(rs.clone(), ctx.clone(), 42);
        let c0 = cpu_ns();
        for (i, p) in packets[..n].iter().enumerate() {
            std::hint::black_box(ev.new_connection(p, i as u64 * 1_000_000));
        }
        let cpu = (cpu_ns() - c0) as f64 / 1e9;
        println!(
            "stateful + path  {:.2} M new connections/s of CPU time (every rule tried recorded with its reason)",
            n as f64 / cpu / 1e6
        );

        let n = connections / 20;
        let c0 = cpu_ns();
        for p in &packets[..n] {
            std::hint::black_box(netfilter::trace(&rs, &ctx, p, TraceOptions::default()));
        }
        let cpu = (cpu_ns() - c0) as f64 / 1e9;
        println!(
            "exhaustive       {:.0} k traces/s of CPU time (5 branches each, full paths)",
            n as f64 / cpu / 1e3
        );
    }
    println!(
        "peak resident    {:.1} MiB",
        rss_kib("VmHWM:") as f64 / 1024.0
    );
}
