//! Synthetic captures, written with pcap-file's writers: TCP conversations carrying HTTP/1.x,
//! framed for every supported link type, in pcap or pcapng, plus the pathological variants the
//! tests need (out-of-order, retransmitted, split, mid-stream, truncated).
//!
//! Shared by the tests, the benchmark and the scenario embedded in the binary, so all three see
//! the same bytes a real `tcpdump` would write for the same traffic.
//!
//! ```
//! use hoptrace::capture::synth::{Conversation, PcapSpec, write_pcap};
//! let mut c = Conversation::new("10.0.0.1:40000".parse().unwrap(), "10.0.0.2:80".parse().unwrap(), 1_700_000_000_000_000_000);
//! c.handshake().request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").response(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").close();
//! let mut out = Vec::new();
//! write_pcap(&mut out, &PcapSpec::default(), c.segments()).unwrap();
//! let cap = hoptrace::capture::Capture::from_bytes(0, "x.pcap", &out, Default::default()).unwrap();
//! assert_eq!(cap.requests.len(), 1);
//! ```

use super::link::{self, TcpFlags};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::pcapng::blocks::simple_packet::SimplePacketBlock;
use pcap_file::pcapng::{Block, PcapNgWriter};
use pcap_file::{DataLink, Endianness, TsResolution};
use std::borrow::Cow;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// One TCP segment of a synthetic conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub ts_ns: i64,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    pub payload: Vec<u8>,
}

/// Builds a TCP conversation segment by segment with consistent sequence numbers.
#[derive(Debug, Clone)]
pub struct Conversation {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub client_isn: u32,
    pub server_isn: u32,
    next_c: u32,
    next_s: u32,
    ts_ns: i64,
    /// Time between consecutive segments.
    pub step_ns: i64,
    /// Largest payload per segment; longer sends are split.
    pub mss: usize,
    segments: Vec<Segment>,
}

impl Conversation {
    pub fn new(client: SocketAddr, server: SocketAddr, start_ns: i64) -> Self {
        let h = (client.port() as u32).wrapping_mul(2_654_435_761) ^ server.port() as u32;
        let client_isn = h.wrapping_mul(0x9e37_79b9) | 1;
        let server_isn = h.wrapping_mul(0x85eb_ca6b) | 2;
        Conversation {
            client,
            server,
            client_isn,
            server_isn,
            next_c: client_isn,
            next_s: server_isn,
            ts_ns: start_ns,
            step_ns: 100_000,
            mss: 1448,
            segments: Vec::new(),
        }
    }

    /// Use these initial sequence numbers (before [`Self::handshake`]).
    pub fn with_isns(mut self, client_isn: u32, server_isn: u32) -> Self {
        (self.client_isn, self.server_isn, self.next_c, self.next_s) =
            (client_isn, server_isn, client_isn, server_isn);
        self
    }

    fn push(&mut self, from_client: bool, flags: u8, payload: &[u8]) {
        let (src, dst, seq, ack) = if from_client {
            (self.client, self.server, self.next_c, self.next_s)
        } else {
            (self.server, self.client, self.next_s, self.next_c)
        };
        let ack = if flags & TcpFlags::ACK != 0 { ack } else { 0 };
        self.segments.push(Segment {
            ts_ns: self.ts_ns,
            src,
            dst,
            flags,
            seq,
            ack,
            payload: payload.to_vec(),
        });
        let adv = payload.len() as u32 + (flags & (TcpFlags::SYN | TcpFlags::FIN) != 0) as u32;
        if from_client {
            self.next_c = self.next_c.wrapping_add(adv);
        } else {
            self.next_s = self.next_s.wrapping_add(adv);
        }
        self.ts_ns += self.step_ns;
    }

    /// SYN, SYN-ACK, ACK.
    pub fn handshake(&mut self) -> &mut Self {
        self.push(true, TcpFlags::SYN, b"");
        self.push(false, TcpFlags::SYN | TcpFlags::ACK, b"");
        self.push(true, TcpFlags::ACK, b"");
        self
    }

    /// Client sends `data` (split at the MSS), server acknowledges.
    pub fn request(&mut self, data: &[u8]) -> &mut Self {
        self.send(true, data, true)
    }

