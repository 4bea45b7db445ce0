//! Generated conversations shared by the capture integration tests (included with `mod`).
#![allow(dead_code)]

use hoptrace::capture::synth::{
    self, Conversation, Framing, NgInterface, NgPacket, NgSection, PcapSpec, Segment,
};
use std::net::SocketAddr;

pub const T0: i64 = 1_795_774_000_000_000_000;

pub fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Two keep-alive requests, a GET with a body (`hey -d YO`), a chunked POST with a chunked
/// response, on port 80.
pub fn keepalive(client: &str, t0: i64) -> Conversation {
    let mut c = Conversation::new(sa(client), sa("10.0.0.80:80"), t0);
    c.handshake()
        .request(&synth::get("/one", "svc.example"))
        .response(&synth::ok(200, b"first"))
        .request(&synth::with_body("GET", "/yo", "svc.example", b"YO"))
        .response(&synth::ok(201, b"second"))
        .request(&synth::chunked_post(
            "/post",
            "svc.example",
            &[b"abc", b"defgh"],
        ))
        .response(&synth::ok_chunked(&[b"chunk-one", b"two"]))
        .close();
    c
}

/// Three pipelined requests in one segment, answered in order.
pub fn pipelined(client: &str, t0: i64) -> Conversation {
    let mut c = Conversation::new(sa(client), sa("10.0.0.80:8080"), t0);
    let mut reqs = synth::get("/p1", "h");
    reqs.extend(synth::get("/p2?x=1", "h"));
    reqs.extend(synth::with_body("POST", "/p3", "h", b"body!"));
    let mut resps = synth::ok(200, b"a");
    resps.extend(synth::ok(404, b"bb"));
    resps.extend(synth::ok(500, b""));
    c.handshake().request(&reqs).response(&resps).close();
    c
}

/// A request line split over segments, and a body in its own segment.
pub fn split(client: &str, t0: i64) -> Conversation {
    let mut c = Conversation::new(sa(client), sa("10.0.0.80:80"), t0);
    let req = synth::with_body("PUT", "/split/target", "h", b"0123456789");
    let head_len = req.len() - 10;
    c.handshake()
        .send_pieces(true, &req, &[2, 9, 30, head_len])
        .response(&synth::ok(200, b"ok"))
        .close();
    c
}

/// Segments delivered out of order and retransmitted.
pub fn reordered(client: &str, t0: i64) -> Conversation {
    let mut c = Conversation::new(sa(client), sa("10.0.0.80:80"), t0);
    let req = synth::get("/reordered/path/that/is/long", "h");
    c.handshake().send_pieces(true, &req, &[10, 20, 40]);
    let n = c.segments().len();
    // pieces at n-4..n: swap the 2nd and 3rd, retransmit the 1st later.
    let segs = c.segments_mut();
    segs.swap(n - 3, n - 2);
    let again = segs[n - 4].clone();
    segs.insert(n - 1, again);
    // Keep timestamps increasing in file order.
    let t = segs[n - 4].ts_ns;
    for (i, s) in segs[n - 4..].iter_mut().enumerate() {
        s.ts_ns = t + i as i64 * 1000;
    }
    c.response(&synth::ok(200, b"fine")).close();
    c
}

pub fn ipv6(t0: i64) -> Conversation {
    let mut c = Conversation::new(sa("[2001:db8::7]:50123"), sa("[2001:db8::80]:80"), t0);
    c.handshake()
        .request(&synth::get("/v6", "[2001:db8::80]"))
        .response(&synth::ok(200, b"six"))
        .close();
    c
}

pub fn pcap(spec: &PcapSpec, segs: &[Segment]) -> Vec<u8> {
    synth::write_pcap(Vec::new(), spec, segs).unwrap()
}

pub fn eth() -> PcapSpec {
    PcapSpec::default()
}

pub fn with_framing(f: Framing) -> PcapSpec {
    PcapSpec {
        framing: f,
        ..PcapSpec::default()
    }
}

/// A two-section pcapng: section 1 has an Ethernet interface at µs and a SLL2 interface at ns;
/// section 2 (big-endian) a raw-IP interface with 2^-20 s ticks.
pub fn multi_pcapng() -> Vec<u8> {
    let a = keepalive("10.1.0.1:40001", T0);
    let b = pipelined("10.1.0.2:40002", T0 + 500_000);
    let c = split("10.1.0.3:40003", T0 + 1_000_000);
    let mut s1 = NgSection {
        big_endian: false,
        comment: Some("section one".into()),
        interfaces: vec![
            NgInterface {
                framing: Framing::Ethernet { vlans: vec![7] },
                name: Some("eth0".into()),
                tsresol: 6,
                snaplen: 262_144,
            },
            NgInterface {
                framing: Framing::LinuxSll2,
                name: Some("any".into()),
                tsresol: 9,
                snaplen: 262_144,
            },
        ],
        packets: vec![],
    };
    let mut all: Vec<(u32, Segment)> = a.segments().iter().map(|s| (0, s.clone())).collect();
    all.extend(b.segments().iter().map(|s| (1, s.clone())));
    all.sort_by_key(|(_, s)| s.ts_ns);
    s1.packets = all
        .into_iter()
        .map(|(i, s)| NgPacket {
            interface: i,
            segment: s,
            comment: None,
            simple: false,
        })
        .collect();
    s1.packets[0].comment = Some("first packet".into());
    let s2 = NgSection {
        big_endian: true,
        comment: None,
        interfaces: vec![NgInterface {
            framing: Framing::Raw,
            name: Some("tun0".into()),
            tsresol: 0x80 | 20,
            snaplen: 0,
        }],
        packets: c
            .segments()
            .iter()
            .map(|s| NgPacket {
                interface: 0,
                segment: s.clone(),
                comment: None,
                simple: false,
            })
            .collect(),
    };
    synth::write_pcapng(Vec::new(), &[s1, s2]).unwrap()
}

/// Every scenario as (file name, bytes). None of them contains NAT.
pub fn all_captures() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let convs = [
        keepalive("192.168.1.10:50001", T0),
        pipelined("192.168.1.11:50002", T0 + 100_000),
        split("192.168.1.12:50003", T0 + 200_000),
        reordered("192.168.1.13:50004", T0 + 300_000),
    ];
    let segs = synth::interleave(&convs);
    out.push(("mixed-eth.pcap".to_string(), pcap(&eth(), &segs)));
    out.push((
        "mixed-be-ns.pcap".to_string(),
        pcap(
            &PcapSpec {
                big_endian: true,
                nanosecond: true,
                ..eth()
            },
            &segs,
        ),
    ));
    for (i, f) in Framing::all().into_iter().enumerate() {
        let mut c = Vec::new();
        if !matches!(f, Framing::RawV6) {
            c.push(keepalive(&format!("10.2.0.{}:4100{i}", i + 1), T0));
        }
        if !matches!(f, Framing::RawV4) {
            c.push(ipv6(T0 + 50_000));
        }
        let spec = with_framing(f.clone());
        let segs = synth::interleave(&c);
        out.push((
            format!("link-{}-{i}.pcap", f.link_type()),
            pcap(&spec, &segs),
        ));
    }
    out.push(("multi.pcapng".to_string(), multi_pcapng()));
    out
}
