//! `route -n` (and `route -n -A inet6`) output taken on a node.
//!
//! What it tells us (kubenet, flannel host-gw and similar):
//! * a connected route on a bridge (`cbr0`, `cni0`) is the node's own pod CIDR;
//! * a gateway route to a network, via an address that is not the default gateway, is another
//!   node's pod CIDR, and the gateway is that node's IP;
//! * the connected route on the default route's interface is the node subnet;
//! * host routes on per-pod interfaces (`cali…`, `azv…`, `lxc…`, `veth…`) are local pod IPs.
//!
//! On AKS the routes to other nodes' pod CIDRs live in an Azure route table, not on the node, so
//! there `route -n` usually yields only the local pod CIDR and the node subnet.

use crate::cluster::error::{Diagnostic, LoadError, LoadErrorKind};
use crate::cluster::model::{ClusterSource, Node, Pod};
use crate::cluster::provenance::{Fact, Provenance, SourceKind};
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr};

const BRIDGES: &[&str] = &["cbr0", "cni0"];
const POD_IFACE_PREFIXES: &[&str] = &["cali", "azv", "lxc", "veth"];

/// One row of the routing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub line: u32,
    pub destination: IpNet,
    pub gateway: Option<IpAddr>,
    pub flags: String,
    pub iface: String,
    /// Preferred source address (`ip route`'s `src`): on the primary interface's connected
    /// route this is the node's own address.
    pub src: Option<IpAddr>,
}

impl Route {
    fn has_flag(&self, f: char) -> bool {
        self.flags.contains(f)
    }
    fn is_default(&self) -> bool {
        self.destination.prefix_len() == 0
    }
}

/// A parsed `route -n` dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable {
    pub file: String,
    pub routes: Vec<Route>,
    pub diagnostics: Vec<Diagnostic>,
}