    /// Server sends `data` (split at the MSS), client acknowledges.
    pub fn response(&mut self, data: &[u8]) -> &mut Self {
        self.send(false, data, true)
    }

    /// Send split at the given byte positions (one segment per piece), no acknowledgement.
    pub fn send_pieces(&mut self, from_client: bool, data: &[u8], cuts: &[usize]) -> &mut Self {
        let mut start = 0;
        for &c in cuts.iter().chain(std::iter::once(&data.len())) {
            let c = c.clamp(start, data.len());
            if c > start {
                self.push(from_client, TcpFlags::ACK | TcpFlags::PSH, &data[start..c]);
            }
            start = c;
        }
        self
    }

    /// Send `data` in MSS-sized segments; `ack` adds the peer's pure ACK.
    pub fn send(&mut self, from_client: bool, data: &[u8], ack: bool) -> &mut Self {
        for chunk in data.chunks(self.mss.max(1)) {
            self.push(from_client, TcpFlags::ACK | TcpFlags::PSH, chunk);
        }
        if ack && !data.is_empty() {
            self.push(!from_client, TcpFlags::ACK, b"");
        }
        self
    }

    /// FIN from the client, FIN-ACK from the server, final ACK.
    pub fn close(&mut self) -> &mut Self {
        self.push(true, TcpFlags::FIN | TcpFlags::ACK, b"");
        self.push(false, TcpFlags::FIN | TcpFlags::ACK, b"");
        self.push(true, TcpFlags::ACK, b"");
        self
    }

    /// RST from the client.
    pub fn reset(&mut self) -> &mut Self {
        self.push(true, TcpFlags::RST | TcpFlags::ACK, b"");
        self
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    pub fn into_segments(self) -> Vec<Segment> {
        self.segments
    }

    /// Mutable access for pathological rearrangements (swap, duplicate, drop).
    pub fn segments_mut(&mut self) -> &mut Vec<Segment> {
        &mut self.segments
    }

    /// Time of the next segment.
    pub fn now_ns(&self) -> i64 {
        self.ts_ns
    }
}

/// Merge several conversations' segments into one time-ordered list (stable).
pub fn interleave(convs: &[Conversation]) -> Vec<Segment> {
    let mut all: Vec<Segment> = convs
        .iter()
        .flat_map(|c| c.segments.iter().cloned())
        .collect();
    all.sort_by_key(|s| s.ts_ns);
    all
}

fn checksum(sum: u32, data: &[u8]) -> u32 {
    let mut s = sum;
    let mut it = data.chunks_exact(2);
    for w in &mut it {
        s += u16::from_be_bytes([w[0], w[1]]) as u32;
    }
    if let [b] = it.remainder() {
        s += (*b as u32) << 8;
    }
    s
}

fn fold(mut s: u32) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Serialise one segment as an IP packet (IPv4 or IPv6 after the endpoints), checksums included.
pub fn ip_packet(seg: &Segment, out: &mut Vec<u8>) {
    let mut tcp = Vec::with_capacity(20 + seg.payload.len());
    tcp.extend_from_slice(&seg.src.port().to_be_bytes());
    tcp.extend_from_slice(&seg.dst.port().to_be_bytes());
    tcp.extend_from_slice(&seg.seq.to_be_bytes());
    tcp.extend_from_slice(&seg.ack.to_be_bytes());
    tcp.extend_from_slice(&[5 << 4, seg.flags]);
    tcp.extend_from_slice(&64240u16.to_be_bytes());
    tcp.extend_from_slice(&[0, 0, 0, 0]);
    tcp.extend_from_slice(&seg.payload);
    let tcp_len = tcp.len() as u32;
    match (seg.src.ip(), seg.dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = 20 + tcp.len();
            let mut h = [0u8; 20];
            h[0] = 0x45;
            h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            h[4..6].copy_from_slice(&((seg.seq >> 16) as u16).to_be_bytes());
            h[6] = 0x40; // DF
            h[8] = 64;
            h[9] = link::proto::TCP;
            h[12..16].copy_from_slice(&s.octets());
            h[16..20].copy_from_slice(&d.octets());
            let c = fold(checksum(0, &h));
            h[10..12].copy_from_slice(&c.to_be_bytes());
            let pseudo = checksum(
                checksum(checksum(0, &s.octets()), &d.octets()),
                &[0, link::proto::TCP],
            ) + tcp_len;
            let c = fold(checksum(pseudo, &tcp));
            tcp[16..18].copy_from_slice(&c.to_be_bytes());
            out.extend_from_slice(&h);
        }
        (src, dst) => {
            let to6 = |a: IpAddr| match a {
                IpAddr::V6(v) => v,
                IpAddr::V4(v) => v.to_ipv6_mapped(),
            };
            let (s, d) = (to6(src), to6(dst));
            let mut h = [0u8; 40];
            h[0] = 0x60;
            h[4..6].copy_from_slice(&(tcp.len() as u16).to_be_bytes());
            h[6] = link::proto::TCP;
            h[7] = 64;
            h[8..24].copy_from_slice(&s.octets());
            h[24..40].copy_from_slice(&d.octets());
            let pseudo = checksum(
                checksum(checksum(0, &s.octets()), &d.octets()),
                &[0, link::proto::TCP],
            ) + tcp_len;
            let c = fold(checksum(pseudo, &tcp));
            tcp[16..18].copy_from_slice(&c.to_be_bytes());
            out.extend_from_slice(&h);
        }
    }
    out.extend_from_slice(&tcp);
}

