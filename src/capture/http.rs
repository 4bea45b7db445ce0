//! HTTP/1.x over reassembled TCP streams, parsed with nom.
//!
//! Each direction of a connection is an [`HttpStream`]: it recognises by content whether it
//! carries requests (`METHOD SP target SP HTTP/1.x`) or responses (`HTTP/1.x SP status`), cuts the
//! byte stream into message heads and bodies (Content-Length, `Transfer-Encoding: chunked`, or
//! until close), and reports them to an [`HttpSink`]. Bodies are counted, never buffered; heads are
//! buffered up to [`MAX_HEAD_LEN`]. Bytes are kept raw: nothing here decodes text.
//!
//! Loss handling: a hole of known length inside a body of known length is skipped in step. A hole
//! inside a head, inside chunked framing, or a head larger than the limit marks the message
//! partial and puts the stream into *resync*: it waits for a delivered segment that starts with a
//! request/status line. A capture that starts mid-connection starts in resync too.

use nom::IResult;
use nom::Parser;
use nom::bytes::complete::{tag, take_till1, take_while, take_while1};
use nom::character::complete::satisfy;
use nom::combinator::opt;

/// Largest message head (request/status line plus header fields) buffered.
pub const MAX_HEAD_LEN: usize = 64 * 1024;
/// Largest chunk-size or trailer line.
const MAX_LINE_LEN: usize = 8 * 1024;

/// `tchar` (RFC 9110 §5.6.2).
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// A parsed request line: `request-line = method SP request-target SP HTTP-version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLine<'a> {
    pub method: &'a [u8],
    pub target: &'a [u8],
    /// Minor version: HTTP/1.0 → 0, HTTP/1.1 → 1.
    pub minor: u8,
}

/// `request-line = method SP request-target SP "HTTP/1." DIGIT` (line ending excluded).
pub fn request_line(i: &[u8]) -> IResult<&[u8], RequestLine<'_>> {
    let (i, (method, _, target, _, minor)) = (
        take_while1(|c: u8| c.is_ascii_uppercase() || c == b'-' || c == b'_'),
        tag(&b" "[..]),
        take_till1(|c: u8| c == b' ' || c == b'\r' || c == b'\n'),
        tag(&b" HTTP/1."[..]),
        satisfy(|c: char| c.is_ascii_digit()),
    )
        .parse(i)?;
    Ok((
        i,
        RequestLine {
            method,
            target,
            minor: minor as u8 - b'0',
        },
    ))
}

/// `status-line = "HTTP/1." DIGIT SP 3DIGIT [ SP reason-phrase ]` (line ending excluded).
pub fn status_line(i: &[u8]) -> IResult<&[u8], (u8, u16)> {
    let digit = || satisfy(|c: char| c.is_ascii_digit());
    let (i, (_, minor, _, a, b, c, _)) = (
        tag(&b"HTTP/1."[..]),
        satisfy(|c: char| c.is_ascii_digit()),
        tag(&b" "[..]),
        digit(),
        digit(),
        digit(),
        opt((tag(&b" "[..]), take_while(|c: u8| c != b'\r' && c != b'\n'))),
    )
        .parse(i)?;
    let d = |c: char| c as u16 - '0' as u16;
    Ok((i, (minor as u8 - b'0', d(a) * 100 + d(b) * 10 + d(c))))
}

/// `field-line = field-name ":" OWS field-value OWS` → (name, value without surrounding OWS).
pub fn field_line(i: &[u8]) -> IResult<&[u8], (&[u8], &[u8])> {
    let (rest, (name, _, _)) = (
        take_while1(is_tchar),
        tag(&b":"[..]),
        take_while(|c| c == b' ' || c == b'\t'),
    )
        .parse(i)?;
    let end = rest
        .iter()
        .rposition(|&c| c != b' ' && c != b'\t' && c != b'\r')
        .map_or(0, |p| p + 1);
    Ok((&rest[rest.len()..], (name, &rest[..end])))
}