fn netmask_prefix(mask: Ipv4Addr) -> Option<u8> {
    let m = u32::from(mask);
    let len = m.leading_ones();
    // Contiguous: the ones are all at the top.
    (m.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
}

#[derive(Clone, Copy)]
enum Layout {
    /// `Destination Gateway Genmask Flags Metric Ref Use Iface`
    V4 {
        dest: usize,
        gw: usize,
        mask: usize,
        flags: usize,
        iface: usize,
        width: usize,
    },
    /// `Destination Next Hop Flag Met Ref Use If`
    V6 {
        dest: usize,
        gw: usize,
        flags: usize,
        iface: usize,
        width: usize,
    },
}

fn header_layout(line: &str) -> Option<Layout> {
    let toks: Vec<&str> = line.split_whitespace().collect();
    let pos = |n: &str| toks.iter().position(|t| *t == n);
    if let (Some(dest), Some(gw), Some(mask), Some(flags), Some(iface)) = (
        pos("Destination"),
        pos("Gateway"),
        pos("Genmask"),
        pos("Flags"),
        pos("Iface"),
    ) {
        return Some(Layout::V4 {
            dest,
            gw,
            mask,
            flags,
            iface,
            width: toks.len(),
        });
    }
    // "Next Hop" is two header tokens but one data column.
    if let (Some(dest), Some(next), Some(flags), Some(iface)) =
        (pos("Destination"), pos("Next"), pos("Flag"), pos("If"))
    {
        let shift = |i: usize| if i > next { i - 1 } else { i };
        return Some(Layout::V6 {
            dest,
            gw: next,
            flags: shift(flags),
            iface: shift(iface),
            width: toks.len() - 1,
        });
    }
    None
}

/// Parse `route -n` text. Several tables (IPv4 and IPv6) may follow each other.
pub fn parse_route_n(text: &str, file: &str) -> Result<RouteTable, LoadError> {
    let mut table = RouteTable {
        file: file.to_owned(),
        routes: Vec::new(),
        diagnostics: Vec::new(),
    };
    let mut layout: Option<Layout> = None;
    let mut saw_header = false;
    for (idx, raw) in text.lines().enumerate() {
        let line_no = u32::try_from(idx + 1).unwrap_or(u32::MAX);
        let line = raw.trim();
        if line.is_empty() || line.starts_with("Kernel IP") || line.starts_with("Kernel IPv6") {
            continue;
        }
        if let Some(l) = header_layout(line) {
            layout = Some(l);
            saw_header = true;
            continue;
        }
        let Some(l) = layout else { continue };
        let toks: Vec<&str> = line.split_whitespace().collect();
        let warn = |m: String| {
            Diagnostic::warning(file, format!("{m}; row skipped")).at_line(Some(line_no))
        };
        match parse_row(l, &toks, line_no) {
            Ok(r) => table.routes.push(r),
            Err(m) => table.diagnostics.push(warn(m)),
        }
    }
    if !saw_header {
        return Err(LoadError::new(
            LoadErrorKind::Missing,
            Diagnostic::warning(
                file,
                "no `route -n` header found (expected `Destination Gateway Genmask Flags Metric Ref Use Iface`)",
            ),
        ));
    }
    Ok(table)
}

fn parse_row(l: Layout, toks: &[&str], line: u32) -> Result<Route, String> {
    let (width, dest_i, gw_i, flags_i, iface_i) = match l {
        Layout::V4 {
            dest,
            gw,
            flags,
            iface,
            width,
            ..
        }
        | Layout::V6 {
            dest,
            gw,
            flags,
            iface,
            width,
        } => (width, dest, gw, flags, iface),
    };
    if toks.len() != width {
        return Err(format!("expected {width} fields, found {}", toks.len()));
    }
    let gw_text = toks[gw_i];
    let gateway = match gw_text {
        "*" | "0.0.0.0" | "::" => None,
        g => Some(
            g.parse::<IpAddr>()
                .map_err(|_| format!("gateway {g:?} is not an IP address"))?,
        ),
    };
    let destination = match l {
        Layout::V4 { mask, .. } => {
            let d = toks[dest_i];
            let addr: Ipv4Addr = if d == "default" {
                Ipv4Addr::UNSPECIFIED
            } else {
                d.parse()
                    .map_err(|_| format!("destination {d:?} is not an IPv4 address"))?
            };
            let m: Ipv4Addr = toks[mask]
                .parse()
                .map_err(|_| format!("genmask {:?} is not an IPv4 netmask", toks[mask]))?;
            let len = netmask_prefix(m).ok_or_else(|| format!("genmask {m} is not contiguous"))?;
            IpNet::new(IpAddr::V4(addr), len)
                .map_err(|e| e.to_string())?
                .trunc()
        }
        Layout::V6 { .. } => {
            let d = toks[dest_i];
            d.parse::<IpNet>()
                .map_err(|_| format!("destination {d:?} is not a CIDR"))?
                .trunc()
        }
    };
    Ok(Route {
        line,
        destination,
        gateway,
        flags: toks[flags_i].to_owned(),
        iface: toks[iface_i].to_owned(),
        src: None,
    })
}

/// `ip route` output: `default via 10.220.1.1 dev eth0`,
/// `10.100.0.0/24 dev cbr0 proto kernel scope link src 10.100.0.1`,
/// `10.100.1.0/24 via 10.220.1.5 dev eth0`. Route types other than unicast (`local`,
/// `broadcast`, `unreachable`, …) are skipped.
pub fn parse_ip_route(text: &str, file: &str) -> Result<RouteTable, LoadError> {
    let mut table = RouteTable {
        file: file.to_owned(),
        routes: Vec::new(),
        diagnostics: Vec::new(),
    };
    for (idx, raw) in text.lines().enumerate() {
        let line_no = u32::try_from(idx + 1).unwrap_or(u32::MAX);
        let toks: Vec<&str> = raw.split_whitespace().collect();
        let Some(&first) = toks.first() else { continue };
        if matches!(
            first,
            "local"
                | "broadcast"
                | "unreachable"
                | "blackhole"
                | "prohibit"
                | "throw"
                | "multicast"
                | "anycast"
                | "nat"
        ) {
            continue;
        }
        let dest_tok = if first == "unicast" {
            toks.get(1).copied().unwrap_or("")
        } else {
            first
        };
        let value_of = |k: &str| toks.windows(2).find(|w| w[0] == k).map(|w| w[1]);
        let warn = |m: String| {
            Diagnostic::warning(file, format!("{m}; route skipped")).at_line(Some(line_no))
        };
        let Some(iface) = value_of("dev") else {
            table.diagnostics.push(warn("no `dev`".into()));
            continue;
        };
        let gateway = match value_of("via").map(|g| g.strip_prefix("inet6").unwrap_or(g)) {
            None => None,
            Some(g) => match g.parse::<IpAddr>() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    table
                        .diagnostics
                        .push(warn(format!("gateway {g:?} is not an IP address")));
                    continue;
                }
            },
        };
        let v6_hint = gateway.is_some_and(|g| g.is_ipv6()) || dest_tok.contains(':');
        let destination = if dest_tok == "default" {
            IpNet::new(
                if v6_hint {
                    IpAddr::from([0u16; 8])
                } else {
                    IpAddr::from([0u8; 4])
                },
                0,
            )
            .ok()
        } else if let Ok(n) = dest_tok.parse::<IpNet>() {
            Some(n.trunc())
        } else {
            dest_tok.parse::<IpAddr>().ok().map(IpNet::from)
        };
        let Some(destination) = destination else {
            table.diagnostics.push(warn(format!(
                "destination {dest_tok:?} is not an address or CIDR"
            )));
            continue;
        };
        let mut flags = String::from("U");
        if gateway.is_some() {
            flags.push('G');
        }
        if destination.prefix_len() == destination.max_prefix_len() {
            flags.push('H');
        }
        let src = value_of("src").and_then(|s| s.parse().ok());
        table.routes.push(Route {
            line: line_no,
            destination,
            gateway,
            flags,
            iface: iface.to_owned(),
            src,
        });
    }
    if table.routes.is_empty() {
        return Err(LoadError::new(
            LoadErrorKind::Missing,
            Diagnostic::warning(
                file,
                "no routes found (expected `ip route` lines such as `default via 10.0.0.1 dev eth0`)",
            ),
        ));
    }
    Ok(table)
}

