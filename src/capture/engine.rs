//! The capture engine: frames → decoded packets → connections → reassembled streams → HTTP.
//!
//! [`Capture::from_bytes`], [`Capture::from_reader`] and [`Capture::open`] run one pass over a
//! capture. Per packet nothing is allocated on the heap: a connection is looked up by its 5-tuple,
//! its counters updated, and payload bytes flow borrowed through reassembly into the HTTP parser.
//! Per-connection tracking state (reassembly buffers, HTTP parser) exists only while the
//! connection carries payload and is dropped when it closes. With
//! [`CaptureOptions::keep_packets`] a 32-byte record per packet is kept for [`Capture::packets`].

use super::http::{BodyKind, HeadEvent, HttpSink, HttpStream, Role};
use super::link::{self, Decoded, LinkError, TcpFlags};
use super::model::*;
use super::reader::{self, CaptureComment, CaptureFormat, Frame, FrameSink, InterfaceInfo};
use super::reassembly::{
    Delivery, ReassemblyBudget, ReassemblyLimits, StreamReassembler, StreamStats,
};
use super::{CaptureError, CaptureWarning, WarningKind};
use std::collections::{BTreeMap, VecDeque};

/// Flow tables hash with foldhash, randomly seeded per process: several times faster than
/// SipHash per packet and still not predictable by whoever crafted the capture.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::path::Path;

/// Knobs of one analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureOptions {
    /// Keep a compact record per packet ([`Capture::packets`], [`Capture::frames_of`]).
    pub keep_packets: bool,
    /// Reassembly buffering bounds.
    pub limits: ReassemblyLimits,
    /// How long (capture time) a closed connection (FIN both ways or RST) stays findable by its
    /// 5-tuple for the stray packets that follow a close (last ACK, retransmitted FIN); after
    /// that its flow-table entry is dropped, keeping the table near the open connections' size.
    pub closed_flow_linger_ns: i64,
    /// Threads for in-memory captures without `keep_packets` (0: [`default_threads`]).
    /// Results are identical to one thread's.
    pub threads: usize,
}

impl Default for CaptureOptions {
    fn default() -> Self {
        CaptureOptions {
            keep_packets: true,
            limits: ReassemblyLimits::default(),
            closed_flow_linger_ns: 5_000_000_000,
            threads: 0,
        }
    }
}

/// Counts of what was and was not understood.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureStats {
    pub frames: u64,
    /// Bytes of the capture file/stream consumed.
    pub file_bytes: u64,
    pub ip_packets: u64,
    /// Frames whose link layer carried something other than IP (ARP, LLDP …).
    pub non_ip: u64,
    /// Frames too short for their link or IP header.
    pub malformed: u64,
    /// Frames per unsupported link type.
    pub unsupported_link: BTreeMap<u32, u64>,
    /// Frames cut by the snap length.
    pub truncated: u64,
    pub fragments: u64,
    /// Peak bytes buffered by reassembly.
    pub reassembly_peak_bytes: usize,
    /// Peak bytes held by HTTP streams collecting heads.
    pub http_head_peak_bytes: usize,
}

/// One capture, analysed.
#[derive(Debug, Clone)]
pub struct Capture {
    pub index: CaptureIndex,
    /// File name as given (or `-` for standard input).
    pub name: String,
    pub format: CaptureFormat,
    pub interfaces: Vec<InterfaceInfo>,
    pub comments: Vec<CaptureComment>,
    pub connections: Vec<Connection>,
    /// Requests in order of their first byte.
    pub requests: Vec<HttpRequest>,
    pub stats: CaptureStats,
    pub warnings: Vec<CaptureWarning>,
    packets: Vec<CompactPacket>,
    unattached: Vec<Unattached>,
    /// Frames of each connection: `conn_frames[conn_offsets[c]..conn_offsets[c+1]]`.
    conn_offsets: Vec<u32>,
    conn_frames: Vec<u32>,
}

impl Capture {
    /// Analyse a capture held in memory.
    pub fn from_bytes(
        index: CaptureIndex,
        name: &str,
        data: &[u8],
        opts: CaptureOptions,
    ) -> Result<Capture, CaptureError> {
        let threads = match opts.threads {
            0 => default_threads(),
            n => n,
        };
        // Threads pay off only on big captures; per-packet records need one frame order.
        if threads > 1 && !opts.keep_packets && data.len() >= 16 << 20 {
            return Self::from_bytes_sharded(index, name, data, opts, threads as u32);
        }
        let mut a = Analyzer::new(index, opts);
        let summary = reader::read_slice(name, data, &mut a)?;
        Ok(a.finish(name, summary))
    }

