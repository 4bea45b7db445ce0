//! Capture engine on generated captures: formats, link types, connections, reassembly, HTTP.

mod capture_scenarios;

use capture_scenarios::*;
use hoptrace::capture::link::TcpFlags;
use hoptrace::capture::reader::{self, Frame, TsUnits};
use hoptrace::capture::synth::{self, Conversation, Framing, PcapSpec};
use hoptrace::capture::{
    Capture, CaptureFormat, CaptureOptions, InitiatorEvidence, Side, TcpState,
};
use std::cell::Cell;
use std::io::Read;
use std::rc::Rc;

fn analyse(bytes: &[u8]) -> Capture {
    Capture::from_bytes(0, "t.pcap", bytes, CaptureOptions::default()).unwrap()
}

fn targets(c: &Capture) -> Vec<String> {
    c.requests
        .iter()
        .map(|r| String::from_utf8_lossy(r.target()).into_owned())
        .collect()
}

#[test]
fn every_link_type_and_container_yields_the_requests() {
    for (name, bytes) in all_captures() {
        let c = analyse(&bytes);
        assert!(c.warnings.is_empty(), "{name}: {:?}", c.warnings);
        let t = targets(&c);
        let expected = match name.as_str() {
            "mixed-eth.pcap" | "mixed-be-ns.pcap" => 8,
            "link-229-7.pcap" => 1,
            "link-228-6.pcap" => 3,
            "multi.pcapng" => 7,
            _ => 4,
        };
        assert_eq!(t.len(), expected, "{name}: {t:?}");
        for r in &c.requests {
            assert!(
                r.response.is_some(),
                "{name}: {:?} unanswered",
                String::from_utf8_lossy(r.target())
            );
            assert!(!r.partial, "{name}");
        }
    }
}

#[test]
fn pcap_timestamps_in_both_resolutions_and_byte_orders() {
    let c = keepalive("10.0.0.1:40000", T0 + 123_456_789);
    for (big_endian, nanosecond) in [(false, false), (true, false), (false, true), (true, true)] {
        let spec = PcapSpec {
            big_endian,
            nanosecond,
            ..eth()
        };
        let cap = analyse(&pcap(&spec, c.segments()));
        assert_eq!(
            cap.format,
            CaptureFormat::Pcap {
                big_endian,
                nanosecond
            }
        );
        let first = cap.packet(1).unwrap();
        let want = if nanosecond {
            T0 + 123_456_789
        } else {
            T0 + 123_456_000
        };
        assert_eq!(first.ts_ns, want, "be={big_endian} ns={nanosecond}");
    }
}

#[test]
fn pcapng_sections_interfaces_tsresol_and_comments() {
    let cap = analyse(&multi_pcapng());
    assert_eq!(cap.format, CaptureFormat::PcapNg);
    let names: Vec<_> = cap
        .interfaces
        .iter()
        .map(|i| (i.index, i.section, i.link_type, i.name.clone().unwrap()))
        .collect();
    assert_eq!(
        names,
        vec![
            (0, 0, 1, "eth0".into()),
            (1, 0, 276, "any".into()),
            (2, 1, 101, "tun0".into())
        ]
    );
    assert_eq!(cap.interfaces[1].ts_resolution, TsUnits::NANOS);
    assert_eq!(
        cap.interfaces[2].ts_resolution,
        TsUnits {
            base: 2,
            exponent: 20
        }
    );
    // Timestamps are rescaled per interface: the first packet of each conversation starts at its t0.
    let first_of = |iface: u32| cap.packets().find(|p| p.interface == iface).unwrap().ts_ns;
    assert_eq!(first_of(0), T0);
    assert_eq!(first_of(1), T0 + 500_000);
    let t2 = first_of(2);
    assert!((t2 - (T0 + 1_000_000)).abs() < 1_000, "2^-20 s ticks: {t2}");
    assert!(
        cap.comments
            .iter()
            .any(|c| c.frame.is_none() && c.text == "section one")
    );
    assert!(
        cap.comments
            .iter()
            .any(|c| c.frame == Some(1) && c.text == "first packet")
    );
    assert_eq!(
        cap.requests
            .iter()
            .filter(|r| r.client.port() == 40002)
            .count(),
        3
    );
}

