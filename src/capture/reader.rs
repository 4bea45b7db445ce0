//! Capture files → frames. Recognises pcap (both byte orders, µs and ns timestamps) and pcapng
//! (several sections, several interfaces with their own link type and `if_tsresol`/`if_tsoffset`)
//! by magic number, and walks the records with pcap-file's zero-copy parsers (file headers and
//! pcapng blocks; a classic pcap record, a fixed 16-byte header read here anyway to validate it,
//! is sliced directly).
//!
//! Two byte sources share one record loop: a whole file already in memory (a memory map) and a
//! stream (`-`, a pipe from `tcpdump -w -`), which is read in pieces and handed on record by record
//! as each one completes. Before a record is buffered its length field is checked against
//! [`MAX_RECORD_LEN`], so no allocation is ever sized by an unchecked length.
//!
//! Damage never costs the valid part: a partial last record, garbage after a valid prefix or an
//! absurd length stops reading at that byte offset with a [`CaptureWarning`]; every complete record
//! before it is delivered.

use super::{CaptureError, CaptureWarning, WarningKind};
use pcap_file::pcap::PcapParser;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::blocks::section_header::SectionHeaderOption;
use pcap_file::pcapng::{Block, PcapNgParser};
use pcap_file::{Endianness, PcapError};
use std::io::Read;

/// Largest packet record accepted (captured bytes). tcpdump's default snap length is 262144; a
/// bigger claim means the framing is broken, and nothing is buffered for it.
pub const MAX_RECORD_LEN: u32 = 256 * 1024;
/// Largest non-packet pcapng block (section header, name resolution, statistics …).
pub const MAX_BLOCK_LEN: u32 = 16 * 1024 * 1024;

const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
const PCAPNG_EPB: u32 = 6;
const PCAPNG_SPB: u32 = 3;
const PCAPNG_PB: u32 = 2;

/// Which container the bytes are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureFormat {
    /// Classic libpcap file.
    Pcap { big_endian: bool, nanosecond: bool },
    /// pcapng.
    PcapNg,
}

/// Recognise a capture by its first four bytes; `None` when it is not one.
pub fn sniff_format(head: &[u8]) -> Option<CaptureFormat> {
    let magic: [u8; 4] = head.get(..4)?.try_into().ok()?;
    match u32::from_be_bytes(magic) {
        0xA1B2_C3D4 => Some(CaptureFormat::Pcap {
            big_endian: true,
            nanosecond: false,
        }),
        0xA1B2_3C4D => Some(CaptureFormat::Pcap {
            big_endian: true,
            nanosecond: true,
        }),
        0xD4C3_B2A1 => Some(CaptureFormat::Pcap {
            big_endian: false,
            nanosecond: false,
        }),
        0x4D3C_B2A1 => Some(CaptureFormat::Pcap {
            big_endian: false,
            nanosecond: true,
        }),
        PCAPNG_SHB => Some(CaptureFormat::PcapNg),
        _ => None,
    }
}

/// One capture interface. pcap files have exactly one; pcapng files one per IDB, numbered across
/// all sections in file order (a second section's interface 0 gets the next free index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceInfo {
    /// Index across the whole file, 0-based.
    pub index: u32,
    /// pcapng section the interface belongs to (0 for pcap).
    pub section: u32,
    /// LINKTYPE_ number (1 Ethernet, 113 SLL, 276 SLL2, 101 raw IP …).
    pub link_type: u32,
    pub snaplen: u32,
    /// `if_name`, when given.
    pub name: Option<String>,
    /// `if_description`, when given.
    pub description: Option<String>,
    /// Timestamp units: ticks per second as `(base, exponent)` → base^exponent (10^6 by default).
    pub ts_resolution: TsUnits,
    /// `if_tsoffset`, seconds added to every timestamp.
    pub ts_offset_s: i64,
    /// `opt_comment`s of the IDB.
    pub comments: Vec<String>,
}

/// Timestamp resolution of an interface (`if_tsresol`): one tick is base^-exponent seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TsUnits {
    pub base: u8,
    pub exponent: u8,
}