    /// Each thread reads the whole capture and analyses the flows hashed to it; the shards are
    /// then merged into the same result one thread would give.
    fn from_bytes_sharded(
        index: CaptureIndex,
        name: &str,
        data: &[u8],
        opts: CaptureOptions,
        n: u32,
    ) -> Result<Capture, CaptureError> {
        let mut shard_opts = opts;
        shard_opts.limits.total_bytes /= n as usize;
        let results: Vec<Result<Capture, CaptureError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..n)
                .map(|me| {
                    scope.spawn(move || {
                        let mut a = Analyzer::new(index, shard_opts);
                        a.shard = Some((me, n));
                        let summary = reader::read_slice(name, data, &mut a)?;
                        Ok(a.finish(name, summary))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let mut shards = Vec::with_capacity(results.len());
        for r in results {
            shards.push(r?);
        }
        Ok(merge_shards(shards))
    }

    /// Analyse a capture stream (e.g. standard input); packets are processed as they arrive.
    pub fn from_reader<R: std::io::Read>(
        index: CaptureIndex,
        name: &str,
        r: R,
        opts: CaptureOptions,
    ) -> Result<Capture, CaptureError> {
        let mut a = Analyzer::new(index, opts);
        let summary = reader::read_stream(name, r, &mut a)?;
        Ok(a.finish(name, summary))
    }

    /// Open a file: memory-mapped (falls back to reading it as a stream when it cannot be mapped,
    /// e.g. a named pipe).
    pub fn open(
        index: CaptureIndex,
        path: &Path,
        opts: CaptureOptions,
    ) -> Result<Capture, CaptureError> {
        let name = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|e| CaptureError::Io {
            file: name.clone(),
            source: e,
        })?;
        let meta = file.metadata().map_err(|e| CaptureError::Io {
            file: name.clone(),
            source: e,
        })?;
        if meta.is_file() && meta.len() > 0 {
            // SAFETY: the map is read-only and private to this call. If another process truncates
            // the file while we read it, the kernel delivers SIGBUS; that is the documented risk
            // of mapping files, accepted for capture files that are not being written.
            // Pre-faulting the mapping (one kernel call instead of a fault per page) pays off
            // while the file fits comfortably in memory.
            let populate = meta.len() <= 4 << 30;
            let mut mo = memmap2::MmapOptions::new();
            if populate {
                mo.populate();
            }
            if let Ok(map) = unsafe { mo.map(&file) } {
                #[cfg(unix)]
                let _ = map.advise(memmap2::Advice::Sequential);
                return Capture::from_bytes(index, &name, &map, opts);
            }
        }
        Capture::from_reader(
            index,
            &name,
            std::io::BufReader::with_capacity(1 << 20, file),
            opts,
        )
    }

    /// Whether per-packet records were kept.
    pub fn has_packets(&self) -> bool {
        !self.packets.is_empty() || self.stats.frames == 0
    }

    /// The packet with this 1-based frame number (needs [`CaptureOptions::keep_packets`]).
    pub fn packet(&self, frame: u64) -> Option<PacketRecord> {
        let p = self
            .packets
            .get(usize::try_from(frame.checked_sub(1)?).ok()?)?;
        Some(self.expand(frame, p))
    }

    /// Every packet in file order (needs [`CaptureOptions::keep_packets`]).
    pub fn packets(&self) -> impl Iterator<Item = PacketRecord> + '_ {
        self.packets
            .iter()
            .enumerate()
            .map(|(i, p)| self.expand(i as u64 + 1, p))
    }

    /// Frame numbers of a connection's packets, in file order (needs `keep_packets`).
    pub fn frames_of(&self, conn: ConnectionId) -> impl Iterator<Item = u64> + '_ {
        let c = conn as usize;
        let (s, e) = match (self.conn_offsets.get(c), self.conn_offsets.get(c + 1)) {
            (Some(&s), Some(&e)) => (s as usize, e as usize),
            _ => (0, 0),
        };
        self.conn_frames[s..e].iter().map(|&f| f as u64 + 1)
    }

    fn expand(&self, frame: u64, p: &CompactPacket) -> PacketRecord {
        let iface = self.interfaces.get(p.interface as usize);
        let mut r = PacketRecord {
            capture: self.index,
            frame,
            ts_ns: p.ts_ns,
            interface: p.interface as u32,
            link_type: iface.map_or(0, |i| i.link_type),
            ip_version: 0,
            src: None,
            dst: None,
            protocol: 0,
            src_port: 0,
            dst_port: 0,
            connection: None,
            tcp_flags: TcpFlags(p.flags),
            seq: p.seq,
            ack: p.ack,
            payload_len: p.payload_len,
            truncated: p.bits & 2 != 0,
            fragment: p.bits & 4 != 0,
        };
        if let Some(c) = self.connections.get(p.conn as usize) {
            let (s, d) = if p.bits & 1 == 0 {
                (c.a, c.b)
            } else {
                (c.b, c.a)
            };
            r.ip_version = if s.is_ipv4() { 4 } else { 6 };
            (r.src, r.dst) = (Some(s.ip()), Some(d.ip()));
            (r.src_port, r.dst_port) = (s.port(), d.port());
            r.protocol = c.protocol;
            r.connection = Some(c.id);
        } else if let Ok(i) = self.unattached.binary_search_by_key(&frame, |u| u.frame) {
            let u = &self.unattached[i];
            (r.ip_version, r.protocol, r.src, r.dst) =
                (u.ip_version, u.protocol, Some(u.src), Some(u.dst));
        }
        r
    }
}

/// Threads used when none are asked for: one on machines with two CPUs or fewer (every shard
/// decodes every frame, so on two cores with anything else running the extra thread costs more
/// than it brings — measured in BENCHMARKS.md), else one per CPU up to 4.
pub fn default_threads() -> usize {
    match std::thread::available_parallelism().map_or(1, |n| n.get()) {
        n if n <= 2 => 1,
        n => n.min(4),
    }
}

/// Bidirectional flow key: the two endpoints (address as a 128-bit number, IPv4 mapped, and
/// port) in a fixed order, the protocol and the IP version. Integers compare and hash faster
/// than byte arrays or `SocketAddr`s (which also take 32 bytes each). IPv4 packets use the
/// 16-byte [`FlowKey4`] instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FlowKey {
    // Halves of the 128-bit addresses: u128 would force 16-byte alignment on the table entries.
    lo_ip: [u64; 2],
    hi_ip: [u64; 2],
    lo_port: u16,
    hi_port: u16,
    proto: u8,
    v6: bool,
}

fn ip_bits(a: std::net::IpAddr) -> [u64; 2] {
    let b = match a {
        std::net::IpAddr::V4(v) => v.to_ipv6_mapped().to_bits(),
        std::net::IpAddr::V6(v) => v.to_bits(),
    };
    [(b >> 64) as u64, b as u64]
}

