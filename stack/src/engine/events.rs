//! Per-consumer event queues (seed 003, challenge 2): one queue of events
//! held by value, keyed by generation-checked socket handles. A socket's
//! events coalesce into its unread entry; an entry whose socket was released
//! before it is read is dropped at pop and counted, never returned.

use std::collections::HashMap;

use super::{ConsumerId, SocketId, Stack, Stats};
use crate::session::event::{Event, EventSet, Priority};
use crate::session::event_queue::{EventQueue, EventTicket};
use crate::session::id_hash::BuildIdHasher;

/// Events carry a priority class for application-defined priority later
/// (seeds 000, 002); every socket is in the default class for now.
pub(crate) const DEFAULT_PRIORITY: Priority = 0;

/// Event queues by consumer. Consumer ids come from the application, not the
/// network, so the map skips SipHash (it is hit for every event posted).
pub(crate) type ConsumerQueues = HashMap<ConsumerId, EventQueue<SocketId>, BuildIdHasher>;

/// Posts `kinds` for `key` to `consumer`'s queue (created on first use).
pub(crate) fn post(
    consumers: &mut ConsumerQueues,
    capacity: usize,
    stats: &mut Stats,
    consumer: ConsumerId,
    key: SocketId,
    kinds: EventSet,
    ticket: &mut Option<EventTicket>,
) {
    if kinds.is_empty() {
        return;
    }
    let queue = consumers.entry(consumer).or_insert_with(|| EventQueue::with_capacity(capacity));
    let coalesced_before = queue.coalesced();
    if queue.post(key, kinds, DEFAULT_PRIORITY, ticket).is_err() {
        // Only possible if the capacity is configured below the socket count.
        stats.events_dropped_queue_full += 1;
    }
    stats.events_coalesced += queue.coalesced() - coalesced_before;
}

/// The socket holding `ticket` is released: its unread entry in `consumer`'s
/// queue, if any, stops counting against the queue's capacity (so churn
/// cannot make a live socket's event overflow) and is never returned.
/// Counted as stale, like an entry dropped at pop.
pub(crate) fn retract(
    consumers: &mut ConsumerQueues,
    stats: &mut Stats,
    consumer: ConsumerId,
    ticket: &mut Option<EventTicket>,
) {
    match consumers.get_mut(&consumer) {
        Some(queue) => {
            if queue.retract(ticket) {
                stats.events_stale += 1;
            }
        }
        None => *ticket = None,
    }
}

impl Stack {
    /// The next event for `consumer`. Events whose socket was released in the
    /// meantime are dropped (and counted), never returned.
    pub fn poll_event(&mut self, consumer: ConsumerId) -> Option<Event<SocketId>> {
        let queue = self.consumers.get_mut(&consumer)?;
        while let Some(event) = queue.pop() {
            let live = match event.key {
                SocketId::Conn(id) => {
                    self.conns.get(id).is_some_and(|slot| slot.app_visible() && slot.owner == consumer)
                }
                SocketId::Listener(id) => self.listeners.get(id).is_some_and(|l| l.owner == consumer),
            };
            if live {
                return Some(event);
            }
            self.stats.events_stale += 1;
        }
        None
    }

    /// Events waiting in `consumer`'s queue (those of sockets released since
    /// they were posted excluded; others whose socket went stale in another
    /// way are dropped at pop).
    pub fn pending_events(&self, consumer: ConsumerId) -> usize {
        self.consumers.get(&consumer).map_or(0, |q| q.len())
    }
}