impl RouteTable {
    /// Turn the routes into cluster facts. `on_node` names the node the dump was taken on
    /// (`NODE=FILE`); without it the local pod CIDR is left for the builder to place.
    pub fn into_source(self, on_node: Option<&str>) -> ClusterSource {
        let mut src = ClusterSource::new(SourceKind::RouteN, &self.file);
        src.diagnostics = self.diagnostics;
        let file = self.file.as_str();
        let given = |r: &Route| Provenance::given(SourceKind::RouteN, file, Some(r.line));
        let default_gw: Vec<(IpAddr, &str)> = self
            .routes
            .iter()
            .filter(|r| r.is_default())
            .filter_map(|r| r.gateway.map(|g| (g, r.iface.as_str())))
            .collect();
        let primary: Vec<&str> = default_gw.iter().map(|(_, i)| *i).collect();
        let mut local = on_node.map(|n| {
            Node::new(Fact::new(
                n.to_owned(),
                Provenance::given(SourceKind::CommandLine, file, None),
            ))
        });

        for r in &self.routes {
            let connected = r.gateway.is_none() && !r.has_flag('G');
            let host = r.destination.prefix_len() == r.destination.max_prefix_len();
            if r.is_default() {
                continue;
            }
            if connected && BRIDGES.iter().any(|b| r.iface == *b) && !host {
                let fact = Fact::new(r.destination, given(r));
                match local.as_mut() {
                    Some(n) => n.pod_cidrs.push(fact),
                    None if src.unplaced_local_pod_cidr.is_none() => {
                        src.unplaced_local_pod_cidr = Some(fact)
                    }
                    None => src.diagnostics.push(
                        Diagnostic::warning(
                            file,
                            format!(
                                "a second local pod CIDR {} on {}; only the first is used",
                                r.destination, r.iface
                            ),
                        )
                        .at_line(Some(r.line)),
                    ),
                }
            } else if connected && primary.contains(&r.iface.as_str()) && !host {
                src.node_subnets.push(Fact::new(r.destination, given(r)));
                if let (Some(n), Some(ip)) = (local.as_mut(), r.src)
                    && r.destination.contains(&ip)
                    && !n.has_ip(ip)
                {
                    n.ips.push(Fact::new(ip, given(r)));
                }
            } else if connected && host && POD_IFACE_PREFIXES.iter().any(|p| r.iface.starts_with(p))
            {
                let mut pod = Pod::new(Fact::new(r.destination.addr(), given(r)));
                pod.node = on_node.map(|n| Fact::new(n.to_owned(), given(r)));
                src.pods.push(pod);
            } else if let Some(gw) = r.gateway
                && !host
                && !default_gw.iter().any(|(g, _)| *g == gw)
            {
                if r.destination.contains(&gw) {
                    // flannel vxlan and similar: the next hop is a VTEP inside the pod network.
                    src.diagnostics.push(
                        Diagnostic::note(file, format!("{} via {gw}: gateway inside the destination (overlay route), not a node address", r.destination))
                            .at_line(Some(r.line)),
                    );
                    continue;
                }
                let idx = match src.nodes.iter().position(|n| n.has_ip(gw)) {
                    Some(i) => i,
                    None => {
                        let mut n = Node::new(Fact::inferred(
                            gw.to_string(),
                            format!(
                                "named after its address: {file}:{} routes {} via {gw}",
                                r.line, r.destination
                            ),
                        ));
                        n.ips.push(Fact::new(gw, given(r)));
                        src.nodes.push(n);
                        src.nodes.len() - 1
                    }
                };
                src.nodes[idx]
                    .pod_cidrs
                    .push(Fact::new(r.destination, given(r)));
            }
        }
        if let Some(n) = local {
            src.nodes.insert(0, n);
        }
        src
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From the AKS blog post (seeds/aks-lb-part2): kubenet, only the local pod CIDR.
    const AKS: &str = "\
Kernel IP routing table
Destination     Gateway         Genmask         Flags Metric Ref    Use Iface
0.0.0.0         10.220.1.1      0.0.0.0         UG    0      0        0 eth0
10.100.0.0      0.0.0.0         255.255.255.0   U     0      0        0 cbr0
10.220.1.0      0.0.0.0         255.255.255.0   U     0      0        0 eth0
168.63.129.16   10.220.1.1      255.255.255.255 UGH   0      0        0 eth0
169.254.169.254 10.220.1.1      255.255.255.255 UGH   0      0        0 eth0
172.17.0.0      0.0.0.0         255.255.0.0     U     0      0        0 docker0
";

    #[test]
    fn aks_kubenet_node() {
        let t = parse_route_n(AKS, "route.txt").unwrap();
        assert_eq!(t.routes.len(), 6);
        let s = t
            .clone()
            .into_source(Some("aks-nodepool1-23454376-vmss000000"));
        assert_eq!(s.nodes.len(), 1);
        assert_eq!(
            s.nodes[0].pod_cidrs[0].value,
            "10.100.0.0/24".parse::<IpNet>().unwrap()
        );
        assert_eq!(
            s.node_subnets[0].value,
            "10.220.1.0/24".parse::<IpNet>().unwrap()
        );
        let s = t.into_source(None);
        assert!(s.nodes.is_empty());
        assert_eq!(
            s.unplaced_local_pod_cidr.unwrap().value,
            "10.100.0.0/24".parse::<IpNet>().unwrap()
        );
    }

    #[test]
    fn host_gw_peers_and_calico_host_routes() {
        let t = "\
Destination     Gateway         Genmask         Flags Metric Ref    Use Iface
0.0.0.0         10.220.1.1      0.0.0.0         UG    0      0        0 eth0
10.220.1.0      0.0.0.0         255.255.255.0   U     0      0        0 eth0
10.100.1.0      10.220.1.5      255.255.255.0   UG    0      0        0 eth0
10.100.2.0      10.220.1.6      255.255.255.0   UG    0      0        0 eth0
10.244.9.0      10.244.9.0      255.255.255.0   UG    0      0        0 flannel.1
10.100.0.7      0.0.0.0         255.255.255.255 UH    0      0        0 cali1234
";
        let s = parse_route_n(t, "r").unwrap().into_source(Some("node0"));
        let got: Vec<(String, String, String)> = s
            .nodes
            .iter()
            .map(|n| {
                (
                    n.name().to_owned(),
                    n.ip().map(|i| i.to_string()).unwrap_or_default(),
                    n.pod_cidrs
                        .first()
                        .map(|c| c.value.to_string())
                        .unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("node0".into(), String::new(), String::new()),
                (
                    "10.220.1.5".into(),
                    "10.220.1.5".into(),
                    "10.100.1.0/24".into()
                ),
                (
                    "10.220.1.6".into(),
                    "10.220.1.6".into(),
                    "10.100.2.0/24".into()
                ),
            ]
        );
        assert!(s.nodes[1].name.is_inferred());
        assert_eq!(s.pods.len(), 1);
        assert_eq!(s.pods[0].node_name(), Some("node0"));
        assert_eq!(s.diagnostics.len(), 1, "overlay route noted");
    }

    #[test]
    fn ipv6_table() {
        let t = "\
Kernel IPv6 routing table
Destination                    Next Hop                   Flag Met Ref Use If
fd00:100::/64                  ::                         U    256 1     0 cbr0
::/0                           fe80::1                    UG   1024 2    0 eth0
";
        let s = parse_route_n(t, "r6").unwrap().into_source(Some("n"));
        assert_eq!(
            s.nodes[0].pod_cidrs[0].value,
            "fd00:100::/64".parse::<IpNet>().unwrap()
        );
    }

    #[test]
    fn bad_rows_and_missing_header() {
        let t = "\
Destination     Gateway         Genmask         Flags Metric Ref    Use Iface
10.100.0.0      0.0.0.0         255.0.255.0     U     0      0        0 cbr0
10.100.0.0      0.0.0.0         255.255.255.0   U     0      0        0
10.100.x.0      0.0.0.0         255.255.255.0   U     0      0        0 cbr0
10.100.9.0      0.0.0.0         255.255.255.0   U     0      0        0 cbr0
";
        let r = parse_route_n(t, "r").unwrap();
        assert_eq!(r.routes.len(), 1);
        let lines: Vec<Option<u32>> = r.diagnostics.iter().map(|d| d.line).collect();
        assert_eq!(lines, [Some(2), Some(3), Some(4)]);
        assert!(r.diagnostics[0].message.contains("not contiguous"));
        let e = parse_route_n("hello\n", "r").unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::Missing);
    }

    #[test]
    fn ip_route_output() {
        let t = "\
default via 10.220.1.1 dev eth0 proto dhcp src 10.220.1.4 metric 100
10.100.0.0/24 dev cbr0 proto kernel scope link src 10.100.0.1
10.100.1.0/24 via 10.220.1.5 dev eth0
10.220.1.0/24 dev eth0 proto kernel scope link src 10.220.1.4
168.63.129.16 via 10.220.1.1 dev eth0 proto dhcp src 10.220.1.4 metric 100
10.100.0.7 dev cali123 scope link
local 10.220.1.4 dev eth0 table local proto kernel scope host src 10.220.1.4
10.9.0.0/16 via nonsense dev eth0
";
        let r = parse_ip_route(t, "ip-route.txt").unwrap();
        assert_eq!(r.routes.len(), 6);
        assert_eq!(r.diagnostics.len(), 1);
        assert_eq!(r.diagnostics[0].line, Some(8));
        let s = r.into_source(Some("node0"));
        let n0 = &s.nodes[0];
        assert_eq!(n0.name(), "node0");
        assert_eq!(
            n0.ip(),
            Some("10.220.1.4".parse().unwrap()),
            "src of the primary connected route"
        );
        assert_eq!(n0.pod_cidrs[0].value.to_string(), "10.100.0.0/24");
        assert_eq!(s.nodes[1].name(), "10.220.1.5");
        assert_eq!(s.nodes[1].pod_cidrs[0].value.to_string(), "10.100.1.0/24");
        assert_eq!(s.node_subnets[0].value.to_string(), "10.220.1.0/24");
        assert_eq!(s.pods.len(), 1);
        assert!(parse_ip_route("hello world\n", "x").is_err());
    }

    #[test]
    fn netmasks() {
        assert_eq!(netmask_prefix("255.255.255.0".parse().unwrap()), Some(24));
        assert_eq!(netmask_prefix("0.0.0.0".parse().unwrap()), Some(0));
        assert_eq!(netmask_prefix("255.255.255.255".parse().unwrap()), Some(32));
        assert_eq!(netmask_prefix("255.0.255.0".parse().unwrap()), None);
    }
}
