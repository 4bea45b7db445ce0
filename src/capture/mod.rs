//! Capture engine: pcap/pcapng bytes → packets → TCP connections → HTTP/1.x requests.
//!
//! * [`reader`] — container formats (pcap, pcapng), magic-number detection, memory-mapped and
//!   streamed input, bounded record lengths.
//! * [`link`] — link types → IP → TCP/UDP/ICMP via etherparse lax slicing.
//! * [`reassembly`] — per-direction TCP reassembly, first-wins overlap policy, bounded buffering.
//! * [`http`] — nom parsers and the per-direction HTTP/1.x message state machine.
//! * [`engine`] — ties them together into a [`Capture`]: connections, requests, packet records.
//! * [`synth`] — writes synthetic captures (tests, benchmark, the embedded scenario).
//!
//! Everything here works on bytes; the only I/O is reading the input given.
//!
//! # Brief overview
//!
//! ```
//! use hoptrace::capture::{Capture, CaptureOptions, synth};
//! let bytes = synth::demo_scenario();
//! let cap = Capture::from_bytes(0, "demo.pcap", &bytes, CaptureOptions::default()).unwrap();
//! let req = &cap.requests[0];
//! let conn = &cap.connections[req.connection as usize];
//! assert_eq!((req.method(), req.target()), (&b"GET"[..], &b"/"[..]));
//! assert_eq!(conn.client(), req.client);
//! assert!(conn.client_isn().is_some()); // matches the same connection across NAT
//! assert_eq!(req.response.as_ref().unwrap().status, 200);
//! // With keep_packets (the default), every packet of the connection:
//! let frames: Vec<u64> = cap.frames_of(conn.id).collect();
//! assert_eq!(cap.packet(frames[0]).unwrap().tcp_flags.to_string(), "S");
//! ```
//!
//! Times are nanoseconds since the Unix epoch; frame numbers are 1-based as in Wireshark; text
//! from packets stays bytes (print it through [`crate::sanitize::escape_bytes`]).

pub mod engine;
pub mod http;
pub mod link;
pub mod model;
pub mod reader;
pub mod reassembly;
pub mod synth;
pub mod time;

pub use engine::{Capture, CaptureOptions, CaptureStats};
pub use model::{
    CaptureIndex, Connection, ConnectionId, HttpRequest, HttpResponse, InitiatorEvidence,
    PacketRecord, RequestId, Side, TcpState,
};
pub use reader::{CaptureFormat, InterfaceInfo};
pub use reassembly::ReassemblyLimits;

/// A capture that cannot be used at all.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{file}: empty file (expected a pcap or pcapng capture)")]
    Empty { file: String },
    #[error(
        "{file}: not a capture: first bytes are {found}; expected a pcap magic (a1b2c3d4 or a1b23c4d, either byte order) or pcapng (0a0d0d0a)"
    )]
    NotACapture { file: String, found: String },
    #[error("{file}: byte offset {offset}: {what}")]
    Malformed {
        file: String,
        offset: u64,
        what: String,
    },
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
}

/// Something the user should know about a capture that was still used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureWarning {
    pub file: String,
    /// Byte offset of the record concerned, when there is one.
    pub offset: Option<u64>,
    pub frame: Option<u64>,
    pub kind: WarningKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarningKind {
    /// The input ended inside a record: everything before it was used.
    TruncatedRecord {
        what: &'static str,
        have: u64,
        need: u64,
    },
    /// A record claims more bytes than any sane capture holds; reading stopped there.
    RecordTooLarge { len: u64, limit: u64 },
    /// Records longer than the file's snap length (kept).
    RecordOverSnaplen { count: u64, snaplen: u32 },
    /// Bytes that are not a valid record follow the valid prefix; reading stopped there.
    Garbage { why: String, ignored_bytes: u64 },
    /// pcapng packets name an interface their section never described (skipped); the offset is
    /// the first one's.
    UnknownInterface { interface: u32, packets: u64 },
    /// A pcapng block whose content does not parse, inside intact framing (skipped).
    BadBlock { why: String },
    /// Frames with a link type hoptrace does not decode (counted, not analysed).
    UnsupportedLinkType { link_type: u32, frames: u64 },
    /// Frames cut by the snap length: their HTTP messages are marked partial.
    SnaplenCut { frames: u64 },
}

impl std::fmt::Display for CaptureWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(o) = self.offset {
            write!(f, ": byte offset {o}")?;
        }
        if let Some(n) = self.frame {
            write!(f, ": frame {n}")?;
        }
        match &self.kind {
            WarningKind::TruncatedRecord { what, have, need } => write!(
                f,
                ": file ends inside a {what} ({have} of {need} bytes present); every complete record before it was used"
            ),
            WarningKind::RecordTooLarge { len, limit } => write!(
                f,
                ": record length {len} exceeds the {limit}-byte limit; the framing is broken, reading stopped here (earlier records used)"
            ),
            WarningKind::RecordOverSnaplen { count, snaplen } => {
                write!(
                    f,
                    ": {count} record(s) longer than the snap length {snaplen} (kept)"
                )
            }
            WarningKind::Garbage { why, ignored_bytes } => write!(
                f,
                ": not a valid record ({why}); the remaining {ignored_bytes} bytes were ignored (earlier records used)"
            ),
            WarningKind::UnknownInterface { interface, packets } => write!(
                f,
                ": {packets} packet(s) name interface {interface}, which their section does not describe (skipped)"
            ),
            WarningKind::BadBlock { why } => write!(f, ": {why}; block skipped, reading continues"),
            WarningKind::UnsupportedLinkType { link_type, frames } => write!(
                f,
                ": {frames} frame(s) with unsupported link type {link_type} (counted, not analysed)"
            ),
            WarningKind::SnaplenCut { frames } => write!(
                f,
                ": {frames} frame(s) cut by the snap length (flagged; HTTP messages in them are marked partial)"
            ),
        }
    }
}