impl FlowKey {
    fn new(src: SocketAddr, dst: SocketAddr, proto: u8) -> Self {
        let (s, d) = (
            (ip_bits(src.ip()), src.port()),
            (ip_bits(dst.ip()), dst.port()),
        );
        let ((lo_ip, lo_port), (hi_ip, hi_port)) = if s <= d { (s, d) } else { (d, s) };
        FlowKey {
            lo_ip,
            hi_ip,
            lo_port,
            hi_port,
            proto,
            v6: src.is_ipv6(),
        }
    }
}

/// Whole words into the hasher (the derived `Hash` feeds the arrays as length-prefixed byte
/// slices, several times slower per packet).
impl std::hash::Hash for FlowKey {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u64(self.lo_ip[0]);
        h.write_u64(self.lo_ip[1]);
        h.write_u64(self.hi_ip[0]);
        h.write_u64(self.hi_ip[1]);
        h.write_u64(
            (self.lo_port as u64) << 32
                | (self.hi_port as u64) << 16
                | (self.proto as u64) << 8
                | self.v6 as u64,
        );
    }
}

/// [`FlowKey`] of an IPv4 packet: 16 bytes instead of 40, so the table of recent flows (every
/// connection of the last linger period) takes half the memory and cache lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FlowKey4 {
    lo_ip: u32,
    hi_ip: u32,
    lo_port: u16,
    hi_port: u16,
    proto: u8,
}

impl FlowKey4 {
    fn new(src: (std::net::Ipv4Addr, u16), dst: (std::net::Ipv4Addr, u16), proto: u8) -> Self {
        let (s, d) = ((src.0.to_bits(), src.1), (dst.0.to_bits(), dst.1));
        let ((lo_ip, lo_port), (hi_ip, hi_port)) = if s <= d { (s, d) } else { (d, s) };
        FlowKey4 {
            lo_ip,
            hi_ip,
            lo_port,
            hi_port,
            proto,
        }
    }
}

impl std::hash::Hash for FlowKey4 {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u64((self.lo_ip as u64) << 32 | self.hi_ip as u64);
        h.write_u64((self.lo_port as u64) << 24 | (self.hi_port as u64) << 8 | self.proto as u64);
    }
}

/// A packet's flow key: IPv4 packets in one table, IPv6 (including IPv4-mapped addresses seen
/// in IPv6 packets, a different flow) in the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum AnyFlowKey {
    V4(FlowKey4),
    V6(FlowKey),
}

impl AnyFlowKey {
    fn of(d: &Decoded<'_>) -> Self {
        match (d.src, d.dst) {
            (std::net::IpAddr::V4(s), std::net::IpAddr::V4(t)) => {
                AnyFlowKey::V4(FlowKey4::new((s, d.src_port), (t, d.dst_port), d.protocol))
            }
            _ => AnyFlowKey::V6(FlowKey::new(
                SocketAddr::new(d.src, d.src_port),
                SocketAddr::new(d.dst, d.dst_port),
                d.protocol,
            )),
        }
    }
}

/// Slots in the flow cache (a power of two; 16 KiB): `(key hash, connection)`. A hit is
/// confirmed against the connection's own endpoints, which the packet touches next anyway.
const FLOW_CACHE: usize = 1024;
const EMPTY_FLOW_SLOT: (u64, ConnectionId) = (0, NO_CONN);

/// Live TCP state of a connection that carries payload.
#[derive(Debug)]
struct Tracker {
    streams: [StreamReassembler; 2],
    http: [Option<HttpStream>; 2],
    /// Sequence number just past each direction's FIN, once seen.
    fin_at: [Option<u32>; 2],
    closed: [bool; 2],
    /// Requests awaiting a response, oldest first.
    pending: VecDeque<RequestId>,
    /// Request whose body / response is being read, per direction.
    current: [Option<RequestId>; 2],
}

impl Tracker {
    fn new() -> Self {
        Tracker {
            streams: Default::default(),
            http: [None, None],
            fin_at: [None; 2],
            closed: [false; 2],
            pending: VecDeque::new(),
            current: [None; 2],
        }
    }

    /// Back to [`Tracker::new`]'s state, keeping the `pending` queue's allocation.
    fn reset(&mut self) {
        let mut pending = std::mem::take(&mut self.pending);
        pending.clear();
        *self = Tracker {
            pending,
            ..Tracker::new()
        };
    }
}

struct Analyzer {
    index: CaptureIndex,
    opts: CaptureOptions,
    /// `(this shard, shard count)` when several threads split the flows between them.
    shard: Option<(u32, u32)>,
    /// Connections by 5-tuple (closed ones are swept out after the linger time): IPv4 flows
    /// and IPv6 flows.
    flows4: HashMap<FlowKey4, ConnectionId>,
    flows6: HashMap<FlowKey, ConnectionId>,
    /// Direct-mapped cache in front of the flow tables (see `packet`).
    flow_cache: Box<[(u64, ConnectionId)]>,
    /// Bytes held by HTTP streams collecting heads (see `ReassemblyLimits::http_head_total`).
    http_buffered: usize,
    /// Connections created since the last sweep of the flow table.
    since_sweep: usize,
    /// Latest packet time seen.
    now_ns: i64,
    connections: Vec<Connection>,
    trackers: Vec<Option<Box<Tracker>>>,
    /// Trackers of closed connections, reset, kept for the next connections (with their
    /// allocations): most connections in a capture are short and one follows another. Boxed
    /// because the boxes themselves move in and out of `trackers`.
    #[allow(clippy::vec_box)]
    spare_trackers: Vec<Box<Tracker>>,
    requests: Vec<HttpRequest>,
    stats: CaptureStats,
    budget: ReassemblyBudget,
    packets: Vec<CompactPacket>,
    unattached: Vec<Unattached>,
    interfaces: Vec<InterfaceInfo>,
}

impl FrameSink for Analyzer {
    fn interface(&mut self, iface: &InterfaceInfo) {
        self.interfaces.push(iface.clone());
    }

