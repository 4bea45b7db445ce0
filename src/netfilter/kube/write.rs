//! The rules kube-proxy (iptables mode, layout ≥ v1.25) writes for a set of Service ports, from a
//! small model of Services and endpoints: `syncProxyRules`' per-Service logic (internal and
//! external traffic policies, short-circuiting of pod and node traffic, masquerading, filter
//! REJECT/DROP when there are no (local) endpoints, health-check NodePorts, source ranges,
//! ClientIP affinity). Used to turn kube-proxy test scenarios that come without a dump into rule
//! sets, and by what-ifs that change a Service.

use ipnet::IpNet;
use std::fmt::Write as _;
use std::net::IpAddr;

use super::hash::{endpoint_suffix, service_suffix};
use crate::netfilter::eval::fmt_sock;
use crate::netfilter::model::Protocol;

/// One endpoint of a Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    pub ip: IpAddr,
    /// The target port.
    pub port: u16,
    /// On this node (used by Local traffic policies).
    pub local: bool,
}

/// One Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// `ns/name:portName` (or `ns/name` for an unnamed port).
    pub name: String,
    pub protocol: Protocol,
    pub cluster_ip: IpAddr,
    pub port: u16,
    pub node_port: Option<u16>,
    pub health_check_node_port: Option<u16>,
    pub external_ips: Vec<IpAddr>,
    pub load_balancer_ips: Vec<IpAddr>,
    pub source_ranges: Vec<IpNet>,
    pub external_policy_local: bool,
    pub internal_policy_local: bool,
    /// ClientIP affinity timeout in seconds.
    pub affinity: Option<u32>,
    pub endpoints: Vec<EndpointSpec>,
}

impl ServiceSpec {
    /// A ClusterIP Service port with no endpoints yet.
    pub fn cluster_ip(name: &str, protocol: Protocol, ip: IpAddr, port: u16) -> ServiceSpec {
        ServiceSpec {
            name: name.to_string(),
            protocol,
            cluster_ip: ip,
            port,
            node_port: None,
            health_check_node_port: None,
            external_ips: Vec::new(),
            load_balancer_ips: Vec::new(),
            source_ranges: Vec::new(),
            external_policy_local: false,
            internal_policy_local: false,
            affinity: None,
            endpoints: Vec::new(),
        }
    }

    fn externally_accessible(&self) -> bool {
        self.node_port.is_some()
            || !self.external_ips.is_empty()
            || !self.load_balancer_ips.is_empty()
    }
}

/// kube-proxy's own settings that change the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// The "local traffic detector" (`--cluster-cidr`): pod traffic is `-s CIDR`. `None`: no
    /// detector (no pod short-circuit, no off-cluster masquerade rule).
    pub cluster_cidr: Option<IpNet>,
    /// `--masquerade-all`.
    pub masquerade_all: bool,
    /// `MASQUERADE --random-fully`.
    pub random_fully: bool,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            cluster_cidr: Some("10.0.0.0/8".parse().expect("literal")),
            masquerade_all: false,
            random_fully: true,
        }
    }
}

fn probability(remaining: usize) -> String {
    format!("{:.10}", 1.0 / remaining as f64)
}