#[test]
fn connection_facts_initiator_isns_state() {
    let conv = keepalive("10.0.0.1:40000", T0).clone();
    let cap = analyse(&pcap(&eth(), conv.segments()));
    assert_eq!(cap.connections.len(), 1);
    let c = &cap.connections[0];
    assert_eq!(
        (c.client(), c.server()),
        (sa("10.0.0.1:40000"), sa("10.0.0.80:80"))
    );
    assert_eq!(c.initiator_evidence, InitiatorEvidence::Syn);
    assert_eq!(
        (c.client_isn(), c.server_isn()),
        (Some(conv.client_isn), Some(conv.server_isn))
    );
    for bit in [
        TcpState::SYN,
        TcpState::SYN_ACK,
        TcpState::HANDSHAKE,
        TcpState::FIN_FROM_CLIENT,
        TcpState::FIN_FROM_SERVER,
    ] {
        assert!(c.tcp.has(bit), "{bit} in {}", c.tcp);
    }
    assert!(!c.mid_stream());
    let (pc, ps) = c.packets_cs();
    assert_eq!(pc + ps, conv.segments().len() as u64);
    assert_eq!(
        (c.first_frame, c.last_frame),
        (1, conv.segments().len() as u64)
    );
    let frames: Vec<u64> = cap.frames_of(0).collect();
    assert_eq!(
        frames,
        (1..=conv.segments().len() as u64).collect::<Vec<_>>()
    );
    // Packet records carry the header facts.
    let syn = cap.packet(1).unwrap();
    assert_eq!(
        (syn.src, syn.src_port, syn.dst_port, syn.tcp_flags),
        (
            Some(sa("10.0.0.1:1").ip()),
            40000,
            80,
            TcpFlags(TcpFlags::SYN)
        )
    );
    assert_eq!(
        (syn.seq, syn.ip_version, syn.protocol, syn.connection),
        (conv.client_isn, 4, 6, Some(0))
    );
    let synack = cap.packet(2).unwrap();
    assert_eq!(
        (synack.src_port, synack.ack),
        (80, conv.client_isn.wrapping_add(1))
    );
    let req = cap.packet(4).unwrap();
    assert_eq!(
        req.payload_len as usize,
        synth::get("/one", "svc.example").len()
    );
    assert!(!req.truncated && !req.fragment);
}

#[test]
fn http_keepalive_bodies_chunked_and_latency() {
    let cap = analyse(&pcap(&eth(), keepalive("10.0.0.1:40000", T0).segments()));
    let r = &cap.requests;
    assert_eq!(targets(&cap), ["/one", "/yo", "/post"]);
    assert_eq!(r[0].method(), b"GET");
    assert_eq!(r[0].host(), Some(&b"svc.example"[..]));
    assert_eq!(r[0].version(), "HTTP/1.1");
    assert_eq!(
        r[0].headers().map(|(n, _)| n.to_vec()).collect::<Vec<_>>(),
        [b"Host".to_vec(), b"User-Agent".to_vec(), b"Accept".to_vec()]
    );
    assert_eq!(r[1].method(), b"GET");
    assert_eq!(r[1].body_len, 2, "GET with a body (hey -d YO)");
    assert!(r[2].chunked);
    assert_eq!(r[2].body_len, 8);
    let statuses: Vec<u16> = r
        .iter()
        .map(|r| r.response.as_ref().unwrap().status)
        .collect();
    assert_eq!(statuses, [200, 201, 200]);
    assert_eq!(r[2].response.as_ref().unwrap().body_len, 12);
    for q in r {
        assert!(q.latency_ns().unwrap() > 0);
        assert_eq!(q.connection, 0);
        assert_eq!(q.client, sa("10.0.0.1:40000"));
    }
    assert_eq!(cap.connections[0].http_requests, 3);
}

