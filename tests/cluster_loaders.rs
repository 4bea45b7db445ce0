//! Every cluster loader through the content-sniffing entry point, good and bad inputs in one
//! table: what is recognised, what is kept, and which line each problem is reported at.

use hoptrace::cluster::load::{ClusterInputKind, load_bytes, sniff};
use hoptrace::cluster::{LoadErrorKind, Severity};
use std::path::Path;

enum Want {
    /// Loaded: (nodes, pods, frontends, lines of warnings in order).
    Ok {
        nodes: usize,
        pods: usize,
        frontends: usize,
        warning_lines: &'static [Option<u32>],
    },
    /// Refused: kind and line.
    Err {
        kind: LoadErrorKind,
        line: Option<u32>,
    },
}

struct Case {
    name: &'static str,
    input: &'static [u8],
    kind: Option<ClusterInputKind>,
    want: Want,
}

use ClusterInputKind::*;

const CASES: &[Case] = &[
    Case {
        name: "cluster.toml, full",
        input: b"[load_balancer]\nfrontends = [\"20.185.96.169\"]\nmode = \"default\"\nhash = \"jhash\"\nseed = 0x5eed0001\nbackends = [\"node0\"]\n\n[[nodes]]\nname = \"node0\"\nip = \"10.220.1.4\"\npod_cidr = \"10.100.0.0/24\"\nzone = \"1\"\n\n[[pods]]\nname = \"p\"\nip = \"10.100.0.7\"\nnode = \"node0\"\n",
        kind: Some(ClusterToml),
        want: Want::Ok { nodes: 1, pods: 1, frontends: 1, warning_lines: &[] },
    },
    Case {
        name: "cluster.toml, CRLF and BOM",
        input: b"\xef\xbb\xbf[[nodes]]\r\nname = \"n\"\r\nip = \"10.0.0.1\"\r\n",
        kind: Some(ClusterToml),
        want: Want::Ok { nodes: 1, pods: 0, frontends: 0, warning_lines: &[] },
    },
    Case {
        name: "cluster.toml, bad CIDR",
        input: b"[[nodes]]\nname = \"n\"\nip = \"10.0.0.1\"\npod_cidr = \"10.100.0.0/24/8\"\n",
        kind: Some(ClusterToml),
        want: Want::Err { kind: LoadErrorKind::InvalidValue, line: Some(4) },
    },
    Case {
        name: "cluster.toml, syntax error on line 3",
        input: b"[[nodes]]\nname = \"n\"\nip = 10.0.0.1\n",
        kind: Some(ClusterToml),
        want: Want::Err { kind: LoadErrorKind::Syntax, line: Some(3) },
    },
    Case {
        name: "cluster.toml, pod without ip",
        input: b"[[pods]]\nname = \"p\"\nnode = \"n\"\n",
        kind: Some(ClusterToml),
        want: Want::Err { kind: LoadErrorKind::Missing, line: Some(1) },
    },
    Case {
        name: "cluster.toml, seed too large",
        input: b"[load_balancer]\nseed = 4294967296\n",
        kind: Some(ClusterToml),
        want: Want::Err { kind: LoadErrorKind::InvalidValue, line: Some(2) },
    },
    Case {
        name: "cluster.toml, invalid UTF-8",
        input: b"[[nodes]]\nname = \"\xc3\x28\"\nip = \"10.0.0.1\"\n",
        kind: Some(ClusterToml),
        want: Want::Err { kind: LoadErrorKind::NotText, line: None },
    },
    Case {
        name: "kubectl nodes -o wide, CRLF",
        input: b"NAME    STATUS   ROLES   AGE   VERSION   INTERNAL-IP   EXTERNAL-IP   OS-IMAGE\r\nn0      Ready    agent   1d    v1.30.0   10.0.0.4      <none>        Ubuntu 22.04.4 LTS\r\nn1      Ready    agent   1d    v1.30.0   10.0.0.5      <none>        Ubuntu 22.04.4 LTS\r\n",
        kind: Some(KubectlText),
        want: Want::Ok { nodes: 2, pods: 0, frontends: 0, warning_lines: &[] },
    },
    Case {
        name: "kubectl nodes, truncated row and bad address",
        input: b"NAME   STATUS   INTERNAL-IP\nn0     Ready    10.0.0.4\nn1     Ready    10.0.0.x\nn2     Ready",
        kind: Some(KubectlText),
        want: Want::Ok { nodes: 2, pods: 0, frontends: 0, warning_lines: &[Some(3)] },
    },
    Case {
        name: "kubectl pods -A -o wide with extra columns",
        input: b"NAMESPACE   NAME   READY   STATUS    RESTARTS   AGE   IP          NODE   NOMINATED NODE   READINESS GATES   EXTRA\nweb         a      1/1     Running   0          1m    10.1.0.5    n0     <none>           <none>            x\nweb         b      1/1     Running   0          1m    10.1.1.5    n1     <none>           <none>            y\n",
        kind: Some(KubectlText),
        want: Want::Ok { nodes: 0, pods: 2, frontends: 0, warning_lines: &[] },
    },
    Case {
        name: "kubectl pods as the blog printed them (IP column elided)",
        input: b"NAME                       READY   STATUS    RESTARTS   AGE   IP           NODE                                NOMINATED NODE   READINESS GATES\ntestapp-6f7947bc4b-92g9l   1/1     Running   0          26m   aks-nodepool1-23454376-vmss000001   <none>           <none>\n",
        kind: Some(KubectlText),
        want: Want::Ok { nodes: 0, pods: 0, frontends: 0, warning_lines: &[Some(2)] },
    },
    Case {
        name: "kubectl get svc,pods -o wide",
        input: b"NAME                 TYPE           CLUSTER-IP      EXTERNAL-IP     PORT(S)        AGE   SELECTOR\nservice/testapp      LoadBalancer   10.200.105.65   20.185.96.169   80:30918/TCP   8m    run=testapp\n\nNAME                           READY   STATUS    RESTARTS   AGE   IP           NODE   NOMINATED NODE   READINESS GATES\npod/testapp-6f7947bc4b-x7427   1/1     Running   0          12m   10.100.2.2   n1     <none>           <none>\n",
        kind: Some(KubectlText),
        want: Want::Ok { nodes: 0, pods: 1, frontends: 1, warning_lines: &[] },
    },
    Case {
        name: "kubectl table missing the IP column",
        input: b"NAME   READY   STATUS    NODE\np      1/1     Running   n0\n",
        kind: None,
        want: Want::Err { kind: LoadErrorKind::NotRecognised, line: None },
    },
    Case {
        name: "kubectl -o json, bad CIDR in item 1",
        input: b"{\n \"kind\": \"List\",\n \"items\": [\n  {\"kind\": \"Node\", \"metadata\": {\"name\": \"a\"}, \"spec\": {\"podCIDR\": \"10.1.0.0/24\"}, \"status\": {\"addresses\": [{\"type\": \"InternalIP\", \"address\": \"10.0.0.1\"}]}},\n  {\"kind\": \"Node\", \"metadata\": {\"name\": \"b\"}, \"spec\": {\"podCIDR\": \"10.1.1.0/99\"}, \"status\": {\"addresses\": [{\"type\": \"InternalIP\", \"address\": \"10.0.0.2\"}]}}\n ]\n}\n",
        kind: Some(KubectlJson),
        want: Want::Ok { nodes: 2, pods: 0, frontends: 0, warning_lines: &[Some(5)] },
    },
    Case {
        name: "kubectl -o json, truncated",
        input: b"{\n \"kind\": \"List\",\n \"items\": [\n  {\"kind\": \"Node\", \"metadata\": {\"name\": \"a\"",
        kind: Some(KubectlJson),
        want: Want::Err { kind: LoadErrorKind::Syntax, line: Some(4) },
    },
    Case {
        name: "route -n, kubenet",
        input: b"Kernel IP routing table\nDestination     Gateway         Genmask         Flags Metric Ref    Use Iface\n0.0.0.0         10.220.1.1      0.0.0.0         UG    0      0        0 eth0\n10.100.0.0      0.0.0.0         255.255.255.0   U     0      0        0 cbr0\n10.220.1.0      0.0.0.0         255.255.255.0   U     0      0        0 eth0\n10.100.1.0      10.220.1.5      255.255.255.0   UG    0      0        0 eth0\n",
        kind: Some(RouteN),
        want: Want::Ok { nodes: 1, pods: 0, frontends: 0, warning_lines: &[] },
    },
    Case {
        name: "route -n, bad genmask and short row",
        input: b"Destination     Gateway         Genmask         Flags Metric Ref    Use Iface\n10.100.0.0      0.0.0.0         255.255.0.255   U     0      0        0 cbr0\n10.100.1.0      10.220.1.5\n",
        kind: Some(RouteN),
        want: Want::Ok { nodes: 0, pods: 0, frontends: 0, warning_lines: &[Some(2), Some(3)] },
    },
    Case {
        name: "ip route",
        input: b"default via 10.220.1.1 dev eth0 proto dhcp src 10.220.1.4 metric 100\n10.100.0.0/24 dev cbr0 proto kernel scope link src 10.100.0.1\n10.100.1.0/24 via 10.220.1.5 dev eth0\n10.220.1.0/24 dev eth0 proto kernel scope link src 10.220.1.4\n10.7.0.0/16 via bogus dev eth0\n",
        kind: Some(IpRoute),
        want: Want::Ok { nodes: 1, pods: 0, frontends: 0, warning_lines: &[Some(5)] },
    },
    Case {
        name: "garbage bytes",
        input: b"\x00\x9f\x12garbage\xff\xfe",
        kind: None,
        want: Want::Err { kind: LoadErrorKind::NotRecognised, line: None },
    },
    Case {
        name: "pcap magic",
        input: b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x00\x00\x01\x00\x00\x00",
        kind: None,
        want: Want::Err { kind: LoadErrorKind::NotRecognised, line: None },
    },
    Case {
        name: "empty",
        input: b"",
        kind: None,
        want: Want::Err { kind: LoadErrorKind::NotRecognised, line: None },
    },
];

