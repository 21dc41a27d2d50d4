//! A preallocated pool of fixed-size packet buffers with intrusive FIFO lists.
//!
//! Packets that must wait (for an ARP reply, or for the next `poll_transmit`)
//! are copied into a slot of this pool instead of a fresh allocation, so the
//! memory held by waiting packets is fixed at creation and a flood cannot grow
//! it. Slots are chained into FIFO lists through an index array, so a list
//! costs three words and moving a packet between lists copies nothing.

/// Index of a slot in a [`PacketPool`].
type SlotIndex = u32;

const NONE: SlotIndex = SlotIndex::MAX;

/// A FIFO of packets held in a [`PacketPool`]. Only the pool that filled it
/// may operate on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketList {
    head: SlotIndex,
    tail: SlotIndex,
    len: u32,
}

impl Default for PacketList {
    fn default() -> Self {
        PacketList { head: NONE, tail: NONE, len: 0 }
    }
}

impl PacketList {
    pub fn len(&self) -> usize {
        self.len as usize
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

pub struct PacketPool {
    /// `slot_count * slot_size` bytes, allocated once.
    storage: Vec<u8>,
    slot_size: usize,
    /// Length of the packet in each slot.
    lens: Vec<u32>,
    /// Next slot in the list the slot belongs to (or in the free list).
    next: Vec<SlotIndex>,
    free: PacketList,
}

impl PacketPool {
    /// A pool of `slot_count` buffers of `slot_size` bytes each.
    pub fn new(slot_count: usize, slot_size: usize) -> Self {
        let slot_count = slot_count.min(NONE as usize - 1);
        let mut pool = PacketPool {
            storage: vec![0; slot_count * slot_size],
            slot_size,
            lens: vec![0; slot_count],
            next: vec![NONE; slot_count],
            free: PacketList::default(),
        };
        for i in 0..slot_count as SlotIndex {
            let mut free = pool.free;
            pool.push_slot(&mut free, i);
            pool.free = free;
        }
        pool
    }

    pub fn slot_size(&self) -> usize {
        self.slot_size
    }
    pub fn free_slots(&self) -> usize {
        self.free.len()
    }

    /// Copies a packet of `len` bytes, written by `fill`, to the back of `list`.
    /// Returns false (without calling `fill`) if the pool is exhausted or the
    /// packet does not fit in a slot.
    pub fn push_with(&mut self, list: &mut PacketList, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        if len > self.slot_size {
            return false;
        }
        let mut free = self.free;
        let slot = self.pop_slot(&mut free);
        self.free = free;
        let Some(slot) = slot else { return false };
        let start = slot as usize * self.slot_size;
        fill(&mut self.storage[start..start + len]);
        self.lens[slot as usize] = len as u32;
        self.push_slot(list, slot);
        true
    }

    /// Copies `packet` to the back of `list`; false if it cannot be held.
    pub fn push(&mut self, list: &mut PacketList, packet: &[u8]) -> bool {
        self.push_with(list, packet.len(), &mut |buf| buf.copy_from_slice(packet))
    }

    /// The packet at the front of `list`.
    pub fn front(&self, list: &PacketList) -> Option<&[u8]> {
        if list.head == NONE {
            return None;
        }
        let start = list.head as usize * self.slot_size;
        let len = self.lens[list.head as usize] as usize;
        Some(&self.storage[start..start + len])
    }

    /// Drops the packet at the front of `list`, returning its slot to the pool.
    pub fn pop_front(&mut self, list: &mut PacketList) -> bool {
        match self.pop_slot(list) {
            Some(slot) => {
                let mut free = self.free;
                self.push_slot(&mut free, slot);
                self.free = free;
                true
            }
            None => false,
        }
    }

    /// Drops every packet of `list`; returns how many there were.
    pub fn clear(&mut self, list: &mut PacketList) -> usize {
        let n = list.len();
        while self.pop_front(list) {}
        n
    }

    /// Moves every packet of `from` to the back of `to` without copying.
    pub fn append(&mut self, to: &mut PacketList, from: &mut PacketList) {
        if from.head == NONE {
            return;
        }
        if to.tail == NONE {
            *to = *from;
        } else {
            self.next[to.tail as usize] = from.head;
            to.tail = from.tail;
            to.len += from.len;
        }
        *from = PacketList::default();
    }

    /// Lets `f` modify every packet of `list` in place, front to back.
    pub fn for_each_mut(&mut self, list: &PacketList, f: &mut dyn FnMut(&mut [u8])) {
        let mut slot = list.head;
        while slot != NONE {
            let start = slot as usize * self.slot_size;
            let len = self.lens[slot as usize] as usize;
            f(&mut self.storage[start..start + len]);
            slot = self.next[slot as usize];
        }
    }

    fn push_slot(&mut self, list: &mut PacketList, slot: SlotIndex) {
        self.next[slot as usize] = NONE;
        if list.tail == NONE {
            list.head = slot;
        } else {
            self.next[list.tail as usize] = slot;
        }
        list.tail = slot;
        list.len += 1;
    }

    fn pop_slot(&mut self, list: &mut PacketList) -> Option<SlotIndex> {
        if list.head == NONE {
            return None;
        }
        let slot = list.head;
        list.head = self.next[slot as usize];
        if list.head == NONE {
            list.tail = NONE;
        }
        list.len -= 1;
        self.next[slot as usize] = NONE;
        Some(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_fifo_and_slots_are_recycled() {
        let mut pool = PacketPool::new(3, 8);
        let (mut a, mut b) = (PacketList::default(), PacketList::default());
        assert!(pool.push(&mut a, b"one"));
        assert!(pool.push(&mut b, b"two"));
        assert!(pool.push(&mut a, b"three"));
        assert!(!pool.push(&mut b, b"four"), "pool has three slots");
        assert_eq!(pool.front(&a), Some(&b"one"[..]));
        assert!(pool.pop_front(&mut a));
        assert_eq!(pool.front(&a), Some(&b"three"[..]));
        assert_eq!(pool.free_slots(), 1);
        pool.append(&mut b, &mut a);
        assert!(a.is_empty());
        assert_eq!(b.len(), 2);
        assert_eq!(pool.front(&b), Some(&b"two"[..]));
        assert_eq!(pool.clear(&mut b), 2);
        assert_eq!(pool.free_slots(), 3);
    }

    #[test]
    fn oversized_packet_is_refused() {
        let mut pool = PacketPool::new(2, 4);
        let mut l = PacketList::default();
        assert!(!pool.push(&mut l, b"12345"));
        assert!(l.is_empty());
        assert_eq!(pool.free_slots(), 2);
    }
}