    fn frame(&mut self, f: &Frame<'_>) {
        if let Some((me, n)) = self.shard {
            // Parallel analysis: every thread reads every frame and keeps the flows hashed to
            // it; frames that belong to no flow are counted by shard 0.
            let owner = match link::decode(f.link_type, f.data) {
                Ok(d) if !d.fragment && !d.transport_missing => {
                    (foldhash::fast::FixedState::with_seed(0x5eed).hash_one(AnyFlowKey::of(&d))
                        % n as u64) as u32
                }
                _ => 0,
            };
            if owner != me {
                return;
            }
        }
        self.stats.frames += 1;
        let truncated = (f.orig_len as usize) > f.data.len();
        if truncated {
            self.stats.truncated += 1;
        }
        let mut rec = CompactPacket {
            ts_ns: f.ts_ns,
            conn: NO_CONN,
            seq: 0,
            ack: 0,
            payload_len: 0,
            interface: f.interface.min(u16::MAX as u32) as u16,
            flags: 0,
            bits: if truncated { 2 } else { 0 },
        };
        match link::decode(f.link_type, f.data) {
            Ok(d) => {
                self.stats.ip_packets += 1;
                if d.fragment {
                    self.stats.fragments += 1;
                    rec.bits |= 4;
                }
                rec.payload_len = d.wire_payload_len;
                if let Some(t) = d.tcp {
                    (rec.seq, rec.ack, rec.flags) = (t.seq, t.ack, t.flags.0);
                }
                let attached = !d.fragment && !d.transport_missing;
                if attached {
                    let (conn, side) = self.packet(f, &d);
                    rec.conn = conn;
                    if side == Side::B {
                        rec.bits |= 1;
                    }
                } else if self.opts.keep_packets {
                    self.unattached.push(Unattached {
                        frame: f.number,
                        ip_version: d.ip_version,
                        protocol: d.protocol,
                        src: d.src,
                        dst: d.dst,
                    });
                }
            }
            Err(LinkError::UnsupportedLinkType(lt)) => {
                *self.stats.unsupported_link.entry(lt).or_default() += 1
            }
            Err(LinkError::NotIp) => self.stats.non_ip += 1,
            Err(LinkError::Short) => self.stats.malformed += 1,
        }
        if self.opts.keep_packets {
            self.packets.push(rec);
        }
    }
}

impl Analyzer {
    fn new(index: CaptureIndex, opts: CaptureOptions) -> Self {
        Analyzer {
            index,
            opts,
            shard: None,
            flows4: HashMap::default(),
            flows6: HashMap::default(),
            flow_cache: vec![EMPTY_FLOW_SLOT; FLOW_CACHE].into_boxed_slice(),
            http_buffered: 0,
            since_sweep: 0,
            now_ns: i64::MIN,
            connections: Vec::new(),
            trackers: Vec::new(),
            spare_trackers: Vec::new(),
            requests: Vec::new(),
            stats: CaptureStats::default(),
            budget: ReassemblyBudget {
                limits: opts.limits,
                ..Default::default()
            },
            packets: Vec::new(),
            unattached: Vec::new(),
            interfaces: Vec::new(),
        }
    }

    /// Account one IP packet to its connection; returns the connection and the sending side.
    fn packet(&mut self, f: &Frame<'_>, d: &Decoded<'_>) -> (ConnectionId, Side) {
        let src = SocketAddr::new(d.src, d.src_port);
        let dst = SocketAddr::new(d.dst, d.dst_port);
        let key = AnyFlowKey::of(d);
        let flags = d.tcp.map(|t| t.flags).unwrap_or_default();
        let pure_syn = flags.syn() && !flags.ack();
        self.now_ns = self.now_ns.max(f.ts_ns);
        // A connection closed longer ago than the linger time is gone even before the sweep
        // removes it, so results do not depend on when sweeps happen.
        let cutoff = self.now_ns.saturating_sub(self.opts.closed_flow_linger_ns);
        let live = |id: ConnectionId| {
            let c = &self.connections[id as usize];
            !(c.tcp.closed() && c.last_ts_ns < cutoff)
        };
        // The flow table is large (every connection of the last linger period) and each lookup
        // would miss the CPU caches; the few flows active at any moment hit this small
        // direct-mapped cache instead. It mirrors the table: filled on lookup and insert,
        // cleared when the sweep removes entries.
        let hash = self.flow_hash(&key);
        let slot = (hash as usize) & (FLOW_CACHE - 1);
        let same_flow = |c: &Connection| {
            c.protocol == d.protocol && ((c.a == src && c.b == dst) || (c.a == dst && c.b == src))
        };
        let found = match self.flow_cache[slot] {
            (h, id) if id != NO_CONN && h == hash && same_flow(&self.connections[id as usize]) => {
                Some(id)
            }
            _ => {
                let id = match &key {
                    AnyFlowKey::V4(k) => self.flows4.get(k),
                    AnyFlowKey::V6(k) => self.flows6.get(k),
                }
                .copied();
                if let Some(id) = id {
                    self.flow_cache[slot] = (hash, id);
                }
                id
            }
        };
        let id = match found {
            Some(id) if live(id) && !(pure_syn && self.is_new_incarnation(id, src, d)) => id,
            old => {
                if let Some(old) = old {
                    self.close_tracker(old, false);
                }
                let id = self.new_connection(f, src, dst, d);
                match key {
                    AnyFlowKey::V4(k) => self.flows4.insert(k, id),
                    AnyFlowKey::V6(k) => self.flows6.insert(k, id),
                };
                self.flow_cache[slot] = (hash, id);
                self.since_sweep += 1;
                if self.since_sweep >= ((self.flows4.len() + self.flows6.len()) / 2).max(1 << 16) {
                    self.sweep();
                }
                id
            }
        };
        let c = &mut self.connections[id as usize];
        let side = if c.a == src { Side::A } else { Side::B };
        let di = side.idx();
        c.packets[di] += 1;
        c.bytes[di] += d.wire_payload_len as u64;
        c.last_ts_ns = c.last_ts_ns.max(f.ts_ns);
        c.last_frame = f.number;
        if let Some(t) = d.tcp {
            self.tcp(id, side, f, d, t.flags, t.seq, t.ack);
        }
        (id, side)
    }

