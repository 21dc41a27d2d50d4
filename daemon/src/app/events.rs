//! Events to one app worker: its event ring, a small FIFO for replies and
//! accepts, and a coalescing backlog for session events (design §2.5).
//!
//! No event is ever lost. `SESSION` events go straight into the ring only
//! while nothing waits ahead of them and the ring has room beyond the
//! headroom kept for replies and accepts; otherwise the session joins the
//! backlog, where later bits OR into its one entry. So the backlog holds at
//! most one live entry per session, however slowly the app reads. `REPLY`
//! and `ACCEPTED` cannot be merged: they use the headroom, and wait in
//! `urgent` in order when even that is full. That FIFO is bounded by the
//! app's own pace: requests are not drained while it is long (see
//! `requests`), and accepts are bounded by listener credit.
//!
//! Order: `urgent` is flushed before the backlog, and a session event goes
//! to the backlog whenever `urgent` is not empty, so an app always sees a
//! connection's `ACCEPTED` (or its `CONNECT` reply) before its events.

use std::collections::VecDeque;

use sluice_shm::event_ring::EventRingParts;
use sluice_shm::protocol::AppEvent;
use sluice_shm::{Event, EventProducer, LayoutError, SessionHandle};

use super::sessions::SessionTable;

/// Stale backlog entries (of freed sessions) tolerated before a compaction,
/// beyond the live ones.
const STALE_SLACK: usize = 64;

pub(super) struct Outbox {
    ring: EventProducer,
    /// Replies and accepts that found no room, oldest first.
    urgent: VecDeque<Event>,
    /// Sessions with a pending `SESSION` event, oldest first. Entries of
    /// sessions freed since are stale (their generation moved on) and are
    /// skipped; `backlog_live` counts the others.
    backlog: VecDeque<SessionHandle>,
    backlog_live: usize,
    backlog_high_water: usize,
    /// Ring slots `SESSION` events leave free.
    headroom: u64,
    /// Events written to the ring.
    published: u64,
    /// Events written since the app was last woken.
    unannounced: bool,
    /// The producer's count of clamped app heads, as last seen.
    clamps_seen: u64,
}

impl Outbox {
    pub fn new(parts: EventRingParts) -> Result<Outbox, LayoutError> {
        Ok(Outbox {
            ring: EventProducer::new(parts)?,
            urgent: VecDeque::new(),
            backlog: VecDeque::new(),
            backlog_live: 0,
            backlog_high_water: 0,
            headroom: 0,
            published: 0,
            unannounced: false,
            clamps_seen: 0,
        })
    }

    /// Sets the slots kept for replies and accepts: at most half the ring,
    /// so session events always have room to make progress.
    pub fn set_headroom(&mut self, slots: u64) {
        self.headroom = slots.min(self.ring.capacity() / 2);
    }

    /// Queues a `REPLY` or `ACCEPTED` event.
    pub fn push_urgent(&mut self, event: AppEvent) {
        let event = event.encode();
        if self.urgent.is_empty() && self.ring.push(&event, 0).is_ok() {
            self.note_published();
        } else {
            self.urgent.push_back(event);
        }
    }

    /// Reports readiness `bits` (with `errno` for `ERROR`) of a live session.
    pub fn post_session(&mut self, sessions: &mut SessionTable, handle: SessionHandle, bits: u16, errno: i32) {
        if bits == 0 {
            return;
        }
        let Some(session) = sessions.get_mut(handle) else { return };
        let entry = &mut session.backlog;
        if entry.queued {
            entry.bits |= bits;
            if errno != 0 {
                entry.errno = errno;
            }
            return;
        }
        if self.urgent.is_empty() && self.backlog_live == 0 {
            let event = AppEvent::Session { handle, bits, errno }.encode();
            if self.ring.push(&event, self.headroom).is_ok() {
                self.note_published();
                return;
            }
        }
        entry.queued = true;
        entry.bits = bits;
        entry.errno = errno;
        if self.backlog.len() >= 2 * self.backlog_live + STALE_SLACK {
            self.backlog.retain(|h| sessions.get(*h).is_some_and(|s| s.backlog.queued));
        }
        self.backlog.push_back(handle);
        self.backlog_live += 1;
        self.backlog_high_water = self.backlog_high_water.max(self.backlog_live);
    }

