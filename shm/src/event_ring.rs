//! Daemon → app event ring: events by value in fixed 32-byte slots
//! (design §2.5). Many daemon workers produce; the app worker consumes.
//!
//! Slot layout: `seq u64 | handle u64 | kind u16 | bits u16 | aux u32 | value u64`.
//! The slots are in daemon-written memory; only the consumer's `head` is in
//! app-written memory. Producers share a *private* reservation counter
//! (daemon memory): a producer claims position `r` by moving the counter from
//! `r` to `r + 1`, but only while `r - head < capacity`, writes the slot and
//! publishes it with `seq = r + 1` (Release). The app consumes slot `head`
//! once its `seq == head + 1` (Acquire), then stores `head + 1` (Release).
//!
//! The app's `head` is clamped to `[reserve - capacity, reserve]` before use,
//! so a lying app can at most make the ring look full (its own events wait in
//! the daemon's backlog) or empty (the daemon overwrites events the app has
//! not read: its own loss). Slots start zeroed: `seq = 0` is never
//! `head + 1`, and a slot's `seq` from lap `k` never equals that of lap `k+1`.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::region::{LayoutError, Region, SharedU64};

/// Bytes per slot.
pub const EVENT_SLOT_SIZE: usize = 32;
const BODY_SIZE: usize = EVENT_SLOT_SIZE - 8;

/// One event, as carried by value in a slot. The meaning of `kind`, `bits`,
/// `aux` and `value` is the event protocol's (session events, accepts,
/// replies); the ring moves them opaquely.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// Session (or listener) the event is about, a packed `SessionHandle`.
    pub handle: u64,
    /// Event kind.
    pub kind: u16,
    /// Readiness bits.
    pub bits: u16,
    /// Kind-specific 32-bit argument (errno, request id).
    pub aux: u32,
    /// Kind-specific 64-bit argument (new session handle, result).
    pub value: u64,
}

impl Event {
    fn encode(&self) -> [u8; BODY_SIZE] {
        let mut b = [0u8; BODY_SIZE];
        b[0..8].copy_from_slice(&self.handle.to_ne_bytes());
        b[8..10].copy_from_slice(&self.kind.to_ne_bytes());
        b[10..12].copy_from_slice(&self.bits.to_ne_bytes());
        b[12..16].copy_from_slice(&self.aux.to_ne_bytes());
        b[16..24].copy_from_slice(&self.value.to_ne_bytes());
        b
    }

    fn decode(b: &[u8; BODY_SIZE]) -> Event {
        let [h0, h1, h2, h3, h4, h5, h6, h7, k0, k1, b0, b1, a0, a1, a2, a3, v0, v1, v2, v3, v4, v5, v6, v7] =
            *b;
        Event {
            handle: u64::from_ne_bytes([h0, h1, h2, h3, h4, h5, h6, h7]),
            kind: u16::from_ne_bytes([k0, k1]),
            bits: u16::from_ne_bytes([b0, b1]),
            aux: u32::from_ne_bytes([a0, a1, a2, a3]),
            value: u64::from_ne_bytes([v0, v1, v2, v3, v4, v5, v6, v7]),
        }
    }
}

/// Where a ring's pieces are.
#[derive(Clone, Debug)]
pub struct EventRingParts {
    /// Consumer's head (app-written).
    pub head: SharedU64,
    /// `capacity × 32` bytes of zeroed slots; the capacity is a power of two.
    pub slots: Region,
}

/// The ring has no room for the event (with the requested headroom kept).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventRingFull;

fn capacity(slots: &Region) -> Result<u64, LayoutError> {
    let cap = slots.len() / EVENT_SLOT_SIZE;
    if !cap.is_power_of_two() || cap * EVENT_SLOT_SIZE != slots.len() {
        return Err(LayoutError::BadCapacity { capacity: cap });
    }
    slots.shared_u64(0)?;
    Ok(cap as u64)
}

fn slot_offset(pos: u64, cap: u64) -> usize {
    ((pos & (cap - 1)) as usize) * EVENT_SLOT_SIZE
}

/// The daemon side, shared by every daemon worker (`Arc<EventProducer>`).
#[derive(Debug)]
pub struct EventProducer {
    head: SharedU64,
    slots: Region,
    cap: u64,
    /// Next position to hand out; private to the daemon, so the app cannot
    /// make two producers claim one slot.
    reserve: AtomicU64,
    /// Times the app's head was out of range and clamped.
    clamped: AtomicU64,
}

