//! Merging several cluster inputs, inference, conflicts and lookups, through the public API.

use hoptrace::cluster::infer::{AddressTally, CaptureAttribution, attribute_capture};
use hoptrace::cluster::load::{
    load_bytes, parse_cluster_toml, parse_kubectl_json, parse_kubectl_text, parse_route_n,
};
use hoptrace::cluster::{
    AlbHash, AlbMode, AlbModel, Cluster, ClusterBuilder, Diagnostic, ExternalTrafficPolicy,
    FlowKey, IpRole, Provenance, Severity, SourceKind,
};
use std::net::IpAddr;
use std::path::Path;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn build(inputs: &[(&str, &str)]) -> (Cluster, Vec<Diagnostic>) {
    let mut b = ClusterBuilder::new();
    for (name, text) in inputs {
        let src = load_bytes(text.as_bytes(), name, Path::new("/lab"), None)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        b.add_source(src);
    }
    b.build()
}

fn warnings(d: &[Diagnostic]) -> Vec<String> {
    d.iter()
        .filter(|d| d.severity == Severity::Warning)
        .map(ToString::to_string)
        .collect()
}

const TOML: &str = r#"
[load_balancer]
frontends = ["20.185.96.169"]
seed = 0x5eed0001

[[nodes]]
name = "node0"
ip = "10.220.1.4"
pod_cidr = "10.100.0.0/24"
zone = "1"
captures = ["node0-eth0.pcap"]

[[nodes]]
name = "node1"
ip = "10.220.1.5"
pod_cidr = "10.100.1.0/24"
zone = "2"

[[nodes]]
name = "node2"
ip = "10.220.1.6"
zone = "1"
"#;

const PODS: &str = "\
NAME        READY   STATUS    RESTARTS   AGE   IP           NODE    NOMINATED NODE   READINESS GATES
testapp-a   1/1     Running   0          16s   10.100.0.7   node0   <none>           <none>
testapp-b   1/1     Running   0          16s   10.100.2.2   node2   <none>           <none>
testapp-c   1/1     Running   0          16s   10.100.1.4   <none>  <none>           <none>
";

#[test]
fn toml_plus_kubectl_pods_infers_the_gaps() {
    let (c, diags) = build(&[("cluster.toml", TOML), ("pods.txt", PODS)]);
    assert!(warnings(&diags).is_empty(), "{:?}", warnings(&diags));

    // node2's pod CIDR was not given: guessed from testapp-b, marked inferred.
    let n2 = c.node("node2").unwrap();
    assert_eq!(n2.pod_cidrs[0].value.to_string(), "10.100.2.0/24");
    assert!(n2.pod_cidrs[0].is_inferred());

    // testapp-c's node was <none>: inferred from node1's pod CIDR.
    let pc = c.pod_by_ip(ip("10.100.1.4")).unwrap();
    assert_eq!(pc.node_name(), Some("node1"));
    assert!(pc.node.as_ref().unwrap().is_inferred());
    match &pc.node.as_ref().unwrap().provenance {
        Provenance::Inferred { reason } => assert!(reason.contains("10.100.1.0/24"), "{reason}"),
        p => panic!("{p:?}"),
    }

    // Lookups.
    assert_eq!(c.zone_of_node("node2"), Some("1"));
    assert_eq!(c.crosses_zone("node0", "node2"), Some(false));
    assert_eq!(c.crosses_zone("node0", "node1"), Some(true));
    assert_eq!(c.crosses_zone("node0", "nowhere"), None);
    assert_eq!(c.crosses_zone("nowhere", "nowhere"), Some(false));
    assert_eq!(c.zone_of_pod(pc), Some("2"));
    assert_eq!(
        c.node_owning_pod_cidr(ip("10.100.0.200")).unwrap().name(),
        "node0"
    );
    assert_eq!(
        c.node_of_endpoint(ip("10.100.2.2")).unwrap().name(),
        "node2"
    );
    assert!(c.is_frontend(ip("20.185.96.169")));
    assert!(c.is_node_ip(ip("10.220.1.5")) && !c.is_node_ip(ip("10.100.0.7")));
    assert!(c.is_pod_ip(ip("10.100.0.7")));
    assert_eq!(c.classify(ip("20.185.96.169")), IpRole::Frontend);
    assert!(matches!(c.classify(ip("10.220.1.4")), IpRole::Node(n) if n.name() == "node0"));
    assert!(
        matches!(c.classify(ip("10.100.0.7")), IpRole::Pod(p) if p.name() == Some("testapp-a"))
    );
    assert!(matches!(c.classify(ip("10.100.0.1")), IpRole::Bridge(n) if n.name() == "node0"));
    assert!(matches!(c.classify(ip("10.100.0.9")), IpRole::PodNetwork(n) if n.name() == "node0"));
    assert_eq!(c.classify(ip("8.8.8.8")), IpRole::Unknown);
    assert_eq!(
        c.node_for_capture(Path::new("/lab/node0-eth0.pcap"))
            .unwrap()
            .name(),
        "node0"
    );
    assert_eq!(
        c.node_for_capture(Path::new("elsewhere/node0-eth0.pcap"))
            .unwrap()
            .name(),
        "node0"
    );

    // Load balancer: defaults marked as defaults.
    let lb = c.load_balancer();
    assert_eq!(lb.backends.value, ["node0", "node1", "node2"]);
    assert!(matches!(lb.backends.provenance, Provenance::Default { .. }));
    assert_eq!(lb.mode.value, AlbMode::Default);
    assert_eq!(lb.seed.value, 0x5eed_0001);
    assert!(lb.seed.is_given());

    // The UI/report see the provenance of every fact.
    let j = serde_json::to_value(&c).unwrap();
    assert_eq!(j["nodes"][2]["pod_cidrs"][0]["value"], "10.100.2.0/24");
    assert_eq!(
        j["nodes"][2]["pod_cidrs"][0]["provenance"]["kind"],
        "inferred"
    );
    assert_eq!(
        j["nodes"][0]["ips"][0]["provenance"]["source"]["kind"],
        "cluster-toml"
    );
    assert_eq!(j["nodes"][0]["ips"][0]["provenance"]["source"]["line"], 8);
    assert_eq!(j["load_balancer"]["mode"]["value"], "default");
    assert_eq!(j["load_balancer"]["mode"]["provenance"]["kind"], "default");
}

