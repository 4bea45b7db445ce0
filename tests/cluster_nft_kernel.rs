//! The `jhash` ALB model against the live kernel: nft rules `ct mark set jhash <key> mod N seed S`
//! in a throw-away network namespace (`htcl-*`), traffic over loopback only, marks read back with
//! `conntrack -L`, compared with [`FlowKey::nft_key`] + [`jhash`] + [`reciprocal_scale`] for all
//! three modes, IPv4 and IPv6, UDP and TCP, raw hashes (`mod 2^32-1`) and small bucket counts.
//!
//! Needs root, `ip`, `nft`, `conntrack` and `python3` (the traffic generator); otherwise it says
//! "skipped: …" and passes. The values it observed on Linux 6.18.44 are also pinned as plain unit
//! tests in `src/cluster/alb.rs`, so they are checked everywhere.

use hoptrace::cluster::jhash::{jhash, reciprocal_scale};
use hoptrace::cluster::{AlbMode, FlowKey};
use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

const TCP: u8 = 6;
const UDP: u8 = 17;

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

struct Netns(String);

impl Netns {
    fn create() -> Option<Self> {
        let name = format!("htcl-jhash-{}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .ok()?
            .success();
        ok.then(|| Netns(name))
    }
    fn run(&self, args: &[&str]) -> std::process::Output {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .output()
            .expect("ip netns exec");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
    fn run_stdin(&self, args: &[&str], input: &str) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

struct Case {
    mode: AlbMode,
    protocol: u8,
    dport: u16,
    modulus: u32,
    seed: u32,
    flows: Vec<(IpAddr, u16, IpAddr)>,
}

/// Sends one datagram (UDP) or completes one connection (TCP) per line
/// `proto src sport dst dport`, binding the source address and port.
const SENDER: &str = r#"
import socket, sys
lines = [l.split() for l in sys.stdin.read().splitlines() if l.strip()]
listeners = {}
for proto, src, sport, dst, dport in lines:
    fam = socket.AF_INET6 if ':' in dst else socket.AF_INET
    if proto == 'tcp' and (dst, dport) not in listeners:
        l = socket.socket(fam, socket.SOCK_STREAM)
        l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        l.bind((dst, int(dport))); l.listen(128)
        listeners[(dst, dport)] = l
for proto, src, sport, dst, dport in lines:
    fam = socket.AF_INET6 if ':' in dst else socket.AF_INET
    if proto == 'udp':
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.bind((src, int(sport))); s.sendto(b'x', (dst, int(dport))); s.close()
    else:
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((src, int(sport))); s.connect((dst, int(dport)))
        c, _ = listeners[(dst, dport)].accept(); c.close(); s.close()
"#;

fn conntrack_marks(ns: &Netns) -> HashMap<(String, String, u16, String, u16), u32> {
    let mut marks = HashMap::new();
    for fam in ["ipv4", "ipv6"] {
        let out = ns.run(&["conntrack", "-L", "-f", fam]);
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let toks: Vec<&str> = line.split_whitespace().collect();
            let first = |k: &str| toks.iter().find_map(|t| t.strip_prefix(k));
            let (Some(src), Some(dst), Some(sp), Some(dp), Some(mark)) = (
                first("src="),
                first("dst="),
                first("sport="),
                first("dport="),
                first("mark="),
            ) else {
                continue;
            };
            let key = (
                toks[0].to_owned(),
                src.to_owned(),
                sp.parse().unwrap(),
                dst.to_owned(),
                dp.parse().unwrap(),
            );
            marks.insert(key, mark.parse().unwrap());
        }
    }
    marks
}

#[test]
fn jhash_model_matches_the_kernel() {
    if !is_root() {
        eprintln!("skipped: needs root for a network namespace");
        return;
    }
    for tool in ["ip", "nft", "conntrack", "python3"] {
        if !have(tool) {
            eprintln!("skipped: `{tool}` not installed");
            return;
        }
    }
    let Some(ns) = Netns::create() else {
        eprintln!("skipped: cannot create a network namespace");
        return;
    };
    ns.run(&["ip", "link", "set", "lo", "up"]);
    for a in ["fd00::1", "fd00::2", "fd00::3", "fd00::4"] {
        ns.run(&[
            "ip",
            "-6",
            "addr",
            "add",
            &format!("{a}/128"),
            "dev",
            "lo",
            "nodad",
        ]);
    }

    let v4 = |s: &str| -> IpAddr { s.parse().unwrap() };
    let sports = |base: u16, n: u16, src: &str, dst: &str| -> Vec<(IpAddr, u16, IpAddr)> {
        (0..n).map(|i| (v4(src), base + i, v4(dst))).collect()
    };
    let sources = |srcs: &[&str], dst: &str| -> Vec<(IpAddr, u16, IpAddr)> {
        srcs.iter()
            .enumerate()
            .map(|(i, s)| (v4(s), 42000 + i as u16, v4(dst)))
            .collect()
    };
    let v4_srcs = [
        "127.0.0.1",
        "127.0.0.3",
        "127.0.0.4",
        "127.0.0.5",
        "127.0.0.9",
    ];
    let v6_srcs = ["fd00::1", "fd00::3", "fd00::4"];
    let raw = u32::MAX;
    let cases = vec![
        Case {
            mode: AlbMode::Default,
            protocol: UDP,
            dport: 8080,
            modulus: raw,
            seed: 0x1234_5678,
            flows: sports(40000, 4, "127.0.0.1", "127.0.0.2"),
        },
        Case {
            mode: AlbMode::Default,
            protocol: UDP,
            dport: 8092,
            modulus: 3,
            seed: 0x5eed_0001,
            flows: sports(40000, 24, "127.0.0.1", "127.0.0.2"),
        },
        Case {
            mode: AlbMode::Default,
            protocol: TCP,
            dport: 9000,
            modulus: 3,
            seed: 0x5eed_0001,
            flows: sports(41000, 12, "127.0.0.1", "127.0.0.2"),
        },
        Case {
            mode: AlbMode::Default,
            protocol: TCP,
            dport: 9010,
            modulus: raw,
            seed: 0,
            flows: sports(41100, 3, "127.0.0.1", "127.0.0.2"),
        },
        Case {
            mode: AlbMode::SourceIp,
            protocol: UDP,
            dport: 8090,
            modulus: raw,
            seed: 0x5eed_0001,
            flows: sources(&v4_srcs, "127.0.0.2"),
        },
        Case {
            mode: AlbMode::SourceIp,
            protocol: TCP,
            dport: 9002,
            modulus: 5,
            seed: 0xdead_beef,
            flows: sources(&v4_srcs, "127.0.0.2"),
        },
        Case {
            mode: AlbMode::SourceIpProtocol,
            protocol: UDP,
            dport: 8091,
            modulus: raw,
            seed: 0x5eed_0001,
            flows: sources(&v4_srcs, "127.0.0.2"),
        },
        Case {
            mode: AlbMode::SourceIpProtocol,
            protocol: TCP,
            dport: 9001,
            modulus: raw,
            seed: 0x5eed_0001,
            flows: sources(&v4_srcs, "127.0.0.2"),
        },
        Case {
            mode: AlbMode::Default,
            protocol: UDP,
            dport: 8180,
            modulus: raw,
            seed: 0x1234_5678,
            flows: sports(40000, 3, "fd00::1", "fd00::2"),
        },
        Case {
            mode: AlbMode::Default,
            protocol: TCP,
            dport: 9100,
            modulus: 3,
            seed: 0x5eed_0001,
            flows: sports(41200, 9, "fd00::1", "fd00::2"),
        },
        Case {
            mode: AlbMode::SourceIp,
            protocol: UDP,
            dport: 8190,
            modulus: raw,
            seed: 0x5eed_0001,
            flows: sources(&v6_srcs, "fd00::2"),
        },
        Case {
            mode: AlbMode::SourceIpProtocol,
            protocol: UDP,
            dport: 8191,
            modulus: raw,
            seed: 0x5eed_0001,
            flows: sources(&v6_srcs, "fd00::2"),
        },
    ];

    // One table per family; one rule per case, told apart by destination port.
    let mut ruleset = String::new();
    for (family, v6) in [("ip", false), ("ip6", true)] {
        ruleset.push_str(&format!(
            "table {family} htcl {{\n chain out {{\n  type filter hook output priority 0;\n"
        ));
        for c in cases.iter().filter(|c| c.flows[0].0.is_ipv6() == v6) {
            let l4 = if c.protocol == TCP { "tcp" } else { "udp" };
            ruleset.push_str(&format!(
                "  {l4} dport {} ct mark set {} mod {} seed {:#x}\n",
                c.dport,
                c.mode.nft_expression(v6, c.protocol),
                c.modulus,
                c.seed
            ));
        }
        ruleset.push_str(" }\n}\n");
    }
    ns.run_stdin(&["nft", "-f", "-"], &ruleset);

    let mut traffic = String::new();
    for c in &cases {
        let l4 = if c.protocol == TCP { "tcp" } else { "udp" };
        for (src, sport, dst) in &c.flows {
            traffic.push_str(&format!("{l4} {src} {sport} {dst} {}\n", c.dport));
        }
    }
    ns.run_stdin(&["python3", "-c", SENDER], &traffic);

    let marks = conntrack_marks(&ns);
    let mut checked = 0;
    for c in &cases {
        let l4 = if c.protocol == TCP { "tcp" } else { "udp" };
        for &(src, sport, dst) in &c.flows {
            let key = FlowKey {
                src,
                src_port: sport,
                dst,
                dst_port: c.dport,
                protocol: c.protocol,
            };
            let want = reciprocal_scale(
                jhash(key.nft_key(c.mode).unwrap().as_bytes(), c.seed),
                c.modulus,
            );
            let got = marks
                .get(&(
                    l4.to_owned(),
                    src.to_string(),
                    sport,
                    dst.to_string(),
                    c.dport,
                ))
                .unwrap_or_else(|| panic!("no conntrack entry for {key}; ruleset:\n{ruleset}"));
            assert_eq!(
                *got, want,
                "{} {key} mod {} seed {:#x}",
                c.mode, c.modulus, c.seed
            );
            checked += 1;
        }
    }
    assert_eq!(checked, cases.iter().map(|c| c.flows.len()).sum::<usize>());
    eprintln!("kernel agreed on {checked} flows");
}
