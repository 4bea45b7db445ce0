//! Generate kube-proxy-shaped rule sets (for benchmarks, scale tests and the real-kernel test):
//! N Services × M endpoints, in the old (≤1.23) or new (≥1.25) layout, with chain names hashed
//! exactly as kube-proxy hashes them, so the service map verifies every name.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use super::hash::{endpoint_suffix, service_suffix};
use super::services::Layout;
use super::write::{
    FIREWALL_AND_FORWARD_RULES, LAST_SERVICES_RULE, write_affinity_check, write_endpoint_chain,
    write_endpoint_jump, write_nat_hooks_and_masquerade,
};

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
        let cluster_ip = format!(
            "-d {vip}/32 -p tcp -m comment --comment \"{} cluster IP\" -m tcp --dport {}",
            s.name, s.port
        );
        let node_port = format!(
            "-p tcp -m comment --comment \"{}\" -m tcp --dport {}",
            s.name, s.node_port
        );
        if old {
            // ≤1.23: masquerade off-cluster traffic before jumping (KUBE-EXT came later).
            let _ = writeln!(
                services_rules,
                "-A KUBE-SERVICES ! -s {cidr} {cluster_ip} -j KUBE-MARK-MASQ"
            );
            let _ = writeln!(
                nodeports_rules,
                "-A KUBE-NODEPORTS {node_port} -j KUBE-MARK-MASQ"
            );
        }
        let _ = writeln!(services_rules, "-A KUBE-SERVICES {cluster_ip} -j {svc}");
        let _ = writeln!(
            nodeports_rules,
            "-A KUBE-NODEPORTS {node_port} -j {}",
            if old { &svc } else { &ext }
        );
        if !old {
            let _ = writeln!(
                rules,
                "-A {ext} -m comment --comment \"masquerade traffic for {} external destinations\" -j KUBE-MARK-MASQ",
                s.name
            );
            let _ = writeln!(rules, "-A {ext} -j {svc}");
            let _ = writeln!(rules, "-A {svc} ! -s {cidr} {cluster_ip} -j KUBE-MARK-MASQ");
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
        // ≤1.23 comments name the Service only; later ones the endpoint too.
        let comment = |ip: &Ipv4Addr, port: &u16| {
            if old {
                s.name.clone()
            } else {
                format!("{} -> {ip}:{port}", s.name)
            }
        };
        if let Some(t) = shape.affinity {
            for (sep, ip, port) in &seps {
                write_affinity_check(&mut rules, &svc, &comment(ip, port), t, sep);
            }
        }
        let n = seps.len();
        for (i, (sep, ip, port)) in seps.iter().enumerate() {
            let p = (i + 1 < n).then(|| probability(shape.layout, n - i));
            write_endpoint_jump(&mut rules, &svc, &comment(ip, port), p.as_deref(), sep);
            let _ = writeln!(decl, ":{sep} - [0:0]");
            write_endpoint_chain(
                &mut rules,
                sep,
                &s.name,
                "tcp",
                (IpAddr::V4(*ip), *port),
                shape.affinity.is_some(),
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
    o.push_str(FIREWALL_AND_FORWARD_RULES);
    o.push_str("COMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:KUBE-MARK-MASQ - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:KUBE-POSTROUTING - [0:0]\n:KUBE-SERVICES - [0:0]\n");
    o.push_str(&decl);
    write_nat_hooks_and_masquerade(&mut o, !old);
    o.push_str(&services_rules);
    o.push_str(LAST_SERVICES_RULE);
    o.push_str(&nodeports_rules);
    o.push_str(&rules);
    o.push_str("COMMIT\n");
    o
}
