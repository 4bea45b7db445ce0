//! What a capture yields: connections, HTTP requests with their responses, and (optionally)
//! one compact record per packet. These are the types the journey layer consumes.

use super::http::{header_fields, request_line, status_line};
use super::link::TcpFlags;
use super::reassembly::StreamStats;
use std::net::{IpAddr, SocketAddr};

/// Index of a capture among the inputs of one run (0-based, in command-line order).
pub type CaptureIndex = u32;
/// Index of a connection within its capture ([`super::Capture::connections`]).
pub type ConnectionId = u32;
/// Index of a request within its capture ([`super::Capture::requests`]).
pub type RequestId = u32;

/// Which end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The source of the first packet seen.
    A,
    /// The other end.
    B,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
    pub fn idx(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }
}

/// How the initiator (client) of a connection was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InitiatorEvidence {
    /// It sent the SYN.
    Syn,
    /// The SYN was not captured but the SYN-ACK was: the initiator is its receiver.
    SynAck,
    /// The capture starts mid-connection: guessed from ports (the higher, ephemeral port is the
    /// client's); with equal ports, the first packet's sender.
    GuessedFromPorts,
    /// Not TCP: the first packet's sender.
    FirstPacket,
}

/// TCP state flags seen on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct TcpState(pub u16);

impl TcpState {
    pub const SYN: u16 = 1;
    pub const SYN_ACK: u16 = 2;
    /// The initiator acknowledged the SYN-ACK: three-way handshake complete.
    pub const HANDSHAKE: u16 = 4;
    pub const FIN_FROM_CLIENT: u16 = 8;
    pub const FIN_FROM_SERVER: u16 = 16;
    pub const RST: u16 = 32;
    /// The capture starts after the handshake.
    pub const MID_STREAM: u16 = 64;
    pub fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }
    pub fn closed(self) -> bool {
        self.has(Self::RST) || (self.has(Self::FIN_FROM_CLIENT) && self.has(Self::FIN_FROM_SERVER))
    }
}

impl std::fmt::Display for TcpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if self.has(Self::MID_STREAM) {
            parts.push("mid-stream");
        }
        if self.has(Self::HANDSHAKE) {
            parts.push("established");
        } else if self.has(Self::SYN_ACK) {
            parts.push("syn-ack");
        } else if self.has(Self::SYN) {
            parts.push("syn");
        }
        if self.has(Self::FIN_FROM_CLIENT) {
            parts.push("fin-c");
        }
        if self.has(Self::FIN_FROM_SERVER) {
            parts.push("fin-s");
        }
        if self.has(Self::RST) {
            parts.push("rst");
        }
        write!(f, "{}", parts.join(","))
    }
}

/// One bidirectional 5-tuple conversation (one incarnation: a new SYN with a new ISN on the same
/// tuple starts a new connection).
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub id: ConnectionId,
    pub capture: CaptureIndex,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6 …).
    pub protocol: u8,
    /// Source of the first packet seen ([`Side::A`]) and its peer.
    pub a: SocketAddr,
    pub b: SocketAddr,
    pub initiator: Side,
    pub initiator_evidence: InitiatorEvidence,
    pub first_ts_ns: i64,
    pub last_ts_ns: i64,
    pub first_frame: u64,
    pub last_frame: u64,
    /// Packets per direction: `[A→B, B→A]`.
    pub packets: [u64; 2],
    /// Transport payload bytes on the wire per direction: `[A→B, B→A]`.
    pub bytes: [u64; 2],
    /// Initial sequence number of each direction `[A, B]` (from its SYN), when seen.
    pub isn: [Option<u32>; 2],
    pub tcp: TcpState,
    /// Reassembly counters per direction `[A→B, B→A]`; `None` while all are zero (the common
    /// case, kept out of line to save memory). See [`Connection::reassembly`].
    pub reassembly_stats: Option<Box<[StreamStats; 2]>>,
    /// HTTP requests seen on it.
    pub http_requests: u32,
    /// Responses that matched no request (mid-stream start, lost request).
    pub unpaired_responses: u32,
}

impl Connection {
    pub fn client(&self) -> SocketAddr {
        self.endpoint(self.initiator)
    }
    pub fn server(&self) -> SocketAddr {
        self.endpoint(self.initiator.other())
    }
    pub fn endpoint(&self, side: Side) -> SocketAddr {
        match side {
            Side::A => self.a,
            Side::B => self.b,
        }
    }
    /// ISN of the client's / server's direction.
    pub fn client_isn(&self) -> Option<u32> {
        self.isn[self.initiator.idx()]
    }
    pub fn server_isn(&self) -> Option<u32> {
        self.isn[self.initiator.other().idx()]
    }
    /// Packets client→server and server→client.
    pub fn packets_cs(&self) -> (u64, u64) {
        let i = self.initiator.idx();
        (self.packets[i], self.packets[1 - i])
    }
    pub fn bytes_cs(&self) -> (u64, u64) {
        let i = self.initiator.idx();
        (self.bytes[i], self.bytes[1 - i])
    }
    pub fn mid_stream(&self) -> bool {
        self.tcp.has(TcpState::MID_STREAM)
    }
    /// Reassembly counters per direction `[A→B, B→A]`.
    pub fn reassembly(&self) -> [StreamStats; 2] {
        self.reassembly_stats
            .as_deref()
            .copied()
            .unwrap_or_default()
    }
    /// Protocol name for listings.
    pub fn protocol_name(&self) -> String {
        match self.protocol {
            6 => "tcp".into(),
            17 => "udp".into(),
            1 => "icmp".into(),
            58 => "icmpv6".into(),
            p => format!("ip-proto-{p}"),
        }
    }
}