#[test]
fn pipelined_requests_pair_in_order() {
    let cap = analyse(&pcap(&eth(), pipelined("10.0.0.2:40000", T0).segments()));
    assert_eq!(targets(&cap), ["/p1", "/p2?x=1", "/p3"]);
    let statuses: Vec<u16> = cap
        .requests
        .iter()
        .map(|r| r.response.as_ref().unwrap().status)
        .collect();
    assert_eq!(statuses, [200, 404, 500]);
    assert_eq!(cap.requests[2].body_len, 5);
    // All three arrived in the same frame.
    assert!(
        cap.requests
            .iter()
            .all(|r| r.first_frame == 4 && r.last_frame == 4)
    );
}

#[test]
fn request_split_over_segments_and_body_in_its_own() {
    let cap = analyse(&pcap(&eth(), split("10.0.0.3:40000", T0).segments()));
    assert_eq!(targets(&cap), ["/split/target"]);
    let r = &cap.requests[0];
    assert_eq!(r.method(), b"PUT");
    assert_eq!(r.body_len, 10);
    assert_eq!((r.first_frame, r.last_frame), (4, 8));
    assert!(r.end_ts_ns > r.ts_ns);
    assert_eq!(r.response.as_ref().unwrap().status, 200);
}

#[test]
fn out_of_order_and_retransmitted_segments() {
    let cap = analyse(&pcap(&eth(), reordered("10.0.0.4:40000", T0).segments()));
    assert_eq!(targets(&cap), ["/reordered/path/that/is/long"]);
    let st = cap.connections[0].reassembly()[0];
    assert_eq!(st.out_of_order, 1);
    assert_eq!(st.retransmitted_bytes, 10);
    assert_eq!(st.gaps, 0);
}

#[test]
fn mid_stream_start_is_flagged_and_initiator_guessed() {
    let conv = keepalive("10.0.0.5:40000", T0);
    // Drop the handshake and the first request/response exchange.
    let segs: Vec<_> = conv.segments()[3..].to_vec();
    let cap = analyse(&pcap(&eth(), &segs));
    let c = &cap.connections[0];
    assert!(c.mid_stream());
    assert_eq!(c.initiator_evidence, InitiatorEvidence::GuessedFromPorts);
    assert_eq!(c.client(), sa("10.0.0.5:40000"));
    assert_eq!((c.client_isn(), c.server_isn()), (None, None));
    assert_eq!(targets(&cap), ["/one", "/yo", "/post"]);

    // Starting with the server's packet: the guess still picks the ephemeral port as client.
    let server_first: Vec<_> = conv.segments()[4..].to_vec();
    let cap = analyse(&pcap(&eth(), &server_first));
    assert_eq!(cap.connections[0].initiator, Side::B);
    assert_eq!(cap.connections[0].client(), sa("10.0.0.5:40000"));

    // Starting inside a body: parsing resumes at the next request.
    let mut c2 = Conversation::new(sa("10.0.0.6:40000"), sa("10.0.0.80:80"), T0);
    c2.handshake()
        .request(&synth::with_body("POST", "/big", "h", &[b'x'; 3000]))
        .response(&synth::ok(200, b""))
        .request(&synth::get("/after", "h"))
        .response(&synth::ok(200, b""));
    let from_body: Vec<_> = c2.segments()[4..].to_vec();
    let cap = analyse(&pcap(&eth(), &from_body));
    assert_eq!(targets(&cap), ["/after"]);
}

#[test]
fn syn_ack_without_syn_gives_initiator() {
    let conv = keepalive("10.0.0.7:40000", T0);
    let cap = analyse(&pcap(&eth(), &conv.segments()[1..]));
    let c = &cap.connections[0];
    assert_eq!(c.initiator_evidence, InitiatorEvidence::SynAck);
    assert_eq!(c.client(), sa("10.0.0.7:40000"));
    assert_eq!(c.server_isn(), Some(conv.server_isn));
    assert_eq!(cap.requests.len(), 3);
}

