//! Multi-thread stress tests: real threads on both ends of each primitive,
//! checking that every item arrives exactly once and in producer order, and
//! that the sleep/wake protocol never strands a sleeper. Sizes are bounded
//! so each test takes a few seconds at most on a loaded two-core machine.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use sluice_shm::event_ring::{self, Event};
use sluice_shm::fifo::heap_fifo;
use sluice_shm::os::EventFd;
use sluice_shm::region::Region;
use sluice_shm::request_ring::{self, REQUEST_BODY_SIZE};
use sluice_shm::{
    EventConsumer, EventProducer, FifoConsumer, FifoProducer, RequestConsumer, RequestProducer,
};
use sluice_shm::{SleepFlag, Waker};

/// Byte `i` of the test stream: not periodic in any power of two, so a
/// misplaced wrap or a lost/duplicated chunk shows.
fn stream_byte(i: u64) -> u8 {
    (i.wrapping_mul(0x9e37_79b9) >> 13) as u8 ^ (i % 251) as u8
}

/// Small deterministic generator for chunk sizes (no shared RNG state).
fn next_rand(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn fifo_streams_bytes_between_threads_in_order() {
    const TOTAL: u64 = 24 << 20;
    let (parts, _region) = heap_fifo(4096).unwrap();
    let mut consumer = FifoConsumer::new(parts.clone(), 0xffff_f000).unwrap();
    let mut producer = FifoProducer::new(parts, 0xffff_f000).unwrap();

    let writer = thread::spawn(move || {
        let mut sent = 0u64;
        let mut rng = 0x1234_5678u64;
        let mut chunk = vec![0u8; 3000];
        while sent < TOTAL {
            let want = (next_rand(&mut rng) % 3000 + 1).min(TOTAL - sent) as usize;
            for (k, b) in chunk[..want].iter_mut().enumerate() {
                *b = stream_byte(sent + k as u64);
            }
            let n = if rng % 2 == 0 {
                producer.write(&chunk[..want]).unwrap()
            } else {
                let (a, b) = chunk[..want].split_at(want / 3);
                producer
                    .write_vectored(&[std::io::IoSlice::new(a), std::io::IoSlice::new(b)])
                    .unwrap()
            };
            if n == 0 {
                thread::yield_now();
            }
            sent += n as u64;
        }
    });

    let mut received = 0u64;
    let mut rng = 0x8765_4321u64;
    let mut buf = vec![0u8; 5000];
    while received < TOTAL {
        let want = (next_rand(&mut rng) % 5000 + 1) as usize;
        let n = consumer.read(&mut buf[..want]).unwrap();
        assert!(n <= 4096, "never more than the fifo size");
        for (k, &b) in buf[..n].iter().enumerate() {
            assert_eq!(
                b,
                stream_byte(received + k as u64),
                "byte {}",
                received + k as u64
            );
        }
        if n == 0 {
            thread::yield_now();
        }
        received += n as u64;
    }
    writer.join().unwrap();
    assert_eq!(consumer.readable().unwrap(), 0, "nothing beyond the stream");
}

fn request(producer: u8, seq: u64) -> [u8; REQUEST_BODY_SIZE] {
    let mut body = [producer; REQUEST_BODY_SIZE];
    body[1..9].copy_from_slice(&seq.to_le_bytes());
    // Last bytes echo the sequence so a torn body would show.
    body[REQUEST_BODY_SIZE - 8..].copy_from_slice(&seq.to_le_bytes());
    body
}

#[test]
fn request_ring_delivers_each_request_once_in_producer_order() {
    const PRODUCERS: u8 = 4;
    const PER_PRODUCER: u64 = 250_000;
    let (parts, _region) = request_ring::heap_ring(64).unwrap();
    let mut consumer = RequestConsumer::new(parts.slots.clone()).unwrap();
    let producer = RequestProducer::new(parts).unwrap();

    let threads: Vec<_> = (0..PRODUCERS)
        .map(|id| {
            let producer = producer.clone();
            thread::spawn(move || {
                for seq in 0..PER_PRODUCER {
                    while producer.push(&request(id, seq)).is_err() {
                        thread::yield_now();
                    }
                }
            })
        })
        .collect();

    let mut next = [0u64; PRODUCERS as usize];
    let mut total = 0u64;
    while total < u64::from(PRODUCERS) * PER_PRODUCER {
        let Some(body) = consumer.pop() else {
            thread::yield_now();
            continue;
        };
        let id = body[0] as usize;
        assert!(id < PRODUCERS as usize, "producer id {id}");
        let seq = u64::from_le_bytes(body[1..9].try_into().unwrap());
        assert_eq!(body, request(id as u8, seq), "torn body");
        assert_eq!(seq, next[id], "producer {id} out of order");
        next[id] += 1;
        total += 1;
    }
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(consumer.pop(), None);
    assert!(next.iter().all(|&n| n == PER_PRODUCER));
}

#[test]
fn event_ring_delivers_each_event_once_in_producer_order() {
    const PRODUCERS: u64 = 3;
    const PER_PRODUCER: u64 = 300_000;
    let (parts, _region) = event_ring::heap_ring(256).unwrap();
    let producer = Arc::new(EventProducer::new(parts.clone()).unwrap());
    let mut consumer = EventConsumer::new(parts).unwrap();

    let threads: Vec<_> = (0..PRODUCERS)
        .map(|id| {
            let producer = Arc::clone(&producer);
            thread::spawn(move || {
                for seq in 0..PER_PRODUCER {
                    let ev = Event {
                        handle: id,
                        kind: 1,
                        bits: 2,
                        aux: !(seq as u32),
                        value: seq,
                    };
                    // Producer 0 keeps headroom, like session events do.
                    let keep_free = if id == 0 { 16 } else { 0 };
                    while producer.push(&ev, keep_free).is_err() {
                        thread::yield_now();
                    }
                }
            })
        })
        .collect();

    let mut next = [0u64; PRODUCERS as usize];
    let mut total = 0u64;
    while total < PRODUCERS * PER_PRODUCER {
        let n = consumer.drain(64, |ev| {
            let id = ev.handle as usize;
            assert!(id < PRODUCERS as usize, "producer id {id}");
            assert_eq!(
                (ev.kind, ev.bits, ev.aux),
                (1, 2, !(ev.value as u32)),
                "torn event"
            );
            assert_eq!(ev.value, next[id], "producer {id} out of order");
            next[id] += 1;
        });
        if n == 0 {
            thread::yield_now();
        }
        total += n as u64;
    }
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(consumer.pop(), None);
    assert_eq!(
        producer.clamped_heads(),
        0,
        "an honest consumer is never clamped"
    );
}

/// One direction of a ping-pong: a mailbox word, the receiver's sleep flag
/// and its eventfd.
struct Direction {
    mailbox: Arc<AtomicU64>,
    flag: SleepFlag,
    waker: Waker,
    efd: Arc<EventFd>,
}

impl Direction {
    fn new(region: &Region, flag_offset: usize) -> Direction {
        let word = region.shared_u32(flag_offset).unwrap();
        Direction {
            mailbox: Arc::new(AtomicU64::new(0)),
            flag: SleepFlag::new(word.clone()),
            waker: Waker::new(word),
            efd: Arc::new(EventFd::new().unwrap()),
        }
    }

    /// Sender: publish `n`, then wake the receiver if it sleeps.
    fn send(&self, n: u64, claim: bool, notifications: &AtomicU64) {
        self.mailbox.store(n, Ordering::Release);
        let notify = || {
            notifications.fetch_add(1, Ordering::Relaxed);
            self.efd.notify().unwrap();
        };
        if claim {
            self.waker.wake(notify);
        } else {
            self.waker.wake_read_only(notify);
        }
    }

    /// Receiver: sleep in the kernel until the mailbox reaches `n`. A wait
    /// that times out means a wake-up was lost.
    fn receive(&self, n: u64, lost: &AtomicBool) {
        while self.mailbox.load(Ordering::Acquire) < n {
            let slept = self.flag.sleep_unless(
                || self.mailbox.load(Ordering::Acquire) >= n,
                || {
                    if !self.efd.wait(Some(Duration::from_secs(10))).unwrap() {
                        lost.store(true, Ordering::Relaxed);
                    }
                },
            );
            if slept {
                self.efd.drain().unwrap();
            }
        }
    }
}

#[test]
fn ping_pong_through_sleep_and_wake_loses_no_wake_up() {
    const ROUNDS: u64 = 20_000;
    let region = Region::heap(128);
    let to_b = Arc::new(Direction::new(&region, 0));
    let to_a = Arc::new(Direction::new(&region, 64));
    let lost = Arc::new(AtomicBool::new(false));
    let notifications = Arc::new(AtomicU64::new(0));

    let b = {
        let (to_a, to_b, lost, notifications) = (
            to_a.clone(),
            to_b.clone(),
            lost.clone(),
            notifications.clone(),
        );
        thread::spawn(move || {
            for n in 1..=ROUNDS {
                to_b.receive(n, &lost);
                if lost.load(Ordering::Relaxed) {
                    return;
                }
                to_a.send(n, false, &notifications);
            }
        })
    };
    for n in 1..=ROUNDS {
        to_b.send(n, true, &notifications);
        to_a.receive(n, &lost);
        assert!(
            !lost.load(Ordering::Relaxed),
            "a wake-up was lost in round {n}"
        );
    }
    b.join().unwrap();
    assert!(!lost.load(Ordering::Relaxed));
    // Each round has the receiver find nothing at least sometimes, so the
    // kernel path must have been used; and never more than once per send.
    let notified = notifications.load(Ordering::Relaxed);
    assert!(notified > 0, "the eventfd path was never exercised");
    assert!(notified <= 2 * ROUNDS);
}