    /// Drop flow-table entries of connections closed longer ago than the linger time.
    /// Amortised O(1): runs after as many new connections as half the table holds.
    fn sweep(&mut self) {
        self.since_sweep = 0;
        self.flow_cache.fill(EMPTY_FLOW_SLOT);
        let cutoff = self.now_ns.saturating_sub(self.opts.closed_flow_linger_ns);
        let conns = &self.connections;
        let keep = |id: &mut ConnectionId| {
            let c = &conns[*id as usize];
            !(c.tcp.closed() && c.last_ts_ns < cutoff)
        };
        self.flows4.retain(|_, id| keep(id));
        self.flows6.retain(|_, id| keep(id));
    }

    /// Hash of a flow key (for the cache slot), with the flow tables' random seed.
    fn flow_hash(&self, key: &AnyFlowKey) -> u64 {
        match key {
            AnyFlowKey::V4(k) => self.flows4.hasher().hash_one(k),
            AnyFlowKey::V6(k) => self.flows4.hasher().hash_one(k),
        }
    }

    /// A pure SYN on a known tuple starts a new connection when the old one is closed or the SYN
    /// carries a different initial sequence number (port reuse).
    fn is_new_incarnation(&self, id: ConnectionId, src: SocketAddr, d: &Decoded<'_>) -> bool {
        let c = &self.connections[id as usize];
        let side = if c.a == src { Side::A } else { Side::B };
        let seq = d.tcp.map_or(0, |t| t.seq);
        match c.isn[side.idx()] {
            Some(isn) => isn != seq,
            None => {
                c.tcp.closed() || c.packets[0] + c.packets[1] > 0 && c.tcp.has(TcpState::MID_STREAM)
            }
        }
    }

    fn new_connection(
        &mut self,
        f: &Frame<'_>,
        src: SocketAddr,
        dst: SocketAddr,
        d: &Decoded<'_>,
    ) -> ConnectionId {
        let id = self.connections.len() as ConnectionId;
        let (initiator, evidence, tcp) = match d.tcp {
            Some(t) if t.flags.syn() && !t.flags.ack() => {
                (Side::A, InitiatorEvidence::Syn, TcpState(0))
            }
            Some(t) if t.flags.syn() => (Side::B, InitiatorEvidence::SynAck, TcpState(0)),
            Some(_) => {
                let side = if src.port() > dst.port() {
                    Side::A
                } else if src.port() < dst.port() {
                    Side::B
                } else {
                    Side::A
                };
                (
                    side,
                    InitiatorEvidence::GuessedFromPorts,
                    TcpState(TcpState::MID_STREAM),
                )
            }
            None => (Side::A, InitiatorEvidence::FirstPacket, TcpState(0)),
        };
        self.connections.push(Connection {
            id,
            capture: self.index,
            protocol: d.protocol,
            a: src,
            b: dst,
            initiator,
            initiator_evidence: evidence,
            first_ts_ns: f.ts_ns,
            last_ts_ns: f.ts_ns,
            first_frame: f.number,
            last_frame: f.number,
            packets: [0; 2],
            bytes: [0; 2],
            isn: [None; 2],
            tcp,
            reassembly_stats: None,
            http_requests: 0,
            unpaired_responses: 0,
        });
        self.trackers.push(None);
        id
    }