#[test]
fn port_reuse_starts_a_new_connection() {
    let a = keepalive("10.0.0.8:40000", T0);
    let b = keepalive("10.0.0.8:40000", T0 + 10_000_000).with_isns(7, 9);
    let mut b2 = b.clone();
    b2.handshake()
        .request(&synth::get("/again", "h"))
        .response(&synth::ok(200, b""))
        .close();
    let mut segs = a.segments().to_vec();
    segs.extend_from_slice(b2.segments());
    let cap = analyse(&pcap(&eth(), &segs));
    assert_eq!(cap.connections.len(), 2);
    assert_eq!(cap.connections[1].client_isn(), Some(7));
    assert_eq!(cap.requests.last().unwrap().connection, 1);
    assert_eq!(targets(&cap).last().unwrap(), "/again");
}

#[test]
fn snaplen_cut_packets_are_flagged_and_http_partial() {
    let conv = keepalive("10.0.0.9:40000", T0);
    let cap = analyse(&pcap(
        &PcapSpec {
            snaplen: 80,
            ..eth()
        },
        conv.segments(),
    ));
    assert!(cap.stats.truncated > 0);
    assert!(
        cap.warnings
            .iter()
            .any(|w| w.to_string().contains("snap length"))
    );
    let p = cap.packet(4).unwrap();
    assert!(p.truncated);
    assert!(!cap.requests.is_empty());
    assert!(
        cap.requests.iter().all(|r| r.partial),
        "{:?}",
        cap.requests.iter().map(|r| r.partial).collect::<Vec<_>>()
    );
    assert_eq!(cap.requests[0].method(), b"GET");
    // A snap length that cuts only the body keeps the head complete and still marks it partial.
    let mut c = Conversation::new(sa("10.0.0.9:40001"), sa("10.0.0.80:80"), T0);
    c.handshake()
        .request(&synth::with_body("POST", "/b", "h", &[b'z'; 400]))
        .response(&synth::ok(200, b""))
        .close();
    let cap = analyse(&pcap(
        &PcapSpec {
            snaplen: 200,
            ..eth()
        },
        c.segments(),
    ));
    assert_eq!(cap.requests.len(), 1);
    assert!(cap.requests[0].partial);
    assert_eq!(cap.requests[0].body_len, 400);
    assert_eq!(cap.requests[0].response.as_ref().unwrap().status, 200);
}

#[test]
fn lost_segment_in_a_body_keeps_the_stream_in_step() {
    let mut c = Conversation::new(sa("10.0.0.10:40000"), sa("10.0.0.80:80"), T0);
    c.mss = 100;
    c.handshake()
        .request(&synth::with_body("POST", "/x", "h", &[b'q'; 450]))
        .request(&synth::get("/next", "h"))
        .response(&synth::ok(200, b""))
        .response(&synth::ok(200, b""));
    let mut segs = c.into_segments();
    // Drop a body segment (the 3rd data segment of the first request).
    segs.remove(5);
    let cap = analyse(&pcap(&eth(), &segs));
    assert_eq!(targets(&cap), ["/x", "/next"]);
    assert!(cap.requests[0].partial);
    assert!(!cap.requests[1].partial);
    assert_eq!(cap.connections[0].reassembly()[0].gaps, 1);
}

