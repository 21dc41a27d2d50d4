//! The single-queue event store (seed 003, challenge 2).
//!
//! One FIFO per consumer holding events *by value*. A socket has at most one
//! entry in the queue: posting again while its entry is still unread ORs the
//! new kinds into that entry (coalescing), located through the socket's
//! [`EventTicket`]. So the queue never holds more entries than there are
//! sockets, and with a capacity of at least the socket limit it cannot
//! overflow. Nothing in it points at memory the stack frees: keys are
//! generation-checked handles the consumer validates when it pops.

use super::event::{Event, EventSet, Priority};

/// Where a socket's unread entry sits; kept by the socket between posts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EventTicket(pub u64);

/// The queue already holds `capacity` entries and this post needs a new one.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct QueueFull;

pub struct EventQueue<K: Copy + Eq> {
    _todo: core::marker::PhantomData<K>,
}

impl<K: Copy + Eq> EventQueue<K> {
    pub fn with_capacity(capacity: usize) -> Self {
        let _ = capacity;
        todo!()
    }
    pub fn capacity(&self) -> usize {
        todo!()
    }
    pub fn len(&self) -> usize {
        todo!()
    }
    pub fn is_empty(&self) -> bool {
        todo!()
    }
    /// Post `kinds` for `key`. If `*ticket` names an unread entry for the same
    /// key, the kinds are merged into it (and the priority raised to the higher
    /// of the two); otherwise a new entry is appended and `*ticket` updated.
    pub fn post(&mut self, key: K, kinds: EventSet, priority: Priority, ticket: &mut Option<EventTicket>) -> Result<(), QueueFull> {
        let _ = (key, kinds, priority, ticket);
        todo!()
    }
    /// The oldest entry.
    pub fn pop(&mut self) -> Option<Event<K>> {
        todo!()
    }
    /// Entries merged into an existing entry since creation.
    pub fn coalesced(&self) -> u64 {
        todo!()
    }
}