#[test]
fn conflicts_are_warnings_and_cluster_toml_wins() {
    let nodes = "\
NAME    STATUS   ROLES   AGE   VERSION   INTERNAL-IP   EXTERNAL-IP
node0   Ready    agent   1d    v1.30.0   10.220.1.99   <none>
node1   Ready    agent   1d    v1.30.0   10.220.1.5    <none>
";
    let (c, diags) = build(&[("nodes.txt", nodes), ("cluster.toml", TOML)]);
    let w = warnings(&diags);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("node node0 address"), "{}", w[0]);
    assert!(
        w[0].contains("10.220.1.99") && w[0].contains("10.220.1.4"),
        "{}",
        w[0]
    );
    assert!(w[0].contains("using 10.220.1.4"), "{}", w[0]);
    assert_eq!(c.node("node0").unwrap().ip(), Some(ip("10.220.1.4")));
    match &c.node("node0").unwrap().ips[0].provenance {
        Provenance::Given { source } => assert_eq!(source.kind, SourceKind::ClusterToml),
        p => panic!("{p:?}"),
    }
    // Agreeing facts upgrade their provenance to the stronger source.
    match &c.node("node1").unwrap().ips[0].provenance {
        Provenance::Given { source } => assert_eq!(source.kind, SourceKind::ClusterToml),
        p => panic!("{p:?}"),
    }
}

#[test]
fn pod_outside_every_pod_cidr_and_on_the_wrong_node() {
    let toml = r#"
[[nodes]]
name = "a"
ip = "10.0.0.1"
pod_cidr = "10.1.0.0/24"
[[nodes]]
name = "b"
ip = "10.0.0.2"
pod_cidr = "10.1.1.0/24"
[[pods]]
name = "stray"
ip = "10.9.9.9"
[[pods]]
name = "misplaced"
ip = "10.1.1.5"
node = "a"
[[pods]]
name = "hostnet"
ip = "10.0.0.2"
"#;
    let (c, diags) = build(&[("c.toml", toml)]);
    let w = warnings(&diags);
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w.iter().any(|m| m.contains("stray")
            && m.contains("outside every node's pod CIDR")
            && m.starts_with("c.toml:12")),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|m| m.contains("misplaced") && m.contains("b's pod CIDR")),
        "{w:?}"
    );
    let h = c.pod_by_ip(ip("10.0.0.2")).unwrap();
    assert!(h.host_network);
    assert_eq!(h.node_name(), Some("b"));
}

