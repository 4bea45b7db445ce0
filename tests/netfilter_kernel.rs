//! The real kernel as the oracle. Needs root, `ip netns`, `iptables-restore` and `conntrack`;
//! otherwise each test prints why it skipped and returns.
//!
//! Two network namespaces are created (named `htnf-<pid>-…`, always deleted): a client and a
//! "node". The node gets a kube-proxy-shaped rule set with `iptables-restore`; its endpoints are
//! addresses on the node's loopback, so the client's SYNs are DNATed in PREROUTING and
//! answered by a RST — enough for conntrack to record the kernel's DNAT choice, which is read
//! back with `conntrack -L`. No packet leaves the two namespaces.

use hoptrace::netfilter::kube::generate::{self, ClusterShape};
use hoptrace::netfilter::{self, NodeContext, NodeEvaluator, Packet};
use std::collections::HashMap;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn skip_reason() -> Option<String> {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if uid.as_deref() != Some("0") {
        return Some("not root".into());
    }
    for t in ["ip", "iptables-restore", "conntrack", "bash", "timeout"] {
        if !have(t) {
            return Some(format!(
                "`{t}` not installed (apt-get install iproute2 iptables conntrack)"
            ));
        }
    }
    None
}

fn sh(script: &str) -> Result<String, String> {
    let out = Command::new("sh")
        .args(["-c", script])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{script}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Two namespaces wired client 10.201.1.2 ⇄ node 10.201.1.1; deleted on drop.
struct Lab {
    client: String,
    node: String,
}

impl Lab {
    fn new(tag: &str, endpoints: &[IpAddr]) -> Result<Lab, String> {
        let id = std::process::id();
        let lab = Lab {
            client: format!("htnf-{id}-{tag}-c"),
            node: format!("htnf-{id}-{tag}-n"),
        };
        let (c, n) = (&lab.client, &lab.node);
        let veth = format!("htnf{}{}", id % 100000, &tag[..1]);
        sh(&format!("ip netns add {c} && ip netns add {n}"))?;
        sh(&format!(
            "ip link add {veth}a netns {c} type veth peer name {veth}b netns {n} && \
             ip -n {c} addr add 10.201.1.2/24 dev {veth}a && ip -n {c} link set {veth}a up && ip -n {c} link set lo up && \
             ip -n {c} route add default via 10.201.1.1 && \
             ip -n {n} addr add 10.201.1.1/24 dev {veth}b && ip -n {n} link set {veth}b up && ip -n {n} link set lo up"
        ))?;
        for e in endpoints {
            // Endpoints live on the node's loopback: DNATed SYNs are delivered locally and answered
            // with a RST (no listener), after conntrack recorded the choice.
            sh(&format!("ip -n {n} addr add {e}/32 dev lo"))?;
        }
        Ok(lab)
    }

    fn restore(&self, rules: &str, test_only: bool) -> Result<(), String> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.node, "iptables-restore"])
            .args(if test_only { &["--test"][..] } else { &[][..] })
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(rules.as_bytes())
            .map_err(|e| e.to_string())?;
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// `count` TCP connection attempts from the client to `vip:port`: the first alone (so that
    /// an affinity entry exists before the others), the rest in parallel. The node drops its own
    /// RSTs in raw OUTPUT (before conntrack sees them, so the entries stay in SYN_SENT instead of
    /// being killed); the clients are killed after a second.
    fn connect(&self, vip: IpAddr, port: u16, count: usize) -> Result<(), String> {
        sh(&format!(
            "ip netns exec {} iptables -t raw -C OUTPUT -p tcp --tcp-flags RST RST -j DROP 2>/dev/null || \
                     ip netns exec {} iptables -t raw -A OUTPUT -p tcp --tcp-flags RST RST -j DROP",
            self.node, self.node
        ))?;
        sh(&format!(
            "ip netns exec {} timeout 60 bash -c '(exec 3<>/dev/tcp/{vip}/{port}) 2>/dev/null & sleep 0.3; \
             for i in $(seq {}); do (exec 3<>/dev/tcp/{vip}/{port}) 2>/dev/null & done; sleep 1.5; kill $(jobs -p) 2>/dev/null; wait; true'",
            self.client,
            count.saturating_sub(1)
        ))
        .map(|_| ())
    }

    /// The kernel's DNAT choices: reply-direction source of each conntrack entry to `vip`.
    fn dnat_choices(&self, vip: IpAddr) -> Result<Vec<(IpAddr, u16)>, String> {
        let out = sh(&format!(
            "ip netns exec {} conntrack -L -p tcp --orig-dst {vip} 2>/dev/null",
            self.node
        ))?;
        let mut v = Vec::new();
        for line in out.lines() {
            let srcs: Vec<&str> = line
                .split_whitespace()
                .filter_map(|w| w.strip_prefix("src="))
                .collect();
            let sports: Vec<&str> = line
                .split_whitespace()
                .filter_map(|w| w.strip_prefix("sport="))
                .collect();
            if srcs.len() >= 2 && sports.len() >= 2 {
                v.push((
                    srcs[1].parse().map_err(|_| line.to_string())?,
                    sports[1].parse().map_err(|_| line.to_string())?,
                ));
            }
        }
        Ok(v)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = sh(&format!(
            "ip netns del {} 2>/dev/null; ip netns del {} 2>/dev/null; true",
            self.client, self.node
        ));
    }
}

