use super::*;
use crate::tcp::buffer::chunks::CHUNK;
use proptest::prelude::*;

/// The byte at stream position `i`, so duplicates carry identical data.
fn byte(i: usize) -> u8 {
    (i.wrapping_mul(131) ^ (i >> 8)) as u8
}
fn stream(start: usize, len: usize) -> Vec<u8> {
    (start..start + len).map(byte).collect()
}
fn read_all(buf: &mut RecvBuffer) -> Vec<u8> {
    let mut out = vec![0u8; buf.readable()];
    assert_eq!(buf.read(&mut out), out.len());
    out
}
fn ranges(buf: &RecvBuffer) -> Vec<(usize, usize)> {
    buf.out_of_order_ranges().collect()
}

#[test]
fn allocates_nothing_until_data_arrives() {
    let mut buf = RecvBuffer::new(65536);
    assert_eq!(buf.allocated(), 0);
    assert_eq!(buf.place(0, &[]), Placed::default());
    assert_eq!(buf.place(70_000, b"x"), Placed::default());
    assert_eq!(buf.allocated(), 0);
    assert_eq!(buf.read(&mut [0u8; 10]), 0);
    assert_eq!(buf.window(), 65536);
}

#[test]
fn in_order_data_is_readable_and_shrinks_the_window() {
    let mut buf = RecvBuffer::new(10_000);
    assert_eq!(buf.place(0, &stream(0, 3000)), Placed { stored: 3000, advanced: 3000 });
    assert_eq!(buf.readable(), 3000);
    assert_eq!(buf.window(), 7000);
    assert_eq!(buf.place(0, &stream(3000, 2000)), Placed { stored: 2000, advanced: 2000 });
    assert_eq!(buf.window(), 5000);
    let mut out = vec![0u8; 1000];
    assert_eq!(buf.read(&mut out), 1000);
    assert_eq!(out, stream(0, 1000));
    assert_eq!(buf.window(), 6000, "reading reopens the window");
    assert_eq!(read_all(&mut buf), stream(1000, 4000));
    assert_eq!(buf.window(), 10_000);
}

#[test]
fn data_beyond_the_window_is_cut() {
    let mut buf = RecvBuffer::new(1000);
    assert_eq!(buf.place(0, &stream(0, 1500)), Placed { stored: 1000, advanced: 1000 });
    assert_eq!(buf.window(), 0);
    assert_eq!(buf.place(0, &stream(1000, 10)), Placed::default());
    assert_eq!(buf.allocated(), CHUNK);
    let mut out = [0u8; 400];
    buf.read(&mut out);
    assert_eq!(buf.place(300, &stream(1300, 200)), Placed { stored: 100, advanced: 0 });
    assert_eq!(ranges(&buf), vec![(300, 400)]);
}

#[test]
fn out_of_order_data_is_held_until_the_gap_fills() {
    let mut buf = RecvBuffer::new(10_000);
    assert_eq!(buf.place(2000, &stream(2000, 1000)), Placed { stored: 1000, advanced: 0 });
    assert_eq!(buf.place(4000, &stream(4000, 500)), Placed { stored: 500, advanced: 0 });
    assert_eq!(buf.readable(), 0);
    assert!(buf.has_out_of_order());
    assert_eq!(ranges(&buf), vec![(4000, 4500), (2000, 3000)]);
    // Fill the first gap: rcv_nxt jumps over the held range.
    assert_eq!(buf.place(0, &stream(0, 2000)), Placed { stored: 2000, advanced: 3000 });
    assert_eq!(ranges(&buf), vec![(1000, 1500)], "offsets are relative to the new rcv_nxt");
    // Overlapping fill of the second gap.
    assert_eq!(buf.place(0, &stream(3000, 1200)), Placed { stored: 1200, advanced: 1500 });
    assert!(!buf.has_out_of_order());
    assert_eq!(read_all(&mut buf), stream(0, 4500));
}

#[test]
fn ranges_report_the_most_recent_first() {
    let mut buf = RecvBuffer::new(10_000);
    buf.place(100, &stream(100, 10));
    buf.place(300, &stream(300, 10));
    buf.place(500, &stream(500, 10));
    assert_eq!(ranges(&buf), vec![(500, 510), (300, 310), (100, 110)]);
    buf.place(105, &stream(105, 20)); // extends the oldest
    assert_eq!(ranges(&buf), vec![(100, 125), (500, 510), (300, 310)]);
    buf.place(300, &stream(300, 5)); // duplicate of a held range
    assert_eq!(ranges(&buf), vec![(300, 310), (100, 125), (500, 510)]);
}

#[test]
fn duplicates_do_not_advance_twice() {
    let mut buf = RecvBuffer::new(10_000);
    buf.place(0, &stream(0, 100));
    buf.place(200, &stream(100 + 200, 100));
    assert_eq!(buf.place(200, &stream(300, 100)), Placed { stored: 100, advanced: 0 });
    assert_eq!(buf.place(0, &stream(100, 200)), Placed { stored: 200, advanced: 300 });
    assert_eq!(read_all(&mut buf), stream(0, 400));
}

