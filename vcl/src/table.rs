//! The per-process session table (design §4.2): a chunked slab of entries
//! named by generation-checked [`Key`]s, with a lock-free free list.
//!
//! Each slot has a generation word: odd while the slot is live, even while
//! it is free. A key carries the odd generation of the life it names, so a
//! key kept past its slot's free never matches again. A slot whose
//! generation would wrap back to a value a stale key could hold is retired
//! instead of reused: a key is never reused while it can be stale.
//!
//! Freeing is two-phase: [`Table::retire`] ends the life (one caller wins
//! when several race to close the same key), the winner cleans the entry,
//! then [`Table::release`] puts the slot on the free list. The free list is
//! a Treiber stack of slot indices whose head carries a 32-bit ABA tag.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::chunked::Chunked;

/// Most slots a table holds (live sessions of this process, candidates
/// included).
pub(crate) const MAX_SLOTS: u32 = 1 << 21;

/// A generation-checked name of a slot's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub index: u32,
    /// Odd: the life's generation.
    pub gen: u32,
}

impl Key {
    /// Packs as `gen << 32 | index`; never 0 (generations are odd).
    pub(crate) fn pack(self) -> u64 {
        (u64::from(self.gen) << 32) | u64::from(self.index)
    }

    /// Unpacks a word made by [`pack`](Self::pack); `None` for 0 and for
    /// even generations.
    pub(crate) fn unpack(raw: u64) -> Option<Key> {
        let key = Key { index: raw as u32, gen: (raw >> 32) as u32 };
        (key.gen % 2 == 1).then_some(key)
    }
}

#[derive(Default)]
struct Slot<T> {
    gen: AtomicU32,
    /// Next free slot + 1 (0: none) while on the free list.
    next_free: AtomicU32,
    value: T,
}

pub(crate) struct Table<T> {
    slots: Chunked<Slot<T>>,
    /// `tag << 32 | (index + 1)` of the free list's top; low half 0: empty.
    free_head: AtomicU64,
    /// Slots never used yet start here.
    next_unused: AtomicU32,
}

impl<T: Default> Table<T> {
    pub(crate) fn new(capacity: u32) -> Table<T> {
        Table { slots: Chunked::new(capacity), free_head: AtomicU64::new(0), next_unused: AtomicU32::new(0) }
    }

    /// Starts a new life in a free slot and returns its key and entry (as the
    /// previous life's [`release`](Self::release) left it). `None` when the
    /// table is full.
    pub(crate) fn alloc(&self) -> Option<(Key, &T)> {
        let index = self.pop_free().or_else(|| self.take_unused())?;
        let slot = self.slots.get_or_alloc(index)?;
        // Even → odd. Only the allocator that popped the index writes here.
        let gen = slot.gen.fetch_add(1, Ordering::AcqRel).wrapping_add(1);
        Some((Key { index, gen }, &slot.value))
    }

    fn take_unused(&self) -> Option<u32> {
        let mut cur = self.next_unused.load(Ordering::Relaxed);
        loop {
            if cur >= self.slots.len() {
                return None;
            }
            match self.next_unused.compare_exchange_weak(cur, cur + 1, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Some(cur),
                Err(now) => cur = now,
            }
        }
    }

    fn pop_free(&self) -> Option<u32> {
        let mut head = self.free_head.load(Ordering::Acquire);
        loop {
            let top = head as u32;
            if top == 0 {
                return None;
            }
            let index = top - 1;
            let next = self.slots.get(index)?.next_free.load(Ordering::Relaxed);
            let tag = (head >> 32).wrapping_add(1);
            let new = (tag << 32) | u64::from(next);
            match self.free_head.compare_exchange_weak(head, new, Ordering::Acquire, Ordering::Acquire) {
                Ok(_) => return Some(index),
                Err(now) => head = now,
            }
        }
    }

    /// The entry of a live key; `None` when the life has ended.
    pub(crate) fn get(&self, key: Key) -> Option<&T> {
        let slot = self.slots.get(key.index)?;
        (slot.gen.load(Ordering::Acquire) == key.gen).then_some(&slot.value)
    }