    #[allow(clippy::too_many_arguments)]
    fn tcp(
        &mut self,
        id: ConnectionId,
        side: Side,
        f: &Frame<'_>,
        d: &Decoded<'_>,
        flags: TcpFlags,
        seq: u32,
        ack: u32,
    ) {
        let c = &mut self.connections[id as usize];
        let di = side.idx();
        let from_client = side == c.initiator;
        if flags.syn() {
            if c.isn[di].is_none() {
                c.isn[di] = Some(seq);
            }
            c.tcp.0 |= if flags.ack() {
                TcpState::SYN_ACK
            } else {
                TcpState::SYN
            };
        } else if flags.ack() && from_client && c.tcp.has(TcpState::SYN_ACK) {
            let server_isn = c.isn[1 - di];
            if server_isn.is_some_and(|isn| ack == isn.wrapping_add(1)) {
                c.tcp.0 |= TcpState::HANDSHAKE;
            }
        }
        if flags.fin() {
            c.tcp.0 |= if from_client {
                TcpState::FIN_FROM_CLIENT
            } else {
                TcpState::FIN_FROM_SERVER
            };
        }
        if flags.rst() {
            c.tcp.0 |= TcpState::RST;
        }
        let has_payload = d.wire_payload_len > 0;
        let tracked = self.trackers[id as usize].is_some();
        if !has_payload && !tracked {
            return;
        }
        if !tracked {
            if c.tcp.has(TcpState::RST) || c.tcp.closed() {
                return;
            }
            let mut t = self
                .spare_trackers
                .pop()
                .unwrap_or_else(|| Box::new(Tracker::new()));
            for (s, isn) in c.isn.iter().enumerate() {
                if let Some(isn) = isn {
                    t.streams[s].syn(*isn);
                }
            }
            self.trackers[id as usize] = Some(t);
        }
        let Some(t) = self.trackers[id as usize].as_mut() else {
            return;
        };
        if flags.syn() {
            t.streams[di].syn(seq);
        }
        let data_seq = if flags.syn() {
            seq.wrapping_add(1)
        } else {
            seq
        };
        if flags.fin() {
            t.fin_at[di] = Some(data_seq.wrapping_add(d.wire_payload_len));
        }
        if has_payload && !t.closed[di] {
            if t.http[di].is_none() {
                let synced = self.connections[id as usize].isn[di].is_some();
                t.http[di] = Some(HttpStream::new(synced));
            }
            let Tracker {
                streams,
                http,
                pending,
                current,
                ..
            } = &mut **t;
            let conn = &mut self.connections[id as usize];
            let mut sink = ConnSink {
                conn,
                requests: &mut self.requests,
                pending,
                current,
                side,
                capture: self.index,
                tunnel: false,
            };
            let stream = http[di].as_mut().expect("created above");
            let before = stream.buffered();
            streams[di].segment(
                data_seq,
                d.payload,
                d.wire_payload_len,
                f.number,
                f.ts_ns,
                &mut self.budget,
                &mut |dl| {
                    if stream.is_off() {
                        return;
                    }
                    match dl {
                        Delivery::Data {
                            bytes,
                            frame,
                            ts_ns,
                        } => stream.data(bytes, frame, ts_ns, &mut sink),
                        Delivery::Gap { len } => stream.gap(len, &mut sink),
                    }
                },
            );
            // HTTP heads being collected count against their own capture-wide bound: past it,
            // the stream gives up on the head it is collecting (partial) instead of growing.
            self.http_buffered = self.http_buffered - before + stream.buffered();
            if self.http_buffered > self.opts.limits.http_head_total {
                let before = stream.buffered();
                stream.abandon_head(&mut sink);
                self.http_buffered = self.http_buffered - before + stream.buffered();
            }
            self.stats.http_head_peak_bytes =
                self.stats.http_head_peak_bytes.max(self.http_buffered);
            if sink.tunnel
                && let Some(o) = http[1 - di].as_mut()
            {
                self.http_buffered -= o.buffered();
                o.turn_off();
            }
        }
        // Close a direction once its FIN has been reached in sequence; close both on RST.
        let rst = flags.rst();
        for s in 0..2 {
            let t = self.trackers[id as usize].as_ref().expect("tracker exists");
            let reached = t.fin_at[s].is_some_and(|fin| t.streams[s].next_seq() == Some(fin));
            if !t.closed[s] && (reached || rst) {
                // A reset cuts an until-close body short: that message is partial.
                self.close_direction(id, s, rst && !reached);
            }
        }
        let t = self.trackers[id as usize].as_ref().expect("tracker exists");
        if t.closed[0] && t.closed[1] {
            self.close_tracker(id, false);
        }
    }

    /// Flush one direction: remaining holes are lost, an until-close body ends (`cut`: ended by
    /// the capture's end or a reset rather than a FIN, so such a body is partial).
    fn close_direction(&mut self, id: ConnectionId, s: usize, cut: bool) {
        let Some(t) = self.trackers[id as usize].as_mut() else {
            return;
        };
        if t.closed[s] {
            return;
        }
        t.closed[s] = true;
        let Tracker {
            streams,
            http,
            pending,
            current,
            fin_at,
            ..
        } = &mut **t;
        let end = fin_at[s];
        let conn = &mut self.connections[id as usize];
        let side = if s == 0 { Side::A } else { Side::B };
        let mut sink = ConnSink {
            conn,
            requests: &mut self.requests,
            pending,
            current,
            side,
            capture: self.index,
            tunnel: false,
        };
        if let Some(stream) = http[s].as_mut() {
            self.http_buffered -= stream.buffered();
            streams[s].finish(end, &mut self.budget, &mut |dl| {
                if stream.is_off() {
                    return;
                }
                match dl {
                    Delivery::Data {
                        bytes,
                        frame,
                        ts_ns,
                    } => stream.data(bytes, frame, ts_ns, &mut sink),
                    Delivery::Gap { len } => stream.gap(len, &mut sink),
                }
            });
            stream.close(cut, &mut sink);
        } else {
            streams[s].finish(end, &mut self.budget, &mut |_| {});
        }
        if streams[s].stats != StreamStats::default() {
            conn.reassembly_stats.get_or_insert_with(Default::default)[s] = streams[s].stats;
        }
    }

    fn close_tracker(&mut self, id: ConnectionId, capture_end: bool) {
        if self.trackers[id as usize].is_none() {
            return;
        }
        self.close_direction(id, 0, capture_end);
        self.close_direction(id, 1, capture_end);
        if let Some(mut t) = self.trackers[id as usize].take() {
            let c = &mut self.connections[id as usize];
            let stats = [t.streams[0].stats, t.streams[1].stats];
            if stats != [StreamStats::default(); 2] {
                c.reassembly_stats = Some(Box::new(stats));
            }
            if self.spare_trackers.len() < 64 {
                t.reset();
                self.spare_trackers.push(t);
            }
        }
    }