/// `chunk-size [ chunk-ext ]` → size (hex, at most 15 digits so it cannot overflow).
pub fn chunk_size_line(i: &[u8]) -> IResult<&[u8], u64> {
    let (rest, hex) = take_while1(|c: u8| c.is_ascii_hexdigit()).parse(i)?;
    if hex.len() > 15 {
        return Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::TooLarge,
        )));
    }
    let v = hex.iter().fold(0u64, |acc, &c| {
        acc * 16 + (c as char).to_digit(16).unwrap_or(0) as u64
    });
    Ok((rest, v))
}

/// Lines of a head, without line endings (CRLF or bare LF); empty lines are skipped.
pub fn head_lines(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    HeadLines { rest: Some(head) }
}

/// [`head_lines`]: the same lines as `split(b'\n')` with `\r` stripped and empty ones dropped,
/// found with `memchr` (this runs over every head several times).
struct HeadLines<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> Iterator for HeadLines<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            let rest = self.rest?;
            let line = match memchr::memchr(b'\n', rest) {
                Some(nl) => {
                    self.rest = Some(&rest[nl + 1..]);
                    &rest[..nl]
                }
                None => {
                    self.rest = None;
                    rest
                }
            };
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.is_empty() {
                return Some(line);
            }
        }
    }
}

/// Header fields of a head (the first line is skipped).
pub fn header_fields(head: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    head_lines(head)
        .skip(1)
        .filter_map(|l| field_line(l).ok().map(|(_, f)| f))
}

/// The framing facts a head gives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeadInfo {
    pub content_length: Option<u64>,
    /// Content-Length present but not a valid single number.
    pub bad_content_length: bool,
    pub chunked: bool,
    pub connection_close: bool,
    pub upgrade: bool,
    /// Byte range of the Host value within the head.
    pub host: Option<(u32, u32)>,
}

/// Read Host, Content-Length, Transfer-Encoding and Connection from a head. A plain scan (no
/// parser combinators): it runs on every message, and only four names matter.
pub fn head_info(head: &[u8]) -> HeadInfo {
    let mut info = HeadInfo::default();
    let base = head.as_ptr() as usize;
    for line in head_lines(head).skip(1) {
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = &line[..colon];
        let value = line[colon + 1..].trim_ascii();
        match name.len() {
            4 if info.host.is_none() && name.eq_ignore_ascii_case(b"host") => {
                let s = value.as_ptr() as usize - base;
                info.host = Some((s as u32, (s + value.len()) as u32));
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                let parsed = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok());
                match (parsed, info.content_length) {
                    (Some(v), None) => info.content_length = Some(v),
                    (Some(v), Some(old)) if v == old => {}
                    _ => info.bad_content_length = true,
                }
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                // Chunked only counts when it is the final coding.
                let last = value.rsplit(|&c| c == b',').next().unwrap_or(b"");
                info.chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for tok in value.split(|&c| c == b',') {
                    let tok = tok.trim_ascii();
                    if tok.eq_ignore_ascii_case(b"close") {
                        info.connection_close = true;
                    } else if tok.eq_ignore_ascii_case(b"upgrade") {
                        info.upgrade = true;
                    }
                }
            }
            _ => {}
        }
    }
    info
}

/// Does this look like the start of a request or response? Used to recognise HTTP and to resync.
pub fn looks_like_request(b: &[u8]) -> bool {
    let n = b.iter().take(21).position(|&c| c == b' ');
    matches!(n, Some(1..=20))
        && b[..n.unwrap_or(0)]
            .iter()
            .all(|&c| c.is_ascii_uppercase() || c == b'-' || c == b'_')
}

pub fn looks_like_response(b: &[u8]) -> bool {
    b.starts_with(b"HTTP/1.")
}

/// Classify the first bytes of a message: `Unknown` when too short to tell.
fn classify(b: &[u8]) -> Role {
    if looks_like_request(b) {
        Role::Requests
    } else if looks_like_response(b) {
        Role::Responses
    } else if (b.len() < 7 && b"HTTP/1.".starts_with(b))
        || (b.len() < 21
            && b.iter()
                .all(|&c| c.is_ascii_uppercase() || c == b'-' || c == b'_'))
    {
        Role::Unknown
    } else {
        Role::NotHttp
    }
}

/// Which kind of messages a direction carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Unknown,
    Requests,
    Responses,
    NotHttp,
}

