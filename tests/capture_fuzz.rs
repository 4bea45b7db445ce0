//! Fuzz-style tests: arbitrary bytes into every reader never panic, hang or lose the valid part.
//! Under `cargo test` bolero runs random inputs; `cargo bolero test --sanitizer NONE
//! capture_fuzz::…` turns each into a coverage-guided fuzz target.

mod capture_scenarios;

use capture_scenarios::*;
use hoptrace::capture::http::{BodyKind, HeadEvent, HttpSink, HttpStream, Role};
use hoptrace::capture::{Capture, CaptureOptions, link};
use std::sync::OnceLock;

fn seeds() -> &'static [Vec<u8>] {
    static S: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    S.get_or_init(|| all_captures().into_iter().map(|(_, b)| b).collect())
}

#[test]
fn arbitrary_bytes_into_both_readers() {
    bolero::check!().for_each(|data: &[u8]| {
        let a = Capture::from_bytes(0, "fuzz", data, CaptureOptions::default());
        let b = Capture::from_reader(0, "fuzz", data, CaptureOptions::default());
        match (a, b) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.stats.frames, b.stats.frames);
                assert_eq!(a.requests, b.requests);
            }
            (Err(_), Err(_)) => {}
            (a, b) => panic!(
                "readers disagree: {:?} vs {:?}",
                a.map(|c| c.stats),
                b.map(|c| c.stats)
            ),
        }
    });
}

#[test]
fn arbitrary_bytes_behind_valid_headers() {
    // Random bytes after a valid pcap or pcapng header reach the record and block parsers.
    bolero::check!()
        .with_type::<(bool, Vec<u8>)>()
        .for_each(|(ng, tail)| {
            let seed = if *ng {
                &seeds()[seeds().len() - 1]
            } else {
                &seeds()[0]
            };
            let head = if *ng { 28 + 20 } else { 24 };
            let mut b = seed[..head.min(seed.len())].to_vec();
            b.extend_from_slice(tail);
            let _ = Capture::from_bytes(0, "fuzz", &b, CaptureOptions::default());
        });
}

#[test]
fn mutated_valid_captures_keep_their_prefix() {
    bolero::check!()
        .with_type::<(u8, u32, u8, u16)>()
        .for_each(|(which, pos, val, cut)| {
            let seed = &seeds()[*which as usize % seeds().len()];
            let mut b = seed.clone();
            let p = *pos as usize % b.len();
            b[p] = *val;
            let b = &b[..b.len().saturating_sub(*cut as usize)];
            if let Ok(c) = Capture::from_bytes(0, "fuzz", b, CaptureOptions::default()) {
                // Every packet record is retrievable and consistent.
                for p in c.packets() {
                    assert!(p.frame >= 1 && p.frame <= c.stats.frames);
                }
            }
        });
}

#[test]
fn arbitrary_frames_into_every_link_decoder() {
    bolero::check!()
        .with_type::<(u16, Vec<u8>)>()
        .for_each(|(lt, data)| {
            for l in [0u32, 1, 12, 101, 108, 113, 228, 229, 276, *lt as u32] {
                if let Ok(d) = link::decode(l, data) {
                    assert!(
                        d.payload.len() <= d.wire_payload_len as usize
                            || d.wire_payload_len == 0 && d.payload.is_empty()
                    );
                }
            }
        });
}

struct Null;
impl HttpSink for Null {
    fn head(&mut self, ev: HeadEvent<'_>) -> BodyKind {
        assert!(ev.head.len() <= hoptrace::capture::http::MAX_HEAD_LEN);
        match ev.info.content_length {
            Some(n) => BodyKind::Length(n),
            None if ev.info.chunked => BodyKind::Chunked,
            None if ev.role == Role::Responses => BodyKind::UntilClose,
            None => BodyKind::None,
        }
    }
    fn body(&mut self, _: Role, _: u64) {}
    fn end(&mut self, _: Role, _: u64, _: i64, _: bool) {}
}

#[test]
fn arbitrary_http_streams() {
    bolero::check!()
        .with_type::<(bool, Vec<(u8, Vec<u8>)>)>()
        .for_each(|(synced, pieces)| {
            let mut s = HttpStream::new(*synced);
            for (i, (kind, bytes)) in pieces.iter().enumerate() {
                // Prefix some pieces with a plausible start so the parser gets past detection.
                let mut v = match kind % 4 {
                    0 => b"GET / HTTP/1.1\r\n".to_vec(),
                    1 => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
                    _ => Vec::new(),
                };
                v.extend_from_slice(bytes);
                if kind % 7 == 3 {
                    s.gap(*kind as u64, &mut Null);
                }
                s.data(&v, i as u64, 0, &mut Null);
                assert!(s.buffered() <= 2 * hoptrace::capture::http::MAX_HEAD_LEN + 1024);
            }
            s.close(true, &mut Null);
        });
}