#[test]
fn route_n_nodes_named_by_ip_merge_with_kubectl_names() {
    let route = "\
Destination     Gateway         Genmask         Flags Metric Ref    Use Iface
0.0.0.0         10.220.1.1      0.0.0.0         UG    0      0        0 eth0
10.220.1.0      0.0.0.0         255.255.255.0   U     0      0        0 eth0
10.100.0.0      0.0.0.0         255.255.255.0   U     0      0        0 cbr0
10.100.1.0      10.220.1.5      255.255.255.0   UG    0      0        0 eth0
";
    let nodes = "\
NAME    STATUS   INTERNAL-IP
node0   Ready    10.220.1.4
node1   Ready    10.220.1.5
";
    // Route first, then kubectl: the provisional node "10.220.1.5" becomes node1.
    let mut b = ClusterBuilder::new();
    b.add_source(
        parse_route_n(route, "node0-route.txt")
            .unwrap()
            .into_source(None),
    );
    b.add_source(parse_kubectl_text(nodes, "nodes.txt").unwrap());
    let (c, diags) = b.build();
    assert!(warnings(&diags).is_empty(), "{:?}", warnings(&diags));
    assert_eq!(c.nodes().len(), 2);
    let n1 = c.node("node1").unwrap();
    assert_eq!(n1.pod_cidrs[0].value.to_string(), "10.100.1.0/24");
    assert!(n1.pod_cidrs[0].is_given());
    // The local cbr0 route went to the only node without a pod CIDR.
    let n0 = c.node("node0").unwrap();
    assert_eq!(n0.pod_cidrs[0].value.to_string(), "10.100.0.0/24");
    assert!(n0.pod_cidrs[0].is_inferred());
    assert_eq!(c.classify(ip("10.220.1.77")), IpRole::NodeSubnet);
}

#[test]
fn unplaceable_route_cidr_is_a_warning() {
    let route = "Destination Gateway Genmask Flags Metric Ref Use Iface\n10.100.0.0 0.0.0.0 255.255.255.0 U 0 0 0 cbr0\n";
    let nodes = "NAME INTERNAL-IP\nn0 10.0.0.1\nn1 10.0.0.2\n";
    let mut b = ClusterBuilder::new();
    b.add_source(parse_route_n(route, "r.txt").unwrap().into_source(None));
    b.add_source(parse_kubectl_text(nodes, "n.txt").unwrap());
    let (_, diags) = b.build();
    let w = warnings(&diags);
    assert_eq!(w.len(), 1);
    assert!(w[0].contains("NODE=r.txt"), "{}", w[0]);
}

#[test]
fn kubectl_json_nodes_pods_and_service_drive_the_lb() {
    let j = r#"{"kind":"List","items":[
 {"kind":"Node","metadata":{"name":"n0","labels":{"topology.kubernetes.io/zone":"eastus-1"}},"spec":{"podCIDR":"10.244.0.0/24"},
  "status":{"addresses":[{"type":"InternalIP","address":"10.0.0.4"}]}},
 {"kind":"Node","metadata":{"name":"n1","labels":{"topology.kubernetes.io/zone":"eastus-2"}},"spec":{"podCIDR":"10.244.1.0/24"},
  "status":{"addresses":[{"type":"InternalIP","address":"10.0.0.5"}]}},
 {"kind":"Pod","metadata":{"name":"web-1"},"spec":{"nodeName":"n1"},"status":{"podIP":"10.244.1.9","hostIP":"10.0.0.5"}},
 {"kind":"Service","metadata":{"name":"web"},"spec":{"type":"LoadBalancer","sessionAffinity":"ClientIP","externalTrafficPolicy":"Local"},
  "status":{"loadBalancer":{"ingress":[{"ip":"20.1.2.3"}]}}}
]}"#;
    let mut b = ClusterBuilder::new();
    b.add_source(parse_kubectl_json(j, "all.json").unwrap());
    let (c, diags) = b.build();
    assert!(warnings(&diags).is_empty(), "{:?}", warnings(&diags));
    let lb = c.load_balancer();
    assert_eq!(lb.mode.value, AlbMode::SourceIp);
    assert!(
        lb.mode.is_inferred(),
        "mode comes from sessionAffinity via cloud-provider-azure's mapping"
    );
    assert_eq!(
        lb.external_traffic_policy.value,
        ExternalTrafficPolicy::Local
    );
    assert_eq!(
        c.zone_of_pod(c.pod_by_ip(ip("10.244.1.9")).unwrap()),
        Some("eastus-2")
    );

    // Local policy: only n1 (which runs web-1) is in the pool.
    let m = AlbModel::from_cluster(&c).unwrap();
    assert_eq!(m.pool().collect::<Vec<_>>(), ["n1"]);
    let d = m
        .decide(&FlowKey::tcp(
            ip("71.246.222.12"),
            58796,
            ip("20.1.2.3"),
            80,
        ))
        .unwrap();
    assert_eq!((d.node.as_str(), d.mode), ("n1", AlbMode::SourceIp));
}