/// How the body of the message just parsed is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    None,
    Length(u64),
    Chunked,
    UntilClose,
    /// The connection stops being HTTP (CONNECT tunnel, 101 Switching Protocols).
    Tunnel,
}

/// A complete (or partial) head handed to the sink.
pub struct HeadEvent<'a> {
    pub role: Role,
    /// Raw head bytes, line endings included, final empty line excluded.
    pub head: &'a [u8],
    pub info: HeadInfo,
    pub first_frame: u64,
    pub first_ts_ns: i64,
    pub last_frame: u64,
    pub last_ts_ns: i64,
    /// The head was cut by a hole: only complete lines are in `head`.
    pub partial: bool,
}

/// Receives messages from an [`HttpStream`].
pub trait HttpSink {
    /// A head was parsed; the sink decides how the body is delimited (a response's depends on
    /// its request).
    fn head(&mut self, ev: HeadEvent<'_>) -> BodyKind;
    /// `n` body bytes of the current message (after chunk framing is removed).
    fn body(&mut self, role: Role, n: u64);
    /// The current message ended at `frame`; `partial` when bytes of it were lost.
    fn end(&mut self, role: Role, frame: u64, ts_ns: i64, partial: bool);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    SizeLine,
    Data(u64),
    DataEnd,
    Trailer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Head,
    Length(u64),
    Chunked(Chunk),
    UntilClose,
    Resync,
    Off,
}

/// One direction of an HTTP/1.x conversation.
#[derive(Debug)]
pub struct HttpStream {
    pub role: Role,
    mode: Mode,
    /// Head or chunk-framing line being accumulated.
    buf: Vec<u8>,
    first: Option<(u64, i64)>,
    last: (u64, i64),
    /// Bytes of the current message were lost.
    damaged: bool,
    in_message: bool,
    /// The current head's first line has been seen complete (and judged).
    first_line_done: bool,
}

impl HttpStream {
    /// `synced`: the stream's first byte is known (the SYN was seen), so the first bytes decide
    /// whether this is HTTP at all. Otherwise the stream waits for a message start.
    pub fn new(synced: bool) -> Self {
        HttpStream {
            role: Role::Unknown,
            mode: if synced { Mode::Head } else { Mode::Resync },
            buf: Vec::new(),
            first: None,
            last: (0, 0),
            damaged: false,
            in_message: false,
            first_line_done: false,
        }
    }

    pub fn is_off(&self) -> bool {
        self.mode == Mode::Off
    }

    /// Switch the stream off (the other direction became a tunnel).
    pub fn turn_off(&mut self) {
        self.mode = Mode::Off;
        self.buf = Vec::new();
    }

    /// Bytes held (bounded by [`MAX_HEAD_LEN`] plus one segment).
    pub fn buffered(&self) -> usize {
        self.buf.capacity()
    }

    /// Give up on the head being collected (a capture-wide memory bound was hit): it is handed
    /// on as partial with the lines it has, and the stream waits for the next message start.
    pub fn abandon_head(&mut self, sink: &mut dyn HttpSink) {
        if self.mode == Mode::Head && self.in_message {
            let (f, t) = self.last;
            self.damaged = true;
            self.emit_partial_head(f, t, sink);
            self.mode = Mode::Resync;
        }
        self.buf = Vec::new();
    }