impl TsUnits {
    pub const MICROS: TsUnits = TsUnits {
        base: 10,
        exponent: 6,
    };
    pub const NANOS: TsUnits = TsUnits {
        base: 10,
        exponent: 9,
    };

    /// Decode the `if_tsresol` byte: high bit clear → 10^-v, set → 2^-v.
    pub fn from_if_tsresol(v: u8) -> TsUnits {
        if v & 0x80 == 0 {
            TsUnits {
                base: 10,
                exponent: v,
            }
        } else {
            TsUnits {
                base: 2,
                exponent: v & 0x7f,
            }
        }
    }

    /// Convert raw ticks to nanoseconds (saturating at the i64 range).
    pub fn ticks_to_ns(self, ticks: u64) -> i64 {
        let ticks = ticks as i128;
        let ns: i128 = match (self.base, self.exponent) {
            (10, e) if e <= 9 => ticks * 10i128.pow(9 - e as u32),
            (10, e) => ticks / 10i128.checked_pow(e as u32 - 9).unwrap_or(i128::MAX),
            (_, e) if e <= 64 => (ticks * 1_000_000_000) >> e,
            _ => 0,
        };
        ns.clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }
}

/// A packet record as the file stores it.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// 1-based, in file order, counting every packet record (as Wireshark's `frame.number`).
    pub number: u64,
    /// Index into the file's interfaces ([`InterfaceInfo::index`]).
    pub interface: u32,
    pub link_type: u32,
    /// Nanoseconds since the Unix epoch, with the interface's resolution and offset applied.
    pub ts_ns: i64,
    /// Length on the wire; larger than `data.len()` when the snap length cut the packet.
    pub orig_len: u32,
    pub data: &'a [u8],
    /// Byte offset of the record in the file/stream.
    pub offset: u64,
}

/// A comment found in the file (section, interface or packet `opt_comment`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureComment {
    /// `None` for section/interface comments, else the frame number.
    pub frame: Option<u64>,
    pub text: String,
}

/// What a read produced besides the frames themselves.
#[derive(Debug, Clone)]
pub struct ReadSummary {
    pub format: CaptureFormat,
    pub interfaces: Vec<InterfaceInfo>,
    pub comments: Vec<CaptureComment>,
    pub frames: u64,
    /// Bytes consumed (the whole valid prefix).
    pub bytes: u64,
    pub warnings: Vec<CaptureWarning>,
}

/// Receives frames as the reader finds them.
pub trait FrameSink {
    /// A new interface was described (before any of its frames).
    fn interface(&mut self, _iface: &InterfaceInfo) {}
    fn frame(&mut self, frame: &Frame<'_>);
}

impl<F: FnMut(&Frame<'_>)> FrameSink for F {
    fn frame(&mut self, frame: &Frame<'_>) {
        self(frame)
    }
}

/// Where record bytes come from.
trait Source {
    /// Bytes available now, starting at the current record.
    fn available(&self) -> &[u8];
    fn consume(&mut self, n: usize);
    /// Make at least `min` bytes available; `Ok(false)` at end of input with fewer.
    fn fill(&mut self, min: usize) -> std::io::Result<bool>;
    /// Offset of `available()[0]` in the input.
    fn offset(&self) -> u64;
}

struct SliceSource<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Source for SliceSource<'_> {
    fn available(&self) -> &[u8] {
        &self.data[self.pos..]
    }
    fn consume(&mut self, n: usize) {
        self.pos += n;
    }
    fn fill(&mut self, min: usize) -> std::io::Result<bool> {
        Ok(self.data.len() - self.pos >= min)
    }
    fn offset(&self) -> u64 {
        self.pos as u64
    }
}

struct ReadSource<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    consumed: u64,
    eof: bool,
}