/// Link-layer framing for synthetic frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// Ethernet II with these 802.1Q VLAN ids (empty: untagged; two: QinQ).
    Ethernet {
        vlans: Vec<u16>,
    },
    LinuxSll,
    LinuxSll2,
    /// LINKTYPE_RAW (101).
    Raw,
    /// LINKTYPE_IPV4 (228) / LINKTYPE_IPV6 (229): the caller picks by address family.
    RawV4,
    RawV6,
    /// BSD loopback, family in little-endian (as written on x86).
    Null,
    Loop,
}

impl Framing {
    pub fn link_type(&self) -> u32 {
        match self {
            Framing::Ethernet { .. } => link::LINKTYPE_ETHERNET,
            Framing::LinuxSll => link::LINKTYPE_LINUX_SLL,
            Framing::LinuxSll2 => link::LINKTYPE_LINUX_SLL2,
            Framing::Raw => link::LINKTYPE_RAW,
            Framing::RawV4 => link::LINKTYPE_IPV4,
            Framing::RawV6 => link::LINKTYPE_IPV6,
            Framing::Null => link::LINKTYPE_NULL,
            Framing::Loop => link::LINKTYPE_LOOP,
        }
    }

    /// Every framing the decoder supports, for tests.
    pub fn all() -> Vec<Framing> {
        vec![
            Framing::Ethernet { vlans: vec![] },
            Framing::Ethernet { vlans: vec![100] },
            Framing::Ethernet {
                vlans: vec![100, 200],
            },
            Framing::LinuxSll,
            Framing::LinuxSll2,
            Framing::Raw,
            Framing::RawV4,
            Framing::RawV6,
            Framing::Null,
            Framing::Loop,
        ]
    }