/// A response paired with its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// Minor version (HTTP/1.x).
    pub minor: u8,
    head: Box<[u8]>,
    pub first_frame: u64,
    pub last_frame: u64,
    /// Time of the response's first byte.
    pub ts_ns: i64,
    pub end_ts_ns: i64,
    pub body_len: u64,
    pub partial: bool,
}

impl HttpResponse {
    pub(crate) fn new(head: &[u8], first: (u64, i64), partial: bool) -> Option<Self> {
        let line = super::http::head_lines(head).next()?;
        let (_, (minor, status)) = status_line(line).ok()?;
        Some(HttpResponse {
            status,
            minor,
            head: head.into(),
            first_frame: first.0,
            last_frame: first.0,
            ts_ns: first.1,
            end_ts_ns: first.1,
            body_len: 0,
            partial,
        })
    }
    /// Raw head: status line and header fields, CRLFs included.
    pub fn head(&self) -> &[u8] {
        &self.head
    }
    /// Header fields as raw (name, value) bytes, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        header_fields(&self.head)
    }
}

/// One HTTP/1.x request as seen in one capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub id: RequestId,
    pub capture: CaptureIndex,
    pub connection: ConnectionId,
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// Frames holding the request's first and last byte (body included).
    pub first_frame: u64,
    pub last_frame: u64,
    /// Time of the first and the last byte.
    pub ts_ns: i64,
    pub end_ts_ns: i64,
    /// Minor version (HTTP/1.0 → 0, HTTP/1.1 → 1).
    pub minor: u8,
    head: Box<[u8]>,
    method_len: u16,
    target: (u32, u32),
    host: Option<(u32, u32)>,
    /// Body bytes (after chunked framing is removed), including any GET body.
    pub body_len: u64,
    pub chunked: bool,
    /// Bytes of the request were lost (hole, snap length, capture end).
    pub partial: bool,
    pub response: Option<HttpResponse>,
}

impl HttpRequest {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: RequestId,
        capture: CaptureIndex,
        connection: ConnectionId,
        client: SocketAddr,
        server: SocketAddr,
        head: &[u8],
        host: Option<(u32, u32)>,
        first: (u64, i64),
        last: (u64, i64),
        partial: bool,
    ) -> Option<Self> {
        let line = super::http::head_lines(head).next()?;
        let base = head.as_ptr() as usize;
        let (_, rl) = request_line(line).ok()?;
        let ts = rl.target.as_ptr() as usize - base;
        Some(HttpRequest {
            id,
            capture,
            connection,
            client,
            server,
            first_frame: first.0,
            last_frame: last.0,
            ts_ns: first.1,
            end_ts_ns: last.1,
            minor: rl.minor,
            method_len: rl.method.len() as u16,
            target: (ts as u32, (ts + rl.target.len()) as u32),
            host,
            head: head.into(),
            body_len: 0,
            chunked: false,
            partial,
            response: None,
        })
    }
    pub fn method(&self) -> &[u8] {
        &self.head[..self.method_len as usize]
    }
    pub fn target(&self) -> &[u8] {
        &self.head[self.target.0 as usize..self.target.1 as usize]
    }
    /// The first Host header's value.
    pub fn host(&self) -> Option<&[u8]> {
        self.host.map(|(s, e)| &self.head[s as usize..e as usize])
    }
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub fn version(&self) -> String {
        format!("HTTP/1.{}", self.minor)
    }
    /// Raw head: request line and header fields, CRLFs included.
    pub fn head(&self) -> &[u8] {
        &self.head
    }
    /// Header fields as raw (name, value) bytes, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        header_fields(&self.head)
    }
    /// Time from the request's last byte to the response's first byte.
    pub fn latency_ns(&self) -> Option<i64> {
        self.response.as_ref().map(|r| r.ts_ns - self.end_ts_ns)
    }
}

/// Everything known about one packet, rebuilt from the compact table and its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketRecord {
    pub capture: CaptureIndex,
    /// 1-based frame number.
    pub frame: u64,
    pub ts_ns: i64,
    pub interface: u32,
    pub link_type: u32,
    /// 4 or 6; 0 when the packet is not IP (or its headers were unreadable).
    pub ip_version: u8,
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    /// IP protocol number; 0 when not IP.
    pub protocol: u8,
    pub src_port: u16,
    pub dst_port: u16,
    pub connection: Option<ConnectionId>,
    pub tcp_flags: TcpFlags,
    pub seq: u32,
    pub ack: u32,
    /// Transport payload length on the wire.
    pub payload_len: u32,
    /// The snap length cut this packet.
    pub truncated: bool,
    /// IPv4/IPv6 fragment.
    pub fragment: bool,
}

/// Compact per-packet record (32 bytes). Addresses and ports come from the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CompactPacket {
    pub ts_ns: i64,
    /// Connection id, or `NO_CONN` (then see `PacketTable::unattached`).
    pub conn: u32,
    pub seq: u32,
    pub ack: u32,
    pub payload_len: u32,
    pub interface: u16,
    pub flags: u8,
    /// Bit 0: sent by side B. Bit 1: truncated. Bit 2: fragment.
    pub bits: u8,
}

pub(crate) const NO_CONN: u32 = u32::MAX;

/// IP packets that belong to no connection (fragments without ports …): their addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unattached {
    pub frame: u64,
    pub ip_version: u8,
    pub protocol: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
}