#[test]
fn a_segment_needing_more_than_max_ranges_is_not_stored() {
    let mut buf = RecvBuffer::new(100_000);
    for i in 0..RecvBuffer::MAX_RANGES {
        let off = 100 + i * 100;
        assert_eq!(buf.place(off, &stream(off, 10)).stored, 10);
    }
    assert_eq!(buf.place(50_000, &stream(50_000, 10)), Placed::default());
    assert_eq!(ranges(&buf).len(), RecvBuffer::MAX_RANGES);
    // Data that joins a held range is still accepted, as is in-order data.
    assert_eq!(buf.place(110, &stream(110, 20)).stored, 20);
    assert_eq!(buf.place(0, &stream(0, 100)), Placed { stored: 100, advanced: 130 });
    assert_eq!(ranges(&buf).len(), RecvBuffer::MAX_RANGES - 1);
    // Now there is room again.
    assert_eq!(buf.place(50_000 - 130, &stream(50_000, 10)).stored, 10);
}

#[test]
fn zero_copy_slices_and_consume_across_chunks() {
    let mut buf = RecvBuffer::new(3 * CHUNK);
    buf.place(0, &stream(0, CHUNK - 100));
    assert_eq!(buf.allocated(), CHUNK);
    let mut sink = vec![0u8; CHUNK - 600];
    buf.read(&mut sink);
    // 500 old bytes at the end of the first chunk, 3000 new ones into the next.
    buf.place(0, &stream(CHUNK - 100, 3000));
    assert_eq!(buf.allocated(), 2 * CHUNK);
    let (a, b) = buf.readable_slices();
    assert_eq!((a.len(), b.len()), (600, 2900));
    assert_eq!([a, b].concat(), stream(CHUNK - 600, 3500));
    let mut peeked = [0u8; 100];
    assert_eq!(buf.peek(550, &mut peeked), 100);
    assert_eq!(peeked.to_vec(), stream(CHUNK - 50, 100));
    assert_eq!(buf.peek(3500, &mut peeked), 0);
    buf.consume(600);
    assert_eq!(buf.readable_slices(), (&stream(CHUNK, 2900)[..], &[][..]));
    // Three chunks' worth: the slices are a prefix; consuming them reaches the rest.
    buf.place(0, &stream(CHUNK + 2900, 2 * CHUNK));
    assert_eq!(buf.allocated(), 3 * CHUNK, "the chunk read past is reused");
    let (a, b) = buf.readable_slices();
    assert!(a.len() + b.len() < buf.readable());
    let mut all = Vec::new();
    while buf.readable() > 0 {
        let (a, b) = buf.readable_slices();
        assert!(!a.is_empty());
        all.extend_from_slice(a);
        all.extend_from_slice(b);
        buf.consume(a.len() + b.len());
    }
    assert_eq!(all, stream(CHUNK, 2900 + 2 * CHUNK));
}

/// One byte at the far end of the window costs one chunk, not the window
/// before it (Linux charges only the queued skb).
#[test]
fn out_of_order_data_far_ahead_allocates_only_its_chunk() {
    let limit = 1 << 20;
    let mut buf = RecvBuffer::new(limit);
    assert_eq!(buf.place(limit - 1, &stream(limit - 1, 1)).stored, 1);
    assert_eq!(buf.allocated(), CHUNK);
    buf.place(0, &stream(0, 4000));
    let mut sink = vec![0u8; 3000];
    buf.read(&mut sink);
    // rcv_nxt is stream position 4000; this range crosses a chunk boundary.
    buf.place(1000, &stream(5000, 1000));
    buf.place(4000, &stream(8000, 4000));
    assert_eq!(buf.allocated(), 4 * CHUNK);
    assert_eq!(ranges(&buf), vec![(4000, 8000), (1000, 2000), (limit - 1 - 4000, limit - 4000)]);
    assert_eq!(buf.place(0, &stream(4000, 1000)).advanced, 2000);
    assert_eq!(buf.place(0, &stream(6000, 2000)).advanced, 6000);
    assert_eq!(read_all(&mut buf), stream(3000, 9000));
}

#[test]
fn lowering_the_limit_keeps_data_and_closes_the_window() {
    let mut buf = RecvBuffer::new(10_000);
    buf.place(0, &stream(0, 5000));
    assert_eq!(buf.place(1000, &stream(6000, 1000)).stored, 1000);
    buf.set_limit(2000);
    assert_eq!(buf.window(), 0);
    assert_eq!(buf.place(0, &stream(5000, 1000)), Placed::default());
    assert_eq!(ranges(&buf), vec![(1000, 2000)]);
    assert_eq!(read_all(&mut buf), stream(0, 5000));
    assert_eq!(buf.window(), 2000);
    assert_eq!(buf.place(0, &stream(5000, 1000)), Placed { stored: 1000, advanced: 2000 });
    assert_eq!(read_all(&mut buf), stream(5000, 2000));
}