    /// Frame one segment.
    pub fn frame(&self, seg: &Segment) -> Vec<u8> {
        let v6 = seg.src.is_ipv6() || matches!(self, Framing::RawV6);
        let ether_type: u16 = if v6 { 0x86DD } else { 0x0800 };
        let mut out = Vec::with_capacity(seg.payload.len() + 80);
        match self {
            Framing::Ethernet { vlans } => {
                out.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01]);
                for (i, v) in vlans.iter().enumerate() {
                    let tpid: u16 = if vlans.len() > 1 && i == 0 {
                        0x88A8
                    } else {
                        0x8100
                    };
                    out.extend_from_slice(&tpid.to_be_bytes());
                    out.extend_from_slice(&(v & 0x0fff).to_be_bytes());
                }
                out.extend_from_slice(&ether_type.to_be_bytes());
            }
            Framing::LinuxSll => {
                out.extend_from_slice(&[0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
                out.extend_from_slice(&ether_type.to_be_bytes());
            }
            Framing::LinuxSll2 => {
                out.extend_from_slice(&ether_type.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&3u32.to_be_bytes()); // interface index
                out.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
                out.extend_from_slice(&[0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
            }
            Framing::Raw | Framing::RawV4 | Framing::RawV6 => {}
            Framing::Null => out.extend_from_slice(&(if v6 { 30u32 } else { 2 }).to_le_bytes()),
            Framing::Loop => out.extend_from_slice(&(if v6 { 30u32 } else { 2 }).to_be_bytes()),
        }
        ip_packet(seg, &mut out);
        out
    }
}

/// Container options for [`write_pcap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcapSpec {
    pub framing: Framing,
    pub big_endian: bool,
    pub nanosecond: bool,
    /// Frames longer than this are cut (and flagged by the reader).
    pub snaplen: u32,
}

impl Default for PcapSpec {
    fn default() -> Self {
        PcapSpec {
            framing: Framing::Ethernet { vlans: vec![] },
            big_endian: false,
            nanosecond: false,
            snaplen: 262_144,
        }
    }
}

fn to_io(e: pcap_file::PcapError) -> io::Error {
    io::Error::other(e.to_string())
}

/// Write segments as a classic pcap file.
pub fn write_pcap<W: Write>(w: W, spec: &PcapSpec, segments: &[Segment]) -> io::Result<W> {
    let header = PcapHeader {
        snaplen: spec.snaplen,
        datalink: DataLink::from(spec.framing.link_type()),
        ts_resolution: if spec.nanosecond {
            TsResolution::NanoSecond
        } else {
            TsResolution::MicroSecond
        },
        endianness: if spec.big_endian {
            Endianness::Big
        } else {
            Endianness::Little
        },
        ..Default::default()
    };
    let mut pw = PcapWriter::with_header(w, header).map_err(to_io)?;
    for seg in segments {
        let frame = spec.framing.frame(seg);
        let cap = frame.len().min(spec.snaplen as usize);
        let ts = Duration::from_nanos(seg.ts_ns.max(0) as u64);
        let ts = if spec.nanosecond {
            ts
        } else {
            Duration::from_micros(ts.as_micros() as u64)
        };
        pw.write_packet(&PcapPacket {
            timestamp: ts,
            orig_len: frame.len() as u32,
            data: Cow::Borrowed(&frame[..cap]),
        })
        .map_err(to_io)?;
    }
    Ok(pw.into_writer())
}

/// One interface of a synthetic pcapng file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NgInterface {
    pub framing: Framing,
    pub name: Option<String>,
    /// `if_tsresol` byte (6 = µs, the default; 9 = ns; 0x80|n = 2^-n).
    pub tsresol: u8,
    pub snaplen: u32,
}

/// One packet of a synthetic pcapng file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NgPacket {
    pub interface: u32,
    pub segment: Segment,
    pub comment: Option<String>,
    /// Write as a simple packet block (no timestamp, interface 0).
    pub simple: bool,
}

/// A pcapng section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NgSection {
    pub big_endian: bool,
    pub comment: Option<String>,
    pub interfaces: Vec<NgInterface>,
    pub packets: Vec<NgPacket>,
}

fn ticks(ts_ns: i64, tsresol: u8) -> u64 {
    let ns = ts_ns.max(0) as u128;
    let t = if tsresol & 0x80 == 0 {
        let e = tsresol as u32;
        if e <= 9 {
            ns / 10u128.pow(9 - e)
        } else {
            ns * 10u128.pow(e - 9)
        }
    } else {
        (ns << (tsresol & 0x7f)) / 1_000_000_000
    };
    t as u64
}