    /// A session is being freed: its backlog entry (if any) is dropped.
    pub fn forget(&mut self, queued: bool) {
        if queued {
            self.backlog_live -= 1;
        }
    }

    /// Moves waiting events into the ring while it has room; returns how many.
    pub fn flush(&mut self, sessions: &mut SessionTable) -> usize {
        let mut moved = 0;
        while let Some(event) = self.urgent.front() {
            if self.ring.push(event, 0).is_err() {
                return moved;
            }
            self.urgent.pop_front();
            self.note_published();
            moved += 1;
        }
        while let Some(&handle) = self.backlog.front() {
            let Some(session) = sessions.get_mut(handle).filter(|s| s.backlog.queued) else {
                self.backlog.pop_front();
                continue;
            };
            let entry = &mut session.backlog;
            let event = AppEvent::Session { handle, bits: entry.bits, errno: entry.errno }.encode();
            if self.ring.push(&event, self.headroom).is_err() {
                break;
            }
            *entry = Default::default();
            self.backlog.pop_front();
            self.backlog_live -= 1;
            self.note_published();
            moved += 1;
        }
        moved
    }

    /// Whether events wait for ring room.
    pub fn is_waiting(&self) -> bool {
        !self.urgent.is_empty() || self.backlog_live > 0
    }

    /// Whether a flush would move something now (the sleep re-check).
    pub fn can_flush(&self) -> bool {
        let used = self.ring.len();
        (!self.urgent.is_empty() && used < self.ring.capacity())
            || (self.backlog_live > 0 && used + self.headroom < self.ring.capacity())
    }

    pub fn urgent_len(&self) -> usize {
        self.urgent.len()
    }

    pub fn backlog_len(&self) -> usize {
        self.backlog_live
    }

    pub fn backlog_high_water(&self) -> usize {
        self.backlog_high_water
    }

    pub fn published(&self) -> u64 {
        self.published
    }

    /// Whether events were written since the last call (the app must be woken).
    pub fn take_unannounced(&mut self) -> bool {
        std::mem::take(&mut self.unannounced)
    }

    /// Times the app's ring head was out of range since the last call.
    pub fn take_new_clamps(&mut self) -> u64 {
        let clamps = self.ring.clamped_heads();
        let new = clamps - self.clamps_seen;
        self.clamps_seen = clamps;
        new
    }

