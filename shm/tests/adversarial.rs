//! A hostile app: it writes arbitrary values into every word the daemon
//! reads from its segment. The daemon's halves must never panic, never touch
//! memory outside the structure, never report more than a fifo's size or a
//! ring's capacity, and never take a corrupted request slot as a request.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use proptest::prelude::*;
use sluice_shm::event_ring::{self, Event};
use sluice_shm::fifo::heap_fifo;
use sluice_shm::request_ring::{self, REQUEST_BODY_SIZE, REQUEST_SLOT_SIZE};
use sluice_shm::{
    EventProducer, FifoConsumer, FifoProducer, RawSpan, Region, RequestConsumer, RequestProducer,
};

/// Whether `span` lies inside `region`.
fn inside(span: RawSpan, region: &Region) -> bool {
    let (start, end) = (
        region.as_ptr() as usize,
        region.as_ptr() as usize + region.len(),
    );
    span.is_empty()
        || (span.as_ptr() as usize >= start && span.as_ptr() as usize + span.len() <= end)
}

#[derive(Debug, Clone)]
enum TxOp {
    /// The app writes honestly through its producer.
    AppWrite(usize),
    /// The app stores an arbitrary tail.
    AppCorruptTail(u32),
    /// The daemon reads up to this many bytes.
    DaemonRead(usize),
    DaemonPeekAt(usize, usize),
    /// The daemon takes the readable spans and consumes part of them.
    DaemonSpans(usize),
}

#[derive(Debug, Clone)]
enum RxOp {
    /// The app reads honestly through its consumer.
    AppRead(usize),
    /// The app stores an arbitrary head.
    AppCorruptHead(u32),
    DaemonWrite(usize),
    /// The daemon takes the writable spans and commits part of them.
    DaemonSpans(usize),
}

