//! `hoptrace report`: one record per HTTP request (`--connections`: one per connection), as a
//! table, JSON, NDJSON or CSV (interface.md). This layer fills what the captures themselves say —
//! id, connection, time, capture, client, frontend, method, target, host, status — and leaves
//! the load-balancer / netfilter / pod fields empty for the journey layer.
//!
//! Warnings go to standard error (and into the JSON `warnings` array); any warning makes the exit
//! status 1, unusable input 2.

use super::inputs::{self, Inputs, LoadedCapture};
use super::{EXIT_OK, EXIT_UNUSABLE, EXIT_WARNINGS};
use crate::capture::{Capture, CaptureOptions, Connection, HttpRequest};
use crate::journey::model::{Endpoint, RequestJourney};
use crate::sanitize::escape_bytes;
use clap::{Args, ValueEnum};
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    #[default]
    Table,
    Json,
    Ndjson,
    Csv,
}

/// `hoptrace report` arguments.
#[derive(Debug, Clone, Args, Default)]
pub struct ReportArgs {
    /// Captures (pcap/pcapng, `-` for stdin, `NODE=FILE`), rules, cluster/kubectl files or
    /// directories, recognised by content. None: the embedded walkthrough scenario.
    pub inputs: Vec<String>,
    /// A capture, `[NODE=]FILE` (`-` = standard input).
    #[arg(long = "capture", value_name = "[NODE=]FILE")]
    pub captures: Vec<String>,
    /// An iptables-save dump, `[NODE=]FILE`.
    #[arg(long = "rules", value_name = "[NODE=]FILE")]
    pub rules: Vec<String>,
    /// A cluster.toml.
    #[arg(long = "cluster", value_name = "FILE")]
    pub clusters: Vec<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// List the raw connections of each capture instead of requests.
    #[arg(long)]
    pub connections: bool,
    /// What-if: replay as if the Service(s) had sessionAffinity ClientIP (`on`) or None (`off`);
    /// the ALB mode follows as cloud-provider-azure sets it unless `--alb-mode` is given.
    #[arg(long, value_enum, value_name = "on|off")]
    pub affinity: Option<OnOff>,
    /// What-if: the ALB's load distribution mode.
    #[arg(long, value_name = "default|source-ip|source-ip-protocol")]
    pub alb_mode: Option<crate::cluster::AlbMode>,
    /// Seed of the modelled `statistic` draws (where no capture shows the kernel's).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Analysis threads per capture file (0: one on machines with ≤ 2 CPUs, else one per CPU up
    /// to 4).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub threads: usize,
}

/// `--affinity on|off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

/// Name of the embedded scenario's capture in reports.
pub const EMBEDDED_CAPTURE: &str = "embedded-walkthrough.pcap";

/// Run the report; output on `out`, warnings on `err`.
pub fn run(
    args: &ReportArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    // Records are written in many small pieces; a terminal's stdout is line-buffered.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
    let out: &mut dyn Write = &mut out;
    if !args.connections {
        return super::report_journey::run_report(args, out, err);
    }
    let classified =
        match inputs::classify(&args.inputs, &args.captures, &args.rules, &args.clusters) {
            Ok(c) => c,
            Err(e) => {
                writeln!(err, "hoptrace: error: {e}")?;
                return Ok(ExitCode::from(EXIT_UNUSABLE));
            }
        };
    let opts = CaptureOptions {
        keep_packets: false,
        threads: args.threads,
        ..Default::default()
    };
    let mut warnings: Vec<String> = classified.warnings.clone();
    let embedded = classified.is_empty() && classified.warnings.is_empty();
    let captures: Vec<LoadedCapture> = if embedded {
        // The embedded walkthrough: the lab recording the request report uses too.
        super::embedded::inputs(opts)?
            .captures
            .into_iter()
            .map(|c| LoadedCapture {
                node: None,
                capture: c.capture,
            })
            .collect()
    } else {
        match inputs::load_captures(&classified, opts) {
            Ok(c) => c,
            Err(e) => {
                writeln!(err, "hoptrace: error: {e}")?;
                return Ok(ExitCode::from(EXIT_UNUSABLE));
            }
        }
    };
    if !embedded && captures.is_empty() {
        warnings.push(no_capture_warning(&classified));
    }
    for c in &captures {
        warnings.extend(c.capture.warnings.iter().map(|w| w.to_string()));
    }
    if embedded && args.format == Format::Table {
        writeln!(
            out,
            "# Embedded walkthrough: the lab recording captures/{} (real kernel, three replicas).\n# Run `hoptrace report DIR|FILE…` on your own captures.",
            super::embedded::EMBEDDED_NAME
        )?;
    }
    if args.connections {
        write_connections(&captures, args.format, &warnings, out)?;
    } else {
        let table = JourneyTable {
            threads: args.threads,
            ..JourneyTable::new(&captures)
        };
        write_requests(&table, args.format, &warnings, out)?;
    }
    out.flush()?;
    for w in &warnings {
        writeln!(err, "hoptrace: warning: {}", crate::sanitize::escape_str(w))?;
    }
    Ok(ExitCode::from(if warnings.is_empty() {
        EXIT_OK
    } else {
        EXIT_WARNINGS
    }))
}