    /// Feed in-order stream bytes from one segment.
    pub fn data(&mut self, mut bytes: &[u8], frame: u64, ts_ns: i64, sink: &mut dyn HttpSink) {
        if self.mode == Mode::Resync {
            // Only a segment boundary can be trusted as a message start.
            let ok = match self.role {
                Role::Requests => looks_like_request(bytes),
                Role::Responses => looks_like_response(bytes),
                _ => looks_like_request(bytes) || bytes.starts_with(b"HTTP/1."),
            };
            if !ok {
                return;
            }
            self.mode = Mode::Head;
            self.buf.clear();
            self.damaged = false;
        }
        while !bytes.is_empty() {
            self.last = (frame, ts_ns);
            match self.mode {
                Mode::Off | Mode::Resync => return,
                Mode::Head => {
                    if !self.in_message {
                        // Tolerate CRLFs between messages (RFC 9112 §2.2).
                        let skip = bytes
                            .iter()
                            .take_while(|&&c| c == b'\r' || c == b'\n')
                            .count();
                        bytes = &bytes[skip..];
                        if bytes.is_empty() {
                            return;
                        }
                        match (classify(bytes), self.role) {
                            (Role::NotHttp, Role::Unknown) => {
                                self.role = Role::NotHttp;
                                self.turn_off();
                                return;
                            }
                            (Role::NotHttp, _) => {
                                self.mode = Mode::Resync;
                                return;
                            }
                            (Role::Unknown, _) => {} // too short to tell; the head decides
                            (r, Role::Unknown) => self.role = r,
                            (r, known) if r != known => {
                                self.mode = Mode::Resync;
                                return;
                            }
                            _ => {}
                        }
                        self.in_message = true;
                        self.first_line_done = false;
                        self.first = Some((frame, ts_ns));
                    }
                    bytes = self.head_bytes(bytes, frame, ts_ns, sink);
                }
                Mode::Length(rem) => {
                    let n = rem.min(bytes.len() as u64);
                    sink.body(self.role, n);
                    bytes = &bytes[n as usize..];
                    if n == rem {
                        self.finish_message(sink);
                    } else {
                        self.mode = Mode::Length(rem - n);
                    }
                }
                Mode::UntilClose => {
                    sink.body(self.role, bytes.len() as u64);
                    return;
                }
                Mode::Chunked(c) => bytes = self.chunked(c, bytes, sink),
            }
        }
    }

