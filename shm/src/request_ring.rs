//! App → daemon request ring: bounded MPSC queue of fixed-size slots
//! (Dmitry Vyukov's bounded queue, design §2.4).
//!
//! Each slot is `{seq: u64, body: [u8; 56]}`; slot `i` starts with
//! `seq = i`. Any app thread produces: it claims position `pos` by moving the
//! shared `tail` from `pos` to `pos + 1` when `slot[pos % cap].seq == pos`,
//! writes the body, then publishes with `seq = pos + 1` (Release). The one
//! daemon consumer keeps its head privately and never reads `tail`: slot
//! `head` is ready exactly when its `seq == head + 1` (Acquire); after copying
//! the body out it frees the slot for the next lap with `seq = head + cap`.
//!
//! The whole ring lives in app-writable memory. A corrupted `seq` therefore
//! only ever looks like "not ready yet" to the daemon, so an app that breaks
//! its ring stalls its own requests and nothing else; a torn body is garbage
//! that the request decoder rejects.

use std::sync::atomic::Ordering;

use crate::region::{LayoutError, Region, SharedU64};

/// Bytes per slot: one cache line.
pub const REQUEST_SLOT_SIZE: usize = 64;
/// Bytes of request payload per slot (after the `seq` word).
pub const REQUEST_BODY_SIZE: usize = REQUEST_SLOT_SIZE - 8;

/// A request's payload.
pub type RequestBody = [u8; REQUEST_BODY_SIZE];

/// Where a ring's pieces are.
#[derive(Clone, Debug)]
pub struct RequestRingParts {
    /// Producers' shared claim counter (app-written; the daemon never reads it).
    pub tail: SharedU64,
    /// `capacity × 64` bytes of slots; the capacity is a power of two, at least 2.
    pub slots: Region,
}

/// The ring had no free slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestRingFull;

fn capacity(slots: &Region) -> Result<u64, LayoutError> {
    let cap = slots.len() / REQUEST_SLOT_SIZE;
    // One slot is not enough: a published slot's `seq = pos + 1` would equal
    // the free value `pos + cap` of the next lap.
    if cap < 2 || !cap.is_power_of_two() || cap * REQUEST_SLOT_SIZE != slots.len() {
        return Err(LayoutError::BadCapacity { capacity: cap });
    }
    // Slot words must be 8-aligned; checking the first covers all of them.
    slots.shared_u64(0)?;
    Ok(cap as u64)
}

fn slot_offset(pos: u64, cap: u64) -> usize {
    ((pos & (cap - 1)) as usize) * REQUEST_SLOT_SIZE
}

/// Puts a ring into its initial state (`seq[i] = i`, `tail = 0`). The
/// creator does this once, before the ring is shared.
pub fn init(parts: &RequestRingParts) -> Result<(), LayoutError> {
    let cap = capacity(&parts.slots)?;
    for i in 0..cap {
        parts
            .slots
            .atomic_u64(slot_offset(i, cap))
            .store(i, Ordering::Relaxed);
    }
    parts.tail.store(0, Ordering::Release);
    Ok(())
}

/// The app side. Clone it freely: any number of threads may push at once.
#[derive(Clone, Debug)]
pub struct RequestProducer {
    tail: SharedU64,
    slots: Region,
    cap: u64,
}

impl RequestProducer {
    /// A producer of an [`init`]ialised ring.
    pub fn new(parts: RequestRingParts) -> Result<RequestProducer, LayoutError> {
        let cap = capacity(&parts.slots)?;
        Ok(RequestProducer {
            tail: parts.tail,
            slots: parts.slots,
            cap,
        })
    }

    /// Number of slots.
    pub fn capacity(&self) -> u64 {
        self.cap
    }

    /// Enqueues `body`, or reports the ring full.
    pub fn push(&self, body: &RequestBody) -> Result<(), RequestRingFull> {
        loop {
            let pos = self.tail.load(Ordering::Relaxed);
            let offset = slot_offset(pos, self.cap);
            let seq = self.slots.atomic_u64(offset);
            // Distance of the slot's lap from ours: 0 free for us, < 0 still
            // holding last lap's unconsumed request, > 0 claimed by a faster
            // producer (our `tail` read was stale).
            let lap = seq.load(Ordering::Acquire).wrapping_sub(pos) as i64;
            if lap == 0 {
                if self
                    .tail
                    .compare_exchange_weak(pos, pos + 1, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
                {
                    self.slots
                        .write_at(offset + 8, body)
                        .expect("slot body in bounds");
                    seq.store(pos + 1, Ordering::Release);
                    return Ok(());
                }
            } else if lap < 0 {
                return Err(RequestRingFull);
            }
            std::hint::spin_loop();
        }
    }
}

/// The daemon side: the one consumer, with its head kept privately.
#[derive(Debug)]
pub struct RequestConsumer {
    slots: Region,
    cap: u64,
    head: u64,
}

impl RequestConsumer {
    /// The consumer of an [`init`]ialised ring. Takes only the slots: the
    /// daemon never reads the producers' tail.
    pub fn new(slots: Region) -> Result<RequestConsumer, LayoutError> {
        let cap = capacity(&slots)?;
        Ok(RequestConsumer {
            slots,
            cap,
            head: 0,
        })
    }