#[test]
fn non_http_connections_are_still_listed() {
    let mut c = Conversation::new(sa("10.0.0.11:40000"), sa("10.0.0.80:443"), T0);
    c.handshake()
        .request(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        .response(b"\x16\x03\x03\x00\x7a")
        .close();
    let cap = analyse(&pcap(&eth(), c.segments()));
    assert_eq!(cap.connections.len(), 1);
    assert!(cap.requests.is_empty());
    assert_eq!(cap.connections[0].bytes_cs().0, 11);
}

#[test]
fn stream_reader_processes_records_as_they_arrive() {
    let bytes = pcap(&eth(), keepalive("10.0.0.12:40000", T0).segments());
    // A reader handing out one record per read, like a pipe fed by tcpdump.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        reads: Rc<Cell<usize>>,
    }
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.reads.set(self.reads.get() + 1);
            let rest = &self.data[self.pos..];
            let n = if self.pos == 0 {
                24
            } else if rest.len() >= 16 {
                16 + u32::from_le_bytes(rest[8..12].try_into().unwrap()) as usize
            } else {
                rest.len()
            };
            let n = n.min(buf.len()).min(rest.len());
            buf[..n].copy_from_slice(&rest[..n]);
            self.pos += n;
            Ok(n)
        }
    }
    let reads = Rc::new(Cell::new(0));
    let mut seen = 0u64;
    let r = reads.clone();
    let summary = reader::read_stream(
        "-",
        Trickle {
            data: bytes.clone(),
            pos: 0,
            reads: reads.clone(),
        },
        &mut |f: &Frame<'_>| {
            seen += 1;
            // Frame n is handed on after the header read plus n record reads, not at end of input.
            assert_eq!(
                r.get(),
                1 + f.number as usize,
                "frame {} delivered late",
                f.number
            );
        },
    )
    .unwrap();
    assert_eq!(seen, summary.frames);
    // And the streamed analysis equals the in-memory one.
    let streamed = Capture::from_reader(
        0,
        "-",
        Trickle {
            data: bytes.clone(),
            pos: 0,
            reads,
        },
        CaptureOptions::default(),
    )
    .unwrap();
    let mapped = analyse(&bytes);
    assert_eq!(streamed.requests, mapped.requests);
    assert_eq!(streamed.connections, mapped.connections);
}

#[test]
fn file_open_uses_the_map_and_matches_bytes() {
    let bytes = multi_pcapng();
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("engine-open.pcapng");
    std::fs::write(&path, &bytes).unwrap();
    let opened = Capture::open(3, &path, CaptureOptions::default()).unwrap();
    assert_eq!(opened.index, 3);
    assert_eq!(opened.requests.len(), analyse(&bytes).requests.len());
    assert_eq!(opened.stats.file_bytes, bytes.len() as u64);
}

#[test]
fn vlan_and_cooked_framings_keep_addresses() {
    for f in [
        Framing::Ethernet {
            vlans: vec![10, 20],
        },
        Framing::LinuxSll,
        Framing::LinuxSll2,
        Framing::Null,
    ] {
        let cap = analyse(&pcap(
            &with_framing(f.clone()),
            keepalive("10.3.0.1:41000", T0).segments(),
        ));
        assert_eq!(cap.requests.len(), 3, "{f:?}");
        assert_eq!(cap.requests[0].client, sa("10.3.0.1:41000"), "{f:?}");
        assert_eq!(cap.interfaces[0].link_type, f.link_type());
    }
}