    /// Accumulate head bytes; on the empty line, parse and hand on. Returns the bytes after it.
    fn head_bytes<'b>(
        &mut self,
        bytes: &'b [u8],
        frame: u64,
        ts_ns: i64,
        sink: &mut dyn HttpSink,
    ) -> &'b [u8] {
        // Search for the end of the head, starting a little before the new bytes (the blank line
        // may straddle segments).
        let old = self.buf.len();
        let (head_end, consumed) = if old == 0 {
            match find_head_end(bytes) {
                Some((h, c)) => (Some(h), c),
                None => (None, bytes.len()),
            }
        } else {
            let back = old.min(3);
            let mut probe = self.buf[old - back..].to_vec();
            let take = bytes.len().min(MAX_HEAD_LEN + 4);
            probe.extend_from_slice(&bytes[..take]);
            match find_head_end(&probe) {
                Some((_, c)) => {
                    let c_new = c.saturating_sub(back);
                    (Some(0), c_new)
                }
                None => (None, bytes.len()),
            }
        };
        if head_end.is_none() {
            if old + bytes.len() > MAX_HEAD_LEN {
                self.damaged = true;
                self.emit_partial_head(frame, ts_ns, sink);
                self.mode = Mode::Resync;
                return &[];
            }
            self.buf.extend_from_slice(bytes);
            // Judge the first line as soon as it is complete, so that a text protocol that merely
            // starts like HTTP (`EHLO host`) is not buffered up to the head limit. (Only the new
            // bytes are searched: a head fed one byte at a time must stay linear.)
            if !self.first_line_done && bytes.contains(&b'\n') {
                self.first_line_done = true;
                let nl = self.buf.iter().position(|&c| c == b'\n').unwrap_or(0);
                let line = self.buf[..nl]
                    .strip_suffix(b"\r")
                    .unwrap_or(&self.buf[..nl]);
                let ok = match self.role {
                    Role::Requests => request_line(line).is_ok(),
                    Role::Responses => status_line(line).is_ok(),
                    _ => request_line(line).is_ok() || status_line(line).is_ok(),
                };
                if !ok {
                    self.in_message = false;
                    self.first = None;
                    self.buf.clear();
                    if self.role == Role::Unknown {
                        self.role = Role::NotHttp;
                        self.turn_off();
                    } else {
                        self.mode = Mode::Resync;
                    }
                }
            }
            return &[];
        }
        let rest = &bytes[consumed..];
        let kind = if old == 0 {
            // Fast path: the whole head is in this segment; no copy.
            let h = head_end.unwrap_or(0);
            self.emit_head(&bytes[..h], false, frame, ts_ns, sink)
        } else {
            if old + consumed > MAX_HEAD_LEN {
                self.damaged = true;
                self.emit_partial_head(frame, ts_ns, sink);
                self.mode = Mode::Resync;
                return &[];
            }
            self.buf.extend_from_slice(&bytes[..consumed]);
            let mut head = std::mem::take(&mut self.buf);
            let trimmed = trim_head_end(&head).len();
            head.truncate(trimmed);
            let k = self.emit_head(&head, false, frame, ts_ns, sink);
            head.clear();
            self.buf = head;
            k
        };
        self.start_body(kind, sink);
        rest
    }

    fn emit_head(
        &mut self,
        head: &[u8],
        partial: bool,
        frame: u64,
        ts_ns: i64,
        sink: &mut dyn HttpSink,
    ) -> Option<BodyKind> {
        let first_line = head_lines(head).next().unwrap_or(b"");
        // Each first line is parsed once here (the role, when still unknown, is the first kind
        // that parses).
        let ok = match self.role {
            Role::Requests => request_line(first_line).is_ok(),
            Role::Responses => status_line(first_line).is_ok(),
            Role::Unknown => {
                if request_line(first_line).is_ok() {
                    self.role = Role::Requests;
                    true
                } else if status_line(first_line).is_ok() {
                    self.role = Role::Responses;
                    true
                } else {
                    false
                }
            }
            _ => false,
        };
        if !ok {
            return None;
        }
        let (first_frame, first_ts_ns) = self.first.unwrap_or((frame, ts_ns));
        let info = head_info(head);
        Some(sink.head(HeadEvent {
            role: self.role,
            head,
            info,
            first_frame,
            first_ts_ns,
            last_frame: frame,
            last_ts_ns: ts_ns,
            partial,
        }))
    }

    /// The head was cut (hole or oversize): hand on whatever complete lines there are.
    fn emit_partial_head(&mut self, frame: u64, ts_ns: i64, sink: &mut dyn HttpSink) {
        let buf = std::mem::take(&mut self.buf);
        let complete = buf
            .iter()
            .rposition(|&c| c == b'\n')
            .map_or(&buf[..0], |p| &buf[..p + 1]);
        // Without a complete first line there is nothing to report.
        if !complete.is_empty() && self.emit_head(complete, true, frame, ts_ns, sink).is_some() {
            sink.end(self.role, frame, ts_ns, true);
        }
        self.in_message = false;
        self.first = None;
    }

    fn start_body(&mut self, kind: Option<BodyKind>, sink: &mut dyn HttpSink) {
        match kind {
            None => {
                // Head did not parse: not a message we understand; wait for the next one.
                self.in_message = false;
                self.first = None;
                self.mode = Mode::Resync;
            }
            Some(BodyKind::None) | Some(BodyKind::Length(0)) => self.finish_message(sink),
            Some(BodyKind::Length(n)) => self.mode = Mode::Length(n),
            Some(BodyKind::Chunked) => self.mode = Mode::Chunked(Chunk::SizeLine),
            Some(BodyKind::UntilClose) => self.mode = Mode::UntilClose,
            Some(BodyKind::Tunnel) => {
                self.finish_message(sink);
                self.turn_off();
            }
        }
    }

    fn finish_message(&mut self, sink: &mut dyn HttpSink) {
        sink.end(self.role, self.last.0, self.last.1, self.damaged);
        self.mode = Mode::Head;
        self.in_message = false;
        self.first = None;
        self.damaged = false;
        self.buf.clear();
    }

    fn chunked<'b>(&mut self, c: Chunk, bytes: &'b [u8], sink: &mut dyn HttpSink) -> &'b [u8] {
        match c {
            Chunk::Data(rem) => {
                let n = rem.min(bytes.len() as u64);
                sink.body(self.role, n);
                self.mode = Mode::Chunked(if n == rem {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(rem - n)
                });
                &bytes[n as usize..]
            }
            Chunk::SizeLine | Chunk::DataEnd | Chunk::Trailer => {
                let Some(nl) = bytes.iter().position(|&b| b == b'\n') else {
                    if self.buf.len() + bytes.len() > MAX_LINE_LEN {
                        self.lose_sync(sink);
                    } else {
                        self.buf.extend_from_slice(bytes);
                    }
                    return &[];
                };
                self.buf.extend_from_slice(&bytes[..nl]);
                let line = std::mem::take(&mut self.buf);
                let line_t = line.strip_suffix(b"\r").unwrap_or(&line);
                let rest = &bytes[nl + 1..];
                match c {
                    Chunk::DataEnd => {
                        if line_t.is_empty() {
                            self.mode = Mode::Chunked(Chunk::SizeLine);
                        } else {
                            self.lose_sync(sink);
                            return &[];
                        }
                    }
                    Chunk::SizeLine => match chunk_size_line(line_t) {
                        Ok((_, 0)) => self.mode = Mode::Chunked(Chunk::Trailer),
                        Ok((_, n)) => self.mode = Mode::Chunked(Chunk::Data(n)),
                        Err(_) => {
                            self.lose_sync(sink);
                            return &[];
                        }
                    },
                    _ => {
                        if line_t.is_empty() {
                            self.buf = line;
                            self.buf.clear();
                            self.finish_message(sink);
                            return rest;
                        }
                    }
                }
                self.buf = line;
                self.buf.clear();
                rest
            }
        }
    }

    fn lose_sync(&mut self, sink: &mut dyn HttpSink) {
        self.damaged = true;
        if self.in_message && !matches!(self.mode, Mode::Head) {
            sink.end(self.role, self.last.0, self.last.1, true);
        }
        self.in_message = false;
        self.first = None;
        self.buf.clear();
        self.mode = Mode::Resync;
    }

    /// `len` stream bytes were lost.
    pub fn gap(&mut self, len: u64, sink: &mut dyn HttpSink) {
        match self.mode {
            Mode::Off | Mode::Resync => {}
            Mode::Length(rem) if len < rem => {
                self.damaged = true;
                sink.body(self.role, len);
                self.mode = Mode::Length(rem - len);
            }
            Mode::Length(rem) if len == rem => {
                self.damaged = true;
                sink.body(self.role, len);
                self.finish_message(sink);
            }
            Mode::Chunked(Chunk::Data(rem)) if len < rem => {
                self.damaged = true;
                sink.body(self.role, len);
                self.mode = Mode::Chunked(Chunk::Data(rem - len));
            }
            Mode::UntilClose => {
                self.damaged = true;
                sink.body(self.role, len);
            }
            Mode::Head if self.in_message => {
                let (f, t) = self.last;
                self.damaged = true;
                self.emit_partial_head(f, t, sink);
                self.mode = Mode::Resync;
            }
            Mode::Head => {
                self.mode = Mode::Resync;
            }
            _ => self.lose_sync(sink),
        }
    }

    /// The stream ended: its FIN was reached, or (`cut`) a reset or the end of the capture.
    pub fn close(&mut self, cut: bool, sink: &mut dyn HttpSink) {
        match self.mode {
            Mode::UntilClose => {
                // Body delimited by close: complete when the close was seen.
                let damaged = self.damaged || cut;
                sink.end(self.role, self.last.0, self.last.1, damaged);
            }
            Mode::Head if self.in_message => {
                let (f, t) = self.last;
                self.emit_partial_head(f, t, sink);
            }
            Mode::Length(_) | Mode::Chunked(_) if self.in_message => {
                sink.end(self.role, self.last.0, self.last.1, true);
            }
            _ => {}
        }
        self.in_message = false;
        self.mode = Mode::Off;
        self.buf = Vec::new();
    }
}