impl EventProducer {
    /// The producer of a fresh ring. Stores 0 into the head word.
    pub fn new(parts: EventRingParts) -> Result<EventProducer, LayoutError> {
        let cap = capacity(&parts.slots)?;
        parts.head.store(0, Ordering::Release);
        Ok(EventProducer {
            head: parts.head,
            slots: parts.slots,
            cap,
            reserve: AtomicU64::new(0),
            clamped: AtomicU64::new(0),
        })
    }

    /// Number of slots.
    pub fn capacity(&self) -> u64 {
        self.cap
    }

    /// How often the app's head word was found out of range (a violation).
    pub fn clamped_heads(&self) -> u64 {
        self.clamped.load(Ordering::Relaxed)
    }

    /// The app's head, clamped to what is possible given `reserve`.
    fn head_for(&self, reserve: u64) -> u64 {
        let raw = self.head.load(Ordering::Acquire);
        let head = raw.clamp(reserve.saturating_sub(self.cap), reserve);
        // An honest head can pass a `reserve` read before it: since then other
        // producers reserved and published and the app consumed. The app can
        // only consume what was reserved, and its Release store of the head
        // follows the publishing, so the counter read now covers an honest
        // head; only a head beyond it is a lie. (A head below the window
        // cannot be honest: `reserve` never gets more than `cap` ahead of the
        // head, which only grows.) The caller's CAS on the stale `reserve`
        // then fails and it retries with fresh values.
        let overtaken = raw > reserve && raw <= self.reserve.load(Ordering::Acquire);
        if head != raw && !overtaken {
            self.clamped.fetch_add(1, Ordering::Relaxed);
        }
        head
    }

    /// Slots in use as far as the producers can tell (reserved minus the
    /// clamped head).
    pub fn len(&self) -> u64 {
        let r = self.reserve.load(Ordering::Acquire);
        r - self.head_for(r)
    }

    /// Whether no slot is in use.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Publishes `event` unless that would leave fewer than `keep_free`
    /// slots free. Session events pass the slots reserved for replies and
    /// accepts (§2.5); those pass 0.
    pub fn push(&self, event: &Event, keep_free: u64) -> Result<(), EventRingFull> {
        let limit = self.cap.saturating_sub(keep_free);
        let pos = loop {
            let r = self.reserve.load(Ordering::Acquire);
            if r - self.head_for(r) >= limit {
                return Err(EventRingFull);
            }
            if self
                .reserve
                .compare_exchange_weak(r, r + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                break r;
            }
            std::hint::spin_loop();
        };
        let offset = slot_offset(pos, self.cap);
        self.slots
            .write_at(offset + 8, &event.encode())
            .expect("event slot in bounds");
        self.slots
            .atomic_u64(offset)
            .store(pos + 1, Ordering::Release);
        Ok(())
    }
}

/// The app side: the one consumer.
#[derive(Debug)]
pub struct EventConsumer {
    head: SharedU64,
    slots: Region,
    cap: u64,
    head_private: u64,
}

impl EventConsumer {
    /// The consumer of a ring whose producer has been created.
    pub fn new(parts: EventRingParts) -> Result<EventConsumer, LayoutError> {
        let cap = capacity(&parts.slots)?;
        let head_private = parts.head.load(Ordering::Acquire);
        Ok(EventConsumer {
            head: parts.head,
            slots: parts.slots,
            cap,
            head_private,
        })
    }

    /// Whether an event is waiting (the sleep re-check of §2.6).
    pub fn is_ready(&self) -> bool {
        let seq = self
            .slots
            .atomic_u64(slot_offset(self.head_private, self.cap));
        seq.load(Ordering::Acquire) == self.head_private + 1
    }

    fn take(&mut self) -> Option<Event> {
        let offset = slot_offset(self.head_private, self.cap);
        if self.slots.atomic_u64(offset).load(Ordering::Acquire) != self.head_private + 1 {
            return None;
        }
        let mut body = [0u8; BODY_SIZE];
        self.slots
            .read_at(offset + 8, &mut body)
            .expect("event slot in bounds");
        self.head_private += 1;
        Some(Event::decode(&body))
    }

    /// Takes the next event and frees its slot.
    pub fn pop(&mut self) -> Option<Event> {
        let event = self.take()?;
        self.head.store(self.head_private, Ordering::Release);
        Some(event)
    }