/// Write one or more pcapng sections.
pub fn write_pcapng<W: Write>(mut w: W, sections: &[NgSection]) -> io::Result<W> {
    for sec in sections {
        let mut shb = SectionHeaderBlock {
            endianness: if sec.big_endian {
                Endianness::Big
            } else {
                Endianness::Little
            },
            ..Default::default()
        };
        if let Some(c) = &sec.comment {
            shb.options
                .push(SectionHeaderOption::Comment(Cow::Owned(c.clone())));
        }
        shb.options
            .push(SectionHeaderOption::UserApplication(Cow::Borrowed(
                "hoptrace synth",
            )));
        let mut nw = PcapNgWriter::with_section_header(w, shb).map_err(to_io)?;
        for i in &sec.interfaces {
            let mut idb =
                InterfaceDescriptionBlock::new(DataLink::from(i.framing.link_type()), i.snaplen);
            if let Some(n) = &i.name {
                idb.options
                    .push(InterfaceDescriptionOption::IfName(Cow::Owned(n.clone())));
            }
            if i.tsresol != 6 {
                idb.options
                    .push(InterfaceDescriptionOption::IfTsResol(i.tsresol));
            }
            nw.write_block(&Block::InterfaceDescription(idb))
                .map_err(to_io)?;
        }
        for p in &sec.packets {
            let iface = sec
                .interfaces
                .get(p.interface as usize)
                .ok_or_else(|| io::Error::other("packet names a missing interface"))?;
            let frame = iface.framing.frame(&p.segment);
            let cap = frame.len().min(if iface.snaplen == 0 {
                usize::MAX
            } else {
                iface.snaplen as usize
            });
            let block = if p.simple {
                Block::SimplePacket(SimplePacketBlock {
                    original_len: frame.len() as u32,
                    data: Cow::Borrowed(&frame[..cap]),
                })
            } else {
                let mut epb = EnhancedPacketBlock {
                    interface_id: p.interface,
                    // pcap-file 2.0 writes `timestamp.as_nanos()` as the raw tick count.
                    timestamp: Duration::from_nanos(ticks(p.segment.ts_ns, iface.tsresol)),
                    original_len: frame.len() as u32,
                    data: Cow::Borrowed(&frame[..cap]),
                    options: vec![],
                };
                if let Some(c) = &p.comment {
                    epb.options
                        .push(EnhancedPacketOption::Comment(Cow::Owned(c.clone())));
                }
                Block::EnhancedPacket(epb)
            };
            nw.write_block(&block).map_err(to_io)?;
        }
        w = nw.into_inner();
    }
    Ok(w)
}