impl<R: Read> Source for ReadSource<R> {
    fn available(&self) -> &[u8] {
        &self.buf[self.start..]
    }
    fn consume(&mut self, n: usize) {
        self.start += n;
        self.consumed += n as u64;
    }
    fn fill(&mut self, min: usize) -> std::io::Result<bool> {
        while self.buf.len() - self.start < min {
            if self.eof {
                return Ok(false);
            }
            if self.start > 0
                && (self.start >= self.buf.len() / 2 || self.buf.len() == self.buf.capacity())
            {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            // Read at least what the record needs, in 256 KiB steps; `min` is bounded by the
            // callers' length checks.
            let want = (min - (self.buf.len() - self.start)).max(256 * 1024);
            let old = self.buf.len();
            self.buf.resize(old + want, 0);
            let n = loop {
                match self.inner.read(&mut self.buf[old..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.buf.truncate(old);
                        return Err(e);
                    }
                }
            };
            self.buf.truncate(old + n);
            if n == 0 {
                self.eof = true;
            }
        }
        Ok(true)
    }
    fn offset(&self) -> u64 {
        self.consumed
    }
}

/// Read a capture held entirely in memory (e.g. a memory-mapped file).
pub fn read_slice<F: FrameSink + ?Sized>(
    file: &str,
    data: &[u8],
    sink: &mut F,
) -> Result<ReadSummary, CaptureError> {
    read_source(file, &mut SliceSource { data, pos: 0 }, sink)
}

/// Read a capture stream (standard input, a pipe): records are delivered as they complete.
pub fn read_stream<R: Read, F: FrameSink + ?Sized>(
    file: &str,
    reader: R,
    sink: &mut F,
) -> Result<ReadSummary, CaptureError> {
    let mut src = ReadSource {
        inner: reader,
        buf: Vec::with_capacity(512 * 1024),
        start: 0,
        consumed: 0,
        eof: false,
    };
    read_source(file, &mut src, sink)
}

// Generic rather than `dyn`: the per-record calls are inlined for the in-memory source.
fn read_source<S: Source, F: FrameSink + ?Sized>(
    file: &str,
    src: &mut S,
    sink: &mut F,
) -> Result<ReadSummary, CaptureError> {
    let io = |e: std::io::Error| CaptureError::Io {
        file: file.to_string(),
        source: e,
    };
    src.fill(4).map_err(io)?;
    let head = src.available();
    if head.is_empty() {
        return Err(CaptureError::Empty {
            file: file.to_string(),
        });
    }
    let Some(format) = sniff_format(head) else {
        return Err(CaptureError::NotACapture {
            file: file.to_string(),
            found: describe_magic(head),
        });
    };
    let mut st = ReadState {
        file,
        summary: ReadSummary {
            format,
            interfaces: vec![],
            comments: vec![],
            frames: 0,
            bytes: 0,
            warnings: vec![],
        },
    };
    match format {
        CaptureFormat::Pcap { .. } => st.read_pcap(src, sink)?,
        CaptureFormat::PcapNg => st.read_pcapng(src, sink)?,
    }
    st.summary.bytes = src.offset();
    Ok(st.summary)
}

/// Ask the CPU for the bytes a few records ahead. Records are small (a short packet is ~90
/// bytes) and each one's headers are read once, so without this every record starts with a
/// cache miss: the hardware prefetcher stops at each 4 KiB page of the file.
#[inline(always)]
fn prefetch_ahead(rest: &[u8]) {
    const AHEAD: usize = 2048;
    #[cfg(target_arch = "x86_64")]
    if let Some(b) = rest.get(AHEAD) {
        // SAFETY: a prefetch is only a hint; it never faults and the address is in the slice.
        #[allow(unused_unsafe)]
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                (b as *const u8).cast(),
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = rest;
}

/// Say what the first bytes look like, for the "not a capture" error.
fn describe_magic(head: &[u8]) -> String {
    let hex: Vec<String> = head.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let text = head
        .iter()
        .take(4)
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace());
    format!(
        "{}{}",
        hex.join(" "),
        if text {
            format!(
                " (text \"{}\")",
                crate::sanitize::escape_bytes(&head[..head.len().min(4)])
            )
        } else {
            String::new()
        }
    )
}

struct ReadState<'f> {
    file: &'f str,
    summary: ReadSummary,
}