proptest! {
    /// TX direction: the app produces, the daemon consumes.
    #[test]
    fn daemon_fifo_consumer_survives_any_tail(
        start: u32,
        ops in prop::collection::vec(prop_oneof![
            (0usize..100).prop_map(TxOp::AppWrite),
            prop_oneof![any::<u32>(), (0u32..80)].prop_map(TxOp::AppCorruptTail),
            (0usize..100).prop_map(TxOp::DaemonRead),
            (0usize..100, 0usize..100).prop_map(|(s, l)| TxOp::DaemonPeekAt(s, l)),
            (0usize..100).prop_map(TxOp::DaemonSpans),
        ], 1..150),
    ) {
        const SIZE: usize = 64;
        let (parts, _region) = heap_fifo(SIZE).unwrap();
        let data = parts.data.clone();
        let tail_word = parts.tail.clone();
        let mut daemon = FifoConsumer::new(parts.clone(), start).unwrap();
        let mut app = FifoProducer::new(parts, start).unwrap();
        for op in ops {
            match op {
                TxOp::AppWrite(n) => { let _ = app.write(&vec![0xa5; n]); }
                // Small values land near the real indices, large ones anywhere.
                TxOp::AppCorruptTail(v) => tail_word.store(start.wrapping_add(v), Ordering::Relaxed),
                TxOp::DaemonRead(n) => {
                    let mut buf = vec![0u8; n];
                    if let Ok(got) = daemon.read(&mut buf) { prop_assert!(got <= n.min(SIZE)); }
                }
                TxOp::DaemonPeekAt(skip, n) => {
                    let mut buf = vec![0u8; n];
                    if let Ok(got) = daemon.peek_at(skip, &mut buf) { prop_assert!(got <= n.min(SIZE)); }
                }
                TxOp::DaemonSpans(n) => {
                    if let Ok(spans) = daemon.readable_spans() {
                        let total = spans[0].len() + spans[1].len();
                        prop_assert!(total <= SIZE);
                        prop_assert!(spans.iter().all(|s| inside(*s, &data)));
                        daemon.consume(n.min(total));
                    }
                }
            }
            if let Ok(avail) = daemon.readable() { prop_assert!(avail as usize <= SIZE); }
        }
    }

    /// RX direction: the daemon produces, the app consumes.
    #[test]
    fn daemon_fifo_producer_survives_any_head(
        start: u32,
        ops in prop::collection::vec(prop_oneof![
            (0usize..100).prop_map(RxOp::AppRead),
            prop_oneof![any::<u32>(), (0u32..80)].prop_map(RxOp::AppCorruptHead),
            (0usize..100).prop_map(RxOp::DaemonWrite),
            (0usize..100).prop_map(RxOp::DaemonSpans),
        ], 1..150),
    ) {
        const SIZE: usize = 64;
        let (parts, _region) = heap_fifo(SIZE).unwrap();
        let data = parts.data.clone();
        let head_word = parts.head.clone();
        let mut app = FifoConsumer::new(parts.clone(), start).unwrap();
        let mut daemon = FifoProducer::new(parts, start).unwrap();
        for op in ops {
            match op {
                RxOp::AppRead(n) => { let _ = app.read(&mut vec![0u8; n]); }
                RxOp::AppCorruptHead(v) => head_word.store(start.wrapping_add(v), Ordering::Relaxed),
                RxOp::DaemonWrite(n) => {
                    if let Ok(got) = daemon.write(&vec![0x5a; n]) { prop_assert!(got <= n.min(SIZE)); }
                }
                RxOp::DaemonSpans(n) => {
                    if let Ok(spans) = daemon.writable_spans() {
                        let total = spans[0].len() + spans[1].len();
                        prop_assert!(total <= SIZE);
                        prop_assert!(spans.iter().all(|s| inside(*s, &data)));
                        daemon.commit(n.min(total));
                    }
                }
            }
            if let Ok(free) = daemon.free() { prop_assert!(free as usize <= SIZE); }
        }
    }

    /// Garbage in every slot's `seq` and body: the daemon takes a slot only
    /// when its `seq` says "published for your head", and never otherwise.
    #[test]
    fn request_consumer_takes_only_slots_published_for_its_head(
        writes in prop::collection::vec((0usize..8, any::<u64>(), any::<u8>()), 1..100),
    ) {
        const CAP: usize = 8;
        let (parts, _region) = request_ring::heap_ring(CAP).unwrap();
        let slots = parts.slots.clone();
        let mut daemon = RequestConsumer::new(parts.slots).unwrap();
        let mut head = 0u64;
        for (slot, seq, fill) in writes {
            let off = slot * REQUEST_SLOT_SIZE;
            slots.write_at(off + 8, &[fill; REQUEST_BODY_SIZE]).unwrap();
            slots.atomic_u64(off).store(seq, Ordering::Relaxed);
            let expected = slot == (head as usize % CAP) && seq == head + 1;
            match daemon.pop() {
                Some(body) => {
                    prop_assert!(expected);
                    prop_assert_eq!(body, [fill; REQUEST_BODY_SIZE]);
                    head += 1;
                }
                None => prop_assert!(!expected),
            }
        }
    }

    /// An arbitrary app-written event head: pushes never claim more than
    /// the capacity as in use, and every out-of-range head is counted.
    #[test]
    fn event_producer_clamps_any_head(
        ops in prop::collection::vec(prop_oneof![any::<u64>().prop_map(Some), Just(None)], 1..150),
    ) {
        const CAP: u64 = 8;
        let (parts, _region) = event_ring::heap_ring(CAP as usize).unwrap();
        let head_word = parts.head.clone();
        let daemon = EventProducer::new(parts).unwrap();
        let mut reserved = 0u64;
        for op in ops {
            match op {
                Some(v) => head_word.store(v, Ordering::Relaxed),
                None => if daemon.push(&Event::default(), 0).is_ok() { reserved += 1 },
            }
            prop_assert!(daemon.len() <= CAP);
            let head = head_word.load(Ordering::Relaxed);
            if head > reserved || head < reserved.saturating_sub(CAP) {
                prop_assert!(daemon.clamped_heads() > 0);
            }
        }
    }
}

