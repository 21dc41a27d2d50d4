//! The single-queue event store (seed 003, challenge 2).
//!
//! One FIFO per consumer holding events *by value*. A socket has at most one
//! entry in the queue: posting again while its entry is still unread ORs the
//! new kinds into that entry (coalescing), located through the socket's
//! [`EventTicket`]. So the queue never holds more entries than there are
//! sockets, and with a capacity of at least the socket limit it cannot
//! overflow. Nothing in it points at memory the stack frees: keys are
//! generation-checked handles the consumer validates when it pops.
//!
//! A socket released while its entry is unread has its entry *retracted*: it
//! stays in place (tickets are positions) but empty, is skipped by `pop`, and
//! no longer counts against the capacity — otherwise churn between two polls
//! could fill the queue with entries nobody will ever receive and make a
//! live socket's event overflow. Retracted entries are bounded separately
//! (`capacity` more at the most) so memory stays bounded too.

use std::collections::VecDeque;

use super::event::{Event, EventSet, Priority};

/// Where a socket's unread entry sits; kept by the socket between posts.
/// It is the entry's sequence number: entries are numbered in the order they
/// were appended, so a ticket older than the queue's head names an entry that
/// was already popped and is simply ignored.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EventTicket(pub u64);

/// The queue already holds `capacity` entries and this post needs a new one.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct QueueFull;

/// Storage grows by doubling from this many entries, up to the capacity.
const INITIAL_ALLOCATION: usize = 64;

pub struct EventQueue<K: Copy + Eq> {
    entries: VecDeque<Event<K>>,
    /// Sequence number of `entries[0]`.
    head_seq: u64,
    capacity: usize,
    /// Entries retracted and not yet popped (empty kinds, skipped by `pop`).
    retracted: usize,
    coalesced: u64,
}