    /// Number of slots.
    pub fn capacity(&self) -> u64 {
        self.cap
    }

    /// Whether the next request is published (the sleep re-check of §2.6).
    pub fn is_ready(&self) -> bool {
        let seq = self.slots.atomic_u64(slot_offset(self.head, self.cap));
        seq.load(Ordering::Acquire) == self.head.wrapping_add(1)
    }

    /// Copies the next request out into private memory, or `None` when none
    /// is published (or the app corrupted the slot's `seq`).
    pub fn pop(&mut self) -> Option<RequestBody> {
        let offset = slot_offset(self.head, self.cap);
        let seq = self.slots.atomic_u64(offset);
        if seq.load(Ordering::Acquire) != self.head.wrapping_add(1) {
            return None;
        }
        let mut body = [0u8; REQUEST_BODY_SIZE];
        // Volatile: the body is decoded from this private copy, and the app
        // must not be able to change a field between its check and its use.
        self.slots
            .read_volatile_at(offset + 8, &mut body)
            .expect("slot body in bounds");
        seq.store(self.head.wrapping_add(self.cap), Ordering::Release);
        self.head = self.head.wrapping_add(1);
        Some(body)
    }
}

/// A ring in a fresh heap region, [`init`]ialised: for tests and in-process use.
pub fn heap_ring(capacity: usize) -> Result<(RequestRingParts, Region), LayoutError> {
    let region = Region::heap(REQUEST_SLOT_SIZE + capacity * REQUEST_SLOT_SIZE);
    let parts = RequestRingParts {
        tail: region.shared_u64(0)?,
        slots: region.sub(REQUEST_SLOT_SIZE, capacity * REQUEST_SLOT_SIZE)?,
    };
    init(&parts)?;
    Ok((parts, region))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(tag: u8) -> RequestBody {
        [tag; REQUEST_BODY_SIZE]
    }

    #[test]
    fn rejects_capacities_that_are_not_powers_of_two() {
        for cap in [0usize, 1, 3, 6] {
            let region = Region::heap(cap * REQUEST_SLOT_SIZE + 8);
            let parts = RequestRingParts {
                tail: region.shared_u64(0).unwrap(),
                slots: region.sub(8, cap * REQUEST_SLOT_SIZE).unwrap(),
            };
            assert!(matches!(init(&parts), Err(LayoutError::BadCapacity { .. })));
        }
    }

    #[test]
    fn fills_then_drains_in_order_over_several_laps() {
        let (parts, _r) = heap_ring(4).unwrap();
        let p = RequestProducer::new(parts.clone()).unwrap();
        let mut c = RequestConsumer::new(parts.slots).unwrap();
        let mut next = 0u8;
        for _lap in 0..3 {
            for i in 0..4 {
                p.push(&body(next.wrapping_add(i))).unwrap();
            }
            assert_eq!(p.push(&body(0xee)), Err(RequestRingFull));
            for _ in 0..4 {
                assert_eq!(c.pop(), Some(body(next)));
                next = next.wrapping_add(1);
            }
            assert_eq!(c.pop(), None);
            assert!(!c.is_ready());
        }
    }

    #[test]
    fn corrupted_seq_looks_empty_and_stalls_only_the_ring() {
        let (parts, _r) = heap_ring(4).unwrap();
        let p = RequestProducer::new(parts.clone()).unwrap();
        let mut c = RequestConsumer::new(parts.slots.clone()).unwrap();
        p.push(&body(1)).unwrap();
        for garbage in [0u64, 2, u64::MAX, 0xdead_beef] {
            parts.slots.atomic_u64(0).store(garbage, Ordering::Relaxed);
            assert!(!c.is_ready());
            assert_eq!(c.pop(), None);
        }
        // Restoring the published value makes the request visible again.
        parts.slots.atomic_u64(0).store(1, Ordering::Relaxed);
        assert_eq!(c.pop(), Some(body(1)));
    }

    #[test]
    fn consumer_ignores_the_tail_word() {
        let (parts, _r) = heap_ring(4).unwrap();
        let mut c = RequestConsumer::new(parts.slots.clone()).unwrap();
        parts.tail.store(u64::MAX, Ordering::Relaxed);
        assert_eq!(c.pop(), None);
        let p = RequestProducer::new(parts.clone()).unwrap();
        parts.tail.store(0, Ordering::Relaxed);
        p.push(&body(9)).unwrap();
        assert_eq!(c.pop(), Some(body(9)));
    }
}
