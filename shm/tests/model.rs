//! Property tests: each primitive, driven by random operation sequences on
//! one thread, behaves exactly like a `VecDeque` model.

use std::collections::VecDeque;
use std::io::{IoSlice, IoSliceMut};

use proptest::prelude::*;
use sluice_shm::event_ring::{self, Event};
use sluice_shm::fifo::heap_fifo;
use sluice_shm::request_ring::{self, REQUEST_BODY_SIZE};
use sluice_shm::{
    EventConsumer, EventProducer, FifoConsumer, FifoProducer, RequestConsumer, RequestProducer,
};

#[derive(Debug, Clone)]
enum FifoOp {
    Write(Vec<u8>),
    WriteVectored(Vec<Vec<u8>>),
    /// Fill the writable spans with `len` bytes of `byte`, then commit.
    WriteSpans {
        len: usize,
        byte: u8,
    },
    Read(usize),
    ReadVectored(Vec<usize>),
    PeekAt {
        skip: usize,
        len: usize,
    },
    /// Consume `len` bytes after looking at the readable spans.
    Consume(usize),
}

fn fifo_op() -> impl Strategy<Value = FifoOp> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..80).prop_map(FifoOp::Write),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..30), 0..4)
            .prop_map(FifoOp::WriteVectored),
        (0usize..80, any::<u8>()).prop_map(|(len, byte)| FifoOp::WriteSpans { len, byte }),
        (0usize..80).prop_map(FifoOp::Read),
        prop::collection::vec(0usize..30, 0..4).prop_map(FifoOp::ReadVectored),
        (0usize..80, 0usize..80).prop_map(|(skip, len)| FifoOp::PeekAt { skip, len }),
        (0usize..80).prop_map(FifoOp::Consume),
    ]
}

/// Writes `len` bytes of `byte` through raw spans, as a `pread` would.
fn fill_spans(p: &mut FifoProducer, len: usize, byte: u8) -> usize {
    let mut left = len;
    for span in p.writable_spans().unwrap() {
        let n = left.min(span.len());
        // SAFETY: the span is `span.len()` bytes of the fifo's free space, which the single producer owns until it commits; n <= span.len().
        unsafe { std::ptr::write_bytes(span.as_ptr(), byte, n) };
        left -= n;
    }
    let written = len - left;
    p.commit(written);
    written
}