fn shape(affinity: Option<u32>) -> ClusterShape {
    ClusterShape {
        services: 3,
        endpoints: 3,
        affinity,
        ..Default::default()
    }
}

#[test]
fn kernel_dnat_choices_are_reachable_with_the_computed_frequencies() {
    if let Some(why) = skip_reason() {
        println!("skipped: {why}");
        return;
    }
    let sh_ = shape(None);
    let svcs = generate::services(&sh_);
    let svc = &svcs[1];
    let endpoints: Vec<IpAddr> = svcs
        .iter()
        .flat_map(|s| s.endpoints.iter().map(|e| IpAddr::V4(e.0)))
        .collect();
    let lab = match Lab::new("f", &endpoints) {
        Ok(l) => l,
        Err(e) => {
            println!("skipped: cannot create network namespaces here: {e}");
            return;
        }
    };
    let text = generate::generate(&sh_);
    lab.restore(&text, false)
        .expect("the kernel accepts the generated rules");
    let vip = IpAddr::V4(svc.cluster_ip);
    let n = 300;
    lab.connect(vip, svc.port, n).unwrap();
    let choices = lab.dnat_choices(vip).unwrap();
    assert!(
        choices.len() >= n * 9 / 10,
        "only {} conntrack entries",
        choices.len()
    );

    let (rs, errs) = netfilter::load(text.as_bytes(), "generated");
    assert!(errs.is_empty());
    let ctx = NodeContext::new(
        std::iter::once("10.201.1.1".parse().unwrap()).chain(endpoints.iter().copied()),
    );
    let tr = netfilter::trace(
        &rs,
        &ctx,
        &Packet::tcp("10.201.1.2".parse().unwrap(), Some(40000), vip, svc.port),
        Default::default(),
    );
    let mut counts: HashMap<(IpAddr, u16), usize> = HashMap::new();
    for c in &choices {
        assert!(
            tr.endpoints.iter().any(|e| (e.ip, e.port) == *c),
            "kernel chose {c:?}, not reachable per the tracer: {:?}",
            tr.endpoints
        );
        *counts.entry(*c).or_default() += 1;
    }
    for e in &tr.endpoints {
        let f = *counts.get(&(e.ip, e.port)).unwrap_or(&0) as f64 / choices.len() as f64;
        // 4.5 standard deviations of a binomial proportion at n = 300.
        let sd = (e.probability * (1.0 - e.probability) / choices.len() as f64).sqrt();
        assert!(
            (f - e.probability).abs() < 4.5 * sd,
            "{}:{} kernel {f:.3} vs computed {:.3}",
            e.ip,
            e.port,
            e.probability
        );
    }
    println!(
        "kernel frequencies over {} connections: {counts:?}; computed {:?}",
        choices.len(),
        tr.endpoints
            .iter()
            .map(|e| (e.ip, e.probability))
            .collect::<Vec<_>>()
    );
}