#[test]
fn release_if_empty_frees_only_idle_storage() {
    let mut buf = RecvBuffer::new(10_000);
    buf.place(10, b"abc");
    buf.release_if_empty();
    assert!(buf.allocated() > 0);
    buf.place(0, &[1; 10]);
    read_all(&mut buf);
    buf.release_if_empty();
    assert_eq!(buf.allocated(), 0);
}

/// A byte-per-position model of the receiver: `Some` where a byte was stored.
struct Model {
    limit: usize,
    /// Absolute stream positions.
    held: Vec<Option<u8>>,
    rcv_nxt: usize,
    read_pos: usize,
}

impl Model {
    fn ooo_ranges(&self, extra: Option<(usize, usize)>) -> Vec<(usize, usize)> {
        let mut covered: Vec<bool> = self.held.iter().map(Option::is_some).collect();
        if let Some((a, e)) = extra {
            for c in &mut covered[a..e] {
                *c = true;
            }
        }
        let mut out = Vec::new();
        let mut i = self.rcv_nxt;
        while i < covered.len() {
            if covered[i] {
                let s = i;
                while i < covered.len() && covered[i] {
                    i += 1;
                }
                out.push((s, i));
            } else {
                i += 1;
            }
        }
        out
    }

    fn place(&mut self, start: usize, len: usize) -> Placed {
        let window_end = self.read_pos + self.limit;
        let end = (start + len).min(window_end);
        if len == 0 || start >= end {
            return Placed::default();
        }
        if start > self.rcv_nxt {
            let after = self.ooo_ranges(Some((start, end)));
            if after.len() > RecvBuffer::MAX_RANGES {
                return Placed::default();
            }
        }
        for i in start..end {
            self.held[i] = Some(byte(i));
        }
        let before = self.rcv_nxt;
        while self.rcv_nxt < self.held.len() && self.held[self.rcv_nxt].is_some() {
            self.rcv_nxt += 1;
        }
        Placed { stored: end - start, advanced: self.rcv_nxt - before }
    }
}

/// Drives a `RecvBuffer` and the model with the same reads and segments
/// (`(0, n, _)` reads `n` bytes; `(_, offset, len)` places a segment) and
/// checks they agree after every step and that the bytes read are the stream.
fn check_against_model(limit: usize, ops: &[(usize, usize, usize)]) -> Result<(), TestCaseError> {
    const STREAM: usize = 20_000;
    let mut buf = RecvBuffer::new(limit);
    let mut model = Model { limit, held: vec![None; STREAM + 4000], rcv_nxt: 0, read_pos: 0 };
    let mut received = Vec::new();
    for &(kind, a, b) in ops {
        if kind == 0 {
            let mut out = vec![0u8; a];
            let n = buf.read(&mut out);
            prop_assert_eq!(n, a.min(model.rcv_nxt - model.read_pos));
            model.read_pos += n;
            received.extend_from_slice(&out[..n]);
        } else {
            // A segment `a` bytes after rcv_nxt, as the connection passes it
            // after trimming what is already acknowledged.
            let start = model.rcv_nxt + a;
            let len = b.min(STREAM.saturating_sub(start));
            let placed = buf.place(a, &stream(start, len));
            prop_assert_eq!(placed, model.place(start, len));
        }
        prop_assert_eq!(buf.readable(), model.rcv_nxt - model.read_pos);
        prop_assert_eq!(buf.window(), limit - buf.readable());
        let mut got: Vec<_> = buf.out_of_order_ranges().collect();
        got.sort_unstable();
        let want: Vec<_> =
            model.ooo_ranges(None).iter().map(|&(s, e)| (s - model.rcv_nxt, e - model.rcv_nxt)).collect();
        prop_assert_eq!(got, want);
        // Live data starts inside the first chunk and spans at most `limit` bytes.
        prop_assert!(buf.allocated() <= (limit.div_ceil(CHUNK) + 1) * CHUNK);
    }
    let mut rest = vec![0u8; buf.readable()];
    buf.read(&mut rest);
    received.extend_from_slice(&rest);
    prop_assert_eq!(received.len(), model.rcv_nxt);
    prop_assert_eq!(received, stream(0, model.rcv_nxt));
    Ok(())
}

proptest! {
    #[test]
    fn large_segments_match_a_byte_model(
        limit in 1usize..6000,
        ops in proptest::collection::vec((0usize..8, 0usize..2500, 0usize..1500), 1..120),
    ) {
        check_against_model(limit, &ops)?;
    }

    /// Tiny segments scattered over a small window: many ranges, so the
    /// MAX_RANGES limit and range merging are exercised heavily.
    #[test]
    fn fragmented_segments_match_a_byte_model(
        limit in 32usize..512,
        ops in proptest::collection::vec((0usize..12, 0usize..400, 0usize..6), 1..300),
    ) {
        check_against_model(limit, &ops)?;
    }
}