/// The same, concurrently: a hostile thread rewrites every app-writable word
/// as fast as it can while the daemon side keeps working.
#[test]
fn hostile_thread_scribbling_cannot_break_the_daemon_side() {
    const SIZE: usize = 1024;
    const DAEMON_ITERATIONS: usize = 200_000;
    let (tx_parts, _tx) = heap_fifo(SIZE).unwrap(); // app → daemon
    let (rx_parts, _rx) = heap_fifo(SIZE).unwrap(); // daemon → app
    let (req_parts, _req) = request_ring::heap_ring(16).unwrap();
    let (ev_parts, _ev) = event_ring::heap_ring(16).unwrap();
    let mut tx = FifoConsumer::new(tx_parts.clone(), 0).unwrap();
    let mut rx = FifoProducer::new(rx_parts.clone(), 0).unwrap();
    let mut requests = RequestConsumer::new(req_parts.slots.clone()).unwrap();
    let events = EventProducer::new(ev_parts.clone()).unwrap();
    // An honest producer pre-fills the request ring, then the app goes rogue.
    let app_requests = RequestProducer::new(req_parts.clone()).unwrap();
    while app_requests.push(&[7; REQUEST_BODY_SIZE]).is_ok() {}

    let stop = Arc::new(AtomicBool::new(false));
    let scribbles = Arc::new(AtomicU64::new(0));
    let hostile = {
        let (stop, scribbles) = (stop.clone(), scribbles.clone());
        let (tx_tail, rx_head, slots, ev_head) = (
            tx_parts.tail.clone(),
            rx_parts.head.clone(),
            req_parts.slots.clone(),
            ev_parts.head.clone(),
        );
        let tx_data = tx_parts.data.clone();
        thread::spawn(move || {
            let mut x = 0x2545_f491_4f6c_dd1du64;
            while !stop.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Mostly near-valid values (small), sometimes anything.
                let v = if x & 1 == 0 { (x >> 8) % 2048 } else { x >> 1 };
                match (x >> 60) % 5 {
                    0 => tx_tail.store(v as u32, Ordering::Relaxed),
                    1 => rx_head.store(v as u32, Ordering::Relaxed),
                    2 => slots
                        .atomic_u64(((x >> 20) as usize % 16) * REQUEST_SLOT_SIZE)
                        .store(v % 64, Ordering::Relaxed),
                    3 => ev_head.store(v, Ordering::Relaxed),
                    _ => tx_data
                        .write_at((x >> 30) as usize % SIZE, &[x as u8])
                        .unwrap(),
                }
                scribbles.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    let mut buf = [0u8; 2 * SIZE];
    let mut violations = 0u64;
    // Run until both sides have done their share, however they are scheduled.
    let mut i = 0usize;
    while i < DAEMON_ITERATIONS || scribbles.load(Ordering::Relaxed) < 100_000 {
        i += 1;
        match tx.read(&mut buf[..(i % (2 * SIZE)) + 1]) {
            Ok(n) => assert!(n <= SIZE),
            Err(_) => violations += 1,
        }
        match rx.write(&buf[..i % 100]) {
            Ok(n) => assert!(n <= SIZE),
            Err(_) => violations += 1,
        }
        if let Ok(spans) = tx.readable_spans() {
            assert!(spans[0].len() + spans[1].len() <= SIZE);
        }
        if let Some(body) = requests.pop() {
            // Only seqs are scribbled: whatever is taken is a real slot's body.
            assert_eq!(body, [7; REQUEST_BODY_SIZE]);
        }
        let _ = events.push(&Event::default(), 0);
        assert!(events.len() <= 16);
    }
    stop.store(true, Ordering::Relaxed);
    hostile.join().unwrap();
    // Random tails and heads are out of range most of the time: the checks
    // must have fired.
    assert!(violations > 0, "no corrupted index was ever detected");
}
