//! Stitching: one [`Flow`] per client TCP connection, however many captures saw it.
//!
//! NAT rewrites addresses and ports but never TCP sequence numbers, so the client's initial
//! sequence number (and the server's, from the SYN-ACK) identify a connection across captures:
//! the client-side capture, the ingress node's eth0 before DNAT (tcpdump sees ingress before
//! PREROUTING), the same node's eth0 after DNAT+SNAT towards another node, and the pod node's
//! eth0. Both ISNs must agree when both are known, and the legs must start within
//! [`MAX_SKEW_NS`] of each other (clock skew, retransmits). Connections whose SYN was not
//! captured (mid-stream) are matched by their 4-tuple in time instead (pre-DNAT legs), or by the
//! kept source port (post-DNAT legs), and stay single when nothing matches.

use super::scenario::{CaptureOwner, Scenario};
use crate::capture::ConnectionId;
use std::collections::HashMap;
use std::net::SocketAddr;

/// Legs of one connection further apart than this are not the same connection.
pub const MAX_SKEW_NS: i64 = 10_000_000_000;

/// What a capture shows of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LegKind {
    /// The client-side capture: as the client sent it.
    Client,
    /// A node's capture before DNAT: client → frontend.
    Front,
    /// After DNAT (and SNAT): towards the pod — the ingress node's egress or the pod node's
    /// ingress.
    Back,
}

/// One connection as one capture saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leg {
    /// Index into [`Scenario::captures`].
    pub capture: usize,
    pub connection: ConnectionId,
    pub kind: LegKind,
}

/// One client TCP connection, stitched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// The client's address and port as it sent (a masqueraded address when only post-NAT legs
    /// were captured).
    pub client: SocketAddr,
    /// What the client connected to (the post-DNAT address when only post-NAT legs exist).
    pub frontend: SocketAddr,
    /// IP protocol number.
    pub protocol: u8,
    /// Time of the connection's first packet at the ingress node (else the earliest leg).
    pub start_ns: i64,
    pub client_isn: Option<u32>,
    pub server_isn: Option<u32>,
    /// The capture saw the SYN (the NAT decision happened inside the capture window).
    pub syn_seen: bool,
    pub legs: Vec<Leg>,
}

impl Flow {
    pub fn legs_of(&self, kind: LegKind) -> impl Iterator<Item = &Leg> {
        self.legs.iter().filter(move |l| l.kind == kind)
    }
}