/// Find the blank line ending a head: returns (head length without the final blank line,
/// bytes consumed including it). Accepts CRLF and bare LF line endings.
fn find_head_end(b: &[u8]) -> Option<(usize, usize)> {
    for nl in memchr::memchr_iter(b'\n', b) {
        let next = nl + 1;
        if b.get(next) == Some(&b'\n') {
            return Some((next, next + 1));
        }
        if b.get(next) == Some(&b'\r') && b.get(next + 1) == Some(&b'\n') {
            return Some((next, next + 2));
        }
    }
    None
}

fn trim_head_end(h: &[u8]) -> &[u8] {
    let h = h.strip_suffix(b"\n").unwrap_or(h);
    h.strip_suffix(b"\r").unwrap_or(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_line_parses() {
        let (_, r) = request_line(b"GET /a?b=c HTTP/1.1").unwrap();
        assert_eq!(
            (r.method, r.target, r.minor),
            (&b"GET"[..], &b"/a?b=c"[..], 1)
        );
        assert!(request_line(b"get / HTTP/1.1").is_err());
        assert!(request_line(b"GET / HTTP/2.0").is_err());
        assert!(request_line(b"GET  HTTP/1.1").is_err());
    }

    #[test]
    fn status_and_fields() {
        assert_eq!(status_line(b"HTTP/1.1 204 No Content").unwrap().1, (1, 204));
        assert_eq!(status_line(b"HTTP/1.0 200").unwrap().1, (0, 200));
        assert!(status_line(b"HTTP/1.1 2x0 OK").is_err());
        assert_eq!(
            field_line(b"Host:  example \t").unwrap().1,
            (&b"Host"[..], &b"example"[..])
        );
        assert!(field_line(b" Host: x").is_err());
        assert_eq!(chunk_size_line(b"1aF;ext=1").unwrap().1, 0x1af);
        assert!(chunk_size_line(b"ffffffffffffffffff").is_err());
    }

    #[test]
    fn head_info_framing() {
        let h = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: keep-alive, Upgrade\r\n";
        let i = head_info(h);
        assert_eq!(i.content_length, Some(5));
        assert!(i.upgrade && !i.connection_close && !i.chunked);
        let (s, e) = i.host.unwrap();
        assert_eq!(&h[s as usize..e as usize], b"a");
        let i = head_info(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\nTransfer-Encoding: gzip, chunked\r\n");
        assert!(i.bad_content_length && i.chunked);
    }

    struct Count(usize);
    impl HttpSink for Count {
        fn head(&mut self, _: HeadEvent<'_>) -> BodyKind {
            self.0 += 1;
            BodyKind::None
        }
        fn body(&mut self, _: Role, _: u64) {}
        fn end(&mut self, _: Role, _: u64, _: i64, _: bool) {}
    }

    #[test]
    fn text_protocol_that_looks_like_http_is_not_buffered() {
        let mut s = HttpStream::new(true);
        let mut sink = Count(0);
        s.data(b"EHLO mail.example\r\n", 1, 0, &mut sink);
        for _ in 0..100 {
            s.data(b"DATA more text without a blank line\r\n", 2, 0, &mut sink);
        }
        assert!(s.buffered() < 1024, "{}", s.buffered());
        assert_eq!(sink.0, 0);
    }

    #[test]
    fn method_split_across_segments() {
        let mut s = HttpStream::new(true);
        let mut sink = Count(0);
        for piece in [&b"GE"[..], b"T /x HT", b"TP/1.1\r\nHost: a\r", b"\n\r\n"] {
            s.data(piece, 1, 0, &mut sink);
        }
        assert_eq!((sink.0, s.role), (1, Role::Requests));
    }

    #[test]
    fn head_lines_match_split_definition() {
        let reference = |h: &[u8]| -> Vec<Vec<u8>> {
            h.split(|&c| c == b'\n')
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec)
                .collect()
        };
        let check = |h: &[u8]| {
            assert_eq!(
                head_lines(h).map(<[u8]>::to_vec).collect::<Vec<_>>(),
                reference(h),
                "{h:?}"
            )
        };
        for h in [
            &b""[..],
            b"\n",
            b"\r\n",
            b"\r",
            b"a",
            b"a\n",
            b"\na",
            b"a\r\n\r\nb\r",
            b"a\n\n\nb",
            b"\r\r\n",
        ] {
            check(h);
        }
        bolero::check!().for_each(|h: &[u8]| check(h));
        // The head end as the obvious byte scan would find it.
        bolero::check!().for_each(|b: &[u8]| {
            let naive = (0..b.len()).filter(|&i| b[i] == b'\n').find_map(|nl| {
                match (b.get(nl + 1), b.get(nl + 2)) {
                    (Some(b'\n'), _) => Some((nl + 1, nl + 2)),
                    (Some(b'\r'), Some(b'\n')) => Some((nl + 1, nl + 3)),
                    _ => None,
                }
            });
            assert_eq!(find_head_end(b), naive);
        });
    }

    #[test]
    fn head_end_detection() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nX"), Some((16, 18)));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\n\nX"), Some((15, 16)));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
    }
}