proptest! {
    #[test]
    fn fifo_matches_vecdeque(
        size_log in 0u32..7,
        start in prop_oneof![Just(0u32), Just(u32::MAX - 40), any::<u32>()],
        ops in prop::collection::vec(fifo_op(), 1..120),
    ) {
        let size = 1usize << size_log;
        let (parts, _region) = heap_fifo(size).unwrap();
        let mut c = FifoConsumer::new(parts.clone(), start).unwrap();
        let mut p = FifoProducer::new(parts, start).unwrap();
        let mut model: VecDeque<u8> = VecDeque::new();
        for op in ops {
            match op {
                FifoOp::Write(bytes) => {
                    let n = p.write(&bytes).unwrap();
                    prop_assert_eq!(n, bytes.len().min(size - model.len()));
                    model.extend(&bytes[..n]);
                }
                FifoOp::WriteVectored(bufs) => {
                    let slices: Vec<IoSlice<'_>> = bufs.iter().map(|b| IoSlice::new(b)).collect();
                    let n = p.write_vectored(&slices).unwrap();
                    let all: Vec<u8> = bufs.concat();
                    prop_assert_eq!(n, all.len().min(size - model.len()));
                    model.extend(&all[..n]);
                }
                FifoOp::WriteSpans { len, byte } => {
                    let n = fill_spans(&mut p, len, byte);
                    prop_assert_eq!(n, len.min(size - model.len()));
                    model.extend(std::iter::repeat(byte).take(n));
                }
                FifoOp::Read(len) => {
                    let mut buf = vec![0u8; len];
                    let n = c.read(&mut buf).unwrap();
                    let expect: Vec<u8> = model.drain(..len.min(model.len())).collect();
                    prop_assert_eq!(&buf[..n], &expect[..]);
                }
                FifoOp::ReadVectored(lens) => {
                    let mut bufs: Vec<Vec<u8>> = lens.iter().map(|&l| vec![0u8; l]).collect();
                    let total: usize = lens.iter().sum();
                    let n = {
                        let mut slices: Vec<IoSliceMut<'_>> = bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
                        c.read_vectored(&mut slices).unwrap()
                    };
                    let expect: Vec<u8> = model.drain(..total.min(model.len())).collect();
                    prop_assert_eq!(n, expect.len());
                    prop_assert_eq!(&bufs.concat()[..n], &expect[..]);
                }
                FifoOp::PeekAt { skip, len } => {
                    let mut buf = vec![0u8; len];
                    let n = c.peek_at(skip, &mut buf).unwrap();
                    let expect: Vec<u8> = model.iter().skip(skip).take(len).copied().collect();
                    prop_assert_eq!(&buf[..n], &expect[..]);
                }
                FifoOp::Consume(len) => {
                    let spans = c.readable_spans().unwrap();
                    prop_assert_eq!(spans[0].len() + spans[1].len(), model.len());
                    let n = len.min(model.len());
                    c.consume(n);
                    model.drain(..n);
                }
            }
            prop_assert_eq!(c.readable().unwrap() as usize, model.len());
            prop_assert_eq!(p.free().unwrap() as usize, size - model.len());
        }
    }

    #[test]
    fn request_ring_matches_vecdeque(
        cap_log in 1u32..5,
        ops in prop::collection::vec(prop_oneof![any::<u8>().prop_map(Some), Just(None)], 1..200),
    ) {
        let cap = 1usize << cap_log;
        let (parts, _region) = request_ring::heap_ring(cap).unwrap();
        let p = RequestProducer::new(parts.clone()).unwrap();
        let mut c = RequestConsumer::new(parts.slots).unwrap();
        let mut model = VecDeque::new();
        for op in ops {
            match op {
                Some(tag) => {
                    let mut body = [tag; REQUEST_BODY_SIZE];
                    body[0] = model.len() as u8;
                    let pushed = p.push(&body).is_ok();
                    prop_assert_eq!(pushed, model.len() < cap);
                    if pushed { model.push_back(body); }
                }
                None => {
                    prop_assert_eq!(c.is_ready(), !model.is_empty());
                    prop_assert_eq!(c.pop(), model.pop_front());
                }
            }
        }
    }

    #[test]
    fn event_ring_matches_vecdeque(
        cap_log in 0u32..5,
        ops in prop::collection::vec(prop_oneof![
            (any::<u64>(), 0u64..4).prop_map(|(v, keep)| Some((v, keep))),
            Just(None),
        ], 1..200),
    ) {
        let cap = 1usize << cap_log;
        let (parts, _region) = event_ring::heap_ring(cap).unwrap();
        let p = EventProducer::new(parts.clone()).unwrap();
        let mut c = EventConsumer::new(parts).unwrap();
        let mut model = VecDeque::new();
        for op in ops {
            match op {
                Some((v, keep_free)) => {
                    let ev = Event { handle: v, kind: v as u16, bits: (v >> 16) as u16, aux: (v >> 32) as u32, value: !v };
                    let pushed = p.push(&ev, keep_free).is_ok();
                    prop_assert_eq!(pushed, (model.len() as u64) < (cap as u64).saturating_sub(keep_free));
                    if pushed { model.push_back(ev); }
                }
                None => {
                    prop_assert_eq!(c.is_ready(), !model.is_empty());
                    prop_assert_eq!(c.pop(), model.pop_front());
                }
            }
            prop_assert_eq!(p.len(), model.len() as u64);
        }
        prop_assert_eq!(p.clamped_heads(), 0);
    }
}
