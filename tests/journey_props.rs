//! Property tests: the replay never panics and never claims more than the facts give, whatever
//! the connection facts (clients, frontends, times, observed endpoints and sources, nodes).

use hoptrace::capture::CaptureOptions;
use hoptrace::journey::model::Evidence;
use hoptrace::journey::replay::{FlowFacts, ReplayConfig, Replayer};
use hoptrace::journey::scenario::Scenario;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;

fn scenario() -> &'static Scenario {
    static SC: OnceLock<Scenario> = OnceLock::new();
    SC.get_or_init(|| {
        let dir = format!(
            "{}/captures/04-affinity-sourceip",
            env!("CARGO_MANIFEST_DIR")
        );
        hoptrace::cli::scenario::load(&[dir], &[], &[], &[], CaptureOptions::default()).unwrap()
    })
}

fn addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        Just(IpAddr::V4(Ipv4Addr::new(20, 185, 96, 169))),
        Just(IpAddr::V4(Ipv4Addr::new(10, 100, 2, 2))),
        Just(IpAddr::V4(Ipv4Addr::new(10, 220, 1, 5))),
        any::<u32>().prop_map(|x| IpAddr::V4(Ipv4Addr::from(x))),
        any::<u128>().prop_map(|x| IpAddr::V6(x.into())),
    ]
}

fn sock() -> impl Strategy<Value = SocketAddr> {
    (addr(), prop_oneof![Just(80u16), Just(31857), any::<u16>()])
        .prop_map(|(a, p)| SocketAddr::new(a, p))
}

