//! Timers: one wheel of connection handles, plus the deadlines of ARP
//! requests and IPv4 reassembly.

use super::Stack;
use crate::time::Instant;

impl Stack {
    /// When `handle_timeout` should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // Plain comparisons: folding an array of the three built on the stack
        // reloaded it with wide loads over narrow stores, which stalled store
        // forwarding (called at least once per poll).
        fn earlier(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
            match (a, b) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (x, None) => x,
                (None, y) => y,
            }
        }
        let link = earlier(self.egress.arp.poll_timeout(), self.reassembler.poll_timeout());
        earlier(self.timers.next_deadline(), link)
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.reassembler.expire(now, &mut self.stats);
        self.egress.arp.handle_timeout(now, &mut self.stats);
        self.report_link_failures(now);
        self.wake_neighbour_waiters();
        let mut expired = core::mem::take(&mut self.expired);
        expired.clear();
        self.timers.expire(now, &mut expired);
        for &id in &expired {
            let Some(slot) = self.conns.get_mut(id) else {
                // The connection was freed (or its slot reused) after the
                // entry was scheduled: the handle no longer resolves.
                self.stats.tcp_timer_stale += 1;
                continue;
            };
            slot.timer = None;
            match slot.conn.poll_timeout() {
                Some(deadline) if deadline <= now => {
                    slot.conn.on_timeout(now);
                    self.record_counters(id);
                    self.mark_dirty(id);
                    self.settle(now, id);
                }
                // The deadline moved later since the entry was scheduled.
                _ => self.reschedule_timer(id),
            }
        }
        self.expired = expired;
    }

    /// Adds the connection's new retransmission and timeout counts to the stats.
    pub(crate) fn record_counters(&mut self, id: crate::engine::ConnId) {
        let Some(slot) = self.conns.get_mut(id) else { return };
        let (retransmits, timeouts) = slot.conn.loss_counters();
        self.stats.tcp_retransmits += retransmits.saturating_sub(slot.reported_retransmits);
        self.stats.tcp_timeouts += timeouts.saturating_sub(slot.reported_timeouts);
        slot.reported_retransmits = retransmits;
        slot.reported_timeouts = timeouts;
    }
}