    fn finish(mut self, name: &str, summary: reader::ReadSummary) -> Capture {
        for id in 0..self.connections.len() as ConnectionId {
            self.close_tracker(id, true);
        }
        // Requests were recorded when their head completed; order them by their first byte.
        // (Unstable sort: in place, and the key is unique.)
        self.requests
            .sort_unstable_by_key(|r| (r.first_frame, r.id));
        for (i, r) in self.requests.iter_mut().enumerate() {
            r.id = i as RequestId;
        }
        self.stats.file_bytes = summary.bytes;
        self.stats.reassembly_peak_bytes = self.budget.peak;
        let mut warnings = summary.warnings;
        for (&lt, &n) in &self.stats.unsupported_link {
            warnings.push(CaptureWarning {
                file: name.to_string(),
                offset: None,
                frame: None,
                kind: WarningKind::UnsupportedLinkType {
                    link_type: lt,
                    frames: n,
                },
            });
        }
        if self.stats.truncated > 0 {
            warnings.push(CaptureWarning {
                file: name.to_string(),
                offset: None,
                frame: None,
                kind: WarningKind::SnaplenCut {
                    frames: self.stats.truncated,
                },
            });
        }
        // Frames per connection (counting sort), when packets were kept.
        let (mut conn_offsets, mut conn_frames) = (Vec::new(), Vec::new());
        if self.opts.keep_packets && self.packets.len() < u32::MAX as usize {
            conn_offsets = vec![0u32; self.connections.len() + 1];
            for p in &self.packets {
                if p.conn != NO_CONN {
                    conn_offsets[p.conn as usize + 1] += 1;
                }
            }
            for i in 1..conn_offsets.len() {
                conn_offsets[i] += conn_offsets[i - 1];
            }
            let mut fill = conn_offsets.clone();
            conn_frames = vec![0u32; *conn_offsets.last().unwrap_or(&0) as usize];
            for (i, p) in self.packets.iter().enumerate() {
                if p.conn != NO_CONN {
                    let slot = &mut fill[p.conn as usize];
                    conn_frames[*slot as usize] = i as u32;
                    *slot += 1;
                }
            }
        }
        Capture {
            index: self.index,
            name: name.to_string(),
            format: summary.format,
            interfaces: summary.interfaces,
            comments: summary.comments,
            connections: self.connections,
            requests: self.requests,
            stats: self.stats,
            warnings,
            packets: self.packets,
            unattached: self.unattached,
            conn_offsets,
            conn_frames,
        }
    }
}

/// Move every element of `src` to `dst` (in some order: the caller sorts), a slice at a time
/// from the end, giving `src`'s memory back as it goes. Appending in one go would hold a whole
/// shard's records twice at the peak.
fn move_releasing<T>(dst: &mut Vec<T>, mut src: Vec<T>) {
    if dst.is_empty() {
        *dst = src;
        return;
    }
    const STEP: usize = 1 << 14;
    while !src.is_empty() {
        let at = src.len().saturating_sub(STEP);
        dst.extend(src.drain(at..));
        src.shrink_to_fit();
    }
}

/// Merge per-thread results: connections ordered by first frame, requests by first frame (then
/// their order within the shard, which keeps a connection's requests in order), ids renumbered.
fn merge_shards(mut shards: Vec<Capture>) -> Capture {
    let mut conns: Vec<(u64, usize, u32)> = Vec::new();
    for (si, s) in shards.iter().enumerate() {
        conns.extend(s.connections.iter().map(|c| (c.first_frame, si, c.id)));
    }
    conns.sort_unstable();
    let mut remap: Vec<Vec<ConnectionId>> = shards
        .iter()
        .map(|s| vec![0; s.connections.len()])
        .collect();
    for (new, &(_, si, old)) in conns.iter().enumerate() {
        remap[si][old as usize] = new as ConnectionId;
    }
    drop(conns);
    // Merge in place (appending, then sorting without a scratch buffer) so that the peak
    // memory stays that of the results, not twice it.
    let mut connections: Vec<Connection> = Vec::new();
    let mut requests: Vec<HttpRequest> = Vec::new();
    let mut stats = CaptureStats::default();
    for (si, s) in shards.iter_mut().enumerate() {
        for c in s.connections.iter_mut() {
            c.id = remap[si][c.id as usize];
        }
        for r in s.requests.iter_mut() {
            r.connection = remap[si][r.connection as usize];
        }
        move_releasing(&mut connections, std::mem::take(&mut s.connections));
        move_releasing(&mut requests, std::mem::take(&mut s.requests));
        stats.frames += s.stats.frames;
        stats.ip_packets += s.stats.ip_packets;
        stats.non_ip += s.stats.non_ip;
        stats.malformed += s.stats.malformed;
        stats.truncated += s.stats.truncated;
        stats.fragments += s.stats.fragments;
        stats.reassembly_peak_bytes += s.stats.reassembly_peak_bytes;
        stats.http_head_peak_bytes += s.stats.http_head_peak_bytes;
        for (&lt, &n) in &s.stats.unsupported_link {
            *stats.unsupported_link.entry(lt).or_default() += n;
        }
    }
    connections.sort_unstable_by_key(|c| c.id);
    // A frame belongs to one connection, so (first frame, connection, shard-local order) is
    // unique and keeps each connection's requests in order.
    requests.sort_unstable_by_key(|r| (r.first_frame, r.connection, r.id));
    for (i, r) in requests.iter_mut().enumerate() {
        r.id = i as RequestId;
    }
    let first = shards.swap_remove(0);
    stats.file_bytes = first.stats.file_bytes;
    // Reader warnings are the same in every shard; analysis warnings are recomputed.
    let mut warnings: Vec<CaptureWarning> = first
        .warnings
        .into_iter()
        .filter(|w| {
            !matches!(
                w.kind,
                WarningKind::UnsupportedLinkType { .. } | WarningKind::SnaplenCut { .. }
            )
        })
        .collect();
    for (&lt, &n) in &stats.unsupported_link {
        warnings.push(CaptureWarning {
            file: first.name.clone(),
            offset: None,
            frame: None,
            kind: WarningKind::UnsupportedLinkType {
                link_type: lt,
                frames: n,
            },
        });
    }
    if stats.truncated > 0 {
        warnings.push(CaptureWarning {
            file: first.name.clone(),
            offset: None,
            frame: None,
            kind: WarningKind::SnaplenCut {
                frames: stats.truncated,
            },
        });
    }
    Capture {
        index: first.index,
        name: first.name,
        format: first.format,
        interfaces: first.interfaces,
        comments: first.comments,
        connections,
        requests,
        stats,
        warnings,
        packets: Vec::new(),
        unattached: Vec::new(),
        conn_offsets: Vec::new(),
        conn_frames: Vec::new(),
    }
}

