//! TCP byte-stream reassembly for one direction of a connection.
//!
//! In-order data is handed on at once, borrowed from the packet (no copy). Only segments that
//! arrive ahead of a hole are copied, and they are bounded per stream and across the capture
//! ([`ReassemblyLimits`]); when a limit is hit the hole is declared lost ([`Delivery::Gap`]) and the
//! stream moves on, so a hostile capture cannot make buffering grow without bound.
//!
//! **Overlap policy: first wins.** Bytes already delivered, or already buffered out of order, are
//! never replaced by a later copy of the same sequence range; the later copy's overlapping bytes
//! are dropped and counted in [`StreamStats::overlap_bytes`] (retransmissions of delivered bytes in
//! [`StreamStats::retransmitted_bytes`]). Holes that are never filled — a lost segment, or bytes cut
//! off by the snap length — become [`Delivery::Gap`]s with their exact length, so a consumer that
//! counts bytes (an HTTP body of known length) stays in step.

/// Bounds on out-of-order buffering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyLimits {
    /// Bytes buffered ahead of a hole in one direction of one connection.
    pub per_stream_bytes: usize,
    /// Bytes buffered ahead of holes across the whole capture.
    pub total_bytes: usize,
    /// Segments buffered ahead of a hole in one direction (bounds the per-segment bookkeeping
    /// when a capture holds many tiny out-of-order segments).
    pub per_stream_segments: usize,
    /// Bytes of HTTP heads being collected across the capture (each is at most 64 KiB; past
    /// this total, a stream abandons its head as partial).
    pub http_head_total: usize,
    /// A segment further than this ahead of the expected sequence number is not buffered (it does
    /// not belong to this stream incarnation or the capture lost too much).
    pub max_window: u32,
}

impl Default for ReassemblyLimits {
    fn default() -> Self {
        ReassemblyLimits {
            per_stream_bytes: 1 << 20,
            total_bytes: 256 << 20,
            per_stream_segments: 1024,
            http_head_total: 64 << 20,
            max_window: 64 << 20,
        }
    }
}

/// Counters per direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Segments that arrived ahead of a hole.
    pub out_of_order: u32,
    /// Payload bytes that repeated bytes already delivered (saturating).
    pub retransmitted_bytes: u32,
    /// Bytes of a later copy that overlapped buffered bytes (dropped: first wins; saturating).
    pub overlap_bytes: u32,
    /// Holes declared lost, and their total length (saturating).
    pub gaps: u32,
    pub gap_bytes: u32,
    /// Segments dropped for lying outside the window.
    pub out_of_window: u32,
}

/// What the reassembler hands on, in stream order.
#[derive(Debug)]
pub enum Delivery<'a> {
    Data {
        bytes: &'a [u8],
        frame: u64,
        ts_ns: i64,
    },
    /// `len` stream bytes that will never be seen.
    Gap { len: u64 },
}

#[derive(Debug)]
struct Pending {
    seq: u32,
    data: Box<[u8]>,
    /// Bytes after `data` that the segment carried on the wire but the capture cut.
    missing_tail: u32,
    frame: u64,
    ts_ns: i64,
}

impl Pending {
    fn end(&self) -> u32 {
        self.seq
            .wrapping_add(self.data.len() as u32)
            .wrapping_add(self.missing_tail)
    }
}

/// Shared accounting of buffered bytes across streams.
#[derive(Debug, Default)]
pub struct ReassemblyBudget {
    pub limits: ReassemblyLimits,
    pub buffered: usize,
    /// High-water mark of `buffered`.
    pub peak: usize,
}

/// One direction's reassembly state.
#[derive(Debug, Default)]
pub struct StreamReassembler {
    next: Option<u32>,
    pending: Vec<Pending>,
    pending_bytes: usize,
    pub stats: StreamStats,
}

/// Saturating counter update.
fn add(counter: &mut u32, v: u64) {
    *counter = counter.saturating_add(v.min(u32::MAX as u64) as u32);
}

fn seq_diff(a: u32, b: u32) -> i64 {
    a.wrapping_sub(b) as i32 as i64
}

impl StreamReassembler {
    /// Next expected sequence number, once known.
    pub fn next_seq(&self) -> Option<u32> {
        self.next
    }

    /// A SYN with sequence number `isn` was seen: data starts at `isn + 1`.
    pub fn syn(&mut self, isn: u32) {
        if self.next.is_none() {
            self.next = Some(isn.wrapping_add(1));
        }
    }