/// Stitch every connection of every capture into flows, in time order.
pub fn stitch(sc: &Scenario) -> Vec<Flow> {
    struct Cand {
        leg: Leg,
        first: i64,
        client: SocketAddr,
        server: SocketAddr,
        protocol: u8,
        isn: (Option<u32>, Option<u32>),
        syn: bool,
    }
    let mut cands: Vec<Cand> = Vec::new();
    for (ci, c) in sc.captures.iter().enumerate() {
        for conn in &c.capture.connections {
            let client = conn.client();
            let server = conn.server();
            let kind = match c.owner {
                CaptureOwner::Client { .. } => LegKind::Client,
                _ if sc.is_endpoint_address(server.ip())
                    && !sc.cluster.is_frontend(server.ip()) =>
                {
                    LegKind::Back
                }
                _ => LegKind::Front,
            };
            cands.push(Cand {
                leg: Leg {
                    capture: ci,
                    connection: conn.id,
                    kind,
                },
                first: conn.first_ts_ns,
                client,
                server,
                protocol: conn.protocol,
                isn: (conn.client_isn(), conn.server_isn()),
                syn: conn.initiator_evidence == crate::capture::InitiatorEvidence::Syn
                    || conn.initiator_evidence == crate::capture::InitiatorEvidence::SynAck,
            });
        }
    }
    // Pre-NAT legs first so a flow's client/frontend come from them; then by time.
    cands.sort_by_key(|c| {
        (
            c.leg.kind == LegKind::Back,
            c.first,
            c.leg.capture,
            c.leg.connection,
        )
    });

    let mut flows: Vec<Flow> = Vec::new();
    // Pre-NAT legs keep the client's 4-tuple on every capture: matched by it (and the ISNs when
    // known). Post-NAT legs keep the ISNs: matched by ISN and the source port MASQUERADE keeps,
    // else by ISN alone (a port changed by `--random-fully`), else by the kept port.
    let mut by_tuple: HashMap<(SocketAddr, SocketAddr), Vec<usize>> = HashMap::new();
    let mut by_isn_port: HashMap<(u32, u16), Vec<usize>> = HashMap::new();
    let mut by_isn: HashMap<u32, Vec<usize>> = HashMap::new();
    let mut by_port: HashMap<u16, Vec<usize>> = HashMap::new();
    /// Candidates scanned per index list: enough for real traffic (random 32-bit ISNs rarely
    /// collide), bounded for synthetic captures that reuse one ISN for everything.
    const SCAN: usize = 256;
    let close = |f: &Flow, t: i64| (f.start_ns - t).abs() <= MAX_SKEW_NS;
    let isn_ok = |f: &Flow, c: &Cand| {
        (f.client_isn.is_none() || c.isn.0.is_none() || f.client_isn == c.isn.0)
            && (f.server_isn.is_none() || c.isn.1.is_none() || f.server_isn == c.isn.1)
    };
    for c in cands {
        let free = |f: &Flow| {
            f.protocol == c.protocol
                && close(f, c.first)
                && !f
                    .legs
                    .iter()
                    .any(|l| l.capture == c.leg.capture && l.kind == c.leg.kind)
        };
        let pick = |v: Option<&Vec<usize>>, extra: &dyn Fn(&Flow) -> bool| -> Option<usize> {
            v?.iter()
                .rev()
                .take(SCAN)
                .copied()
                .find(|&i| free(&flows[i]) && isn_ok(&flows[i], &c) && extra(&flows[i]))
        };
        let no_back = |f: &Flow| !f.legs.iter().any(|l| l.kind == LegKind::Back);
        let found: Option<usize> = if c.leg.kind != LegKind::Back {
            pick(by_tuple.get(&(c.client, c.server)), &|_| true)
        } else if let Some(isn) = c.isn.0 {
            pick(by_isn_port.get(&(isn, c.client.port())), &|_| true)
                .or_else(|| pick(by_isn.get(&isn), &no_back))
        } else {
            pick(by_port.get(&c.client.port()), &|f: &Flow| {
                no_back(f) && f.frontend.port() != 0
            })
        };
        match found {
            Some(i) => {
                let f = &mut flows[i];
                f.legs.push(c.leg);
                if f.server_isn.is_none() {
                    f.server_isn = c.isn.1;
                }
                f.syn_seen |= c.syn;
            }
            None => {
                let i = flows.len();
                flows.push(Flow {
                    client: c.client,
                    frontend: c.server,
                    protocol: c.protocol,
                    start_ns: c.first,
                    client_isn: c.isn.0,
                    server_isn: c.isn.1,
                    syn_seen: c.syn,
                    legs: vec![c.leg],
                });
                if let Some(isn) = c.isn.0 {
                    by_isn.entry(isn).or_default().push(i);
                    by_isn_port
                        .entry((isn, c.client.port()))
                        .or_default()
                        .push(i);
                }
                by_tuple.entry((c.client, c.server)).or_default().push(i);
                by_port.entry(c.client.port()).or_default().push(i);
            }
        }
    }
    // The NAT decision is taken when the first packet reaches the ingress node: use that time.
    for f in &mut flows {
        let at_node = f
            .legs
            .iter()
            .filter(|l| l.kind == LegKind::Front)
            .map(|l| sc.captures[l.capture].capture.connections[l.connection as usize].first_ts_ns)
            .min();
        if let Some(t) = at_node {
            f.start_ns = t;
        }
        f.legs.sort_by_key(|l| (l.kind, l.capture, l.connection));
    }
    flows.sort_by_key(|f| (f.start_ns, f.client, f.frontend));
    flows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::synth::{self, Conversation, PcapSpec};
    use crate::capture::{Capture, CaptureOptions};
    use crate::cluster::load::load_bytes;
    use crate::journey::scenario::{CaptureInput, ScenarioInputs};
    use std::path::{Path, PathBuf};

    const T0: i64 = 1_795_774_000_000_000_000;
    const CLUSTER: &str = "[load_balancer]\nfrontends = [\"20.0.0.1\"]\n\n\
[[nodes]]\nname = \"na\"\nip = \"10.0.0.4\"\npod_cidr = \"10.1.0.0/24\"\ncaptures = [\"na.pcap\"]\n\n\
[[nodes]]\nname = \"nb\"\nip = \"10.0.0.5\"\npod_cidr = \"10.1.1.0/24\"\ncaptures = [\"nb.pcap\"]\n\n\
[[pods]]\nip = \"10.1.1.5\"\nnode = \"nb\"\n";

    fn conv(client: &str, server: &str, t: i64, isns: (u32, u32), handshake: bool) -> Conversation {
        let mut c = Conversation::new(client.parse().unwrap(), server.parse().unwrap(), t)
            .with_isns(isns.0, isns.1);
        if handshake {
            c.handshake();
        }
        c.request(&synth::get("/", "h"))
            .response(&synth::ok(200, b"hi"))
            .close();
        c
    }

    fn capture(i: u32, name: &str, convs: &[Conversation]) -> CaptureInput {
        let bytes =
            synth::write_pcap(Vec::new(), &PcapSpec::default(), &synth::interleave(convs)).unwrap();
        CaptureInput {
            capture: Capture::from_bytes(i, name, &bytes, CaptureOptions::default()).unwrap(),
            node: None,
            path: Some(PathBuf::from(name)),
        }
    }

    fn scenario(captures: Vec<CaptureInput>) -> Scenario {
        let src = load_bytes(CLUSTER.as_bytes(), "cluster.toml", Path::new(""), None).unwrap();
        Scenario::assemble(ScenarioInputs {
            captures,
            cluster_sources: vec![src],
            ..Default::default()
        })
    }

    #[test]
    fn one_flow_across_nat_and_captures_by_isn() {
        let front = conv("71.0.0.1:5000", "20.0.0.1:80", T0, (1000, 2000), true);
        let back = conv(
            "10.0.0.4:5000",
            "10.1.1.5:80",
            T0 + 50_000,
            (1000, 2000),
            true,
        );
        let other = conv(
            "71.0.0.1:5002",
            "20.0.0.1:80",
            T0 + 70_000,
            (3000, 4000),
            true,
        );
        let at_pod = conv(
            "10.0.0.4:5000",
            "10.1.1.5:80",
            T0 + 90_000,
            (1000, 2000),
            true,
        );
        let client = conv(
            "71.0.0.1:5000",
            "20.0.0.1:80",
            T0 - 30_000,
            (1000, 2000),
            true,
        );
        let sc = scenario(vec![
            capture(0, "na.pcap", &[front, back, other]),
            capture(1, "nb.pcap", &[at_pod]),
            capture(2, "client.pcap", &[client]),
        ]);
        assert!(
            matches!(sc.captures[2].owner, CaptureOwner::Client { .. }),
            "{:?}",
            sc.captures[2].owner
        );
        let flows = stitch(&sc);
        assert_eq!(flows.len(), 2, "{flows:#?}");
        let f = &flows[0];
        assert_eq!(f.client, "71.0.0.1:5000".parse().unwrap());
        assert_eq!(f.frontend, "20.0.0.1:80".parse().unwrap());
        assert_eq!(
            f.start_ns, T0,
            "the NAT decision time is the ingress node's"
        );
        let kinds: Vec<LegKind> = f.legs.iter().map(|l| l.kind).collect();
        assert_eq!(
            kinds,
            [
                LegKind::Client,
                LegKind::Front,
                LegKind::Back,
                LegKind::Back
            ]
        );
        assert_eq!(flows[1].legs.len(), 1);
        let facts = crate::journey::replay::FlowFacts::from_flow(&sc, f);
        assert_eq!(facts.observed_node.as_deref(), Some("na"));
        assert_eq!(
            facts.observed_endpoint,
            Some("10.1.1.5:80".parse().unwrap())
        );
        assert_eq!(
            facts.observed_source,
            Some("10.0.0.4:5000".parse().unwrap())
        );
        assert!(!facts.no_egress_on_ingress);
    }

    #[test]
    fn same_isn_far_apart_in_time_is_two_connections() {
        let a = conv("71.0.0.1:5000", "20.0.0.1:80", T0, (1000, 2000), true);
        let b = conv(
            "71.0.0.1:5000",
            "20.0.0.1:80",
            T0 + 60 * 1_000_000_000,
            (1000, 2000),
            true,
        );
        let sc = scenario(vec![
            capture(0, "na.pcap", &[a]),
            capture(1, "nb.pcap", &[b]),
        ]);
        assert_eq!(stitch(&sc).len(), 2);
    }

    #[test]
    fn mid_stream_legs_are_matched_by_tuple_and_kept_port() {
        let front = conv("71.0.0.1:5000", "20.0.0.1:80", T0, (1000, 2000), false);
        let client = conv(
            "71.0.0.1:5000",
            "20.0.0.1:80",
            T0 - 10_000,
            (1000, 2000),
            false,
        );
        let back = conv(
            "10.0.0.4:5000",
            "10.1.1.5:80",
            T0 + 20_000,
            (1000, 2000),
            false,
        );
        let sc = scenario(vec![
            capture(0, "na.pcap", &[front]),
            capture(1, "nb.pcap", &[back]),
            capture(2, "client.pcap", &[client]),
        ]);
        let flows = stitch(&sc);
        assert_eq!(flows.len(), 1, "{flows:#?}");
        assert!(!flows[0].syn_seen);
        assert_eq!(flows[0].legs.len(), 3);
    }
}