/// A plain GET request.
pub fn get(target: &str, host: &str) -> Vec<u8> {
    format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: hoptrace-synth\r\nAccept: */*\r\n\r\n"
    )
    .into_bytes()
}

/// A request with a body (`hey -d YO` sends a GET with a body).
pub fn with_body(method: &str, target: &str, host: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

/// A chunked POST.
pub fn chunked_post(target: &str, host: &str, chunks: &[&[u8]]) -> Vec<u8> {
    let mut v =
        format!("POST {target} HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n")
            .into_bytes();
    for c in chunks {
        v.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        v.extend_from_slice(c);
        v.extend_from_slice(b"\r\n");
    }
    v.extend_from_slice(b"0\r\n\r\n");
    v
}

/// A response with a body and Content-Length.
pub fn ok(status: u16, body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "HTTP/1.1 {status} OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

/// A chunked response.
pub fn ok_chunked(body_chunks: &[&[u8]]) -> Vec<u8> {
    let mut v = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for c in body_chunks {
        v.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        v.extend_from_slice(c);
        v.extend_from_slice(b"\r\n");
    }
    v.extend_from_slice(b"0\r\n\r\n");
    v
}

/// The walkthrough scenario embedded in the binary until lab recordings land: a client capture
/// (taken at one point, no NAT inside it) of three clients talking HTTP to a load-balancer
/// frontend — keep-alive, a GET with a body (as `hey -d YO` sends), a chunked POST and a
/// connection reset. Deterministic.
pub fn demo_scenario() -> Vec<u8> {
    let frontend: SocketAddr = "20.185.96.169:80".parse().expect("literal");
    let host = "20.185.96.169";
    let t0 = 1_795_774_000_000_000_000i64; // 2026-11-27T…Z
    let mut convs = Vec::new();
    let mut a = Conversation::new(
        "71.246.222.12:58796".parse().expect("literal"),
        frontend,
        t0,
    );
    a.handshake()
        .request(&get("/", host))
        .response(&ok(200, b"hello from testapp-7f4b8f5c9d-zp4ns\n"))
        .request(&get("/healthz", host))
        .response(&ok(200, b"ok\n"))
        .close();
    convs.push(a);
    let mut b = Conversation::new(
        "71.246.222.12:58797".parse().expect("literal"),
        frontend,
        t0 + 1_250_000,
    );
    b.handshake()
        .request(&with_body("GET", "/", host, b"YO"))
        .response(&ok(200, b"hello from testapp-7f4b8f5c9d-x2v9q\n"))
        .close();
    convs.push(b);
    let mut c = Conversation::new(
        "198.51.100.7:41000".parse().expect("literal"),
        frontend,
        t0 + 2_500_000,
    );
    c.handshake()
        .request(&chunked_post("/api/orders", host, &[b"{\"id\":", b"1}"]))
        .response(&ok_chunked(&[b"created"]))
        .request(&get("/api/orders/1", host))
        .response(&ok(404, b"not found\n"))
        .reset();
    convs.push(c);
    let segs = interleave(&convs);
    write_pcap(Vec::new(), &PcapSpec::default(), &segs).expect("writing to a Vec cannot fail")
}

/// Write a benchmark capture of at least `min_bytes`: many short keep-alive-free HTTP connections
/// (handshake, one GET, one small response, FIN), spread over many clients. Returns packets written.
pub fn write_bench_pcap<W: Write>(w: W, min_bytes: u64) -> io::Result<u64> {
    let header = PcapHeader {
        snaplen: 262_144,
        endianness: Endianness::Little,
        ..Default::default()
    };
    let mut pw =
        PcapWriter::with_header(io::BufWriter::with_capacity(1 << 20, w), header).map_err(to_io)?;
    let server: SocketAddr = "20.185.96.169:80".parse().expect("literal");
    let framing = Framing::Ethernet { vlans: vec![] };
    let mut written = 24u64;
    let mut packets = 0u64;
    let mut t = 1_795_774_000_000_000_000i64;
    let mut i = 0u64;
    let body = b"hello from testapp\n";
    while written < min_bytes {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000u32 + (i % 50_000) as u32 + 1);
        let port = 1024 + ((i / 50_000) % 60_000) as u16;
        let mut c = Conversation::new(SocketAddr::new(IpAddr::V4(ip), port), server, t);
        c.step_ns = 50_000;
        let target = format!("/item/{}", i % 1000);
        c.handshake()
            .request(&get(&target, "20.185.96.169"))
            .response(&ok(200, body))
            .close();
        for seg in c.segments() {
            let frame = framing.frame(seg);
            let ts = Duration::from_micros((seg.ts_ns / 1000) as u64);
            pw.write_packet(&PcapPacket {
                timestamp: ts,
                orig_len: frame.len() as u32,
                data: Cow::Borrowed(&frame),
            })
            .map_err(to_io)?;
            written += 16 + frame.len() as u64;
            packets += 1;
        }
        t += 20_000;
        i += 1;
    }
    pw.into_writer().flush()?;
    Ok(packets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_decode_for_every_framing() {
        let mut c = Conversation::new(
            "10.1.2.3:40000".parse().unwrap(),
            "10.9.9.9:80".parse().unwrap(),
            0,
        );
        c.handshake().request(b"GET / HTTP/1.1\r\n\r\n");
        let seg = &c.segments()[3];
        for f in Framing::all() {
            let bytes = f.frame(seg);
            let d = link::decode(f.link_type(), &bytes).unwrap_or_else(|e| panic!("{f:?}: {e:?}"));
            assert_eq!(
                (d.src_port, d.dst_port, d.payload),
                (40000, 80, &b"GET / HTTP/1.1\r\n\r\n"[..]),
                "{f:?}"
            );
        }
    }

    #[test]
    fn ticks_roundtrip() {
        assert_eq!(ticks(1_500_000_000, 6), 1_500_000);
        assert_eq!(ticks(1_000_000_000, 0x8a), 1024);
        assert_eq!(ticks(5, 12), 5000);
    }
}