    /// Feed one segment: `data` captured bytes of a payload that was `wire_len` long on the wire.
    /// (The arguments are the segment's facts plus the two sinks; bundling them would only move
    /// the same list into a struct built per packet.)
    #[allow(clippy::too_many_arguments)]
    pub fn segment(
        &mut self,
        seq: u32,
        data: &[u8],
        wire_len: u32,
        frame: u64,
        ts_ns: i64,
        budget: &mut ReassemblyBudget,
        out: &mut dyn FnMut(Delivery<'_>),
    ) {
        let wire_len = wire_len.max(data.len() as u32);
        if wire_len == 0 {
            return;
        }
        let next = *self.next.get_or_insert(seq);
        let rel = seq_diff(seq, next);
        if rel <= 0 {
            let skip = (-rel) as u64;
            if skip >= wire_len as u64 {
                add(&mut self.stats.retransmitted_bytes, wire_len as u64);
                return;
            }
            add(&mut self.stats.retransmitted_bytes, skip);
            let cap_skip = (skip as usize).min(data.len());
            let missing = wire_len as u64 - skip - (data.len() - cap_skip) as u64;
            self.deliver_now(&data[cap_skip..], missing, frame, ts_ns, out);
            self.drain(budget, out);
            return;
        }
        if rel as u64 > budget.limits.max_window as u64 {
            self.stats.out_of_window += 1;
            return;
        }
        self.stats.out_of_order += 1;
        self.buffer(seq, data, wire_len, frame, ts_ns, budget, out);
    }

    fn deliver_now(
        &mut self,
        data: &[u8],
        missing: u64,
        frame: u64,
        ts_ns: i64,
        out: &mut dyn FnMut(Delivery<'_>),
    ) {
        if !data.is_empty() {
            out(Delivery::Data {
                bytes: data,
                frame,
                ts_ns,
            });
        }
        if missing > 0 {
            self.stats.gaps += 1;
            add(&mut self.stats.gap_bytes, missing);
            out(Delivery::Gap { len: missing });
        }
        let n = self.next.unwrap_or(0);
        self.next = Some(n.wrapping_add((data.len() as u64 + missing) as u32));
    }

    /// Buffer an out-of-order segment, keeping only the bytes no earlier copy already holds.
    #[allow(clippy::too_many_arguments)]
    fn buffer(
        &mut self,
        seq: u32,
        data: &[u8],
        wire_len: u32,
        frame: u64,
        ts_ns: i64,
        budget: &mut ReassemblyBudget,
        out: &mut dyn FnMut(Delivery<'_>),
    ) {
        let next = self.next.unwrap_or(seq);
        // Work in offsets relative to `next` (all positive here).
        let start = seq_diff(seq, next) as u64;
        let end = start + wire_len as u64;
        let cap_end = start + data.len() as u64;
        // Buffered segments never overlap each other and are sorted, so the ones this segment
        // overlaps are a contiguous run found by binary search; the uncovered pieces lie between.
        let offset = |q: u32| seq_diff(q, next).max(0) as u64;
        let first = self.pending.partition_point(|p| offset(p.end()) <= start);
        let mut pieces: Vec<(u64, u64)> = Vec::new();
        let mut cursor = start;
        for p in self.pending[first..]
            .iter()
            .take_while(|p| offset(p.seq) < end)
        {
            let (ps, pe) = (offset(p.seq), offset(p.end()));
            if ps > cursor {
                pieces.push((cursor, ps));
            }
            add(&mut self.stats.overlap_bytes, end.min(pe) - cursor.max(ps));
            cursor = cursor.max(pe);
        }
        if cursor < end {
            pieces.push((cursor, end));
        }
        for (s, e) in pieces {
            let cs = s.min(cap_end);
            let ce = e.min(cap_end);
            let bytes = &data[(cs - start) as usize..(ce - start) as usize];
            let missing_tail = (e - s) - (ce - cs);
            // Make room: declare the first hole lost until this piece fits.
            while self.pending_bytes + bytes.len() > budget.limits.per_stream_bytes
                || budget.buffered + bytes.len() > budget.limits.total_bytes
                || self.pending.len() >= budget.limits.per_stream_segments.max(1)
            {
                if self.pending.is_empty() {
                    break;
                }
                self.skip_first_hole(budget, out);
            }
            let now_next = self.next.unwrap_or(next);
            let piece_seq = next.wrapping_add(s as u32);
            let rel_now = seq_diff(piece_seq, now_next);
            if rel_now <= 0
                || self.pending_bytes + bytes.len() > budget.limits.per_stream_bytes
                || budget.buffered + bytes.len() > budget.limits.total_bytes
                || self.pending.len() >= budget.limits.per_stream_segments.max(1)
            {
                // Either skipping caught up with this piece, or it alone exceeds the budget: hand it
                // on now (after declaring the hole before it lost).
                if rel_now > 0 {
                    self.stats.gaps += 1;
                    add(&mut self.stats.gap_bytes, rel_now as u64);
                    out(Delivery::Gap {
                        len: rel_now as u64,
                    });
                    self.next = Some(piece_seq);
                    self.deliver_now(bytes, missing_tail, frame, ts_ns, out);
                } else {
                    let skip = (-rel_now) as u64;
                    let len = e - s;
                    if skip < len {
                        let cap_skip = (skip as usize).min(bytes.len());
                        let missing = len - skip - (bytes.len() - cap_skip) as u64;
                        self.deliver_now(&bytes[cap_skip..], missing, frame, ts_ns, out);
                    }
                }
                self.drain(budget, out);
                continue;
            }
            let idx = self
                .pending
                .partition_point(|p| seq_diff(p.seq, piece_seq) < 0);
            self.pending_bytes += bytes.len();
            budget.buffered += bytes.len();
            budget.peak = budget.peak.max(budget.buffered);
            self.pending.insert(
                idx,
                Pending {
                    seq: piece_seq,
                    data: bytes.into(),
                    missing_tail: missing_tail as u32,
                    frame,
                    ts_ns,
                },
            );
        }
    }

    /// Declare the hole before the first buffered segment lost and deliver what follows it.
    fn skip_first_hole(
        &mut self,
        budget: &mut ReassemblyBudget,
        out: &mut dyn FnMut(Delivery<'_>),
    ) {
        let Some(first) = self.pending.first() else {
            return;
        };
        let next = self.next.unwrap_or(first.seq);
        let hole = seq_diff(first.seq, next);
        if hole > 0 {
            self.stats.gaps += 1;
            add(&mut self.stats.gap_bytes, hole as u64);
            out(Delivery::Gap { len: hole as u64 });
            self.next = Some(first.seq);
        }
        self.drain(budget, out);
    }

    /// Deliver buffered segments that have become contiguous.
    fn drain(&mut self, budget: &mut ReassemblyBudget, out: &mut dyn FnMut(Delivery<'_>)) {
        while let Some(first) = self.pending.first() {
            let next = self.next.unwrap_or(first.seq);
            let rel = seq_diff(first.seq, next);
            if rel > 0 {
                break;
            }
            let p = self.pending.remove(0);
            self.pending_bytes -= p.data.len();
            budget.buffered -= p.data.len();
            let skip = (-rel) as u64;
            let len = p.data.len() as u64 + p.missing_tail as u64;
            if skip >= len {
                continue;
            }
            let cap_skip = (skip as usize).min(p.data.len());
            let missing = len - skip - (p.data.len() - cap_skip) as u64;
            self.deliver_now(&p.data[cap_skip..], missing, p.frame, p.ts_ns, out);
        }
    }

    /// End of stream (FIN, RST or end of capture): every remaining hole is lost.
    /// `end`: the sequence number just past the stream's FIN, when seen — bytes missing before
    /// it (lost segments at the tail) become a final gap.
    pub fn finish(
        &mut self,
        end: Option<u32>,
        budget: &mut ReassemblyBudget,
        out: &mut dyn FnMut(Delivery<'_>),
    ) {
        while !self.pending.is_empty() {
            self.skip_first_hole(budget, out);
        }
        if let (Some(end), Some(next)) = (end, self.next) {
            let missing = seq_diff(end, next);
            if missing > 0 && missing as u64 <= budget.limits.max_window as u64 {
                self.stats.gaps += 1;
                add(&mut self.stats.gap_bytes, missing as u64);
                out(Delivery::Gap {
                    len: missing as u64,
                });
                self.next = Some(end);
            }
        }
    }

    /// Bytes currently buffered.
    pub fn buffered(&self) -> usize {
        self.pending_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(segs: &[(u32, &[u8])], limits: ReassemblyLimits) -> (Vec<u8>, StreamStats) {
        let mut r = StreamReassembler::default();
        let mut budget = ReassemblyBudget {
            limits,
            ..Default::default()
        };
        let mut out = Vec::new();
        r.syn(999);
        for (i, (seq, d)) in segs.iter().enumerate() {
            r.segment(
                *seq,
                d,
                d.len() as u32,
                i as u64 + 1,
                0,
                &mut budget,
                &mut |dl| match dl {
                    Delivery::Data { bytes, .. } => out.extend_from_slice(bytes),
                    Delivery::Gap { len } => out.extend(std::iter::repeat_n(b'?', len as usize)),
                },
            );
        }
        r.finish(None, &mut budget, &mut |dl| match dl {
            Delivery::Data { bytes, .. } => out.extend_from_slice(bytes),
            Delivery::Gap { len } => out.extend(std::iter::repeat_n(b'?', len as usize)),
        });
        assert_eq!(budget.buffered, 0);
        (out, r.stats)
    }

    #[test]
    fn in_order_out_of_order_and_retransmission() {
        let (s, st) = run(
            &[
                (1000, b"GET "),
                (1008, b"HTTP"),
                (1004, b"/ab "),
                (1004, b"/ab "),
            ],
            Default::default(),
        );
        assert_eq!(s, b"GET /ab HTTP");
        assert_eq!(st.out_of_order, 1);
        assert_eq!(st.retransmitted_bytes, 4);
    }

    #[test]
    fn first_wins_on_overlap() {
        // Buffered "BBBB" at 1004..1008 arrives first; a later "xxxxxx" 1002..1008 only fills 1002..1004.
        let (s, st) = run(
            &[(1004, b"BBBB"), (1002, b"xxxxxx"), (1000, b"AAZZ")],
            Default::default(),
        );
        assert_eq!(s, b"AAZZBBBB");
        assert_eq!(st.overlap_bytes, 2 + 2);
    }

    #[test]
    fn lost_segment_becomes_gap_with_exact_length() {
        let (s, st) = run(&[(1000, b"ab"), (1005, b"fg")], Default::default());
        assert_eq!(s, b"ab???fg");
        assert_eq!((st.gaps, st.gap_bytes), (1, 3));
    }

    #[test]
    fn budget_forces_progress() {
        let limits = ReassemblyLimits {
            per_stream_bytes: 4,
            total_bytes: 4,
            per_stream_segments: 64,
            ..Default::default()
        };
        let (s, st) = run(
            &[(1010, b"xyz"), (1020, b"abcd"), (1000, b"0123456789")],
            limits,
        );
        // "abcd" does not fit beside "xyz": the hole before "xyz" is declared lost; the late
        // segment then repeats bytes already given up on and is counted as a retransmission.
        assert_eq!(s, b"??????????xyz???????abcd");
        assert_eq!((st.gaps, st.retransmitted_bytes), (2, 10));
    }

    #[test]
    fn many_tiny_out_of_order_segments_stay_bounded() {
        let mut r = StreamReassembler::default();
        let mut budget = ReassemblyBudget::default();
        r.syn(0);
        // One-byte segments, each ahead of a hole: bounded buffering and bookkeeping.
        for i in 0..20_000u32 {
            r.segment(2 + i * 2, b"x", 1, i as u64, 0, &mut budget, &mut |_| {});
            assert!(r.pending.len() <= budget.limits.per_stream_segments);
        }
        assert!(r.stats.gaps > 0);
    }

    #[test]
    fn lost_tail_before_fin_is_a_gap() {
        let mut r = StreamReassembler::default();
        let mut budget = ReassemblyBudget::default();
        r.syn(99);
        let mut gaps = Vec::new();
        r.segment(100, b"abc", 3, 1, 0, &mut budget, &mut |_| {});
        r.finish(Some(110), &mut budget, &mut |d| {
            if let Delivery::Gap { len } = d {
                gaps.push(len)
            }
        });
        assert_eq!(gaps, [7]);
        assert_eq!(r.stats.gaps, 1);
    }

    #[test]
    fn sequence_wraparound() {
        let mut r = StreamReassembler::default();
        let mut budget = ReassemblyBudget::default();
        let mut out = Vec::new();
        r.syn(u32::MAX - 2);
        let mut f = |d: Delivery<'_>| {
            if let Delivery::Data { bytes, .. } = d {
                out.extend_from_slice(bytes)
            }
        };
        r.segment(
            u32::MAX.wrapping_add(1),
            b"cd",
            2,
            2,
            0,
            &mut budget,
            &mut f,
        );
        r.segment(u32::MAX - 1, b"ab", 2, 1, 0, &mut budget, &mut f);
        assert_eq!(out, b"abcd");
    }

    #[test]
    fn arbitrary_segments_never_panic_and_release_budget() {
        bolero::check!()
            .with_type::<Vec<(u16, u8, u8)>>()
            .for_each(|segs| {
                let mut r = StreamReassembler::default();
                let limits = ReassemblyLimits {
                    per_stream_bytes: 300,
                    total_bytes: 500,
                    per_stream_segments: 8,
                    http_head_total: 1 << 20,
                    max_window: 5000,
                };
                let mut budget = ReassemblyBudget {
                    limits,
                    ..Default::default()
                };
                let data = [7u8; 256];
                let mut total = 0u64;
                for (i, (seq, len, cut)) in segs.iter().enumerate() {
                    let cap = (*len as usize).saturating_sub(*cut as usize);
                    r.segment(
                        *seq as u32,
                        &data[..cap],
                        *len as u32,
                        i as u64,
                        0,
                        &mut budget,
                        &mut |d| match d {
                            Delivery::Data { bytes, .. } => total += bytes.len() as u64,
                            Delivery::Gap { len } => total += len,
                        },
                    );
                    assert!(budget.buffered <= 500);
                }
                r.finish(None, &mut budget, &mut |_| {});
                assert_eq!(budget.buffered, 0);
            });
    }
}