    /// Hands up to `max` events to `f`, freeing their slots with one store
    /// at the end; returns how many.
    pub fn drain(&mut self, max: usize, mut f: impl FnMut(Event)) -> usize {
        let mut n = 0;
        while n < max {
            let Some(event) = self.take() else { break };
            f(event);
            n += 1;
        }
        if n > 0 {
            self.head.store(self.head_private, Ordering::Release);
        }
        n
    }
}

/// A ring in a fresh heap region: for tests and in-process use.
pub fn heap_ring(capacity: usize) -> Result<(EventRingParts, Region), LayoutError> {
    let region = Region::heap(64 + capacity * EVENT_SLOT_SIZE);
    let parts = EventRingParts {
        head: region.shared_u64(0)?,
        slots: region.sub(64, capacity * EVENT_SLOT_SIZE)?,
    };
    Ok((parts, region))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: u64) -> Event {
        Event {
            handle: n,
            kind: n as u16,
            bits: !(n as u16),
            aux: n as u32 ^ 0xabcd,
            value: n.wrapping_mul(31),
        }
    }

    fn pair(cap: usize) -> (EventProducer, EventConsumer, EventRingParts) {
        let (parts, _r) = heap_ring(cap).unwrap();
        let p = EventProducer::new(parts.clone()).unwrap();
        let c = EventConsumer::new(parts.clone()).unwrap();
        (p, c, parts)
    }

    #[test]
    fn events_round_trip_by_value_over_laps() {
        let (p, mut c, _parts) = pair(4);
        for lap in 0..3u64 {
            for i in 0..4 {
                p.push(&ev(lap * 4 + i), 0).unwrap();
            }
            assert_eq!(p.push(&ev(99), 0), Err(EventRingFull));
            for i in 0..4 {
                assert_eq!(c.pop(), Some(ev(lap * 4 + i)));
            }
            assert_eq!(c.pop(), None);
        }
        assert_eq!(p.clamped_heads(), 0);
    }

    #[test]
    fn headroom_is_kept_for_reserved_kinds() {
        let (p, mut c, _parts) = pair(8);
        for i in 0..5 {
            p.push(&ev(i), 3).unwrap();
        }
        assert_eq!(
            p.push(&ev(5), 3),
            Err(EventRingFull),
            "3 slots stay free for replies"
        );
        p.push(&ev(5), 0).unwrap();
        assert_eq!(p.len(), 6);
        let mut seen = Vec::new();
        assert_eq!(c.drain(usize::MAX, |e| seen.push(e.handle)), 6);
        assert_eq!(seen, vec![0, 1, 2, 3, 4, 5]);
        assert!(p.is_empty());
    }

    #[test]
    fn head_ahead_of_reserve_is_clamped_to_empty() {
        let (p, _c, parts) = pair(4);
        p.push(&ev(1), 0).unwrap();
        parts.head.store(1_000_000, Ordering::Relaxed);
        assert_eq!(
            p.len(),
            0,
            "clamped to the reserve: the app only loses its own events"
        );
        assert!(p.clamped_heads() > 0);
        // Every push overwrites slots the app claims to have read: its own
        // loss, and the writes stay inside the ring.
        for i in 0..10 {
            p.push(&ev(i), 0).unwrap();
        }
        // An honest head again (everything unread) makes the ring full.
        parts.head.store(7, Ordering::Relaxed);
        assert_eq!(p.len(), 4);
        assert_eq!(p.push(&ev(99), 0), Err(EventRingFull));
    }

    #[test]
    fn head_behind_the_window_is_clamped_to_full() {
        let (p, mut c, parts) = pair(4);
        for i in 0..6 {
            if p.push(&ev(i), 0).is_err() {
                c.pop().unwrap();
                p.push(&ev(i), 0).unwrap();
            }
        }
        parts.head.store(0, Ordering::Relaxed); // two laps behind reserve 6
        assert_eq!(p.len(), 4);
        assert_eq!(p.push(&ev(7), 0), Err(EventRingFull));
    }

    #[test]
    fn consumer_sees_only_published_slots() {
        let (p, mut c, parts) = pair(4);
        assert!(!c.is_ready());
        p.push(&ev(3), 0).unwrap();
        assert!(c.is_ready());
        // A slot holding last lap's seq is not ready for this lap.
        parts.slots.atomic_u64(0).store(1 + 4, Ordering::Relaxed);
        assert_eq!(c.pop(), None);
    }
}