/// The full rule set (filter and nat, built-in chains and kube-proxy's jumps included) as
/// `iptables-restore` text.
pub fn write_rules(services: &[ServiceSpec], cfg: &ProxyConfig) -> String {
    let mut nat_chains: Vec<String> = vec![
        "KUBE-MARK-MASQ".into(),
        "KUBE-NODEPORTS".into(),
        "KUBE-POSTROUTING".into(),
        "KUBE-SERVICES".into(),
    ];
    let mut nat = String::new();
    let mut nat_services = String::new();
    let mut nat_nodeports = String::new();
    let mut f_services = String::new();
    let mut f_external = String::new();
    let mut f_nodeports = String::new();
    let mut f_firewall = String::new();
    for s in services {
        let proto = s.protocol.name();
        let h = service_suffix(&s.name, &proto);
        let (svc, svl, ext, fw) = (
            format!("KUBE-SVC-{h}"),
            format!("KUBE-SVL-{h}"),
            format!("KUBE-EXT-{h}"),
            format!("KUBE-FW-{h}"),
        );
        let cluster_eps: Vec<&EndpointSpec> = s.endpoints.iter().collect();
        let local_eps: Vec<&EndpointSpec> = s.endpoints.iter().filter(|e| e.local).collect();
        let accessible = s.externally_accessible();
        let (internal_chain, internal_eps) = if s.internal_policy_local {
            (&svl, &local_eps)
        } else {
            (&svc, &cluster_eps)
        };
        let (external_chain, external_eps) = if s.external_policy_local {
            (&svl, &local_eps)
        } else {
            (&svc, &cluster_eps)
        };
        let has_endpoints = !cluster_eps.is_empty();
        let uses_cluster = has_endpoints && (!s.internal_policy_local || accessible);
        let uses_local = !local_eps.is_empty()
            && (s.internal_policy_local || (s.external_policy_local && accessible));
        let uses_ext = has_endpoints && accessible;
        let uses_fw = uses_ext && !s.source_ranges.is_empty() && !s.load_balancer_ips.is_empty();
        let (int_verdict, int_comment) = if has_endpoints {
            ("DROP", "has no local endpoints")
        } else {
            ("REJECT", "has no endpoints")
        };
        let (ext_verdict, ext_comment) = int_verdict_pair(has_endpoints);
        let pm = format!("-p {proto} -m {proto}");
        let name = &s.name;

        // Cluster IP.
        let cluster_args = format!(
            "-d {}/{} {pm} --dport {} -m comment --comment \"{name} cluster IP\"",
            s.cluster_ip,
            host_len(&s.cluster_ip),
            s.port
        );
        if !internal_eps.is_empty() {
            if cfg.masquerade_all {
                let _ = writeln!(nat, "-A {internal_chain} {cluster_args} -j KUBE-MARK-MASQ");
            } else if let Some(cidr) = &cfg.cluster_cidr {
                let _ = writeln!(
                    nat,
                    "-A {internal_chain} ! -s {cidr} {cluster_args} -j KUBE-MARK-MASQ"
                );
            }
            let _ = writeln!(
                nat_services,
                "-A KUBE-SERVICES {cluster_args} -j {internal_chain}"
            );
        } else {
            let _ = writeln!(
                f_services,
                "-A KUBE-SERVICES -d {}/{} {pm} --dport {} -m comment --comment \"{name} {int_comment}\" -j {int_verdict}",
                s.cluster_ip,
                host_len(&s.cluster_ip),
                s.port
            );
        }
        // External IPs and load-balancer IPs.
        for (ips, what) in [
            (&s.external_ips, "external IP"),
            (&s.load_balancer_ips, "loadbalancer IP"),
        ] {
            for ip in ips.iter() {
                let dst = format!("-d {ip}/{} {pm} --dport {}", host_len(ip), s.port);
                if uses_ext {
                    let to = if what == "loadbalancer IP" && uses_fw {
                        &fw
                    } else {
                        &ext
                    };
                    let _ = writeln!(
                        nat_services,
                        "-A KUBE-SERVICES {dst} -m comment --comment \"{name} {what}\" -j {to}"
                    );
                    if what == "loadbalancer IP" && uses_fw {
                        let _ = writeln!(
                            f_firewall,
                            "-A KUBE-PROXY-FIREWALL {dst} -m comment --comment \"{name} traffic not accepted by {fw}\" -j DROP"
                        );
                    }
                }
                if external_eps.is_empty() {
                    let _ = writeln!(
                        f_external,
                        "-A KUBE-EXTERNAL-SERVICES {dst} -m comment --comment \"{name} {ext_comment}\" -j {ext_verdict}"
                    );
                }
            }
        }
        // NodePort.
        if let Some(np) = s.node_port {
            if uses_ext {
                let _ = writeln!(
                    nat_nodeports,
                    "-A KUBE-NODEPORTS {pm} --dport {np} -m comment --comment \"{name}\" -j {ext}"
                );
            }
            if external_eps.is_empty() {
                let _ = writeln!(
                    f_external,
                    "-A KUBE-EXTERNAL-SERVICES -m addrtype --dst-type LOCAL {pm} --dport {np} -m comment --comment \"{name} {ext_comment}\" -j {ext_verdict}"
                );
            }
        }
        if let Some(hc) = s.health_check_node_port {
            let _ = writeln!(
                f_nodeports,
                "-A KUBE-NODEPORTS -p tcp -m tcp --dport {hc} -m comment --comment \"{name} health check node port\" -j ACCEPT"
            );
        }
        // The external chain.
        if uses_ext {
            nat_chains.push(ext.clone());
            if !s.external_policy_local {
                let _ = writeln!(
                    nat,
                    "-A {ext} -m comment --comment \"masquerade traffic for {name} external destinations\" -j KUBE-MARK-MASQ"
                );
            } else {
                if let Some(cidr) = &cfg.cluster_cidr {
                    let _ = writeln!(
                        nat,
                        "-A {ext} -s {cidr} -m comment --comment \"pod traffic for {name} external destinations\" -j {svc}"
                    );
                }
                let _ = writeln!(
                    nat,
                    "-A {ext} -m comment --comment \"masquerade LOCAL traffic for {name} external destinations\" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ"
                );
                let _ = writeln!(
                    nat,
                    "-A {ext} -m comment --comment \"route LOCAL traffic for {name} external destinations\" -m addrtype --src-type LOCAL -j {svc}"
                );
            }
            if !external_eps.is_empty() {
                let _ = writeln!(nat, "-A {ext} -j {external_chain}");
            }
        }
        if uses_fw {
            nat_chains.push(fw.clone());
            for r in &s.source_ranges {
                let _ = writeln!(
                    nat,
                    "-A {fw} -s {r} -m comment --comment \"{name} loadbalancer IP\" -j {ext}"
                );
            }
            let _ = writeln!(
                nat,
                "-A {fw} -m comment --comment \"other traffic to {name} will be dropped by KUBE-PROXY-FIREWALL\""
            );
        }
        // Policy chains and endpoint chains.
        let mut seps: Vec<&EndpointSpec> = Vec::new();
        for (used, chain, eps) in [
            (uses_cluster, &svc, &cluster_eps),
            (uses_local, &svl, &local_eps),
        ] {
            if !used {
                continue;
            }
            nat_chains.push(chain.clone());
            let sep_of = |e: &EndpointSpec| {
                format!(
                    "KUBE-SEP-{}",
                    endpoint_suffix(name, &proto, &fmt_sock(e.ip, e.port))
                )
            };
            if let Some(t) = s.affinity {
                for e in eps.iter() {
                    let sep = sep_of(e);
                    let _ = writeln!(
                        nat,
                        "-A {chain} -m comment --comment \"{name} -> {}\" -m recent --rcheck --seconds {t} --reap --name {sep} --mask 255.255.255.255 --rsource -j {sep}",
                        fmt_sock(e.ip, e.port)
                    );
                }
            }
            for (i, e) in eps.iter().enumerate() {
                let sep = sep_of(e);
                let stat = if i + 1 < eps.len() {
                    format!(
                        " -m statistic --mode random --probability {}",
                        probability(eps.len() - i)
                    )
                } else {
                    String::new()
                };
                let _ = writeln!(
                    nat,
                    "-A {chain} -m comment --comment \"{name} -> {}\"{stat} -j {sep}",
                    fmt_sock(e.ip, e.port)
                );
                if !seps.iter().any(|x| x == e) {
                    seps.push(e);
                }
            }
        }
        for e in seps {
            let sep = format!(
                "KUBE-SEP-{}",
                endpoint_suffix(name, &proto, &fmt_sock(e.ip, e.port))
            );
            nat_chains.push(sep.clone());
            let _ = writeln!(
                nat,
                "-A {sep} -s {}/{} -m comment --comment \"{name}\" -j KUBE-MARK-MASQ",
                e.ip,
                host_len(&e.ip)
            );
            let set = if s.affinity.is_some() {
                format!(" -m recent --set --name {sep} --mask 255.255.255.255 --rsource")
            } else {
                String::new()
            };
            let _ = writeln!(
                nat,
                "-A {sep} -p {proto} -m comment --comment \"{name}\"{set} -m {proto} -j DNAT --to-destination {}",
                fmt_sock(e.ip, e.port)
            );
        }
    }
    nat_chains.sort();
    nat_chains.dedup();
    let mut o = String::new();
    o.push_str("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
    for c in [
        "KUBE-EXTERNAL-SERVICES",
        "KUBE-FIREWALL",
        "KUBE-FORWARD",
        "KUBE-NODEPORTS",
        "KUBE-PROXY-FIREWALL",
        "KUBE-SERVICES",
    ] {
        let _ = writeln!(o, ":{c} - [0:0]");
    }
    for (from, extra, comment, to) in [
        (
            "INPUT",
            "-m conntrack --ctstate NEW ",
            "kubernetes load balancer firewall",
            "KUBE-PROXY-FIREWALL",
        ),
        (
            "INPUT",
            "",
            "kubernetes health check service ports",
            "KUBE-NODEPORTS",
        ),
        (
            "INPUT",
            "-m conntrack --ctstate NEW ",
            "kubernetes externally-visible service portals",
            "KUBE-EXTERNAL-SERVICES",
        ),
        (
            "FORWARD",
            "-m conntrack --ctstate NEW ",
            "kubernetes load balancer firewall",
            "KUBE-PROXY-FIREWALL",
        ),
        ("FORWARD", "", "kubernetes forwarding rules", "KUBE-FORWARD"),
        (
            "FORWARD",
            "-m conntrack --ctstate NEW ",
            "kubernetes service portals",
            "KUBE-SERVICES",
        ),
        (
            "FORWARD",
            "-m conntrack --ctstate NEW ",
            "kubernetes externally-visible service portals",
            "KUBE-EXTERNAL-SERVICES",
        ),
        (
            "OUTPUT",
            "-m conntrack --ctstate NEW ",
            "kubernetes load balancer firewall",
            "KUBE-PROXY-FIREWALL",
        ),
        (
            "OUTPUT",
            "-m conntrack --ctstate NEW ",
            "kubernetes service portals",
            "KUBE-SERVICES",
        ),
    ] {
        let _ = writeln!(
            o,
            "-A {from} {extra}-m comment --comment \"{comment}\" -j {to}"
        );
    }
    o.push_str("-A INPUT -j KUBE-FIREWALL\n-A OUTPUT -j KUBE-FIREWALL\n");
    o.push_str(&f_external);
    o.push_str("-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment \"block incoming localnet connections\" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP\n");
    o.push_str("-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n");
    o.push_str("-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark 0x4000/0x4000 -j ACCEPT\n");
    o.push_str("-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n");
    o.push_str(&f_nodeports);
    o.push_str(&f_firewall);
    o.push_str(&f_services);
    o.push_str("COMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n");
    for c in &nat_chains {
        let _ = writeln!(o, ":{c} - [0:0]");
    }
    o.push_str(
        "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n",
    );
    o.push_str("-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n");
    o.push_str("-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n");
    o.push_str("-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n");
    o.push_str("-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n");
    o.push_str("-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0\n");
    let _ = writeln!(
        o,
        "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE{}",
        if cfg.random_fully {
            " --random-fully"
        } else {
            ""
        }
    );
    o.push_str(&nat_services);
    o.push_str("-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n");
    o.push_str(&nat_nodeports);
    o.push_str(&nat);
    o.push_str("COMMIT\n");
    o
}

fn int_verdict_pair(has_endpoints: bool) -> (&'static str, &'static str) {
    if has_endpoints {
        ("DROP", "has no local endpoints")
    } else {
        ("REJECT", "has no endpoints")
    }
}

fn host_len(ip: &IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}