impl ReadState<'_> {
    fn warn(&mut self, offset: u64, kind: WarningKind) {
        self.summary.warnings.push(CaptureWarning {
            file: self.file.to_string(),
            offset: Some(offset),
            frame: None,
            kind,
        });
    }

    fn fatal(&self, offset: u64, what: String) -> CaptureError {
        CaptureError::Malformed {
            file: self.file.to_string(),
            offset,
            what,
        }
    }

    /// Ensure `n` bytes; on end of input record a truncation warning and return false.
    fn need<S: Source>(
        &mut self,
        src: &mut S,
        n: usize,
        what: &'static str,
    ) -> Result<bool, CaptureError> {
        if src.fill(n).map_err(|e| CaptureError::Io {
            file: self.file.to_string(),
            source: e,
        })? {
            return Ok(true);
        }
        let have = src.available().len();
        if have > 0 {
            self.warn(
                src.offset(),
                WarningKind::TruncatedRecord {
                    what,
                    have: have as u64,
                    need: n as u64,
                },
            );
        }
        Ok(false)
    }

    fn read_pcap<S: Source, F: FrameSink + ?Sized>(
        &mut self,
        src: &mut S,
        sink: &mut F,
    ) -> Result<(), CaptureError> {
        if !src.fill(24).map_err(|e| CaptureError::Io {
            file: self.file.to_string(),
            source: e,
        })? {
            return Err(self.fatal(
                0,
                format!(
                    "pcap file header is {} bytes, expected 24",
                    src.available().len()
                ),
            ));
        }
        let (_, parser) = PcapParser::new(src.available())
            .map_err(|e| self.fatal(0, format!("pcap header: {e}")))?;
        let header = parser.header();
        let big = header.endianness == Endianness::Big;
        let nanos = header.ts_resolution == pcap_file::TsResolution::NanoSecond;
        let snaplen = header.snaplen;
        let link_type: u32 = header.datalink.into();
        src.consume(24);
        let iface = InterfaceInfo {
            index: 0,
            section: 0,
            link_type,
            snaplen,
            name: None,
            description: None,
            ts_resolution: if nanos {
                TsUnits::NANOS
            } else {
                TsUnits::MICROS
            },
            ts_offset_s: 0,
            comments: vec![],
        };
        sink.interface(&iface);
        self.summary.interfaces.push(iface);
        let rd = |b: &[u8]| -> u32 {
            let a: [u8; 4] = b[..4].try_into().unwrap_or([0; 4]);
            if big {
                u32::from_be_bytes(a)
            } else {
                u32::from_le_bytes(a)
            }
        };
        let frac_limit = if nanos { 1_000_000_000 } else { 1_000_000 };
        let mut over_snaplen = 0u64;
        let mut first_over = 0u64;
        loop {
            if !self.need(src, 16, "pcap record header")? {
                break;
            }
            let offset = src.offset();
            let hdr = src.available();
            prefetch_ahead(hdr);
            let (ts_sec, ts_frac, incl_len, orig_len) =
                (rd(&hdr[0..]), rd(&hdr[4..]), rd(&hdr[8..]), rd(&hdr[12..]));
            if incl_len > MAX_RECORD_LEN {
                self.warn(
                    offset,
                    WarningKind::RecordTooLarge {
                        len: incl_len as u64,
                        limit: MAX_RECORD_LEN as u64,
                    },
                );
                break;
            }
            if ts_frac >= frac_limit || incl_len > orig_len {
                let why = if incl_len > orig_len {
                    format!("captured length {incl_len} exceeds original length {orig_len}")
                } else {
                    format!("timestamp fraction {ts_frac} is not below {frac_limit}")
                };
                let rest = src.available().len() as u64;
                self.warn(
                    offset,
                    WarningKind::Garbage {
                        why,
                        ignored_bytes: rest,
                    },
                );
                break;
            }
            if snaplen != 0 && incl_len > snaplen {
                if over_snaplen == 0 {
                    first_over = offset;
                }
                over_snaplen += 1;
            }
            if !self.need(src, 16 + incl_len as usize, "pcap record")? {
                break;
            }
            // The record header was read above and `need` guaranteed the bytes: slicing here
            // is what `PcapParser::next_raw_packet` would do, without reading the header again.
            let data = &src.available()[16..16 + incl_len as usize];
            self.summary.frames += 1;
            let ts_ns = (ts_sec as i64) * 1_000_000_000
                + if nanos {
                    ts_frac as i64
                } else {
                    ts_frac as i64 * 1000
                };
            sink.frame(&Frame {
                number: self.summary.frames,
                interface: 0,
                link_type,
                ts_ns,
                orig_len,
                data,
                offset,
            });
            src.consume(16 + incl_len as usize);
        }
        if over_snaplen > 0 {
            self.warn(
                first_over,
                WarningKind::RecordOverSnaplen {
                    count: over_snaplen,
                    snaplen,
                },
            );
        }
        Ok(())
    }

    fn read_pcapng<S: Source, F: FrameSink + ?Sized>(
        &mut self,
        src: &mut S,
        sink: &mut F,
    ) -> Result<(), CaptureError> {
        if !self.need(src, 28, "pcapng section header")? {
            return Err(self.fatal(0, "pcapng section header block is incomplete".into()));
        }
        // pcap-file's parser keeps the section's byte order; it is recreated at each SHB so that
        // a section in the other byte order is read correctly.
        let mut parser: Option<PcapNgParser> = None;
        let mut big = false;
        let mut section: u32 = 0;
        let mut first_section = true;
        // Global interface indices of the current section's interfaces.
        let mut section_ifaces: Vec<u32> = Vec::new();
        loop {
            if !self.need(src, 12, "pcapng block header")? {
                break;
            }
            let offset = src.offset();
            let avail = src.available();
            let btype_raw: [u8; 4] = avail[0..4].try_into().unwrap_or_default();
            let blen_raw: [u8; 4] = avail[4..8].try_into().unwrap_or_default();
            let is_shb = u32::from_le_bytes(btype_raw) == PCAPNG_SHB;
            if is_shb {
                match &avail[8..12] {
                    [0x1A, 0x2B, 0x3C, 0x4D] => big = true,
                    [0x4D, 0x3C, 0x2B, 0x1A] => big = false,
                    other => {
                        let why = format!(
                            "section header byte-order magic {other:02x?} is neither 1a2b3c4d nor 4d3c2b1a"
                        );
                        if first_section {
                            return Err(self.fatal(offset + 8, why));
                        }
                        let rest = avail.len() as u64;
                        self.warn(
                            offset,
                            WarningKind::Garbage {
                                why,
                                ignored_bytes: rest,
                            },
                        );
                        break;
                    }
                }
            }
            let (btype, blen) = if big {
                (u32::from_be_bytes(btype_raw), u32::from_be_bytes(blen_raw))
            } else {
                (u32::from_le_bytes(btype_raw), u32::from_le_bytes(blen_raw))
            };
            let is_packet = matches!(btype, PCAPNG_EPB | PCAPNG_SPB | PCAPNG_PB);
            let limit = if is_packet {
                MAX_RECORD_LEN + 64 * 1024
            } else {
                MAX_BLOCK_LEN
            };
            if blen < 12 || blen % 4 != 0 {
                let rest = avail.len() as u64;
                let why = format!(
                    "block type {btype:#x} has length {blen} (must be a multiple of 4, at least 12)"
                );
                if first_section {
                    return Err(self.fatal(offset, why));
                }
                self.warn(
                    offset,
                    WarningKind::Garbage {
                        why,
                        ignored_bytes: rest,
                    },
                );
                break;
            }
            if blen > limit {
                self.warn(
                    offset,
                    WarningKind::RecordTooLarge {
                        len: blen as u64,
                        limit: limit as u64,
                    },
                );
                break;
            }
            if !self.need(src, blen as usize, "pcapng block")? {
                break;
            }
            let block_bytes = &src.available()[..blen as usize];
            if is_shb {
                match PcapNgParser::new(block_bytes) {
                    Ok((_, p)) => {
                        if !first_section {
                            section += 1;
                        }
                        first_section = false;
                        for opt in &p.section().options {
                            if let SectionHeaderOption::Comment(c) = opt {
                                self.summary.comments.push(CaptureComment {
                                    frame: None,
                                    text: c.to_string(),
                                });
                            }
                        }
                        parser = Some(p);
                        section_ifaces.clear();
                    }
                    Err(e) => {
                        let why = format!("section header block: {e}");
                        if first_section {
                            return Err(self.fatal(offset, why));
                        }
                        let rest = src.available().len() as u64;
                        self.warn(
                            offset,
                            WarningKind::Garbage {
                                why,
                                ignored_bytes: rest,
                            },
                        );
                        break;
                    }
                }
                src.consume(blen as usize);
                continue;
            }
            let Some(p) = parser.as_mut() else { break };
            let block = match p.next_block(block_bytes) {
                Ok((_, b)) => b,
                Err(e) => {
                    let why = format!("block type {btype:#x}: {}", describe_pcap_error(&e));
                    // When the block's trailing length matches its leading one the framing is
                    // intact: skip just this block. Otherwise nothing after it can be trusted.
                    let tail: [u8; 4] = block_bytes[blen as usize - 4..]
                        .try_into()
                        .unwrap_or_default();
                    let trailer = if big {
                        u32::from_be_bytes(tail)
                    } else {
                        u32::from_le_bytes(tail)
                    };
                    if trailer == blen {
                        self.warn(offset, WarningKind::BadBlock { why });
                        src.consume(blen as usize);
                        continue;
                    }
                    let rest = src.available().len() as u64;
                    self.warn(
                        offset,
                        WarningKind::Garbage {
                            why,
                            ignored_bytes: rest,
                        },
                    );
                    break;
                }
            };
            match block {
                Block::InterfaceDescription(idb) => {
                    let mut iface = InterfaceInfo {
                        index: self.summary.interfaces.len() as u32,
                        section,
                        link_type: idb.linktype.into(),
                        snaplen: idb.snaplen,
                        name: None,
                        description: None,
                        ts_resolution: TsUnits::MICROS,
                        ts_offset_s: 0,
                        comments: vec![],
                    };
                    for opt in &idb.options {
                        match opt {
                            InterfaceDescriptionOption::IfName(n) => {
                                iface.name = Some(n.to_string())
                            }
                            InterfaceDescriptionOption::IfDescription(d) => {
                                iface.description = Some(d.to_string())
                            }
                            InterfaceDescriptionOption::IfTsResol(r) => {
                                iface.ts_resolution = TsUnits::from_if_tsresol(*r)
                            }
                            InterfaceDescriptionOption::IfTsOffset(o) => {
                                iface.ts_offset_s = *o as i64
                            }
                            InterfaceDescriptionOption::Comment(c) => {
                                iface.comments.push(c.to_string())
                            }
                            _ => {}
                        }
                    }
                    section_ifaces.push(iface.index);
                    sink.interface(&iface);
                    self.summary.interfaces.push(iface);
                }
                Block::EnhancedPacket(epb) => {
                    let ts_ticks = epb.timestamp.as_nanos() as u64; // pcap-file 2.0 keeps raw ticks here
                    let comment = epb.options.iter().find_map(|o| match o {
                        EnhancedPacketOption::Comment(c) => Some(c.to_string()),
                        _ => None,
                    });
                    self.packet(
                        sink,
                        &section_ifaces,
                        offset,
                        epb.interface_id,
                        ts_ticks,
                        epb.original_len,
                        &epb.data,
                        comment,
                    );
                }
                Block::SimplePacket(spb) => {
                    // SPB data carries the block padding; the captured length is the smaller of the
                    // original length and interface 0's snap length.
                    let snap = section_ifaces
                        .first()
                        .and_then(|&g| self.summary.interfaces.get(g as usize))
                        .map(|i| if i.snaplen == 0 { u32::MAX } else { i.snaplen })
                        .unwrap_or(u32::MAX);
                    let cap = (spb.original_len.min(snap) as usize).min(spb.data.len());
                    self.packet_untimed(
                        sink,
                        &section_ifaces,
                        offset,
                        spb.original_len,
                        &spb.data[..cap],
                    );
                }
                Block::Packet(pb) => {
                    let cap = (pb.captured_len as usize).min(pb.data.len());
                    self.packet(
                        sink,
                        &section_ifaces,
                        offset,
                        pb.interface_id as u32,
                        pb.timestamp,
                        pb.original_len,
                        &pb.data[..cap],
                        None,
                    );
                }
                _ => {}
            }
            src.consume(blen as usize);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn packet<F: FrameSink + ?Sized>(
        &mut self,
        sink: &mut F,
        section_ifaces: &[u32],
        offset: u64,
        local_iface: u32,
        ticks: u64,
        orig_len: u32,
        data: &[u8],
        comment: Option<String>,
    ) {
        let Some(iface) = section_ifaces
            .get(local_iface as usize)
            .and_then(|&g| self.summary.interfaces.get(g as usize))
        else {
            // One warning per interface number, counting its packets.
            let known = self
                .summary
                .warnings
                .iter_mut()
                .find_map(|w| match &mut w.kind {
                    WarningKind::UnknownInterface { interface, packets }
                        if *interface == local_iface =>
                    {
                        Some(packets)
                    }
                    _ => None,
                });
            match known {
                Some(n) => *n += 1,
                None => self.warn(
                    offset,
                    WarningKind::UnknownInterface {
                        interface: local_iface,
                        packets: 1,
                    },
                ),
            }
            return;
        };
        let ts_ns = iface
            .ts_resolution
            .ticks_to_ns(ticks)
            .saturating_add(iface.ts_offset_s.saturating_mul(1_000_000_000));
        let (index, link_type) = (iface.index, iface.link_type);
        self.summary.frames += 1;
        if let Some(text) = comment {
            self.summary.comments.push(CaptureComment {
                frame: Some(self.summary.frames),
                text,
            });
        }
        sink.frame(&Frame {
            number: self.summary.frames,
            interface: index,
            link_type,
            ts_ns,
            orig_len: orig_len.max(data.len() as u32),
            data,
            offset,
        });
    }

    fn packet_untimed<F: FrameSink + ?Sized>(
        &mut self,
        sink: &mut F,
        section_ifaces: &[u32],
        offset: u64,
        orig_len: u32,
        data: &[u8],
    ) {
        // A simple packet block has no timestamp: it is given 0 (1970) rather than a guess.
        self.packet(sink, section_ifaces, offset, 0, 0, orig_len, data, None)
    }
}

fn describe_pcap_error(e: &PcapError) -> String {
    match e {
        PcapError::IncompleteBuffer => "block body shorter than its fields claim".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsresol_scaling() {
        assert_eq!(
            TsUnits::from_if_tsresol(6).ticks_to_ns(1_500_000),
            1_500_000_000
        );
        assert_eq!(TsUnits::from_if_tsresol(9).ticks_to_ns(7), 7);
        assert_eq!(TsUnits::from_if_tsresol(3).ticks_to_ns(2), 2_000_000);
        assert_eq!(TsUnits::from_if_tsresol(12).ticks_to_ns(5_000), 5);
        // 2^-10 s ticks: 1024 ticks = 1 s.
        assert_eq!(
            TsUnits::from_if_tsresol(0x8a).ticks_to_ns(1024),
            1_000_000_000
        );
        assert_eq!(TsUnits::from_if_tsresol(0xff).ticks_to_ns(u64::MAX), 0);
        assert_eq!(TsUnits::from_if_tsresol(0x7f).ticks_to_ns(u64::MAX), 0);
    }

    #[test]
    fn magic_recognition() {
        assert_eq!(
            sniff_format(&[0xd4, 0xc3, 0xb2, 0xa1]),
            Some(CaptureFormat::Pcap {
                big_endian: false,
                nanosecond: false
            })
        );
        assert_eq!(
            sniff_format(&[0x0a, 0x0d, 0x0d, 0x0a]),
            Some(CaptureFormat::PcapNg)
        );
        assert_eq!(sniff_format(b"*fil"), None);
        assert_eq!(sniff_format(&[0xd4]), None);
        assert!(describe_magic(b"*filter").contains("text"));
    }

    #[test]
    fn empty_and_foreign_inputs_are_errors() {
        let mut sink = |_: &Frame<'_>| {};
        assert!(matches!(
            read_slice("e", b"", &mut sink),
            Err(CaptureError::Empty { .. })
        ));
        let err = read_slice("x.txt", b"hello world", &mut sink)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("x.txt") && err.contains("68 65 6c 6c"),
            "{err}"
        );
    }
}
