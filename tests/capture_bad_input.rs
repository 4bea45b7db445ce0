//! Bad input: clear errors naming file and byte offset, nothing valid lost, never a panic.
//! Damaged captures are made by code from generated ones (cut, patched, appended to).

mod capture_scenarios;

use capture_scenarios::*;
use hoptrace::capture::synth::{self, Framing, NgInterface, NgPacket, NgSection};
use hoptrace::capture::{Capture, CaptureError, CaptureOptions, WarningKind};
use std::path::PathBuf;
use std::process::Command;

fn good_pcap() -> Vec<u8> {
    pcap(&eth(), keepalive("10.0.0.1:40000", T0).segments())
}

fn analyse(bytes: &[u8]) -> Result<Capture, CaptureError> {
    Capture::from_bytes(0, "bad.pcap", bytes, CaptureOptions::default())
}

/// Byte offsets of each pcap record (little-endian file).
fn record_offsets(b: &[u8]) -> Vec<usize> {
    let mut v = Vec::new();
    let mut o = 24;
    while o + 16 <= b.len() {
        v.push(o);
        o += 16 + u32::from_le_bytes(b[o + 8..o + 12].try_into().unwrap()) as usize;
    }
    v
}

fn scratch(name: &str, bytes: &[u8]) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("capture_bad_input");
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn hoptrace(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hoptrace"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn truncated_last_record_keeps_every_complete_one() {
    let good = good_pcap();
    let offsets = record_offsets(&good);
    let last = *offsets.last().unwrap();
    let cut = &good[..last + 20];
    let c = analyse(cut).unwrap();
    assert_eq!(c.stats.frames as usize, offsets.len() - 1);
    assert_eq!(c.requests.len(), 3);
    let w = &c.warnings[0];
    assert_eq!(w.offset, Some(last as u64));
    assert!(
        matches!(w.kind, WarningKind::TruncatedRecord { have: 20, .. }),
        "{w}"
    );
    let text = w.to_string();
    assert!(
        text.contains("bad.pcap") && text.contains(&format!("byte offset {last}")),
        "{text}"
    );
    // Cut inside a record header as well.
    let c = analyse(&good[..last + 5]).unwrap();
    assert!(matches!(
        c.warnings[0].kind,
        WarningKind::TruncatedRecord {
            have: 5,
            need: 16,
            ..
        }
    ));
    // The CLI says so and exits 1.
    let p = scratch("truncated.pcap", cut);
    let (code, out, err) = hoptrace(&["report", p.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        out.contains("/yo")
            && err.contains("truncated.pcap")
            && err.contains(&format!("byte offset {last}")),
        "{err}"
    );
}

#[test]
fn record_larger_than_256k_stops_reading_without_allocating() {
    let mut b = good_pcap();
    let offsets = record_offsets(&b);
    let o = offsets[5];
    b[o + 8..o + 12].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
    b[o + 12..o + 16].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
    let c = analyse(&b).unwrap();
    assert_eq!(c.stats.frames, 5);
    assert!(matches!(
        c.warnings[0].kind,
        WarningKind::RecordTooLarge {
            len: 0x7fff_fff0,
            ..
        }
    ));
    assert_eq!(c.warnings[0].offset, Some(o as u64));
    // Streamed: the length is checked before anything is buffered.
    let s = Capture::from_reader(0, "-", &b[..], CaptureOptions::default()).unwrap();
    assert_eq!(s.stats.frames, 5);
}

#[test]
fn record_larger_than_snaplen_is_kept_with_a_warning() {
    let mut b = good_pcap();
    // Lower the file's snap length below the largest record.
    b[16..20].copy_from_slice(&100u32.to_le_bytes());
    let c = analyse(&b).unwrap();
    assert_eq!(c.requests.len(), 3);
    let w = c
        .warnings
        .iter()
        .find(|w| matches!(w.kind, WarningKind::RecordOverSnaplen { .. }))
        .expect("warning");
    assert!(w.to_string().contains("snap length 100"), "{w}");
}

#[test]
fn garbage_after_a_valid_prefix() {
    let good = good_pcap();
    let frames = record_offsets(&good).len() as u64;
    let mut b = good.clone();
    b.extend_from_slice(b"this is definitely not a pcap record header, just text appended");
    let c = analyse(&b).unwrap();
    assert_eq!(c.stats.frames, frames);
    assert_eq!(c.requests.len(), 3);
    let w = &c.warnings[0];
    // The text reads as an absurd record length (or an invalid header): either way, a warning.
    assert!(
        matches!(
            w.kind,
            WarningKind::Garbage { .. } | WarningKind::RecordTooLarge { .. }
        ),
        "{w}"
    );
    assert_eq!(w.offset, Some(good.len() as u64));

    // pcapng: garbage after the last block.
    let mut ng = multi_pcapng();
    let len = ng.len();
    ng.extend_from_slice(&[0x55; 40]);
    let c = Capture::from_bytes(0, "x.pcapng", &ng, CaptureOptions::default()).unwrap();
    assert_eq!(c.requests.len(), 7);
    assert_eq!(c.warnings[0].offset, Some(len as u64));
}

#[test]
fn truncated_pcapng_keeps_complete_blocks() {
    let ng = multi_pcapng();
    let full = Capture::from_bytes(0, "x.pcapng", &ng, CaptureOptions::default()).unwrap();
    let c = Capture::from_bytes(
        0,
        "x.pcapng",
        &ng[..ng.len() - 30],
        CaptureOptions::default(),
    )
    .unwrap();
    assert_eq!(c.stats.frames, full.stats.frames - 1);
    assert!(matches!(
        c.warnings[0].kind,
        WarningKind::TruncatedRecord { .. }
    ));
}

#[test]
fn empty_file_and_foreign_file_are_errors() {
    assert!(matches!(analyse(b""), Err(CaptureError::Empty { .. })));
    let e = analyse(b"*nat\n:PREROUTING ACCEPT [0:0]\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.pcap") && e.contains("2a 6e 61 74"), "{e}");
    let e = analyse(&[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0])
        .unwrap_err()
        .to_string();
    assert!(e.contains("de ad be ef"), "{e}");
    // A pcap header cut short.
    let e = analyse(&good_pcap()[..10]).unwrap_err().to_string();
    assert!(e.contains("24"), "{e}");

    let empty = scratch("empty.pcap", b"");
    let (code, _, err) = hoptrace(&["report", empty.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("empty.pcap") && err.contains("empty"), "{err}");
    let text = scratch("notes.txt", b"hello\x1b[2J world\n");
    let (code, _, err) = hoptrace(&["report", text.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("notes.txt") && err.contains("\\x1b") && !err.contains('\x1b'),
        "{err}"
    );
    let (code, _, err) = hoptrace(&["report", "/nonexistent/capture.pcap"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/capture.pcap"), "{err}");
}

#[test]
fn unknown_link_type_is_counted_not_fatal() {
    let mut b = good_pcap();
    b[20..24].copy_from_slice(&147u32.to_le_bytes()); // LINKTYPE_USER0
    let c = analyse(&b).unwrap();
    assert_eq!(
        c.stats.unsupported_link.get(&147).copied(),
        Some(c.stats.frames)
    );
    assert!(c.requests.is_empty());
    assert!(c.warnings.iter().any(|w| matches!(
        w.kind,
        WarningKind::UnsupportedLinkType { link_type: 147, .. }
    )));
    // Mixed with a supported interface in one pcapng: the supported one is analysed.
    let conv = keepalive("10.0.0.2:40000", T0);
    let mut sec = NgSection {
        interfaces: vec![
            NgInterface {
                framing: Framing::Ethernet { vlans: vec![] },
                name: None,
                tsresol: 6,
                snaplen: 0,
            },
            NgInterface {
                framing: Framing::Ethernet { vlans: vec![] },
                name: None,
                tsresol: 6,
                snaplen: 0,
            },
        ],
        ..Default::default()
    };
    sec.packets = conv
        .segments()
        .iter()
        .map(|s| NgPacket {
            interface: 0,
            segment: s.clone(),
            comment: None,
            simple: false,
        })
        .collect();
    sec.packets.push(NgPacket {
        interface: 1,
        segment: conv.segments()[0].clone(),
        comment: None,
        simple: false,
    });
    // A simple packet block belongs to interface 0 and has no timestamp.
    sec.packets.push(NgPacket {
        interface: 0,
        segment: conv.segments()[0].clone(),
        comment: None,
        simple: true,
    });
    let mut ng = synth::write_pcapng(Vec::new(), &[sec]).unwrap();
    // Patch the second IDB's link type (file order: SHB, IDB, IDB …).
    let shb_len = u32::from_le_bytes(ng[4..8].try_into().unwrap()) as usize;
    let idb1_len = u32::from_le_bytes(ng[shb_len + 4..shb_len + 8].try_into().unwrap()) as usize;
    let idb2 = shb_len + idb1_len;
    ng[idb2 + 8..idb2 + 10].copy_from_slice(&147u16.to_le_bytes());
    let c = Capture::from_bytes(0, "x.pcapng", &ng, CaptureOptions::default()).unwrap();
    assert_eq!(c.requests.len(), 3);
    assert_eq!(c.stats.unsupported_link.get(&147).copied(), Some(1));
    let spb = c.packet(c.stats.frames).unwrap();
    assert_eq!((spb.interface, spb.ts_ns, spb.src_port), (0, 0, 40000));
}

#[test]
fn pcapng_packet_for_undescribed_interface_is_skipped_with_warning() {
    let conv = keepalive("10.0.0.3:40000", T0);
    let sec = NgSection {
        interfaces: vec![NgInterface {
            framing: Framing::Ethernet { vlans: vec![] },
            name: None,
            tsresol: 6,
            snaplen: 0,
        }],
        packets: conv
            .segments()
            .iter()
            .map(|s| NgPacket {
                interface: 0,
                segment: s.clone(),
                comment: None,
                simple: false,
            })
            .collect(),
        ..Default::default()
    };
    let mut ng = synth::write_pcapng(Vec::new(), &[sec]).unwrap();
    // Point the first EPB at interface 9.
    let shb_len = u32::from_le_bytes(ng[4..8].try_into().unwrap()) as usize;
    let idb_len = u32::from_le_bytes(ng[shb_len + 4..shb_len + 8].try_into().unwrap()) as usize;
    let epb = shb_len + idb_len;
    ng[epb + 8..epb + 12].copy_from_slice(&9u32.to_le_bytes());
    let c = Capture::from_bytes(0, "x.pcapng", &ng, CaptureOptions::default()).unwrap();
    assert!(c.warnings.iter().any(|w| matches!(
        w.kind,
        WarningKind::UnknownInterface {
            interface: 9,
            packets: 1
        }
    )));
    assert_eq!(c.stats.frames as usize, conv.segments().len() - 1);
}

#[test]
fn malformed_pcapng_block_with_intact_framing_is_skipped() {
    let conv = keepalive("10.0.0.5:40000", T0);
    let sec = NgSection {
        interfaces: vec![NgInterface {
            framing: Framing::Ethernet { vlans: vec![] },
            name: None,
            tsresol: 6,
            snaplen: 0,
        }],
        packets: conv
            .segments()
            .iter()
            .map(|s| NgPacket {
                interface: 0,
                segment: s.clone(),
                comment: None,
                simple: false,
            })
            .collect(),
        ..Default::default()
    };
    let mut ng = synth::write_pcapng(Vec::new(), &[sec]).unwrap();
    let shb_len = u32::from_le_bytes(ng[4..8].try_into().unwrap()) as usize;
    let idb_len = u32::from_le_bytes(ng[shb_len + 4..shb_len + 8].try_into().unwrap()) as usize;
    let epb = shb_len + idb_len;
    // The first EPB claims more captured bytes than its block holds.
    ng[epb + 20..epb + 24].copy_from_slice(&5000u32.to_le_bytes());
    let c = Capture::from_bytes(0, "x.pcapng", &ng, CaptureOptions::default()).unwrap();
    assert!(
        matches!(c.warnings[0].kind, WarningKind::BadBlock { .. }),
        "{}",
        c.warnings[0]
    );
    assert_eq!(c.warnings[0].offset, Some(epb as u64));
    assert_eq!(c.stats.frames as usize, conv.segments().len() - 1);
    assert_eq!(c.requests.len(), 3);
}

#[test]
fn control_characters_from_packets_never_reach_the_terminal() {
    let mut c =
        hoptrace::capture::synth::Conversation::new(sa("10.0.0.4:40000"), sa("10.0.0.80:80"), T0);
    c.handshake()
        .request(b"GET /\x1b[2J\x07evil HTTP/1.1\r\nHost: h\x1b]0;pwn\x07\r\n\r\n")
        .response(&synth::ok(200, b""))
        .close();
    let p = scratch("evil.pcap", &pcap(&eth(), c.segments()));
    for fmt in ["table", "json", "ndjson", "csv"] {
        let (code, out, _) = hoptrace(&["report", "--format", fmt, p.to_str().unwrap()]);
        assert_eq!(code, 0);
        assert!(
            !out.contains('\x1b') && !out.contains('\x07'),
            "{fmt}: {out}"
        );
        assert!(
            out.contains("\\\\x1b") || out.contains("\\x1b"),
            "{fmt}: {out}"
        );
    }
}

#[test]
fn directory_skips_unrecognised_files_but_explicit_ones_are_errors() {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("capture_bad_input_dir");
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("a.pcap"), good_pcap()).unwrap();
    std::fs::write(d.join("README"), b"just notes\n").unwrap();
    let (code, out, err) = hoptrace(&["report", "--format", "ndjson", d.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(out.lines().count(), 3);
    assert!(err.contains("README") && err.contains("skipped"), "{err}");
    let (code, _, err) = hoptrace(&["report", d.join("README").to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("README") && err.contains("not a recognised input"),
        "{err}"
    );
}