impl<K: Copy + Eq> EventQueue<K> {
    /// A queue that holds at most `capacity` entries. Memory is reserved as the
    /// queue fills (never past `capacity`), so an idle consumer costs little and
    /// a busy one stops allocating once its high-water mark is reached.
    pub fn with_capacity(capacity: usize) -> Self {
        EventQueue { entries: VecDeque::new(), head_seq: 0, capacity, retracted: 0, coalesced: 0 }
    }
    pub fn capacity(&self) -> usize {
        self.capacity
    }
    /// Entries `pop` will return (retracted ones excluded).
    pub fn len(&self) -> usize {
        self.entries.len() - self.retracted
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Post `kinds` for `key`. If `*ticket` names an unread entry for the same
    /// key, the kinds are merged into it (and the priority raised to the higher
    /// of the two); otherwise a new entry is appended and `*ticket` updated.
    pub fn post(&mut self, key: K, kinds: EventSet, priority: Priority, ticket: &mut Option<EventTicket>) -> Result<(), QueueFull> {
        if kinds.is_empty() {
            // Nothing to report (and empty kinds mark a retracted entry).
            return Ok(());
        }
        if let Some(entry) = ticket.and_then(|t| self.unread_entry_mut(t)) {
            if entry.key == key && !entry.kinds.is_empty() {
                entry.kinds |= kinds;
                entry.priority = entry.priority.max(priority);
                self.coalesced += 1;
                return Ok(());
            }
        }
        if self.len() >= self.capacity || self.entries.len() >= self.storage_limit() {
            return Err(QueueFull);
        }
        self.reserve_one();
        let seq = self.head_seq + self.entries.len() as u64;
        self.entries.push_back(Event { key, kinds, priority });
        *ticket = Some(EventTicket(seq));
        Ok(())
    }
    /// The oldest entry (retracted ones are skipped).
    pub fn pop(&mut self) -> Option<Event<K>> {
        loop {
            let event = self.entries.pop_front()?;
            self.head_seq += 1;
            if !event.kinds.is_empty() {
                return Some(event);
            }
            self.retracted -= 1;
        }
    }
    /// The socket that holds `*ticket` is gone: its unread entry, if any, is
    /// emptied so it is never returned and stops counting against the
    /// capacity. The ticket is cleared. Returns whether an entry was retracted.
    pub fn retract(&mut self, ticket: &mut Option<EventTicket>) -> bool {
        let Some(t) = ticket.take() else { return false };
        let Some(entry) = self.unread_entry_mut(t) else { return false };
        if entry.kinds.is_empty() {
            return false;
        }
        entry.kinds = EventSet::EMPTY;
        self.retracted += 1;
        true
    }
    /// Entries merged into an existing entry since creation.
    pub fn coalesced(&self) -> u64 {
        self.coalesced
    }

    /// The entry `ticket` names, if it has not been popped yet.
    fn unread_entry_mut(&mut self, ticket: EventTicket) -> Option<&mut Event<K>> {
        let offset = ticket.0.checked_sub(self.head_seq)?;
        let index = usize::try_from(offset).ok()?;
        self.entries.get_mut(index)
    }

    /// Live entries at most `capacity`, retracted ones at most as many again.
    fn storage_limit(&self) -> usize {
        self.capacity.saturating_mul(2)
    }

    /// Make room for one more entry, doubling the allocation but never
    /// reserving past what the entries may need: `capacity`, or while
    /// retracted entries are held, the storage limit.
    fn reserve_one(&mut self) {
        let len = self.entries.len();
        if len < self.entries.capacity() {
            return;
        }
        let limit = if len < self.capacity { self.capacity } else { self.storage_limit() };
        let target = (len * 2).max(INITIAL_ALLOCATION).min(limit);
        self.entries.reserve_exact(target.saturating_sub(len).max(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const R: EventSet = EventSet::READABLE;
    const W: EventSet = EventSet::WRITABLE;

    #[test]
    fn second_post_coalesces_into_unread_entry() {
        let mut q = EventQueue::with_capacity(4);
        let mut t = None;
        q.post(1u32, R, 0, &mut t).unwrap();
        q.post(1u32, W, 3, &mut t).unwrap();
        assert_eq!(q.len(), 1);
        assert_eq!(q.coalesced(), 1);
        assert_eq!(q.pop(), Some(Event { key: 1, kinds: R | W, priority: 3 }));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn coalesced_priority_is_the_higher_one() {
        let mut q = EventQueue::with_capacity(4);
        let mut t = None;
        q.post(1u32, R, 5, &mut t).unwrap();
        q.post(1u32, W, 2, &mut t).unwrap();
        assert_eq!(q.pop().unwrap().priority, 5);
    }

    #[test]
    fn ticket_goes_stale_after_pop() {
        let mut q = EventQueue::with_capacity(4);
        let (mut ta, mut tb) = (None, None);
        q.post(1u32, R, 0, &mut ta).unwrap();
        q.post(2u32, R, 0, &mut tb).unwrap();
        assert_eq!(q.pop().unwrap().key, 1);
        // Key 1's ticket points before the head: a new entry, behind key 2's.
        q.post(1u32, W, 0, &mut ta).unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!(q.coalesced(), 0);
        assert_eq!(q.pop(), Some(Event { key: 2, kinds: R, priority: 0 }));
        assert_eq!(q.pop(), Some(Event { key: 1, kinds: W, priority: 0 }));
    }

    #[test]
    fn ticket_of_another_key_is_not_merged_into() {
        let mut q = EventQueue::with_capacity(4);
        let mut t = None;
        q.post(1u32, R, 0, &mut t).unwrap();
        let mut borrowed = t;
        q.post(2u32, W, 0, &mut borrowed).unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop().unwrap().kinds, R);
    }

    #[test]
    fn fifo_order_across_keys() {
        let mut q = EventQueue::with_capacity(16);
        let mut tickets = [None; 10];
        for (k, t) in tickets.iter_mut().enumerate() {
            q.post(k as u32, R, 0, t).unwrap();
        }
        let popped: Vec<u32> = core::iter::from_fn(|| q.pop()).map(|e| e.key).collect();
        assert_eq!(popped, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn capacity_bounds_new_entries_but_not_coalescing() {
        let mut q = EventQueue::with_capacity(2);
        let mut t = [None; 3];
        q.post(0u32, R, 0, &mut t[0]).unwrap();
        q.post(1u32, R, 0, &mut t[1]).unwrap();
        assert_eq!(q.post(2u32, R, 0, &mut t[2]), Err(QueueFull));
        assert_eq!(t[2], None);
        assert_eq!(q.post(0u32, W, 0, &mut t[0]), Ok(()));
        q.pop();
        assert_eq!(q.post(2u32, R, 0, &mut t[2]), Ok(()));
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn many_keys_fit_and_memory_stays_within_capacity() {
        const KEYS: usize = 100_000;
        let mut q = EventQueue::with_capacity(KEYS);
        let mut tickets = vec![None; KEYS];
        for round in 0..3 {
            for (k, t) in tickets.iter_mut().enumerate() {
                let kinds = if round == 0 { R } else { W };
                q.post(k as u32, kinds, 0, t).unwrap();
            }
        }
        assert_eq!(q.len(), KEYS);
        assert!(q.entries.capacity() <= KEYS + INITIAL_ALLOCATION);
        let first = q.pop().unwrap();
        assert_eq!(first, Event { key: 0, kinds: R | W, priority: 0 });
    }

    /// Released sockets' unread entries do not take room from live ones.
    #[test]
    fn retracted_entries_do_not_count_against_capacity() {
        let mut q = EventQueue::with_capacity(2);
        let mut t = [None; 4];
        q.post(0u32, R, 0, &mut t[0]).unwrap();
        q.post(1u32, R, 0, &mut t[1]).unwrap();
        assert!(q.retract(&mut t[0]));
        assert!(!q.retract(&mut t[0]), "twice is harmless");
        assert_eq!(t[0], None);
        assert_eq!(q.len(), 1);
        q.post(2u32, W, 0, &mut t[2]).expect("room: key 0's entry was retracted");
        assert_eq!(q.post(3u32, W, 0, &mut t[3]), Err(QueueFull), "two live entries fill it");
        assert_eq!(q.pop().map(|e| e.key), Some(1), "the retracted entry is skipped");
        assert_eq!(q.pop().map(|e| e.key), Some(2));
        assert_eq!(q.pop(), None);
        assert!(q.is_empty());
        q.post(3u32, W, 0, &mut t[3]).unwrap();
        assert_eq!(q.len(), 1);
    }

    /// Retracted entries are bounded: storage never exceeds twice the capacity.
    #[test]
    fn retracted_entries_are_bounded() {
        let mut q = EventQueue::with_capacity(4);
        let mut refused = 0;
        for k in 0..100u32 {
            let mut t = None;
            if q.post(k, R, 0, &mut t).is_err() {
                refused += 1;
            }
            q.retract(&mut t);
            assert!(q.entries.len() <= 8);
        }
        assert!(refused > 0);
        assert_eq!(q.pop(), None);
        assert_eq!(q.entries.len(), 0);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Post { key: u32, kinds: u16, priority: u8 },
        Pop,
        Retract { key: u32 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u32..50, 1u16..256, 0u8..4).prop_map(|(key, kinds, priority)| Op::Post { key, kinds, priority }),
            1 => Just(Op::Pop),
            1 => (0u32..50).prop_map(|key| Op::Retract { key }),
        ]
    }

    proptest! {
        #[test]
        fn matches_model(ops in proptest::collection::vec(op(), 1..400)) {
            let mut q = EventQueue::with_capacity(50);
            let mut tickets = [None; 50];
            // Kinds posted per key and not yet seen in a popped event.
            let mut pending = [EventSet::EMPTY; 50];
            let check_pop = |e: Event<u32>, pending: &mut [EventSet; 50]| -> Result<(), TestCaseError> {
                let p = &mut pending[e.key as usize];
                prop_assert!(!p.is_empty(), "event for key {} with nothing posted", e.key);
                prop_assert_eq!(*p, e.kinds, "popped kinds differ from the union posted");
                *p = EventSet::EMPTY;
                Ok(())
            };
            for op in ops {
                match op {
                    Op::Post { key, kinds, priority } => {
                        match q.post(key, EventSet(kinds), priority, &mut tickets[key as usize]) {
                            Ok(()) => pending[key as usize] |= EventSet(kinds),
                            // Only retracted entries may fill it, never live ones.
                            Err(QueueFull) => prop_assert!(q.entries.len() >= q.storage_limit() && q.len() < 50),
                        }
                    }
                    Op::Retract { key } => {
                        q.retract(&mut tickets[key as usize]);
                        pending[key as usize] = EventSet::EMPTY;
                    }
                    Op::Pop => {
                        if let Some(e) = q.pop() {
                            check_pop(e, &mut pending)?;
                        } else {
                            prop_assert!(pending.iter().all(|p| p.is_empty()));
                        }
                    }
                }
                // At most one entry per key: the queue never exceeds the number of keys with pending kinds.
                let with_pending = pending.iter().filter(|p| !p.is_empty()).count();
                prop_assert_eq!(q.len(), with_pending);
            }
            while let Some(e) = q.pop() {
                check_pop(e, &mut pending)?;
            }
            prop_assert!(pending.iter().all(|p| p.is_empty()), "posted kinds lost");
        }
    }
}
