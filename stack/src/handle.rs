//! Generation-checked handles and the arena that issues them.
//!
//! Every reference to a connection that outlives one call (timer entries,
//! postponed retransmits, events, application handles) is a [`Handle`]. A slot
//! that is freed bumps its generation, so a handle kept past the free no longer
//! resolves: it can be dropped and counted, never applied to whatever reuses the
//! slot (the VPP crash of seed 003, challenge 1).

use core::fmt;
use core::marker::PhantomData;

/// A typed, generation-checked reference into an [`Arena<T>`].
pub struct Handle<T> {
    index: u32,
    generation: u32,
    _marker: PhantomData<fn() -> T>,
}

impl<T> Handle<T> {
    /// Rebuilds a handle from its parts (e.g. read back from shared memory).
    /// Whether it resolves is decided by the arena, so this cannot create aliasing.
    pub const fn from_parts(index: u32, generation: u32) -> Self {
        Handle { index, generation, _marker: PhantomData }
    }
    pub const fn index(self) -> u32 {
        self.index
    }
    pub const fn generation(self) -> u32 {
        self.generation
    }
    /// The handle packed into one word: generation in the high half.
    pub const fn to_bits(self) -> u64 {
        ((self.generation as u64) << 32) | self.index as u64
    }
    pub const fn from_bits(bits: u64) -> Self {
        Handle::from_parts(bits as u32, (bits >> 32) as u32)
    }
}

impl<T> Clone for Handle<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Handle<T> {}
impl<T> PartialEq for Handle<T> {
    fn eq(&self, o: &Self) -> bool {
        self.index == o.index && self.generation == o.generation
    }
}
impl<T> Eq for Handle<T> {}
impl<T> core::hash::Hash for Handle<T> {
    fn hash<H: core::hash::Hasher>(&self, h: &mut H) {
        self.to_bits().hash(h)
    }
}
impl<T> PartialOrd for Handle<T> {
    fn partial_cmp(&self, o: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl<T> Ord for Handle<T> {
    fn cmp(&self, o: &Self) -> core::cmp::Ordering {
        (self.index, self.generation).cmp(&(o.index, o.generation))
    }
}
impl<T> fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}g{}", self.index, self.generation)
    }
}

enum Slot<T> {
    Occupied { generation: u32, value: T },
    Vacant { generation: u32, next_free: u32 },
}

const NO_FREE: u32 = u32::MAX;

/// A slab whose slots are addressed by generation-checked handles.
/// Insert, remove and lookup are O(1); freed slots are reused LIFO.
pub struct Arena<T> {
    slots: Vec<Slot<T>>,
    free_head: u32,
    len: usize,
    capacity_limit: usize,
}

impl<T> Arena<T> {
    /// An arena that refuses to grow past `capacity_limit` live entries.
    pub fn with_limit(capacity_limit: usize) -> Self {
        Arena { slots: Vec::new(), free_head: NO_FREE, len: 0, capacity_limit }
    }

    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn limit(&self) -> usize {
        self.capacity_limit
    }

    /// Inserts `value`; gives it back if the arena is at its limit.
    pub fn insert(&mut self, value: T) -> Result<Handle<T>, T> {
        if self.len >= self.capacity_limit {
            return Err(value);
        }
        if self.free_head != NO_FREE {
            let index = self.free_head;
            let slot = &mut self.slots[index as usize];
            let (generation, next_free) = match *slot {
                Slot::Vacant { generation, next_free } => (generation, next_free),
                Slot::Occupied { .. } => unreachable!("free list points at an occupied slot"),
            };
            *slot = Slot::Occupied { generation, value };
            self.free_head = next_free;
            self.len += 1;
            Ok(Handle::from_parts(index, generation))
        } else {
            if self.slots.len() >= u32::MAX as usize - 1 {
                return Err(value);
            }
            let index = self.slots.len() as u32;
            self.slots.push(Slot::Occupied { generation: 0, value });
            self.len += 1;
            Ok(Handle::from_parts(index, 0))
        }
    }

    /// Removes the entry; the handle (and every copy of it) stops resolving.
    pub fn remove(&mut self, h: Handle<T>) -> Option<T> {
        let slot = self.slots.get_mut(h.index as usize)?;
        match slot {
            Slot::Occupied { generation, .. } if *generation == h.generation => {
                let next_generation = generation.wrapping_add(1);
                let old = core::mem::replace(
                    slot,
                    Slot::Vacant { generation: next_generation, next_free: self.free_head },
                );
                self.free_head = h.index;
                self.len -= 1;
                match old {
                    Slot::Occupied { value, .. } => Some(value),
                    Slot::Vacant { .. } => unreachable!(),
                }
            }
            _ => None,
        }
    }

    pub fn contains(&self, h: Handle<T>) -> bool {
        self.get(h).is_some()
    }

    pub fn get(&self, h: Handle<T>) -> Option<&T> {
        match self.slots.get(h.index as usize)? {
            Slot::Occupied { generation, value } if *generation == h.generation => Some(value),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, h: Handle<T>) -> Option<&mut T> {
        match self.slots.get_mut(h.index as usize)? {
            Slot::Occupied { generation, value } if *generation == h.generation => Some(value),
            _ => None,
        }
    }

    /// Live entries with their handles, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (Handle<T>, &T)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| match s {
            Slot::Occupied { generation, value } => Some((Handle::from_parts(i as u32, *generation), value)),
            Slot::Vacant { .. } => None,
        })
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (Handle<T>, &mut T)> {
        self.slots.iter_mut().enumerate().filter_map(|(i, s)| match s {
            Slot::Occupied { generation, value } => Some((Handle::from_parts(i as u32, *generation), value)),
            Slot::Vacant { .. } => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_handle_does_not_resolve_after_slot_reuse() {
        let mut a = Arena::with_limit(4);
        let h1 = a.insert("first").unwrap();
        assert_eq!(a.remove(h1), Some("first"));
        let h2 = a.insert("second").unwrap();
        assert_eq!(h1.index(), h2.index(), "slot is reused");
        assert!(a.get(h1).is_none(), "old handle must not see the new value");
        assert_eq!(a.get(h2), Some(&"second"));
        assert_eq!(a.remove(h1), None);
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn limit_is_enforced_and_value_returned() {
        let mut a = Arena::with_limit(1);
        a.insert(1).unwrap();
        assert_eq!(a.insert(2), Err(2));
    }

    #[test]
    fn bits_round_trip() {
        let h: Handle<()> = Handle::from_parts(7, 0xdead_beef);
        assert_eq!(Handle::<()>::from_bits(h.to_bits()), h);
    }
}
