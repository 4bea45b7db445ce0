//! Generate kube-proxy-shaped rule sets (for benchmarks, scale tests and the real-kernel test):
//! N Services × M endpoints, in the old (≤1.23) or new (≥1.25) layout, with chain names hashed
//! exactly as kube-proxy hashes them, so the service map verifies every name.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::hash::{endpoint_suffix, service_suffix};
use super::services::Layout;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterShape {
    pub services: usize,
    pub endpoints: usize,
    /// `Layout::Old` or `Layout::New` (others are treated as new).
    pub layout: Layout,
    /// ClientIP session affinity on every Service (timeout in seconds).
    pub affinity: Option<u32>,
    /// Pod CIDR of the cluster (masquerade exemption).
    pub pod_cidr: (Ipv4Addr, u8),
}

impl Default for ClusterShape {
    fn default() -> Self {
        ClusterShape {
            services: 10,
            endpoints: 3,
            layout: Layout::New,
            affinity: None,
            pod_cidr: (Ipv4Addr::new(10, 128, 0, 0), 9),
        }
    }
}

/// One generated Service port (for tests that need to know the truth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedService {
    pub name: String,
    pub cluster_ip: Ipv4Addr,
    pub port: u16,
    pub node_port: u16,
    pub endpoints: Vec<(Ipv4Addr, u16)>,
}

/// The Services of a shape, without the rules.
pub fn services(shape: &ClusterShape) -> Vec<GeneratedService> {
    (0..shape.services)
        .map(|i| {
            let cluster_ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 1)) + i as u32);
            let endpoints = (0..shape.endpoints)
                .map(|j| {
                    let n = (i * shape.endpoints + j) as u32;
                    (
                        Ipv4Addr::from(u32::from(shape.pod_cidr.0) + 2 + n + n / 254 * 2),
                        8080,
                    )
                })
                .collect();
            GeneratedService {
                name: format!("ns{}/svc{i}:http", i % 50),
                cluster_ip,
                port: 80,
                node_port: 30000 + (i % 30000) as u16,
                endpoints,
            }
        })
        .collect()
}

fn probability(layout: Layout, remaining: usize) -> String {
    if layout == Layout::Old {
        format!("{:.5}", 1.0 / remaining as f64)
    } else {
        format!("{:.10}", 1.0 / remaining as f64)
    }
}

