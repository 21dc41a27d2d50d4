//! A hierarchical timer wheel: O(1) insert and cancel, expiry in time
//! proportional to the entries that fire. Entries are addressed by
//! generation-checked [`TimerId`]s, so cancelling an id that already fired (or
//! was cancelled) is a harmless no-op, and keys are stored by value (the stack
//! uses connection handles, which are themselves generation-checked).

use crate::time::{Duration, Instant};

/// Identifies one scheduled entry. Stale ids never match a newer entry.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TimerId(pub u64);

pub struct TimerWheel<K: Copy> {
    _todo: core::marker::PhantomData<K>,
}

impl<K: Copy> TimerWheel<K> {
    /// `tick` is the resolution: deadlines are rounded up to a tick, so an entry
    /// never fires early.
    pub fn new(now: Instant, tick: Duration) -> Self {
        let _ = (now, tick);
        todo!()
    }
    pub fn len(&self) -> usize {
        todo!()
    }
    pub fn is_empty(&self) -> bool {
        todo!()
    }
    /// Schedule `key` at `deadline` (a deadline in the past fires at the next expire).
    pub fn insert(&mut self, deadline: Instant, key: K) -> TimerId {
        let _ = (deadline, key);
        todo!()
    }
    /// Remove an entry; false if it already fired or was cancelled.
    pub fn cancel(&mut self, id: TimerId) -> bool {
        let _ = id;
        todo!()
    }
    /// The earliest time at which `expire` can return something (never later
    /// than the earliest deadline rounded up to its tick), or None if empty.
    pub fn next_deadline(&self) -> Option<Instant> {
        todo!()
    }
    /// Append to `out` every key whose deadline is `<= now`, and remove them.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<K>) {
        let _ = (now, out);
        todo!()
    }
}
