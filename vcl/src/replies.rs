//! Requests waiting for their `REPLY` event, keyed by `req_id`.
//!
//! A reply may need an action before anyone sees it (binding the handle a
//! `LISTEN` or `CONNECT` created to its session, so that the events that
//! follow it in the ring find the session); the thread draining events does
//! that action, then publishes the result to the waiting thread, if any.
//! Off the data path: a mutex is fine here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};

use parking_lot::Mutex;

use crate::table::Key;
use crate::wait::WaitList;

/// What to do with a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// `LISTEN` for this session: bind the handle; the caller waits.
    Listen(Key),
    /// `CONNECT` for this session: bind the handle; completion comes as a
    /// session event, which the caller waits for instead.
    Connect(Key),
    /// A caller waits for the value (`SET_OPTION`).
    Wait,
    /// Nobody waits (options sent once a handle exists): log failures.
    Discard,
}

impl Purpose {
    fn waited(self) -> bool {
        matches!(self, Purpose::Listen(_) | Purpose::Wait)
    }
}

struct Pending {
    purpose: Purpose,
    result: Option<Result<u64, i32>>,
}

#[derive(Default)]
pub(crate) struct Replies {
    pending: Mutex<HashMap<u32, Pending>>,
    next_id: AtomicU32,
    /// Threads waiting for a reply.
    pub waiters: WaitList,
}

impl Replies {
    /// A fresh `req_id` for a request with this purpose.
    pub(crate) fn register(&self, purpose: Purpose) -> u32 {
        let mut pending = self.pending.lock();
        loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            // Wrapping ids skip ones still pending (a request that never got
            // its reply, from a daemon that misbehaves).
            if let std::collections::hash_map::Entry::Vacant(slot) = pending.entry(id) {
                slot.insert(Pending { purpose, result: None });
                return id;
            }
        }
    }

    /// The purpose of a request still waiting for its reply.
    pub(crate) fn purpose(&self, req_id: u32) -> Option<Purpose> {
        self.pending.lock().get(&req_id).filter(|p| p.result.is_none()).map(|p| p.purpose)
    }

    /// Records the reply after its action: kept for a waiting caller,
    /// dropped otherwise. Returns whether a caller waits for it.
    pub(crate) fn finish(&self, req_id: u32, result: Result<u64, i32>) -> bool {
        let mut pending = self.pending.lock();
        match pending.get_mut(&req_id) {
            Some(p) if p.purpose.waited() => {
                p.result = Some(result);
                true
            }
            Some(_) => {
                pending.remove(&req_id);
                false
            }
            None => false,
        }
    }

    /// Whether `req_id`'s reply is in.
    pub(crate) fn is_done(&self, req_id: u32) -> bool {
        self.pending.lock().get(&req_id).is_some_and(|p| p.result.is_some())
    }

    /// Takes `req_id`'s result once it is in.
    pub(crate) fn take(&self, req_id: u32) -> Option<Result<u64, i32>> {
        let mut pending = self.pending.lock();
        let result = pending.get(&req_id)?.result?;
        pending.remove(&req_id);
        Some(result)
    }

    /// The caller stopped waiting (the daemon died); a late reply is dropped.
    pub(crate) fn abandon(&self, req_id: u32) {
        self.pending.lock().remove(&req_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waited_replies_are_kept_until_taken_others_dropped() {
        let r = Replies::default();
        let a = r.register(Purpose::Wait);
        let b = r.register(Purpose::Discard);
        assert_ne!(a, b);
        assert_eq!(r.purpose(a), Some(Purpose::Wait));
        assert!(!r.is_done(a));
        assert!(r.finish(a, Ok(7)));
        assert!(!r.finish(b, Err(22)));
        assert_eq!(r.purpose(b), None, "dropped");
        assert_eq!(r.purpose(a), None, "no longer waiting for its reply");
        assert!(r.is_done(a));
        assert_eq!(r.take(a), Some(Ok(7)));
        assert_eq!(r.take(a), None);
        assert!(!r.finish(999, Ok(0)), "unknown ids are ignored");
    }

    #[test]
    fn ids_skip_pending_ones_when_wrapping() {
        let r = Replies::default();
        r.next_id.store(u32::MAX, Ordering::Relaxed);
        let a = r.register(Purpose::Wait);
        assert_eq!(a, u32::MAX);
        r.next_id.store(u32::MAX, Ordering::Relaxed);
        let b = r.register(Purpose::Wait);
        assert_eq!(b, 0, "u32::MAX is still pending");
    }
}