    /// Whether `key`'s life is still going on.
    pub(crate) fn is_live(&self, key: Key) -> bool {
        self.get(key).is_some()
    }

    /// Ends `key`'s life: later lookups fail. Returns the entry to the one
    /// caller that ended it (`None` for a stale key or a lost race); that
    /// caller cleans it and then calls [`release`](Self::release).
    pub(crate) fn retire(&self, key: Key) -> Option<&T> {
        let slot = self.slots.get(key.index)?;
        slot.gen
            .compare_exchange(key.gen, key.gen.wrapping_add(1), Ordering::AcqRel, Ordering::Relaxed)
            .ok()
            .map(|_| &slot.value)
    }

    /// Makes a retired slot allocatable again, unless its next life would
    /// reuse a generation a stale key may hold (after 2^31 lives), in which
    /// case the slot stays retired for good.
    pub(crate) fn release(&self, key: Key) {
        let Some(slot) = self.slots.get(key.index) else { return };
        if key.gen.wrapping_add(2) < key.gen {
            log::debug!("session slot {} retired after its last generation", key.index);
            return;
        }
        let mut head = self.free_head.load(Ordering::Relaxed);
        loop {
            slot.next_free.store(head as u32, Ordering::Relaxed);
            let tag = (head >> 32).wrapping_add(1);
            let new = (tag << 32) | u64::from(key.index + 1);
            match self.free_head.compare_exchange_weak(head, new, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Arc;

    #[test]
    fn stale_keys_never_match_a_new_life() {
        let t: Table<()> = Table::new(4);
        let (a, _) = t.alloc().unwrap();
        assert!(t.is_live(a));
        assert!(t.retire(a).is_some());
        assert!(t.retire(a).is_none(), "one winner");
        assert!(!t.is_live(a));
        t.release(a);
        let (b, _) = t.alloc().unwrap();
        assert_eq!(b.index, a.index, "freed slots are reused first");
        assert_ne!(b.gen, a.gen);
        assert!(!t.is_live(a) && t.is_live(b));
    }

    #[test]
    fn keys_pack_and_reject_even_generations() {
        let k = Key { index: 5, gen: 3 };
        assert_eq!(Key::unpack(k.pack()), Some(k));
        assert_eq!(Key::unpack(0), None);
        assert_eq!(Key::unpack(Key { index: 1, gen: 2 }.pack()), None);
    }

    #[test]
    fn a_full_table_refuses() {
        let t: Table<()> = Table::new(2);
        let _a = t.alloc().unwrap();
        let _b = t.alloc().unwrap();
        assert!(t.alloc().is_none());
    }

    #[test]
    fn a_slot_at_its_last_generation_is_retired() {
        let t: Table<()> = Table::new(1);
        let (k1, _) = t.alloc().unwrap();
        t.retire(k1).unwrap();
        t.release(k1);
        // Fast-forward the free slot to its last even generation.
        t.slots.get(0).unwrap().gen.store(u32::MAX - 1, Ordering::Relaxed);
        let (k2, _) = t.alloc().unwrap();
        assert_eq!(k2.gen, u32::MAX);
        t.retire(k2).unwrap();
        t.release(k2);
        assert!(t.alloc().is_none(), "generation 1 could match a stale key: never reused");
    }

    #[test]
    fn concurrent_alloc_and_free_hand_out_each_slot_once() {
        let t: Arc<Table<AtomicU32>> = Arc::new(Table::new(64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let t = Arc::clone(&t);
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        let (k, v) = t.alloc().expect("64 slots for 4 threads");
                        // Exclusive while live: nobody else may hold this slot.
                        assert_eq!(v.swap(1, Ordering::AcqRel), 0);
                        v.store(0, Ordering::Release);
                        t.retire(k).unwrap();
                        t.release(k);
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        let mut seen = HashSet::new();
        while let Some((k, _)) = t.alloc() {
            assert!(seen.insert(k.index), "slot {} handed out twice", k.index);
        }
        assert_eq!(seen.len(), 64);
    }
}
