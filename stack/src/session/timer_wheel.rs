//! A hierarchical timer wheel: O(1) insert and cancel, expiry in time
//! proportional to the entries that fire. Entries are addressed by
//! generation-checked [`TimerId`]s, so cancelling an id that already fired (or
//! was cancelled) is a harmless no-op, and keys are stored by value (the stack
//! uses connection handles, which are themselves generation-checked).
//!
//! Layout: [`LEVELS`] levels of 64 slots; a slot at level `k` spans `64^k`
//! ticks. An entry sits at the level of the highest 6-bit group in which its
//! deadline tick differs from the wheel's current tick, so every entry at
//! level `k` lies in a slot *after* the current one within the current
//! level-`k+1` span. When time reaches the start of such a slot, its entries
//! either fire or move down to a finer level (cascading). Deadlines beyond the
//! top level's span wait in an overflow list, re-examined when time reaches the
//! top-level span holding the earliest of them. Each level keeps a 64-bit
//! occupancy map, so finding the next due slot is a `trailing_zeros` per level
//! and a jump of hours costs nothing for empty slots.
//!
//! Entries live in an [`Arena`] and are chained per slot in intrusive doubly
//! linked lists of handles, so cancel unlinks in O(1) without searching.

use crate::handle::{Arena, Handle};
use crate::time::{Duration, Instant};

/// Identifies one scheduled entry. Stale ids never match a newer entry.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TimerId(pub u64);

/// Levels of the wheel; with a 1 ms tick they span 2^24 ms (about 4.7 h)
/// before the overflow list is used.
pub const LEVELS: usize = 4;
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
/// Ticks covered by the whole wheel (the span of one top-level rotation).
const WHEEL_SPAN_BITS: u32 = SLOT_BITS * LEVELS as u32;

/// Which list an entry is chained in: a wheel slot, the ready list (deadline
/// already past when inserted) or the overflow list.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ListId {
    Slot { level: u8, slot: u8 },
    Ready,
    Overflow,
}

struct Entry<K> {
    key: K,
    /// Deadline in ticks, rounded up so the entry never fires early.
    when: u64,
    list: ListId,
    prev: Option<Handle<Entry<K>>>,
    next: Option<Handle<Entry<K>>>,
}

pub struct TimerWheel<K: Copy> {
    entries: Arena<Entry<K>>,
    tick_us: u64,
    /// Every entry still in the wheel or the overflow list has `when > now_tick`.
    now_tick: u64,
    /// The latest `now` seen (construction or `expire`), in microseconds.
    last_now_us: u64,
    heads: [[Option<Handle<Entry<K>>>; SLOTS]; LEVELS],
    occupied: [u64; LEVELS],
    ready: Option<Handle<Entry<K>>>,
    /// Lower bound of the deadlines (µs) in the ready list.
    ready_min_us: u64,
    overflow: Option<Handle<Entry<K>>>,
    /// Lower bound of the `when` of overflow entries (`u64::MAX` if none):
    /// cancelling does not raise it, which only makes a re-examination early.
    overflow_min: u64,
}

impl<K: Copy> TimerWheel<K> {
    /// `tick` is the resolution: deadlines are rounded up to a tick, so an entry
    /// never fires early. A zero tick is treated as one microsecond.
    pub fn new(now: Instant, tick: Duration) -> Self {
        let tick_us = tick.total_micros().max(1);
        TimerWheel {
            entries: Arena::with_limit(usize::MAX),
            tick_us,
            now_tick: now.total_micros() / tick_us,
            last_now_us: now.total_micros(),
            heads: [[None; SLOTS]; LEVELS],
            occupied: [0; LEVELS],
            ready: None,
            ready_min_us: u64::MAX,
            overflow: None,
            overflow_min: u64::MAX,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn tick(&self) -> Duration {
        Duration::from_micros(self.tick_us)
    }

    /// Schedule `key` at `deadline` (a deadline in the past fires at the next expire).
    pub fn insert(&mut self, deadline: Instant, key: K) -> TimerId {
        let deadline_us = deadline.total_micros();
        let when = deadline_us.div_ceil(self.tick_us);
        let entry = Entry { key, when, list: ListId::Ready, prev: None, next: None };
        let handle = match self.entries.insert(entry) {
            Ok(h) => h,
            // The arena's limit is usize::MAX; it refuses only past 2^32 live
            // timers (over 100 GB of entries), far beyond what the stack's
            // connection limits allow, so this cannot be reached from input.
            Err(_) => unreachable!("timer arena exhausted"),
        };
        if deadline_us <= self.last_now_us || when <= self.now_tick {
            self.ready_min_us = self.ready_min_us.min(deadline_us);
            self.link(handle, ListId::Ready);
        } else {
            self.schedule(handle, when);
        }
        TimerId(handle.to_bits())
    }

    /// Remove an entry; false if it already fired or was cancelled.
    pub fn cancel(&mut self, id: TimerId) -> bool {
        let handle = Handle::from_bits(id.0);
        if !self.entries.contains(handle) {
            return false;
        }
        self.unlink(handle);
        self.entries.remove(handle).is_some()
    }

    /// Whether `id` names an entry that has neither fired nor been cancelled.
    pub fn contains(&self, id: TimerId) -> bool {
        self.entries.contains(Handle::from_bits(id.0))
    }

    /// The earliest time at which `expire` can return something (never later
    /// than the earliest deadline rounded up to its tick), or None if empty.
    /// It may be earlier than any deadline: the start of a slot that only
    /// cascades, or a past time when ready entries wait.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.ready.is_some() {
            return Some(Instant::from_micros(self.ready_min_us));
        }
        self.next_expiration()
            .map(|(_, tick)| Instant::from_micros(tick.saturating_mul(self.tick_us)))
    }