fn no_capture_warning(i: &Inputs) -> String {
    format!(
        "no capture among the inputs ({} rules, {} cluster, {} kubectl file(s)): no requests to report",
        i.rules.len(),
        i.clusters.len(),
        i.kubectl.len()
    )
}

/// Base name used for a capture in records.
pub fn capture_label(c: &Capture) -> String {
    if c.name == "-" {
        return "stdin".into();
    }
    std::path::Path::new(&c.name)
        .file_name()
        .map_or_else(|| c.name.clone(), |n| n.to_string_lossy().into_owned())
}

fn endpoint(a: SocketAddr) -> Endpoint {
    Endpoint {
        ip: a.ip(),
        port: a.port(),
    }
}

/// Global 1-based connection numbers: captures in order, connections in order within each.
fn connection_base(captures: &[LoadedCapture]) -> Vec<u64> {
    let mut base = Vec::with_capacity(captures.len());
    let mut n = 0u64;
    for c in captures {
        base.push(n);
        n += c.capture.connections.len() as u64;
    }
    base
}

/// One journey record per request with the capture layer's fields filled, in time order.
pub fn journeys(captures: &[LoadedCapture]) -> Vec<RequestJourney> {
    journey_iter(captures).collect()
}

/// Like [`journeys`], built one at a time (the report streams them instead of holding them all).
pub fn journey_iter(captures: &[LoadedCapture]) -> impl Iterator<Item = RequestJourney> + '_ {
    let table = JourneyTable::new(captures);
    (0..table.len()).map(move |i| table.get(i))
}

/// Appends record number `i` to the buffer in some output format.
type FormatRecord<'a> = dyn Fn(usize, &mut Vec<u8>) -> std::io::Result<()> + Sync + 'a;

/// Requests of all captures in time order, turned into records on demand.
struct JourneyTable<'a> {
    captures: &'a [LoadedCapture],
    base: Vec<u64>,
    labels: Vec<String>,
    /// The labels as JSON strings (quoted, escaped), for [`Self::ndjson`].
    labels_json: Vec<Vec<u8>>,
    /// (time, capture, request) — 16 bytes per request instead of a whole record.
    order: Vec<(i64, u32, u32)>,
    /// Formatting threads (0: the analysis default).
    threads: usize,
}

impl<'a> JourneyTable<'a> {
    fn new(captures: &'a [LoadedCapture]) -> Self {
        let mut order: Vec<(i64, u32, u32)> = Vec::new();
        for (ci, c) in captures.iter().enumerate() {
            order.extend(
                c.capture
                    .requests
                    .iter()
                    .map(|r| (r.ts_ns, ci as u32, r.id)),
            );
        }
        order.sort_unstable();
        JourneyTable {
            captures,
            base: connection_base(captures),
            labels: captures.iter().map(|c| capture_label(&c.capture)).collect(),
            labels_json: captures
                .iter()
                .map(|c| {
                    serde_json::to_vec(&capture_label(&c.capture))
                        .unwrap_or_else(|_| b"\"\"".to_vec())
                })
                .collect(),
            order,
            threads: 0,
        }
    }

    fn len(&self) -> usize {
        self.order.len()
    }