/// HTTP events of one connection direction → request/response records.
struct ConnSink<'a> {
    conn: &'a mut Connection,
    requests: &'a mut Vec<HttpRequest>,
    pending: &'a mut VecDeque<RequestId>,
    current: &'a mut [Option<RequestId>; 2],
    /// Sender of the stream being parsed.
    side: Side,
    capture: CaptureIndex,
    /// The stream became a tunnel: the other direction stops being HTTP as well.
    tunnel: bool,
}

impl HttpSink for ConnSink<'_> {
    fn head(&mut self, ev: HeadEvent<'_>) -> BodyKind {
        let di = self.side.idx();
        match ev.role {
            Role::Requests => {
                let id = self.requests.len() as RequestId;
                let client = self.conn.endpoint(self.side);
                let server = self.conn.endpoint(self.side.other());
                let Some(mut req) = HttpRequest::new(
                    id,
                    self.capture,
                    self.conn.id,
                    client,
                    server,
                    ev.head,
                    ev.info.host,
                    (ev.first_frame, ev.first_ts_ns),
                    (ev.last_frame, ev.last_ts_ns),
                    ev.partial || ev.info.bad_content_length,
                ) else {
                    return BodyKind::None;
                };
                req.chunked = ev.info.chunked;
                let connect = req.method() == b"CONNECT";
                self.requests.push(req);
                self.conn.http_requests += 1;
                self.pending.push_back(id);
                self.current[di] = Some(id);
                // A partial head's framing is unknown; CONNECT has no body (a tunnel may follow).
                if ev.partial || connect {
                    BodyKind::None
                } else if ev.info.chunked {
                    BodyKind::Chunked
                } else {
                    BodyKind::Length(ev.info.content_length.unwrap_or(0))
                }
            }
            Role::Responses => {
                let Some(resp) =
                    HttpResponse::new(ev.head, (ev.first_frame, ev.first_ts_ns), ev.partial)
                else {
                    return BodyKind::None;
                };
                let status = resp.status;
                if (100..200).contains(&status) && status != 101 {
                    // Interim response (100 Continue …): the final one follows.
                    self.current[di] = None;
                    return BodyKind::None;
                }
                let Some(req_id) = self.pending.pop_front() else {
                    self.conn.unpaired_responses += 1;
                    self.current[di] = None;
                    return body_kind(&ev, status, false, false);
                };
                let req = &mut self.requests[req_id as usize];
                let head_req = req.method() == b"HEAD";
                let connect = req.method() == b"CONNECT";
                let mut resp = resp;
                resp.last_frame = ev.last_frame;
                resp.end_ts_ns = ev.last_ts_ns;
                req.response = Some(resp);
                self.current[di] = Some(req_id);
                let kind = body_kind(&ev, status, head_req, connect);
                if kind == BodyKind::Tunnel {
                    self.tunnel = true;
                }
                kind
            }
            _ => BodyKind::None,
        }
    }

    fn body(&mut self, role: Role, n: u64) {
        let Some(id) = self.current[self.side.idx()] else {
            return;
        };
        let req = &mut self.requests[id as usize];
        match role {
            Role::Requests => req.body_len += n,
            Role::Responses => {
                if let Some(r) = req.response.as_mut() {
                    r.body_len += n;
                }
            }
            _ => {}
        }
    }

    fn end(&mut self, role: Role, frame: u64, ts_ns: i64, partial: bool) {
        let Some(id) = self.current[self.side.idx()].take() else {
            return;
        };
        let req = &mut self.requests[id as usize];
        match role {
            Role::Requests => {
                req.last_frame = req.last_frame.max(frame);
                req.end_ts_ns = req.end_ts_ns.max(ts_ns);
                req.partial |= partial;
            }
            Role::Responses => {
                if let Some(r) = req.response.as_mut() {
                    r.last_frame = r.last_frame.max(frame);
                    r.end_ts_ns = r.end_ts_ns.max(ts_ns);
                    r.partial |= partial;
                }
            }
            _ => {}
        }
    }
}

/// RFC 9112 §6.3 message body length of a response.
fn body_kind(ev: &HeadEvent<'_>, status: u16, head_request: bool, connect: bool) -> BodyKind {
    if status == 101 || (connect && (200..300).contains(&status)) {
        BodyKind::Tunnel
    } else if ev.partial
        || head_request
        || status == 204
        || status == 304
        || (100..200).contains(&status)
    {
        BodyKind::None
    } else if ev.info.chunked {
        BodyKind::Chunked
    } else if let Some(n) = ev.info.content_length {
        BodyKind::Length(n)
    } else {
        BodyKind::UntilClose
    }
}

// The per-packet budget depends on this staying small.
const _: () = assert!(std::mem::size_of::<CompactPacket>() == 32);
#[cfg(test)]
mod tests {
    use super::*;

    /// The memory budget (≤ 64 bytes per packet beyond the file, BENCHMARKS.md) rests on these.
    #[test]
    fn per_connection_records_stay_small() {
        assert!(
            std::mem::size_of::<Connection>() <= 192,
            "{}",
            std::mem::size_of::<Connection>()
        );
        assert!(
            std::mem::size_of::<HttpRequest>() <= 224,
            "{}",
            std::mem::size_of::<HttpRequest>()
        );
        assert_eq!(std::mem::size_of::<FlowKey>(), 40);
        assert_eq!(std::mem::size_of::<FlowKey4>(), 16);
    }

    #[test]
    fn flow_key_is_direction_independent() {
        let a: SocketAddr = "10.0.0.1:1000".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:80".parse().unwrap();
        assert_eq!(FlowKey::new(a, b, 6), FlowKey::new(b, a, 6));
        assert_ne!(FlowKey::new(a, b, 6), FlowKey::new(a, b, 17));
        let m: SocketAddr = "[::ffff:10.0.0.1]:1000".parse().unwrap();
        assert_ne!(
            FlowKey::new(a, b, 6),
            FlowKey::new(m, "[::ffff:10.0.0.2]:80".parse().unwrap(), 6)
        );
    }
}