/// The rule set as kube-proxy plus the node would have it (`iptables-save` input form, with the
/// built-in chains and kube-proxy's jumps), as text.
pub fn generate(shape: &ClusterShape) -> String {
    let old = shape.layout == Layout::Old;
    let svcs = services(shape);
    let cidr = format!("{}/{}", shape.pod_cidr.0, shape.pod_cidr.1);
    let mut decl = String::new();
    let mut rules = String::new();
    let mut services_rules = String::new();
    let mut nodeports_rules = String::new();
    for s in &svcs {
        let h = service_suffix(&s.name, "tcp");
        let svc = format!("KUBE-SVC-{h}");
        let ext = format!("KUBE-EXT-{h}");
        let _ = writeln!(decl, ":{svc} - [0:0]");
        if !old {
            let _ = writeln!(decl, ":{ext} - [0:0]");
        }
        let vip = s.cluster_ip;
        if old {
            let _ = writeln!(
                services_rules,
                "-A KUBE-SERVICES ! -s {cidr} -d {vip}/32 -p tcp -m comment --comment \"{} cluster IP\" -m tcp --dport {} -j KUBE-MARK-MASQ",
                s.name, s.port
            );
            let _ = writeln!(
                services_rules,
                "-A KUBE-SERVICES -d {vip}/32 -p tcp -m comment --comment \"{} cluster IP\" -m tcp --dport {} -j {svc}",
                s.name, s.port
            );
            let _ = writeln!(
                nodeports_rules,
                "-A KUBE-NODEPORTS -p tcp -m comment --comment \"{}\" -m tcp --dport {} -j KUBE-MARK-MASQ",
                s.name, s.node_port
            );
            let _ = writeln!(
                nodeports_rules,
                "-A KUBE-NODEPORTS -p tcp -m comment --comment \"{}\" -m tcp --dport {} -j {svc}",
                s.name, s.node_port
            );
        } else {
            let _ = writeln!(
                services_rules,
                "-A KUBE-SERVICES -d {vip}/32 -p tcp -m comment --comment \"{} cluster IP\" -m tcp --dport {} -j {svc}",
                s.name, s.port
            );
            let _ = writeln!(
                nodeports_rules,
                "-A KUBE-NODEPORTS -p tcp -m comment --comment \"{}\" -m tcp --dport {} -j {ext}",
                s.name, s.node_port
            );
            let _ = writeln!(
                rules,
                "-A {ext} -m comment --comment \"masquerade traffic for {} external destinations\" -j KUBE-MARK-MASQ",
                s.name
            );
            let _ = writeln!(rules, "-A {ext} -j {svc}");
            let _ = writeln!(
                rules,
                "-A {svc} ! -s {cidr} -d {vip}/32 -p tcp -m comment --comment \"{} cluster IP\" -m tcp --dport {} -j KUBE-MARK-MASQ",
                s.name, s.port
            );
        }
        let seps: Vec<(String, Ipv4Addr, u16)> = s
            .endpoints
            .iter()
            .map(|&(ip, port)| {
                (
                    format!(
                        "KUBE-SEP-{}",
                        endpoint_suffix(&s.name, "tcp", &format!("{ip}:{port}"))
                    ),
                    ip,
                    port,
                )
            })
            .collect();
        if let Some(t) = shape.affinity {
            for (sep, ip, port) in &seps {
                let comment = if old {
                    s.name.clone()
                } else {
                    format!("{} -> {ip}:{port}", s.name)
                };
                let _ = writeln!(
                    rules,
                    "-A {svc} -m comment --comment \"{comment}\" -m recent --rcheck --seconds {t} --reap --name {sep} --mask 255.255.255.255 --rsource -j {sep}"
                );
            }
        }
        let n = seps.len();
        for (i, (sep, ip, port)) in seps.iter().enumerate() {
            let comment = if old {
                s.name.clone()
            } else {
                format!("{} -> {ip}:{port}", s.name)
            };
            if i + 1 < n {
                let _ = writeln!(
                    rules,
                    "-A {svc} -m comment --comment \"{comment}\" -m statistic --mode random --probability {} -j {sep}",
                    probability(shape.layout, n - i)
                );
            } else {
                let _ = writeln!(
                    rules,
                    "-A {svc} -m comment --comment \"{comment}\" -j {sep}"
                );
            }
            let _ = writeln!(decl, ":{sep} - [0:0]");
            let _ = writeln!(
                rules,
                "-A {sep} -s {ip}/32 -m comment --comment \"{}\" -j KUBE-MARK-MASQ",
                s.name
            );
            let set = if shape.affinity.is_some() {
                format!(" -m recent --set --name {sep} --mask 255.255.255.255 --rsource")
            } else {
                String::new()
            };
            let _ = writeln!(
                rules,
                "-A {sep} -p tcp -m comment --comment \"{}\"{set} -m tcp -j DNAT --to-destination {ip}:{port}",
                s.name
            );
        }
    }
    let mut o = String::new();
    o.push_str("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:KUBE-EXTERNAL-SERVICES - [0:0]\n:KUBE-FIREWALL - [0:0]\n:KUBE-FORWARD - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:KUBE-PROXY-FIREWALL - [0:0]\n:KUBE-SERVICES - [0:0]\n");
    o.push_str("-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL\n");
    o.push_str("-A INPUT -m comment --comment \"kubernetes health check service ports\" -j KUBE-NODEPORTS\n");
    o.push_str("-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES\n");
    o.push_str("-A INPUT -j KUBE-FIREWALL\n");
    o.push_str("-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL\n");
    o.push_str("-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD\n");
    o.push_str("-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n");
    o.push_str("-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES\n");
    o.push_str("-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL\n");
    o.push_str("-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n");
    o.push_str("-A OUTPUT -j KUBE-FIREWALL\n");
    o.push_str("-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment \"block incoming localnet connections\" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP\n");
    o.push_str("-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n");
    o.push_str("-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark 0x4000/0x4000 -j ACCEPT\n");
    o.push_str("-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n");
    o.push_str("COMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:KUBE-MARK-MASQ - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:KUBE-POSTROUTING - [0:0]\n:KUBE-SERVICES - [0:0]\n");
    o.push_str(&decl);
    o.push_str(
        "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n",
    );
    o.push_str("-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n");
    o.push_str("-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n");
    o.push_str("-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n");
    o.push_str("-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n");
    o.push_str("-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0\n");
    o.push_str(if old {
        "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE\n"
    } else {
        "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully\n"
    });
    o.push_str(&services_rules);
    o.push_str("-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n");
    o.push_str(&nodeports_rules);
    o.push_str(&rules);
    o.push_str("COMMIT\n");
    o
}