#[test]
fn lb_mode_and_affinity_disagreement_and_unknown_backend() {
    let t = r#"
[load_balancer]
mode = "default"
session_affinity = "ClientIP"
hash = "maglev"
backends = ["n0", "ghost"]
unhealthy = ["n0"]
[[nodes]]
name = "n0"
ip = "10.0.0.1"
[[nodes]]
name = "n1"
ip = "10.0.0.2"
"#;
    let (c, diags) = build(&[("c.toml", t)]);
    let w = warnings(&diags);
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w.iter()
            .any(|m| m.contains("cloud-provider-azure would configure source-ip")),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|m| m.contains("backend ghost is not a known node") && m.starts_with("c.toml:6")),
        "{w:?}"
    );
    assert_eq!(c.load_balancer().hash.value, AlbHash::Maglev);
    let m = AlbModel::from_cluster(&c).unwrap();
    assert_eq!(m.pool().collect::<Vec<_>>(), ["ghost"]);
}

#[test]
fn builder_accepts_later_inferences_and_rebuilds() {
    let (c, _) = build(&[("cluster.toml", TOML)]);
    let mut b = ClusterBuilder::from_cluster(&c);
    b.add_inferred_pod(ip("10.100.1.33"), "DNAT target of KUBE-SEP-ABC");
    b.add_frontend(hoptrace::cluster::Fact::inferred(
        ip("20.0.0.9"),
        "kube-proxy comment \"loadbalancer IP\"",
    ));
    b.add_node_ip(
        "node3",
        hoptrace::cluster::Fact::inferred(ip("10.220.1.7"), "masqueraded source"),
    );
    let (c2, diags) = b.build();
    assert!(warnings(&diags).is_empty(), "{:?}", warnings(&diags));
    let p = c2.pod_by_ip(ip("10.100.1.33")).unwrap();
    assert_eq!(p.node_name(), Some("node1"));
    assert!(p.ip.is_inferred());
    assert!(c2.is_frontend(ip("20.0.0.9")) && c2.is_frontend(ip("20.185.96.169")));
    assert_eq!(c2.node_by_ip(ip("10.220.1.7")).unwrap().name(), "node3");
    // Backends were a default: re-resolved over the new node list.
    assert_eq!(
        c2.load_balancer().backends.value,
        ["node0", "node1", "node2", "node3"]
    );
    assert_eq!(c2.load_balancer().seed.value, 0x5eed_0001);
}