#[test]
fn reassembly_limits_bound_buffering() {
    // Hold back the first data segment of a long request so everything after it is buffered.
    let mut c = Conversation::new(sa("10.0.0.13:40000"), sa("10.0.0.80:80"), T0);
    c.mss = 1000;
    c.handshake().send(
        true,
        &synth::with_body("POST", "/huge", "h", &vec![b'y'; 50_000]),
        false,
    );
    let mut segs = c.into_segments();
    let first = segs.remove(3);
    segs.push(first);
    let limits = hoptrace::capture::ReassemblyLimits {
        per_stream_bytes: 8_000,
        total_bytes: 8_000,
        ..Default::default()
    };
    let cap = Capture::from_bytes(
        0,
        "t",
        &pcap(&eth(), &segs),
        CaptureOptions {
            limits,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(
        cap.stats.reassembly_peak_bytes <= 8_000,
        "{}",
        cap.stats.reassembly_peak_bytes
    );
    assert!(cap.connections[0].reassembly()[0].gaps >= 1);
}

#[test]
fn threads_give_the_same_result_as_one() {
    let mut bytes = Vec::new();
    synth::write_bench_pcap(&mut bytes, 17 << 20).unwrap();
    let one = CaptureOptions {
        keep_packets: false,
        threads: 1,
        ..Default::default()
    };
    let single = Capture::from_bytes(0, "b", &bytes, one).unwrap();
    for threads in [2, 3] {
        let multi = Capture::from_bytes(0, "b", &bytes, CaptureOptions { threads, ..one }).unwrap();
        assert_eq!(multi.connections, single.connections, "{threads} threads");
        assert_eq!(multi.requests, single.requests, "{threads} threads");
        assert_eq!(multi.stats, single.stats);
        assert_eq!(multi.warnings, single.warnings);
    }
    assert!(single.requests.len() > 10_000);
}

/// Raw IP frames built by hand (the synth writer only speaks TCP): IPv6 with a hop-by-hop
/// extension header carrying UDP, an ICMP echo exchange, and an IPv4 fragment.
fn raw_ip_frames() -> Vec<Vec<u8>> {
    let v6 = |src: u8, dst: u8, sport: u16, dport: u16| {
        let mut p = vec![0x60, 0, 0, 0, 0, 20, 0, 64];
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, src]);
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, dst]);
        p.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]); // hop-by-hop → UDP, PadN
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&[0, 12, 0, 0]);
        p.extend_from_slice(b"abcd");
        p
    };
    let v4 = |proto: u8, flags_frag: u16, payload: &[u8]| {
        let mut p = vec![0x45, 0];
        p.extend_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
        p.extend_from_slice(&[0, 1]);
        p.extend_from_slice(&flags_frag.to_be_bytes());
        p.extend_from_slice(&[64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        p.extend_from_slice(payload);
        p
    };
    let mut reply = v4(1, 0, &[0, 0, 0, 0, 0x12, 0x34, 0, 1, b'p', b'i']);
    reply[12..20].rotate_left(4); // from 10.0.0.2 to 10.0.0.1
    vec![
        v6(1, 2, 5353, 53),
        v6(2, 1, 53, 5353),
        v4(1, 0, &[8, 0, 0, 0, 0x12, 0x34, 0, 1, b'p', b'i']),
        reply,
        v4(6, 0x2000, &[0u8; 24]), // MF set: first fragment
    ]
}

#[test]
fn udp_icmp_ipv6_extension_headers_and_fragments() {
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    let header = PcapHeader {
        datalink: pcap_file::DataLink::RAW,
        ..Default::default()
    };
    let mut w = PcapWriter::with_header(Vec::new(), header).unwrap();
    for (i, f) in raw_ip_frames().iter().enumerate() {
        w.write_packet(&PcapPacket::new(
            std::time::Duration::from_millis(i as u64),
            f.len() as u32,
            f,
        ))
        .unwrap();
    }
    let cap = analyse(&w.into_writer());
    assert_eq!(cap.connections.len(), 2);
    let udp = &cap.connections[0];
    assert_eq!(
        (udp.protocol, udp.initiator_evidence),
        (17, InitiatorEvidence::FirstPacket)
    );
    assert_eq!(
        (udp.client(), udp.server()),
        (sa("[2001:db8::1]:5353"), sa("[2001:db8::2]:53"))
    );
    assert_eq!((udp.packets, udp.bytes), ([1, 1], [4, 4]));
    let icmp = &cap.connections[1];
    assert_eq!(
        (icmp.protocol, icmp.a.port(), icmp.packets),
        (1, 0x1234, [1, 1])
    );
    let frag = cap.packet(5).unwrap();
    assert!(frag.fragment && frag.connection.is_none());
    assert_eq!((frag.src, frag.protocol), (Some(sa("10.0.0.1:0").ip()), 6));
    assert_eq!(cap.stats.fragments, 1);
    assert!(cap.requests.is_empty());
}

#[test]
fn until_close_body_ends_with_fin_but_is_partial_after_reset() {
    let resp =
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nstreamed until the server closes";
    let body_len = 32;
    for (reset, partial) in [(false, false), (true, true)] {
        let mut c = Conversation::new(sa("10.0.0.20:40000"), sa("10.0.0.80:80"), T0);
        c.handshake()
            .request(&synth::get("/stream", "h"))
            .response(resp);
        if reset {
            c.reset();
        } else {
            c.close();
        }
        let cap = analyse(&pcap(&eth(), c.segments()));
        let r = cap.requests[0].response.as_ref().unwrap();
        assert_eq!(
            (r.status, r.body_len, r.partial),
            (200, body_len, partial),
            "reset={reset}"
        );
        assert!(cap.connections[0].tcp.has(if reset {
            TcpState::RST
        } else {
            TcpState::FIN_FROM_SERVER
        }));
    }
}

#[test]
fn responses_written_in_small_pieces_pair_with_pipelined_head() {
    // What a server writing its response with several small writes produces (seen live).
    let mut c = Conversation::new(sa("10.0.0.30:40000"), sa("10.0.0.80:80"), T0);
    let mut reqs = synth::get("/p/1", "h");
    reqs.extend(synth::get("/p/2", "h"));
    reqs.extend(b"HEAD /p/3 HTTP/1.1\r\nHost: h\r\n\r\n");
    c.handshake().request(&reqs);
    for (i, body) in [&b"answer one"[..], b"answer two", b""].iter().enumerate() {
        let announced = (if i == 2 { 12 } else { body.len() }).to_string();
        let parts: [&[u8]; 4] = [
            b"HTTP/1.1 200 OK\r\nContent-Length: ",
            announced.as_bytes(),
            b"\r\n\r\n",
            body,
        ];
        let whole: Vec<u8> = parts.concat();
        let cuts = [
            parts[0].len(),
            parts[0].len() + parts[1].len(),
            parts[0].len() + parts[1].len() + 4,
        ];
        c.send_pieces(false, &whole, &cuts);
    }
    c.close();
    let cap = analyse(&pcap(&eth(), c.segments()));
    let got: Vec<_> = cap
        .requests
        .iter()
        .map(|r| r.response.as_ref().map(|r| (r.status, r.body_len)))
        .collect();
    assert_eq!(got, [Some((200, 10)), Some((200, 10)), Some((200, 0))]);
}

#[test]
fn never_ending_heads_are_bounded_across_connections() {
    // Many connections each sending a request line and then header bytes without end.
    let mut segs = Vec::new();
    for i in 0..40u16 {
        let mut c = Conversation::new(
            sa(&format!("10.0.1.{}:{}", i % 200 + 1, 40000 + i)),
            sa("10.0.0.80:80"),
            T0 + i as i64,
        );
        c.mss = 1400;
        let mut head = b"GET /slow HTTP/1.1\r\nX-Pad: ".to_vec();
        head.extend(std::iter::repeat_n(b'a', 30_000));
        c.handshake().send(true, &head, false);
        segs.extend(c.into_segments());
    }
    segs.sort_by_key(|s| s.ts_ns);
    let limits = hoptrace::capture::ReassemblyLimits {
        http_head_total: 200_000,
        ..Default::default()
    };
    let cap = Capture::from_bytes(
        0,
        "t",
        &pcap(&eth(), &segs),
        CaptureOptions {
            limits,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(
        cap.stats.http_head_peak_bytes <= 200_000,
        "{}",
        cap.stats.http_head_peak_bytes
    );
    // Heads abandoned under the bound are reported as partial requests, not lost.
    assert_eq!(cap.requests.len(), 40);
    assert!(
        cap.requests
            .iter()
            .all(|r| r.partial && r.target() == b"/slow")
    );
}
