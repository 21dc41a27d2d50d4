//! A listener's accept queue: established connections waiting for
//! `tcp_accept`. A queued connection can die before it is accepted (the
//! client resets it); removing it from the middle of the queue would cost
//! O(backlog) each time, so its entry is left in place and skipped when
//! reached (the handle no longer resolves to a connection queued here), and
//! only the count of live entries, which the backlog bounds, goes down.

use std::collections::VecDeque;

/// Dead entries beyond this many (and beyond the live count) trigger a sweep.
const SWEEP_SLACK: usize = 16;

/// Generic over the handle type so it can be tested on its own; the engine
/// keeps `K`s.
pub(crate) struct AcceptQueue<K> {
    entries: VecDeque<K>,
    /// Entries whose connection is still queued.
    live: usize,
}

impl<K> Default for AcceptQueue<K> {
    fn default() -> Self {
        AcceptQueue { entries: VecDeque::new(), live: 0 }
    }
}

impl<K: Copy> AcceptQueue<K> {
    /// Connections waiting to be accepted.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn push(&mut self, id: K) {
        self.entries.push_back(id);
        self.live += 1;
    }

    /// The oldest connection still queued; `is_queued` tells live entries
    /// from dead ones.
    pub fn pop(&mut self, is_queued: impl Fn(K) -> bool) -> Option<K> {
        while let Some(id) = self.entries.pop_front() {
            if is_queued(id) {
                self.live -= 1;
                return Some(id);
            }
        }
        None
    }

    /// A queued connection died (`is_queued` already false for it): O(1),
    /// with an occasional sweep so dead entries stay fewer than live ones
    /// plus a constant (amortised O(1) per death).
    pub fn forget_one(&mut self, is_queued: impl Fn(K) -> bool) {
        self.live = self.live.saturating_sub(1);
        if self.entries.len() > 2 * self.live + SWEEP_SLACK {
            self.entries.retain(|&id| is_queued(id));
        }
    }

    /// Every entry, live or dead (the caller checks), emptying the queue.
    pub fn drain(&mut self) -> impl Iterator<Item = K> + '_ {
        self.live = 0;
        self.entries.drain(..)
    }

    /// Entries held, dead ones included.
    #[cfg(test)]
    fn stored(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn pop_skips_dead_entries_len_counts_live_and_dead_ones_are_swept() {
        let mut dead = HashSet::new();
        let mut q = AcceptQueue::default();
        for id in 0..100u32 {
            q.push(id);
        }
        for id in 0..90u32 {
            dead.insert(id);
            q.forget_one(|x| !dead.contains(&x));
            assert!(q.stored() <= 2 * q.len() + SWEEP_SLACK + 1, "swept: {} stored, {} live", q.stored(), q.len());
        }
        assert_eq!(q.len(), 10);
        let popped: Vec<u32> = core::iter::from_fn(|| q.pop(|x| !dead.contains(&x))).collect();
        assert_eq!(popped, (90..100).collect::<Vec<_>>());
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn drain_returns_every_entry_and_empties() {
        let mut q = AcceptQueue::default();
        q.push(1u32);
        q.push(2u32);
        assert_eq!(q.drain().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(q.len(), 0);
        assert_eq!(q.pop(|_| true), None);
    }
}