#[test]
fn capture_attribution_by_name_and_addresses() {
    let (c, _) = build(&[("cluster.toml", TOML), ("pods.txt", PODS)]);
    let t = |ipx: &str, n: u64| AddressTally {
        ip: ip(ipx),
        packets: n,
    };
    // On node1's eth0: node1's address and pods, plus some traffic from node0 (SNAT).
    let seen = [
        t("10.220.1.5", 40),
        t("10.100.1.4", 30),
        t("10.220.1.4", 10),
        t("71.246.222.12", 50),
        t("20.185.96.169", 50),
    ];
    let (a, d) = attribute_capture("capture-3.pcap", &seen, &c);
    assert_eq!(a.node(), Some("node1"));
    assert!(d.is_empty());
    let (a, d) = attribute_capture("node1-eth0.pcap", &seen, &c);
    assert_eq!(a.node(), Some("node1"));
    assert!(d.is_empty());
    // Name and addresses disagree: the name wins, with a warning.
    let (a, d) = attribute_capture("node2-eth0.pcap", &seen, &c);
    assert_eq!(a.node(), Some("node2"));
    assert_eq!(d.len(), 1);
    // Only client↔frontend traffic and no node in the name: no node, with a warning.
    let (a, d) = attribute_capture(
        "client.pcap",
        &[t("71.246.222.12", 9), t("20.185.96.169", 9)],
        &c,
    );
    assert!(matches!(a, CaptureAttribution::NoNode { .. }));
    assert!(d[0].to_string().contains("matches no node"));
    // A capture the cluster file lists decides, whatever its name or content.
    let (a, d) = attribute_capture("/lab/node0-eth0.pcap", &seen, &c);
    assert!(
        matches!(a, CaptureAttribution::Node { ref node, ref reason } if node == "node0" && reason.contains("listed")),
        "{a:?}"
    );
    assert!(d.is_empty());
    // Two nodes equally present: ambiguous.
    let (a, d) = attribute_capture("x.pcap", &[t("10.220.1.4", 10), t("10.220.1.5", 10)], &c);
    assert!(
        matches!(a, CaptureAttribution::Ambiguous { ref candidates, .. } if candidates.len() == 2)
    );
    assert_eq!(d.len(), 1);
}

#[test]
fn pod_ip_claimed_by_two_names_keeps_the_stronger_source() {
    let toml = "[[pods]]\nname = \"new\"\nip = \"10.1.0.5\"\n";
    let pods = "NAME   IP         NODE\nold    10.1.0.5   n0\n";
    let mut b = ClusterBuilder::new();
    b.add_source(parse_kubectl_text(pods, "pods.txt").unwrap());
    b.add_source(parse_cluster_toml(toml, "c.toml", Path::new(".")).unwrap());
    let (c, diags) = b.build();
    let w = warnings(&diags);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("keeping new"), "{}", w[0]);
    assert_eq!(c.pod_by_ip(ip("10.1.0.5")).unwrap().name(), Some("new"));
}

#[test]
fn pods_placed_by_evidence_give_a_cidr_that_places_other_pods() {
    // Nothing but node names from capture files and pod IPs from rules/captures.
    let mut b = ClusterBuilder::new();
    b.assign_capture(
        "node1",
        "node1-eth0.pcap".into(),
        Provenance::inferred("file name node1-eth0.pcap"),
    );
    let mut seen = hoptrace::cluster::Pod::new(hoptrace::cluster::Fact::inferred(
        ip("10.100.1.4"),
        "DNAT target",
    ));
    seen.node = Some(hoptrace::cluster::Fact::inferred(
        "node1".to_owned(),
        "post-DNAT packet seen on node1's bridge",
    ));
    b.add_pod(seen);
    b.add_inferred_pod(ip("10.100.1.9"), "DNAT target of KUBE-SEP-XYZ");
    let (c, diags) = b.build();
    assert!(warnings(&diags).is_empty(), "{:?}", warnings(&diags));
    let n1 = c.node("node1").unwrap();
    assert_eq!(n1.pod_cidrs[0].value.to_string(), "10.100.1.0/24");
    assert!(n1.pod_cidrs[0].is_inferred());
    let other = c.pod_by_ip(ip("10.100.1.9")).unwrap();
    assert_eq!(other.node_name(), Some("node1"));
    assert!(other.node.as_ref().unwrap().is_inferred());
    assert_eq!(
        c.node_for_capture(Path::new("node1-eth0.pcap"))
            .unwrap()
            .name(),
        "node1"
    );
    assert!(c.node("node1").unwrap().name.is_inferred());

    // kubectl later names the node: the name becomes given.
    let mut b = ClusterBuilder::from_cluster(&c);
    b.add_source(
        parse_kubectl_text("NAME    INTERNAL-IP\nnode1   10.220.1.5\n", "nodes.txt").unwrap(),
    );
    let (c, _) = b.build();
    assert!(c.node("node1").unwrap().name.is_given());
    assert_eq!(c.node_by_ip(ip("10.220.1.5")).unwrap().captures.len(), 1);
}