    fn note_published(&mut self) {
        self.published += 1;
        self.unannounced = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::session::{Listener, Role, Session};
    use sluice_shm::event_ring::heap_ring;
    use sluice_shm::layout::{DownSegment, Geometry, UpSegment};
    use sluice_shm::protocol::ready;
    use sluice_shm::{EventConsumer, Region};
    use sluice_stack::ListenerId;

    fn table(n: u32) -> (SessionTable, Vec<SessionHandle>) {
        let geo = Geometry { workers: 1, event_cap: 4, request_cap: 2, max_sessions: n, rx_fifo: 4096, tx_fifo: 4096 };
        let down = DownSegment::new(Region::heap(geo.down_len()), geo).unwrap();
        let up = UpSegment::new(Region::heap(geo.up_len()), geo).unwrap();
        let mut t = SessionTable::new(n);
        let mut handles = Vec::new();
        for i in 0..n {
            let h = t.vacant().unwrap();
            let s = Session {
                desc: down.desc(i).unwrap(),
                words: up.app_words(i).unwrap(),
                role: Role::Listener(Listener::new(ListenerId::from_parts(i, 0), 1)),
                backlog: Default::default(),
            };
            assert!(t.insert(h, s));
            handles.push(h);
        }
        (t, handles)
    }

    fn drain(c: &mut EventConsumer) -> Vec<AppEvent> {
        let mut out = Vec::new();
        c.drain(usize::MAX, |e| out.push(AppEvent::decode(&e).unwrap()));
        out
    }

    #[test]
    fn a_full_ring_coalesces_per_session_and_loses_nothing() {
        let (parts, _r) = heap_ring(4).unwrap();
        let mut out = Outbox::new(parts.clone()).unwrap();
        let mut app = EventConsumer::new(parts).unwrap();
        let (mut t, h) = table(100);
        for round in 0..3u16 {
            for &s in &h {
                out.post_session(&mut t, s, 1 << round, 0);
            }
        }
        assert_eq!(out.published(), 4, "the ring filled");
        // The four whose first event made it have later bits waiting too.
        assert_eq!(out.backlog_len(), 100, "one entry per waiting session");
        assert_eq!(out.backlog_high_water(), 100);
        let mut bits = [0u16; 100];
        loop {
            out.flush(&mut t);
            let got = drain(&mut app);
            if got.is_empty() {
                break;
            }
            for e in got {
                let AppEvent::Session { handle, bits: b, .. } = e else { panic!("{e:?}") };
                bits[handle.index as usize] |= b;
            }
        }
        assert!(bits.iter().all(|&b| b == 0b111), "every session got every bit");
        assert!(!out.is_waiting());
    }

    #[test]
    fn urgent_events_keep_their_order_ahead_of_session_events() {
        let (parts, _r) = heap_ring(4).unwrap();
        let mut out = Outbox::new(parts.clone()).unwrap();
        out.set_headroom(2);
        let mut app = EventConsumer::new(parts).unwrap();
        let (mut t, h) = table(3);
        out.post_session(&mut t, h[0], ready::READABLE, 0);
        out.post_session(&mut t, h[1], ready::READABLE, 0);
        out.post_session(&mut t, h[2], ready::READABLE, 0);
        assert_eq!(out.published(), 2, "session events stop at the headroom");
        for req_id in 1..=3 {
            out.push_urgent(AppEvent::Reply { req_id, result: Ok(0) });
        }
        assert_eq!(out.published(), 4);
        assert_eq!(out.urgent_len(), 1);
        out.post_session(&mut t, h[0], ready::WRITABLE, 0);
        let mut seen = drain(&mut app);
        out.flush(&mut t);
        seen.extend(drain(&mut app));
        out.flush(&mut t);
        seen.extend(drain(&mut app));
        let replies: Vec<u32> = seen
            .iter()
            .filter_map(|e| if let AppEvent::Reply { req_id, .. } = e { Some(*req_id) } else { None })
            .collect();
        assert_eq!(replies, vec![1, 2, 3]);
        let third_reply = seen.iter().position(|e| matches!(e, AppEvent::Reply { req_id: 3, .. })).unwrap();
        let h2 = seen.iter().position(|e| matches!(e, AppEvent::Session { handle, .. } if *handle == h[2])).unwrap();
        assert!(third_reply < h2, "the backlog waits behind the urgent FIFO");
        assert!(!out.is_waiting());
    }

    #[test]
    fn freed_sessions_leave_no_live_entry_and_stale_ones_are_compacted() {
        let (parts, _r) = heap_ring(2).unwrap();
        let mut out = Outbox::new(parts).unwrap();
        let (mut t, h) = table(2);
        // Two events fill the ring; the third waits in the backlog.
        for _ in 0..3 {
            out.post_session(&mut t, h[0], ready::READABLE, 0);
        }
        assert_eq!(out.backlog_len(), 1);
        for _ in 0..1000 {
            // Churn one slot: queue it, free it, reuse it.
            let live = t.handles()[1];
            out.post_session(&mut t, live, ready::READABLE, 0);
            let (s, _) = t.remove(live).unwrap();
            out.forget(s.backlog.queued);
            let again = t.vacant().unwrap();
            assert!(t.insert(again, s));
            t.get_mut(again).unwrap().backlog = Default::default();
        }
        assert!(out.backlog.len() <= 2 * out.backlog_len() + STALE_SLACK + 1, "{}", out.backlog.len());
    }
}