    fn get(&self, i: usize) -> RequestJourney {
        let (_, ci, rid) = self.order[i];
        let c = &self.captures[ci as usize].capture;
        let r = &c.requests[rid as usize];
        request_journey_labelled(
            i as u64 + 1,
            self.base[ci as usize] + r.connection as u64 + 1,
            self.labels[ci as usize].clone(),
            r,
        )
    }

    /// Record `i` as one NDJSON line, byte for byte what `serde_json` writes for [`Self::get`]'s
    /// record, without building it: the report spends most of its formatting time in the
    /// record's string allocations and serde's escaping otherwise (`ndjson_matches_serde` and
    /// `ndjson_line` keep the two in step).
    fn ndjson(&self, i: usize, buf: &mut Vec<u8>) {
        let (_, ci, rid) = self.order[i];
        let c = &self.captures[ci as usize].capture;
        let r = &c.requests[rid as usize];
        ndjson_line(
            i as u64 + 1,
            self.base[ci as usize] + r.connection as u64 + 1,
            &self.labels_json[ci as usize],
            r,
            buf,
        );
    }

    /// Format every record with `fmt` and write them in order. Large outputs are formatted by
    /// several threads in chunks; the writer puts the chunks back in order.
    fn write_all(&self, out: &mut dyn Write, fmt: &FormatRecord<'_>) -> std::io::Result<()> {
        const CHUNK: usize = 4096;
        let n = self.len();
        let threads = match self.threads {
            0 => crate::capture::engine::default_threads(),
            t => t,
        };
        let chunk_bytes = |c: usize| -> std::io::Result<Vec<u8>> {
            // An NDJSON line of a typical request is ~450 bytes: one allocation per chunk.
            let mut buf = Vec::with_capacity(CHUNK * 512);
            for i in c * CHUNK..((c + 1) * CHUNK).min(n) {
                fmt(i, &mut buf)?;
            }
            Ok(buf)
        };
        let chunks = n.div_ceil(CHUNK);
        if threads < 2 || chunks < 4 {
            for c in 0..chunks {
                out.write_all(&chunk_bytes(c)?)?;
            }
            return Ok(());
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            // Bounded: a worker waits when the writer is this many chunks behind.
            let (tx, rx) =
                std::sync::mpsc::sync_channel::<(usize, std::io::Result<Vec<u8>>)>(threads * 2);
            for _ in 0..threads {
                let tx = tx.clone();
                let next = &next;
                let chunk_bytes = &chunk_bytes;
                scope.spawn(move || {
                    loop {
                        let c = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if c >= chunks || tx.send((c, chunk_bytes(c))).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            let mut pending = std::collections::BTreeMap::new();
            let mut want = 0;
            for (c, bytes) in rx {
                pending.insert(c, bytes);
                while let Some(bytes) = pending.remove(&want) {
                    out.write_all(&bytes?)?;
                    want += 1;
                }
            }
            Ok(())
        })
    }
}

/// The capture layer's part of a [`RequestJourney`].
pub fn request_journey(id: u64, connection: u64, c: &Capture, r: &HttpRequest) -> RequestJourney {
    request_journey_labelled(id, connection, capture_label(c), r)
}

fn request_journey_labelled(
    id: u64,
    connection: u64,
    capture: String,
    r: &HttpRequest,
) -> RequestJourney {
    RequestJourney {
        id,
        connection,
        time: rfc3339_micros(r.ts_ns),
        capture,
        client: endpoint(r.client),
        frontend: endpoint(r.server),
        method: text(r.method()),
        target: text(r.target()),
        host: r.host().map(text),
        status: r.response.as_ref().map(|s| s.status),
        alb: None,
        node: None,
        path: vec![],
        endpoint: None,
        candidates: vec![],
        pod: None,
        masquerade: None,
        crossed_node: None,
        crossed_zone: None,
        whatif: None,
    }
}

/// Untrusted bytes as printable text ([`escape_bytes`]), with a fast path for the common case:
/// printable ASCII without a backslash is what `escape_bytes` would return unchanged.
fn text(b: &[u8]) -> String {
    if b.iter().all(|&c| (0x20..0x7f).contains(&c) && c != b'\\') {
        String::from_utf8_lossy(b).into_owned()
    } else {
        escape_bytes(b)
    }
}

pub use crate::capture::time::{rfc3339_micros, rfc3339_micros_into};

/// One request's NDJSON line (see [`JourneyTable::ndjson`]); `capture_json` is the capture
/// label already as a JSON string.
fn ndjson_line(id: u64, connection: u64, capture_json: &[u8], r: &HttpRequest, buf: &mut Vec<u8>) {
    buf.reserve(400 + capture_json.len() + r.head().len());
    buf.extend_from_slice(b"{\"id\":");
    push_u64(buf, id);
    buf.extend_from_slice(b",\"connection\":");
    push_u64(buf, connection);
    buf.extend_from_slice(b",\"time\":\"");
    rfc3339_micros_into(r.ts_ns, buf);
    buf.extend_from_slice(b"\",\"capture\":");
    buf.extend_from_slice(capture_json);
    buf.extend_from_slice(b",\"client\":");
    push_endpoint(buf, r.client);
    buf.extend_from_slice(b",\"frontend\":");
    push_endpoint(buf, r.server);
    buf.extend_from_slice(b",\"method\":");
    push_text_json(buf, r.method());
    buf.extend_from_slice(b",\"target\":");
    push_text_json(buf, r.target());
    buf.extend_from_slice(b",\"host\":");
    match r.host() {
        Some(h) => push_text_json(buf, h),
        None => buf.extend_from_slice(b"null"),
    }
    buf.extend_from_slice(b",\"status\":");
    match &r.response {
        Some(resp) => push_u64(buf, resp.status as u64),
        None => buf.extend_from_slice(b"null"),
    }
    // The journey layer's fields, empty at this layer (see `journey_fields_this_layer_leaves_empty`).
    buf.extend_from_slice(
        b",\"alb\":null,\"node\":null,\"path\":[],\"endpoint\":null,\"candidates\":[],\"pod\":null,\
          \"masquerade\":null,\"crossed_node\":null,\"crossed_zone\":null,\"whatif\":null}\n",
    );
}

/// Compile-time guard for [`ndjson_line`]: it writes the record's fields by hand, so a field
/// added to [`RequestJourney`] must fail to compile here until the line writes it too.
#[allow(dead_code)]
fn journey_fields_this_layer_leaves_empty(r: &RequestJourney) -> bool {
    let RequestJourney {
        id: _,
        connection: _,
        time: _,
        capture: _,
        client: _,
        frontend: _,
        method: _,
        target: _,
        host: _,
        status: _,
        alb,
        node,
        path,
        endpoint,
        candidates,
        pod,
        masquerade,
        crossed_node,
        crossed_zone,
        whatif,
    } = r;
    alb.is_none()
        && node.is_none()
        && path.is_empty()
        && endpoint.is_none()
        && candidates.is_empty()
        && pod.is_none()
        && masquerade.is_none()
        && crossed_node.is_none()
        && crossed_zone.is_none()
        && whatif.is_none()
}

/// "00" … "99", for writing numbers two digits at a time.
const DIGIT_PAIRS: [[u8; 2]; 100] = {
    let mut t = [[0u8; 2]; 100];
    let mut i = 0;
    while i < 100 {
        t[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
        i += 1;
    }
    t
};

fn push_u64(buf: &mut Vec<u8>, mut v: u64) {
    if v < 10 {
        buf.push(b'0' + v as u8);
        return;
    }
    let mut tmp = [0u8; 20];
    let mut at = tmp.len();
    while v >= 100 {
        at -= 2;
        tmp[at..at + 2].copy_from_slice(&DIGIT_PAIRS[(v % 100) as usize]);
        v /= 100;
    }
    if v >= 10 {
        at -= 2;
        tmp[at..at + 2].copy_from_slice(&DIGIT_PAIRS[v as usize]);
    } else {
        at -= 1;
        tmp[at] = b'0' + v as u8;
    }
    // Byte by byte: a few digits, where `extend_from_slice` would call `memcpy`.
    for &d in &tmp[at..] {
        buf.push(d);
    }
}

/// `{"ip":"…","port":N}` as serde writes an [`Endpoint`].
fn push_endpoint(buf: &mut Vec<u8>, a: SocketAddr) {
    buf.extend_from_slice(b"{\"ip\":\"");
    match a {
        SocketAddr::V4(v4) => {
            for (k, o) in v4.ip().octets().into_iter().enumerate() {
                if k > 0 {
                    buf.push(b'.');
                }
                push_u64(buf, o as u64);
            }
        }
        // IPv6 text never needs JSON escaping.
        SocketAddr::V6(v6) => {
            let _ = write!(buf, "{}", v6.ip());
        }
    }
    buf.extend_from_slice(b"\",\"port\":");
    push_u64(buf, a.port() as u64);
    buf.push(b'}');
}

/// [`text`] of untrusted bytes as a JSON string. Printable ASCII other than `\\` and `"` is
/// copied as is (what both `escape_bytes` and JSON would leave alone); anything else goes the
/// slow way.
fn push_text_json(buf: &mut Vec<u8>, b: &[u8]) {
    if b.iter()
        .all(|&c| (0x20..0x7f).contains(&c) && c != b'\\' && c != b'"')
    {
        buf.push(b'"');
        buf.extend_from_slice(b);
        buf.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *buf, &text(b));
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn write_requests(
    records: &JourneyTable<'_>,
    format: Format,
    warnings: &[String],
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    match format {
        Format::Json => {
            out.write_all(b"{\n  \"requests\": [")?;
            records.write_all(out, &|i, buf| {
                buf.extend_from_slice(if i == 0 { b"\n    " } else { b",\n    " });
                serde_json::to_writer(&mut *buf, &records.get(i)).map_err(std::io::Error::other)
            })?;
            out.write_all(b"\n  ],\n  \"warnings\": ")?;
            serde_json::to_writer(&mut *out, warnings)?;
            out.write_all(b"\n}\n")?;
        }
        Format::Ndjson => records.write_all(out, &|i, buf| {
            records.ndjson(i, buf);
            Ok(())
        })?,
        Format::Csv => {
            writeln!(
                out,
                "id,connection,time,capture,client_ip,client_port,frontend_ip,frontend_port,method,target,host,status"
            )?;
            records.write_all(out, &|i, buf| {
                let r = &records.get(i);
                writeln!(
                    buf,
                    "{},{},{},{},{},{},{},{},{},{},{},{}",
                    r.id,
                    r.connection,
                    r.time,
                    csv_field(&r.capture),
                    r.client.ip,
                    r.client.port,
                    r.frontend.ip,
                    r.frontend.port,
                    csv_field(&r.method),
                    csv_field(&r.target),
                    csv_field(r.host.as_deref().unwrap_or("")),
                    r.status.map(|s| s.to_string()).unwrap_or_default()
                )
            })?;
        }
        Format::Table => {
            let rows: Vec<[String; 10]> = (0..records.len())
                .map(|i| {
                    let r = records.get(i);
                    [
                        r.id.to_string(),
                        r.connection.to_string(),
                        r.time.clone(),
                        r.capture.clone(),
                        sock(r.client),
                        sock(r.frontend),
                        r.method.clone(),
                        r.target.clone(),
                        r.host.clone().unwrap_or_else(|| "-".into()),
                        r.status.map_or_else(|| "-".into(), |s| s.to_string()),
                    ]
                })
                .collect();
            table(
                out,
                &[
                    "ID", "CONN", "TIME", "CAPTURE", "CLIENT", "FRONTEND", "METHOD", "TARGET",
                    "HOST", "STATUS",
                ],
                &rows,
            )?;
        }
    }
    Ok(())
}

fn sock(e: Endpoint) -> String {
    SocketAddr::new(e.ip, e.port).to_string()
}

fn table<const N: usize>(
    out: &mut dyn Write,
    header: &[&str; N],
    rows: &[[String; N]],
) -> std::io::Result<()> {
    let mut w: [usize; N] = header.map(|h| h.chars().count());
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: Vec<&str>| -> std::io::Result<()> {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == N {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<width$}  ", width = w[i]));
            }
        }
        writeln!(out, "{}", s.trim_end())
    };
    line(out, header.to_vec())?;
    for r in rows {
        line(out, r.iter().map(String::as_str).collect())?;
    }
    Ok(())
}

/// One connection as `--connections` prints it.
#[derive(Debug, serde::Serialize)]
pub struct ConnectionRow {
    pub connection: u64,
    pub capture: String,
    pub node: Option<String>,
    pub protocol: String,
    pub client: Endpoint,
    pub server: Endpoint,
    /// syn | syn-ack | guessed-from-ports | first-packet
    pub initiator: &'static str,
    pub first: String,
    pub last: String,
    pub packets_client: u64,
    pub packets_server: u64,
    pub bytes_client: u64,
    pub bytes_server: u64,
    pub isn_client: Option<u32>,
    pub isn_server: Option<u32>,
    pub state: String,
    pub http_requests: u32,
    pub gaps: u32,
}

pub fn connection_row(global_id: u64, lc: &LoadedCapture, c: &Connection) -> ConnectionRow {
    use crate::capture::InitiatorEvidence as E;
    let (pc, ps) = c.packets_cs();
    let (bc, bs) = c.bytes_cs();
    ConnectionRow {
        connection: global_id,
        capture: capture_label(&lc.capture),
        node: lc.node.clone(),
        protocol: c.protocol_name(),
        client: endpoint(c.client()),
        server: endpoint(c.server()),
        initiator: match c.initiator_evidence {
            E::Syn => "syn",
            E::SynAck => "syn-ack",
            E::GuessedFromPorts => "guessed-from-ports",
            E::FirstPacket => "first-packet",
        },
        first: rfc3339_micros(c.first_ts_ns),
        last: rfc3339_micros(c.last_ts_ns),
        packets_client: pc,
        packets_server: ps,
        bytes_client: bc,
        bytes_server: bs,
        isn_client: c.client_isn(),
        isn_server: c.server_isn(),
        state: c.tcp.to_string(),
        http_requests: c.http_requests,
        gaps: c.reassembly()[0].gaps + c.reassembly()[1].gaps,
    }
}

fn write_connections(
    captures: &[LoadedCapture],
    format: Format,
    warnings: &[String],
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let base = connection_base(captures);
    let rows: Vec<ConnectionRow> = captures
        .iter()
        .zip(&base)
        .flat_map(|(lc, b)| {
            lc.capture
                .connections
                .iter()
                .map(move |c| connection_row(b + c.id as u64 + 1, lc, c))
        })
        .collect();
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(
                &mut *out,
                &serde_json::json!({ "connections": rows, "warnings": warnings }),
            )?;
            writeln!(out)?;
        }
        Format::Ndjson => {
            for r in &rows {
                serde_json::to_writer(&mut *out, r)?;
                writeln!(out)?;
            }
        }
        Format::Csv => {
            writeln!(
                out,
                "connection,capture,node,protocol,client_ip,client_port,server_ip,server_port,initiator,first,last,packets_client,packets_server,bytes_client,bytes_server,isn_client,isn_server,state,http_requests,gaps"
            )?;
            for r in &rows {
                let opt = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_default();
                writeln!(
                    out,
                    "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                    r.connection,
                    csv_field(&r.capture),
                    csv_field(r.node.as_deref().unwrap_or("")),
                    r.protocol,
                    r.client.ip,
                    r.client.port,
                    r.server.ip,
                    r.server.port,
                    r.initiator,
                    r.first,
                    r.last,
                    r.packets_client,
                    r.packets_server,
                    r.bytes_client,
                    r.bytes_server,
                    opt(r.isn_client),
                    opt(r.isn_server),
                    csv_field(&r.state),
                    r.http_requests,
                    r.gaps
                )?;
            }
        }
        Format::Table => {
            let cells: Vec<[String; 9]> = rows
                .iter()
                .map(|r| {
                    [
                        r.connection.to_string(),
                        r.capture.clone(),
                        r.protocol.clone(),
                        sock(r.client),
                        sock(r.server),
                        r.initiator.to_string(),
                        format!("{}/{}", r.packets_client, r.packets_server),
                        if r.state.is_empty() {
                            "-".into()
                        } else {
                            r.state.clone()
                        },
                        r.http_requests.to_string(),
                    ]
                })
                .collect();
            table(
                out,
                &[
                    "CONN",
                    "CAPTURE",
                    "PROTO",
                    "CLIENT",
                    "SERVER",
                    "INITIATOR",
                    "PKTS C/S",
                    "STATE",
                    "HTTP",
                ],
                &cells,
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(rfc3339_micros(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339_micros(1_795_774_000_123_456_789),
            "2026-11-27T10:06:40.123456Z"
        );
        assert_eq!(
            rfc3339_micros(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000Z"
        );
        assert_eq!(rfc3339_micros(-1_000), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn text_fast_path_agrees_with_escape_bytes() {
        for b in [
            &b"/plain?x=1"[..],
            b"/a\\b",
            b"/\x1b[2J",
            b"\xff",
            b"caf\xc3\xa9",
            b"",
        ] {
            assert_eq!(text(b), escape_bytes(b));
        }
        bolero::check!().for_each(|b: &[u8]| assert_eq!(text(b), escape_bytes(b)));
    }

    /// The hand-written NDJSON line is exactly serde's serialisation of the record.
    #[test]
    fn ndjson_matches_serde() {
        use crate::capture::model::{HttpRequest, HttpResponse};
        let heads: [&[u8]; 8] = [
            b"GET /item/0 HTTP/1.1\r\nHost: 20.185.96.169\r\n",
            b"GET / HTTP/1.0\r\n",
            b"POST /a\"b\\c HTTP/1.1\r\nHost: h\"x\r\n",
            b"GET /\x1b[2J\xff\xc3\xa9?q=\xe2\x80\xae HTTP/1.1\r\nHost: \x07bell\r\n",
            b"M-SEARCH * HTTP/1.1\r\nHost: 239.255.255.250:1900\r\n",
            b"GET /\x7f\t HTTP/1.1\r\n",
            b"OPTIONS * HTTP/1.1\r\nHost:\r\n",
            b"GET /caf\xc3\xa9 HTTP/1.1\r\nhost: [::1]:8080\r\n",
        ];
        let addrs: [(SocketAddr, SocketAddr); 3] = [
            (
                "10.0.0.1:1024".parse().unwrap(),
                "20.185.96.169:80".parse().unwrap(),
            ),
            (
                "0.0.0.0:0".parse().unwrap(),
                "255.255.255.255:65535".parse().unwrap(),
            ),
            (
                "[2001:db8::1]:50000".parse().unwrap(),
                "[::ffff:10.1.2.3]:443".parse().unwrap(),
            ),
        ];
        let labels = ["capture.pcap", "we\"ird\\name\u{1b}.pcap", "stdin"];
        let mut n = 0;
        for (hi, head) in heads.iter().enumerate() {
            let info = crate::capture::http::head_info(head);
            for (ai, (client, server)) in addrs.iter().enumerate() {
                for ts in [0i64, 1_795_774_000_123_456_789, -1_000, i64::MAX] {
                    let Some(mut r) = HttpRequest::new(
                        7,
                        0,
                        3,
                        *client,
                        *server,
                        head,
                        info.host,
                        (1, ts),
                        (2, ts),
                        false,
                    ) else {
                        panic!("head {hi} should parse");
                    };
                    if (hi + ai) % 2 == 0 {
                        r.response = HttpResponse::new(b"HTTP/1.1 503 Busy\r\n", (3, ts), false);
                    }
                    let label = labels[(hi + ai) % labels.len()];
                    let (id, conn) = (u64::MAX - hi as u64, ai as u64 * 1_000_000_007);
                    let want = serde_json::to_string(&request_journey_labelled(
                        id,
                        conn,
                        label.to_string(),
                        &r,
                    ))
                    .unwrap()
                        + "\n";
                    let mut got = Vec::new();
                    ndjson_line(id, conn, &serde_json::to_vec(label).unwrap(), &r, &mut got);
                    assert_eq!(String::from_utf8(got).unwrap(), want);
                    n += 1;
                }
            }
        }
        assert_eq!(n, heads.len() * addrs.len() * 4);
    }

    #[test]
    fn digits() {
        for v in [
            0u64,
            1,
            9,
            10,
            11,
            99,
            100,
            101,
            255,
            999,
            1000,
            65535,
            1_000_000_007,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut b = Vec::new();
            push_u64(&mut b, v);
            assert_eq!(String::from_utf8(b).unwrap(), v.to_string());
        }
        bolero::check!().with_type::<u64>().for_each(|&v| {
            let mut b = Vec::new();
            push_u64(&mut b, v);
            assert_eq!(String::from_utf8(b).unwrap(), v.to_string());
        });
    }

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("a\"b"), "\"a\"\"b\"");
        assert_eq!(csv_field("/x"), "/x");
    }
}