    /// Append to `out` every key whose deadline is `<= now`, and remove them.
    /// `now` is expected not to go backwards; an earlier `now` than a previous
    /// call still releases the entries that were already due then.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<K>) {
        let now_us = now.total_micros().max(self.last_now_us);
        self.last_now_us = now_us;
        let target = now_us / self.tick_us;

        if let Some(head) = self.ready.take() {
            self.ready_min_us = u64::MAX;
            self.fire_list(head, out);
        }
        while let Some((source, start)) = self.next_expiration() {
            if start > target {
                break;
            }
            self.now_tick = start;
            let head = match source {
                Source::Slot { level, slot } => {
                    self.occupied[level] &= !(1u64 << slot);
                    self.heads[level][slot].take()
                }
                Source::Overflow => {
                    self.overflow_min = u64::MAX;
                    self.overflow.take()
                }
            };
            // Entries due at `start` fire; the rest move to a finer level
            // (or back to overflow if still beyond the wheel's span).
            let mut cursor = head;
            while let Some(h) = cursor {
                let Some(e) = self.entries.get_mut(h) else { break };
                cursor = e.next;
                e.prev = None;
                e.next = None;
                let when = e.when;
                if when <= start {
                    if let Some(e) = self.entries.remove(h) {
                        out.push(e.key);
                    }
                } else {
                    self.schedule(h, when);
                }
            }
        }
        self.now_tick = self.now_tick.max(target);
    }

    /// The next slot (or the overflow list) to process and the tick at which
    /// it starts. Every slot start is after `now_tick`.
    fn next_expiration(&self) -> Option<(Source, u64)> {
        for level in 0..LEVELS {
            let map = self.occupied[level];
            if map != 0 {
                // Occupied slots are all after the current one (see module doc),
                // and lower levels are always due before higher ones.
                let slot = map.trailing_zeros() as usize;
                let span_bits = SLOT_BITS * (level as u32 + 1);
                let base = self.now_tick & !((1u64 << span_bits) - 1);
                let start = base | ((slot as u64) << (SLOT_BITS * level as u32));
                debug_assert!(start > self.now_tick);
                return Some((Source::Slot { level, slot }, start));
            }
        }
        if self.overflow.is_some() {
            // The start of the top-level span that holds the earliest overflow entry.
            let start = self.overflow_min & !((1u64 << WHEEL_SPAN_BITS) - 1);
            return Some((Source::Overflow, start.max(self.now_tick.saturating_add(1))));
        }
        None
    }

    /// Chain an entry with `when > now_tick` into its slot or the overflow list.
    fn schedule(&mut self, h: Handle<Entry<K>>, when: u64) {
        let diff = when ^ self.now_tick;
        let significant = 63 - (diff | (SLOTS as u64 - 1)).leading_zeros();
        let level = (significant / SLOT_BITS) as usize;
        if level >= LEVELS {
            self.overflow_min = self.overflow_min.min(when);
            self.link(h, ListId::Overflow);
        } else {
            let slot = ((when >> (SLOT_BITS * level as u32)) as usize) & (SLOTS - 1);
            self.occupied[level] |= 1u64 << slot;
            self.link(h, ListId::Slot { level: level as u8, slot: slot as u8 });
        }
    }

    fn head_mut(&mut self, list: ListId) -> &mut Option<Handle<Entry<K>>> {
        match list {
            ListId::Slot { level, slot } => &mut self.heads[level as usize][slot as usize],
            ListId::Ready => &mut self.ready,
            ListId::Overflow => &mut self.overflow,
        }
    }

    /// Push `h` at the front of `list`.
    fn link(&mut self, h: Handle<Entry<K>>, list: ListId) {
        let old_head = *self.head_mut(list);
        if let Some(e) = self.entries.get_mut(h) {
            e.list = list;
            e.prev = None;
            e.next = old_head;
        }
        if let Some(next) = old_head.and_then(|n| self.entries.get_mut(n)) {
            next.prev = Some(h);
        }
        *self.head_mut(list) = Some(h);
    }

    /// Take `h` out of its list, clearing the slot's occupancy bit if it empties.
    fn unlink(&mut self, h: Handle<Entry<K>>) {
        let Some(e) = self.entries.get(h) else { return };
        let (list, prev, next) = (e.list, e.prev, e.next);
        match prev.and_then(|p| self.entries.get_mut(p)) {
            Some(p) => p.next = next,
            None => *self.head_mut(list) = next,
        }
        if let Some(n) = next.and_then(|n| self.entries.get_mut(n)) {
            n.prev = prev;
        }
        if let ListId::Slot { level, slot } = list {
            if self.heads[level as usize][slot as usize].is_none() {
                self.occupied[level as usize] &= !(1u64 << slot);
            }
        }
    }

    fn fire_list(&mut self, head: Handle<Entry<K>>, out: &mut Vec<K>) {
        let mut cursor = Some(head);
        while let Some(h) = cursor {
            match self.entries.remove(h) {
                Some(e) => {
                    cursor = e.next;
                    out.push(e.key);
                }
                None => break,
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Source {
    Slot { level: usize, slot: usize },
    Overflow,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const MS: Duration = Duration::from_millis(1);

    fn expire(w: &mut TimerWheel<u32>, now: Instant) -> Vec<u32> {
        let mut out = Vec::new();
        w.expire(now, &mut out);
        out.sort_unstable();
        out
    }

    #[test]
    fn fires_at_rounded_deadline_and_not_before() {
        let mut w = TimerWheel::new(Instant::ZERO, MS);
        w.insert(Instant::from_micros(1_500), 1);
        assert_eq!(w.next_deadline(), Some(Instant::from_millis(2)));
        assert!(expire(&mut w, Instant::from_micros(1_999)).is_empty());
        assert_eq!(expire(&mut w, Instant::from_millis(2)), vec![1]);
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn past_deadline_fires_at_next_expire() {
        let mut w = TimerWheel::new(Instant::from_millis(100), MS);
        w.insert(Instant::from_millis(50), 7);
        assert!(w.next_deadline().unwrap() <= Instant::from_millis(50));
        assert_eq!(expire(&mut w, Instant::from_millis(100)), vec![7]);
    }

    #[test]
    fn cascades_through_every_level_and_overflow() {
        let mut w = TimerWheel::new(Instant::ZERO, MS);
        // One deadline per level (64^k ticks) and two beyond the wheel's span.
        let deadlines_ms = [3u64, 100, 5_000, 300_000, 20_000_000, 100_000_000];
        for (i, d) in deadlines_ms.iter().enumerate() {
            w.insert(Instant::from_millis(*d), i as u32);
        }
        for (i, d) in deadlines_ms.iter().enumerate() {
            let next = w.next_deadline().unwrap();
            assert!(next <= Instant::from_millis(*d));
            assert!(expire(&mut w, Instant::from_millis(d - 1)).is_empty(), "entry {i} fired early");
            assert_eq!(expire(&mut w, Instant::from_millis(*d)), vec![i as u32]);
        }
        assert!(w.is_empty());
    }

    #[test]
    fn jump_of_days_fires_everything_once() {
        // A 1 µs tick makes the jump 4e11 ticks: only skipping empty slots
        // through the occupancy maps lets this finish.
        let mut w = TimerWheel::new(Instant::ZERO, Duration::from_micros(1));
        for i in 0..1000u32 {
            w.insert(Instant::from_secs(u64::from(i) * 400), i);
        }
        let fired = expire(&mut w, Instant::from_secs(400 * 1000));
        assert_eq!(fired, (0..1000).collect::<Vec<_>>());
        assert!(w.is_empty());
    }

    #[test]
    fn stale_id_does_not_cancel_reused_slot() {
        let mut w = TimerWheel::new(Instant::ZERO, MS);
        let a = w.insert(Instant::from_millis(5), 1);
        assert!(w.cancel(a));
        assert!(!w.cancel(a));
        let b = w.insert(Instant::from_millis(5), 2);
        assert!(!w.cancel(a), "stale id must not reach the entry reusing its slot");
        assert!(w.contains(b));
        assert_eq!(expire(&mut w, Instant::from_millis(5)), vec![2]);
        assert!(!w.cancel(b), "fired id cannot be cancelled");
    }

    #[test]
    fn cancel_in_middle_of_slot_keeps_neighbours() {
        let mut w = TimerWheel::new(Instant::ZERO, MS);
        let ids: Vec<_> = (0..5).map(|k| w.insert(Instant::from_millis(10), k)).collect();
        assert!(w.cancel(ids[2]));
        assert!(w.cancel(ids[0]));
        assert!(w.cancel(ids[4]));
        assert_eq!(w.len(), 2);
        assert_eq!(expire(&mut w, Instant::from_millis(10)), vec![1, 3]);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert { delay_us: u64 },
        Cancel { pick: usize },
        Advance { by_us: u64 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => prop_oneof![0u64..5_000, 0u64..200_000, 0u64..50_000_000, 0u64..40_000_000_000]
                .prop_map(|delay_us| Op::Insert { delay_us }),
            // Deadlines up to 10 ms in the past.
            1 => (0u64..10_000).prop_map(|d| Op::Insert { delay_us: u64::MAX - d }),
            2 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
            3 => prop_oneof![0u64..3_000, 0u64..300_000, 0u64..60_000_000, 0u64..50_000_000_000]
                .prop_map(|by_us| Op::Advance { by_us }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn matches_model(start_us in 0u64..1_000_000_000, tick_us in prop_oneof![Just(1u64), Just(1000), 1u64..5000],
                         ops in proptest::collection::vec(op(), 1..300)) {
            let tick = Duration::from_micros(tick_us);
            let mut now = Instant::from_micros(start_us);
            let mut w = TimerWheel::new(now, tick);
            // key -> (id, deadline); ids of cancelled/fired entries kept to test staleness.
            let mut live: BTreeMap<u32, (TimerId, Instant)> = BTreeMap::new();
            let mut dead: Vec<TimerId> = Vec::new();
            let mut next_key = 0u32;
            let mut out = Vec::new();
            for op in ops {
                match op {
                    Op::Insert { delay_us } => {
                        let deadline = if delay_us > u64::MAX / 2 {
                            Instant::from_micros(now.total_micros().saturating_sub(u64::MAX - delay_us))
                        } else {
                            now + Duration::from_micros(delay_us)
                        };
                        let id = w.insert(deadline, next_key);
                        live.insert(next_key, (id, deadline));
                        next_key += 1;
                    }
                    Op::Cancel { pick } => {
                        if !dead.is_empty() && pick % 3 == 0 {
                            let stale = dead[pick % dead.len()];
                            prop_assert!(!w.cancel(stale));
                        } else if !live.is_empty() {
                            let key = *live.keys().nth(pick % live.len()).unwrap();
                            let (id, _) = live.remove(&key).unwrap();
                            prop_assert!(w.cancel(id));
                            dead.push(id);
                        }
                    }
                    Op::Advance { by_us } => {
                        now += Duration::from_micros(by_us);
                        if let Some(next) = w.next_deadline() {
                            let earliest = live.values()
                                .map(|(_, d)| d.total_micros().div_ceil(tick_us) * tick_us)
                                .min().unwrap();
                            prop_assert!(next.total_micros() <= earliest);
                        } else {
                            prop_assert!(live.is_empty());
                        }
                        out.clear();
                        w.expire(now, &mut out);
                        for key in &out {
                            let Some((id, deadline)) = live.remove(key) else {
                                return Err(TestCaseError::fail(format!("key {key} fired twice or after cancel")));
                            };
                            prop_assert!(deadline <= now, "key {} fired early", key);
                            dead.push(id);
                        }
                        for (key, (_, deadline)) in &live {
                            let rounded = deadline.total_micros().div_ceil(tick_us) * tick_us;
                            prop_assert!(rounded > now.total_micros(), "key {} late", key);
                        }
                    }
                }
                prop_assert_eq!(w.len(), live.len());
            }
        }
    }
}
