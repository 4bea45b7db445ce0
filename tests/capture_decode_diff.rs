//! Differential test of the hand-written decode fast path (untagged Ethernet / IPv4 / TCP):
//! `link::decode` (fast path first) and `link::decode_general` (etherparse only) must give the
//! same result for every frame of the generated captures and for random mutations of them.

mod capture_scenarios;

use capture_scenarios::*;
use hoptrace::capture::link::{self, LINKTYPE_ETHERNET};
use hoptrace::capture::reader::{self, Frame};
use hoptrace::capture::synth;
use std::sync::OnceLock;

/// Every frame of the scenario captures and of a small benchmark capture, with its link type.
fn frames() -> &'static [(u32, Vec<u8>)] {
    static F: OnceLock<Vec<(u32, Vec<u8>)>> = OnceLock::new();
    F.get_or_init(|| {
        let mut files: Vec<Vec<u8>> = all_captures().into_iter().map(|(_, b)| b).collect();
        let mut bench = Vec::new();
        synth::write_bench_pcap(&mut bench, 20_000).unwrap();
        files.push(bench);
        let mut out = Vec::new();
        for f in &files {
            let mut sink = |fr: &Frame<'_>| out.push((fr.link_type, fr.data.to_vec()));
            reader::read_slice("diff", f, &mut sink).unwrap();
        }
        out
    })
}

fn check(link_type: u32, data: &[u8]) {
    assert_eq!(
        link::decode(link_type, data),
        link::decode_general(link_type, data),
        "link type {link_type}, frame {data:02x?}"
    );
}

#[test]
fn fast_path_agrees_on_generated_captures() {
    let f = frames();
    let ethernet = f.iter().filter(|(lt, _)| *lt == LINKTYPE_ETHERNET).count();
    assert!(
        ethernet > 100,
        "too few Ethernet frames to exercise the fast path: {ethernet}"
    );
    for (lt, data) in f {
        check(*lt, data);
        // Every cut of the frame (snap length): headers partly or wholly missing.
        for cut in 0..data.len().min(80) {
            check(*lt, &data[..cut]);
        }
        // Link padding after the datagram.
        let mut padded = data.clone();
        padded.extend_from_slice(&[0u8; 6]);
        check(*lt, &padded);
    }
}

#[test]
fn fast_path_agrees_on_mutated_frames() {
    // Mutations aimed at the headers (the first 80 bytes): IHL, flags, fragment offset,
    // protocol, total length, TCP data offset …
    bolero::check!()
        .with_type::<(u16, Vec<(u8, u8)>, Option<u16>)>()
        .for_each(|(pick, edits, cut)| {
            let f = frames();
            let (lt, data) = &f[*pick as usize % f.len()];
            let mut d = data.clone();
            for &(pos, byte) in edits {
                let at = pos as usize % d.len().clamp(1, 80);
                if at < d.len() {
                    d[at] = byte;
                }
            }
            if let Some(c) = cut {
                d.truncate(*c as usize % (d.len() + 1));
            }
            check(*lt, &d);
            check(LINKTYPE_ETHERNET, &d);
        });
}
