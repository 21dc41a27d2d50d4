//! Connection attempts whose SYN found its neighbour's ARP queue full. A
//! client opening many connections to a new neighbour at once overflows
//! `pending_per_neighbor`; dropping the excess SYNs would cost each a whole
//! initial RTO (1 s, RFC 6298 §2.1) although the neighbour is about to
//! answer. Instead the SYN is left unsent (the connection keeps it due) and
//! the connection waits here, by generation-checked handle, until the
//! neighbour is no longer being resolved: then it is polled again and its
//! SYN goes out at once (resolved), or is dropped like any packet for a
//! failed neighbour and left to the retransmission timer.

use core::net::Ipv4Addr;

use super::{ConnId, Stack};

impl Stack {
    /// Parks `id` until `next_hop` is no longer being resolved.
    pub(crate) fn wait_for_neighbour(&mut self, id: ConnId, next_hop: Ipv4Addr) {
        let Some(slot) = self.conns.get_mut(id) else { return };
        if slot.waiting_for_neighbour {
            return;
        }
        slot.waiting_for_neighbour = true;
        self.neighbour_waiters.push((next_hop, id));
    }

    /// Wakes every parked connection whose neighbour got resolved, failed or
    /// was evicted. Called wherever the ARP cache may have changed (ARP
    /// input, timers, the end of a transmit poll); O(parked), and nothing
    /// when none is parked.
    pub(crate) fn wake_neighbour_waiters(&mut self) {
        let mut i = 0;
        while let Some(&(next_hop, id)) = self.neighbour_waiters.get(i) {
            if self.egress.arp.is_resolving(next_hop) {
                i += 1;
                continue;
            }
            self.neighbour_waiters.swap_remove(i);
            if let Some(slot) = self.conns.get_mut(id) {
                slot.waiting_for_neighbour = false;
            }
            self.mark_dirty(id);
        }
    }
}