fn facts() -> impl Strategy<Value = FlowFacts> {
    (
        prop_oneof![Just(6u8), Just(17), Just(132), any::<u8>()],
        sock(),
        sock(),
        any::<i64>(),
        any::<bool>(),
        proptest::option::of(prop_oneof![
            Just("node0".to_string()),
            Just("node1".into()),
            Just("nodeX".into())
        ]),
        proptest::option::of(sock()),
        proptest::option::of(sock()),
        any::<bool>(),
    )
        .prop_map(
            |(
                protocol,
                client,
                frontend,
                start_ns,
                syn_seen,
                observed_node,
                observed_endpoint,
                observed_source,
                no_egress,
            )| FlowFacts {
                protocol,
                client,
                frontend,
                start_ns,
                syn_seen,
                observed_node,
                observed_endpoint,
                observed_source,
                no_egress_on_ingress: no_egress,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn replay_never_panics_nor_overclaims(mut flows in proptest::collection::vec(facts(), 1..24), seed in any::<u64>()) {
        flows.sort_by_key(|f| f.start_ns);
        let sc = scenario();
        let mut rp = Replayer::new(sc, ReplayConfig { seed, full_walk: true });
        for f in &flows {
            let j = rp.step(f);
            if let Some(e) = &j.endpoint
                && e.evidence == Evidence::Observed
            {
                prop_assert_eq!(f.observed_endpoint, Some(SocketAddr::new(e.ip, e.port)));
            }
            if j.masquerade_evidence == Some(Evidence::Observed) {
                prop_assert_eq!(j.masquerade.map(|m| SocketAddr::new(m.ip, m.port)), f.observed_source);
            }
            if let Some(a) = &j.alb {
                prop_assert_eq!(&a.observed_node, &f.observed_node);
            }
            prop_assert!(j.path.iter().all(|s| s.table == "nat" && s.rule >= 1));
            prop_assert!(j.candidates.iter().all(|c| c.evidence == Evidence::Modeled));
        }
    }
}

mod stitching {
    use hoptrace::capture::synth::{self, Conversation, PcapSpec};
    use hoptrace::capture::{Capture, CaptureOptions};
    use hoptrace::cluster::load::load_bytes;
    use hoptrace::journey::correlate::LegKind;
    use hoptrace::journey::scenario::{CaptureInput, Scenario, ScenarioInputs};
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    const T0: i64 = 1_795_774_000_000_000_000;
    const CLUSTER: &str = "[load_balancer]\nfrontends = [\"20.0.0.1\"]\n\n\
[[nodes]]\nname = \"na\"\nip = \"10.0.0.4\"\npod_cidr = \"10.1.0.0/24\"\ncaptures = [\"na.pcap\"]\n\n\
[[nodes]]\nname = \"nb\"\nip = \"10.0.0.5\"\npod_cidr = \"10.1.1.0/24\"\ncaptures = [\"nb.pcap\"]\n";

    /// One client connection: client port, ISNs, start (µs), ingress node (0/1), pod node (0/1),
    /// whether the client side was captured.
    type Conn = (u16, u32, u32, u32, bool, bool, bool);

    fn conv(client: String, server: String, t: i64, isn: (u32, u32)) -> Conversation {
        let mut c = Conversation::new(client.parse().unwrap(), server.parse().unwrap(), t)
            .with_isns(isn.0, isn.1);
        c.handshake()
            .request(&synth::get("/", "h"))
            .response(&synth::ok(200, b"ok"))
            .close();
        c
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn every_connection_is_one_flow(conns in proptest::collection::vec(
            (1024u16..65000, any::<u32>(), any::<u32>(), 0u32..2_000_000, any::<bool>(), any::<bool>(), any::<bool>()), 1..30))
        {
            // Distinct client ports: distinct connections (ISNs may collide, as synthetic
            // captures' do).
            let mut seen = BTreeSet::new();
            let conns: Vec<Conn> = conns.into_iter().filter(|c| seen.insert(c.0)).collect();
            let mut caps: [Vec<Conversation>; 3] = [Vec::new(), Vec::new(), Vec::new()];
            for &(port, ci, si, t_us, ingress_b, pod_b, client_side) in &conns {
                let t = T0 + i64::from(t_us) * 1000;
                let client = format!("71.0.0.1:{port}");
                let (ing, node_ip) = if ingress_b { (1, "10.0.0.5") } else { (0, "10.0.0.4") };
                let pod = if pod_b { "10.1.1.9:80" } else { "10.1.0.9:80" };
                caps[ing].push(conv(client.clone(), "20.0.0.1:80".into(), t, (ci, si)));
                if ingress_b != pod_b {
                    // Forwarded: leaves the ingress node after DNAT+SNAT, arrives on the pod node.
                    caps[ing].push(conv(format!("{node_ip}:{port}"), pod.into(), t + 40_000, (ci, si)));
                    caps[usize::from(pod_b)].push(conv(format!("{node_ip}:{port}"), pod.into(), t + 70_000, (ci, si)));
                }
                if client_side {
                    caps[2].push(conv(client, "20.0.0.1:80".into(), t - 20_000, (ci, si)));
                }
            }
            let names = ["na.pcap", "nb.pcap", "client.pcap"];
            let captures = caps
                .iter()
                .zip(names)
                .enumerate()
                .map(|(i, (convs, name))| {
                    let bytes = synth::write_pcap(Vec::new(), &PcapSpec::default(), &synth::interleave(convs)).unwrap();
                    CaptureInput { capture: Capture::from_bytes(i as u32, name, &bytes, CaptureOptions::default()).unwrap(), node: None, path: Some(PathBuf::from(name)) }
                })
                .collect();
            let src = load_bytes(CLUSTER.as_bytes(), "cluster.toml", Path::new(""), None).unwrap();
            let sc = Scenario::assemble(ScenarioInputs { captures, cluster_sources: vec![src], ..Default::default() });
            let flows = sc.flows();
            prop_assert_eq!(flows.len(), conns.len());
            for f in flows {
                prop_assert_eq!(f.legs.iter().filter(|l| l.kind == LegKind::Front).count(), 1);
                let (_, ci, ..) = conns.iter().find(|c| f.client.port() == c.0).copied().unwrap();
                prop_assert_eq!(f.client_isn, Some(ci));
                for l in &f.legs {
                    let c = &sc.captures[l.capture].capture.connections[l.connection as usize];
                    prop_assert_eq!(c.client_isn(), Some(ci));
                }
            }
        }
    }
}
