//! One app worker's session slot table, private to the daemon: the slot
//! indices handed to the app, each slot's generation, and the free list.
//! The daemon alone picks indices; a handle from the app is only ever used
//! after [`SessionTable::get`] has checked its range, occupancy and
//! generation (design §2.3).

use sluice_shm::SessionHandle;

use super::session::Session;

/// Why a handle does not name a live session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stale {
    /// Index beyond the table.
    OutOfRange,
    /// The slot is free.
    Free,
    /// The slot lives in another generation.
    WrongGeneration,
}

struct Slot {
    /// The current generation (of the live session, or the next one when free).
    gen: u32,
    session: Option<Session>,
}

pub(super) struct SessionTable {
    slots: Vec<Slot>,
    /// Free indices, reused last-freed first. Indices never used are not in
    /// it: the table grows into them lazily, so an app worker's table costs
    /// memory in proportion to its peak of live sessions.
    free: Vec<u32>,
    max: u32,
    live: usize,
}

impl SessionTable {
    pub fn new(max: u32) -> SessionTable {
        SessionTable { slots: Vec::new(), free: Vec::new(), max, live: 0 }
    }

    /// Live sessions.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The handle the next [`insert`](Self::insert) will take, or `None`
    /// when every slot is in use.
    pub fn vacant(&self) -> Option<SessionHandle> {
        if let Some(&index) = self.free.last() {
            return SessionHandle::new(index, self.slots[index as usize].gen);
        }
        let next = u32::try_from(self.slots.len()).ok().filter(|&n| n < self.max)?;
        SessionHandle::new(next, SessionHandle::FIRST_GEN)
    }

    /// Occupies the slot [`vacant`](Self::vacant) named; false (and the
    /// session dropped) if `handle` is not that slot.
    #[must_use]
    pub fn insert(&mut self, handle: SessionHandle, session: Session) -> bool {
        if self.vacant() != Some(handle) {
            return false;
        }
        if self.free.last() == Some(&handle.index) {
            self.free.pop();
            self.slots[handle.index as usize].session = Some(session);
        } else {
            self.slots.push(Slot { gen: handle.gen, session: Some(session) });
        }
        self.live += 1;
        true
    }

    /// Why `handle` does not resolve, if it does not.
    pub fn check(&self, handle: SessionHandle) -> Result<(), Stale> {
        let slot = self.slots.get(handle.index as usize).ok_or(if handle.index < self.max {
            Stale::Free
        } else {
            Stale::OutOfRange
        })?;
        match &slot.session {
            None => Err(Stale::Free),
            Some(_) if slot.gen != handle.gen => Err(Stale::WrongGeneration),
            Some(_) => Ok(()),
        }
    }

    pub fn get(&self, handle: SessionHandle) -> Option<&Session> {
        let slot = self.slots.get(handle.index as usize)?;
        slot.session.as_ref().filter(|_| slot.gen == handle.gen)
    }

    pub fn get_mut(&mut self, handle: SessionHandle) -> Option<&mut Session> {
        let slot = self.slots.get_mut(handle.index as usize)?;
        slot.session.as_mut().filter(|_| slot.gen == handle.gen)
    }

    /// Frees the slot: its generation moves on (so every copy of `handle`
    /// stops resolving) and the index goes on the free list. Returns the
    /// session and the slot's new generation.
    pub fn remove(&mut self, handle: SessionHandle) -> Option<(Session, u32)> {
        let slot = self.slots.get_mut(handle.index as usize)?;
        if slot.gen != handle.gen {
            return None;
        }
        let session = slot.session.take()?;
        slot.gen = SessionHandle::next_gen(slot.gen);
        self.free.push(handle.index);
        self.live -= 1;
        Some((session, slot.gen))
    }

    /// Handles of every live session, in slot order.
    pub fn handles(&self) -> Vec<SessionHandle> {
        self.iter().map(|(h, _)| h).collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = (SessionHandle, &Session)> {
        self.slots.iter().enumerate().filter_map(|(i, slot)| {
            let session = slot.session.as_ref()?;
            Some((SessionHandle::new(i as u32, slot.gen)?, session))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::session::{Listener, Role};
    use sluice_shm::layout::{DownSegment, Geometry, UpSegment};
    use sluice_shm::Region;
    use sluice_stack::ListenerId;

    fn session() -> Session {
        let geo = Geometry { workers: 1, event_cap: 4, request_cap: 2, max_sessions: 1, rx_fifo: 4096, tx_fifo: 4096 };
        let down = DownSegment::new(Region::heap(geo.down_len()), geo).unwrap();
        let up = UpSegment::new(Region::heap(geo.up_len()), geo).unwrap();
        Session {
            desc: down.desc(0).unwrap(),
            words: up.app_words(0).unwrap(),
            role: Role::Listener(Listener::new(ListenerId::from_parts(0, 0), 1)),
            backlog: Default::default(),
        }
    }

    #[test]
    fn freed_slots_are_reused_under_a_new_generation() {
        let mut t = SessionTable::new(2);
        let a = t.vacant().unwrap();
        assert!(t.insert(a, session()));
        let b = t.vacant().unwrap();
        assert_ne!(a.index, b.index);
        assert!(t.insert(b, session()));
        assert_eq!(t.vacant(), None, "full");
        let (_, gen) = t.remove(a).unwrap();
        assert_eq!(gen, SessionHandle::next_gen(a.gen));
        assert_eq!(t.check(a), Err(Stale::Free));
        let c = t.vacant().unwrap();
        assert_eq!((c.index, c.gen), (a.index, gen));
        assert!(t.insert(c, session()));
        assert_eq!(t.check(a), Err(Stale::WrongGeneration));
        assert!(t.get(a).is_none() && t.get(c).is_some());
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn forged_handles_do_not_resolve() {
        let mut t = SessionTable::new(4);
        let a = t.vacant().unwrap();
        assert!(t.insert(a, session()));
        assert_eq!(t.check(SessionHandle::new(3, 1).unwrap()), Err(Stale::Free), "never used");
        assert_eq!(t.check(SessionHandle::new(4, 1).unwrap()), Err(Stale::OutOfRange));
        assert_eq!(t.check(SessionHandle::new(u32::MAX, 1).unwrap()), Err(Stale::OutOfRange));
        assert_eq!(t.check(SessionHandle::new(a.index, a.gen + 1).unwrap()), Err(Stale::WrongGeneration));
        assert!(t.remove(SessionHandle::new(a.index, a.gen + 1).unwrap()).is_none());
        assert!(!t.insert(SessionHandle::new(3, 1).unwrap(), session()), "only the vacant slot");
        assert_eq!(t.handles(), vec![a]);
    }
}