#[test]
fn loaders_table() {
    for c in CASES {
        assert_eq!(sniff(c.input), c.kind, "{}: sniffed kind", c.name);
        let got = load_bytes(c.input, "in", Path::new("/lab"), None);
        match (&c.want, got) {
            (
                Want::Ok {
                    nodes,
                    pods,
                    frontends,
                    warning_lines,
                },
                Ok(src),
            ) => {
                assert_eq!(src.nodes.len(), *nodes, "{}: nodes", c.name);
                assert_eq!(src.pods.len(), *pods, "{}: pods", c.name);
                assert_eq!(
                    src.load_balancer.frontends.len(),
                    *frontends,
                    "{}: frontends",
                    c.name
                );
                let lines: Vec<Option<u32>> = src
                    .diagnostics
                    .iter()
                    .filter(|d| d.severity == Severity::Warning)
                    .map(|d| d.line)
                    .collect();
                assert_eq!(
                    lines, *warning_lines,
                    "{}: warnings {:?}",
                    c.name, src.diagnostics
                );
                for d in &src.diagnostics {
                    assert!(d.to_string().starts_with("in"), "{}: {d}", c.name);
                }
            }
            (Want::Err { kind, line }, Err(e)) => {
                assert_eq!(e.kind, *kind, "{}: {e}", c.name);
                assert_eq!(e.line(), *line, "{}: {e}", c.name);
                assert!(e.to_string().starts_with("in"), "{}: {e}", c.name);
            }
            (Want::Ok { .. }, Err(e)) => panic!("{}: unexpected error {e}", c.name),
            (Want::Err { .. }, Ok(s)) => panic!("{}: unexpectedly loaded {s:?}", c.name),
        }
    }
}