#[test]
fn kernel_affinity_stickiness_matches_the_stateful_replay() {
    if let Some(why) = skip_reason() {
        println!("skipped: {why}");
        return;
    }
    let sh_ = shape(Some(10800));
    let svcs = generate::services(&sh_);
    let svc = &svcs[0];
    let endpoints: Vec<IpAddr> = svcs
        .iter()
        .flat_map(|s| s.endpoints.iter().map(|e| IpAddr::V4(e.0)))
        .collect();
    let lab = match Lab::new("a", &endpoints) {
        Ok(l) => l,
        Err(e) => {
            println!("skipped: cannot create network namespaces here: {e}");
            return;
        }
    };
    let text = generate::generate(&sh_);
    lab.restore(&text, false)
        .expect("the kernel accepts the generated rules with affinity");
    let vip = IpAddr::V4(svc.cluster_ip);
    lab.connect(vip, svc.port, 40).unwrap();
    let choices = lab.dnat_choices(vip).unwrap();
    assert!(choices.len() >= 36, "only {} entries", choices.len());
    let first = choices[0];
    assert!(
        choices.iter().all(|c| *c == first),
        "the kernel kept the client on one endpoint: {choices:?}"
    );

    // Replay: the first connection as observed, then the model must predict the rest.
    let (rs, _) = netfilter::load(text.as_bytes(), "generated");
    let ctx = NodeContext::new(
        std::iter::once("10.201.1.1".parse().unwrap()).chain(endpoints.iter().copied()),
    );
    let mut ev = NodeEvaluator::seeded(Arc::new(rs), ctx, 1);
    let client: IpAddr = "10.201.1.2".parse().unwrap();
    ev.new_connection_observed(&Packet::tcp(client, Some(30000), vip, svc.port), 0, first)
        .unwrap();
    for i in 1..choices.len() {
        let d = ev.new_connection(
            &Packet::tcp(client, Some(30000 + i as u16), vip, svc.port),
            i as u64 * 10_000_000,
        );
        let got = d.outcome.dnat.as_ref().map(|x| (x.ip, x.port));
        assert_eq!(got, Some(first), "connection {i}");
        assert!(
            !d.outcome.recent_hits.is_empty(),
            "connection {i} stuck through --rcheck"
        );
    }
    // The kernel's table has exactly the client.
    let recent = sh(&format!(
        "ip netns exec {} sh -c 'cat /proc/net/xt_recent/* 2>/dev/null'",
        lab.node
    ))
    .unwrap();
    assert_eq!(
        recent
            .lines()
            .filter(|l| l.starts_with("src=10.201.1.2 "))
            .count(),
        1,
        "{recent}"
    );
}

#[test]
fn iptables_restore_accepts_the_affinity_rewrite_and_hoptraces_printing() {
    if let Some(why) = skip_reason() {
        println!("skipped: {why}");
        return;
    }
    let lab = match Lab::new("r", &[]) {
        Ok(l) => l,
        Err(e) => {
            println!("skipped: cannot create network namespaces here: {e}");
            return;
        }
    };
    let corpus = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/corpus/kube-proxy"
    ));
    let mut inputs: Vec<(String, String)> = Vec::new();
    for layout in [netfilter::kube::Layout::New, netfilter::kube::Layout::Old] {
        inputs.push((
            format!("generated {layout:?}"),
            generate::generate(&ClusterShape {
                layout,
                ..shape(None)
            }),
        ));
    }
    {
        use netfilter::kube::write::{EndpointSpec, ProxyConfig, ServiceSpec, write_rules};
        let mut s = ServiceSpec::cluster_ip(
            "ns1/svc1:p80",
            netfilter::Protocol::Tcp,
            "172.30.0.41".parse().unwrap(),
            80,
        );
        s.node_port = Some(3001);
        s.load_balancer_ips = vec!["1.2.3.4".parse().unwrap()];
        s.source_ranges = vec!["203.0.113.0/25".parse().unwrap()];
        s.external_policy_local = true;
        s.health_check_node_port = Some(30000);
        s.affinity = Some(600);
        s.endpoints = vec![
            EndpointSpec {
                ip: "10.180.0.1".parse().unwrap(),
                port: 80,
                local: true,
            },
            EndpointSpec {
                ip: "10.180.1.1".parse().unwrap(),
                port: 80,
                local: false,
            },
        ];
        let mut empty = ServiceSpec::cluster_ip(
            "ns2/svc2:p53",
            netfilter::Protocol::Udp,
            "172.30.0.42".parse().unwrap(),
            53,
        );
        empty.external_ips = vec!["192.168.99.11".parse().unwrap()];
        inputs.push((
            "kube::write".into(),
            write_rules(&[s, empty], &ProxyConfig::default()),
        ));
    }
    if corpus.is_dir() {
        for f in [
            "saved/load-balancer.rules",
            "saved/only-local-load-balancing.rules",
            "saved/old-2020-endpoint-slice-e2e.rules",
        ] {
            inputs.push((
                f.to_string(),
                std::fs::read_to_string(corpus.join(f)).unwrap(),
            ));
        }
    } else {
        println!("note: corpus not found; checking generated rule sets only");
    }
    let mut checked = 0;
    for (name, text) in inputs {
        let rs = netfilter::parse(text.as_bytes(), &name).unwrap();
        lab.restore(&netfilter::print::save(&rs, Default::default()), true)
            .unwrap_or_else(|e| panic!("{name}: printing refused: {e}"));
        let map = netfilter::kube::service_map(&rs);
        for s in map.services.iter().filter(|s| !s.endpoints.is_empty()) {
            let key = s.name.clone().unwrap();
            let on = if s.affinity_timeout.is_some() {
                None
            } else {
                Some(10800)
            };
            let (_, out) = netfilter::kube::set_session_affinity_text(&rs, &key, on).unwrap();
            lab.restore(&out, true).unwrap_or_else(|e| {
                panic!("{name} {key}: iptables-restore --test refused the rewrite: {e}\n{out}")
            });
            checked += 1;
        }
    }
    assert!(checked >= 5);
}
