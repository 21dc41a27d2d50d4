//! Bookkeeping after every interaction with a connection (a segment, a timer,
//! a socket call, a transmit poll): deliver its events, move a completed
//! passive open to its listener's accept queue, keep its timer in step, and
//! unlink it once finished. Freeing the slot waits for the next transmit poll,
//! so a final RST the connection queued still goes out.

use super::events::{post, retract};
use super::slots::{ConnSlot, Origin};
use super::{ConnId, ListenerId, SocketId, Stack};
use crate::session::event::EventSet;
use crate::tcp::conn::TcpState;
use crate::time::Instant;

impl Stack {
    /// Queues `id` for the next `poll_transmit` (once).
    pub(crate) fn mark_dirty(&mut self, id: ConnId) {
        if let Some(slot) = self.conns.get_mut(id) {
            if !slot.dirty {
                slot.dirty = true;
                self.dirty.push_back(id);
            }
        }
    }

    /// Everything that must follow an interaction with connection `id`.
    pub(crate) fn settle(&mut self, now: Instant, id: ConnId) {
        let Some(slot) = self.conns.get_mut(id) else { return };
        if let Origin::HalfOpen(listener) = slot.origin {
            // RFC 9293 §3.10.7.4: SYN-RECEIVED moves on once our SYN is acknowledged.
            let state = slot.conn.state();
            if state != TcpState::SynReceived && !slot.conn.is_finished() {
                self.promote(now, id, listener);
            }
        }
        let Some(slot) = self.conns.get_mut(id) else { return };
        let events = slot.conn.take_events();
        match slot.origin {
            Origin::Active | Origin::Accepted if !slot.app_released => post(
                &mut self.consumers,
                self.config.event_queue_capacity,
                &mut self.stats,
                slot.owner,
                SocketId::Conn(id),
                events,
                &mut slot.ticket,
            ),
            Origin::HalfOpen(_) | Origin::Queued(_) => slot.unreported |= events,
            _ => {}
        }
        if slot.conn.is_finished() {
            self.unlink(id);
        } else {
            self.reschedule_timer(id);
            self.note_time_wait(id);
        }
    }

    /// Puts connection `id` on `listener`'s accept queue and tells the
    /// listener's owner it can accept; false if the listener is gone.
    pub(crate) fn push_accepted(&mut self, listener: ListenerId, id: ConnId) -> bool {
        let Some(l) = self.listeners.get_mut(listener) else { return false };
        l.accept_queue.push(id);
        post(
            &mut self.consumers,
            self.config.event_queue_capacity,
            &mut self.stats,
            l.owner,
            SocketId::Listener(listener),
            EventSet::ACCEPTABLE,
            &mut l.ticket,
        );
        true
    }

    /// A passive connection completed its handshake: into the accept queue,
    /// or reset if the queue is full (or the listener is gone).
    fn promote(&mut self, now: Instant, id: ConnId, listener: ListenerId) {
        self.half_open_done(listener);
        let queued = match self.listeners.get(listener) {
            Some(l) if l.accept_queue.len() < l.backlog => self.push_accepted(listener, id),
            Some(_) => {
                self.stats.accept_queue_overflow += 1;
                false
            }
            None => false,
        };
        let Some(slot) = self.conns.get_mut(id) else { return };
        if queued {
            slot.origin = Origin::Queued(listener);
        } else {
            slot.origin = Origin::Unowned;
            slot.conn.abort(now);
            self.mark_dirty(id);
        }
    }

    /// One fewer handshake in progress for `listener`.
    pub(crate) fn half_open_done(&mut self, listener: ListenerId) {
        self.half_open = self.half_open.saturating_sub(1);
        if let Some(l) = self.listeners.get_mut(listener) {
            l.half_open = l.half_open.saturating_sub(1);
        }
    }

    /// The connection is finished: its tuple, timer and listener bookkeeping
    /// go now; the slot itself goes at the next transmit poll (see `reap`).
    pub(crate) fn unlink(&mut self, id: ConnId) {
        let Some(slot) = self.conns.get_mut(id) else { return };
        if slot.unlinked {
            return;
        }
        slot.unlinked = true;
        if slot.in_table {
            slot.in_table = false;
            let tuple = crate::session::demux::FourTuple { local: slot.conn.local(), remote: slot.conn.remote() };
            if self.conn_table.get(&tuple) == Some(id) {
                self.conn_table.remove(&tuple);
            }
        }
        if let Some((timer, _)) = slot.timer.take() {
            self.timers.cancel(timer);
        }
        let origin = slot.origin;
        match origin {
            Origin::HalfOpen(listener) => {
                // Reset, or out of SYN-ACK retransmissions, before completing.
                slot.origin = Origin::Unowned;
                self.stats.half_open_dropped += 1;
                self.half_open_done(listener);
            }
            Origin::Queued(listener) => {
                slot.origin = Origin::Unowned;
                if let Some(l) = self.listeners.get_mut(listener) {
                    let conns = &self.conns;
                    let queued_here =
                        |queued| conns.get(queued).is_some_and(|s: &ConnSlot| s.origin == Origin::Queued(listener));
                    l.accept_queue.forget_one(queued_here);
                }
            }
            _ => {}
        }
        self.mark_dirty(id);
    }

    /// Frees the slot of a finished connection nobody holds any more.
    /// Returns true if it was freed.
    pub(crate) fn reap(&mut self, id: ConnId) -> bool {
        let ready = self.conns.get(id).is_some_and(|s| s.conn.is_finished() && s.releasable());
        if !ready {
            return false;
        }
        self.unlink(id);
        let Some(mut slot) = self.conns.remove(id) else { return false };
        retract(&mut self.consumers, &mut self.stats, slot.owner, &mut slot.ticket);
        self.stats.connections_closed += 1;
        match slot.conn.take_error() {
            Some(crate::error::Error::TimedOut) => self.stats.connections_timed_out += 1,
            Some(crate::error::Error::ConnectionReset) => self.stats.connections_reset += 1,
            _ => {}
        }
        // Handles in the dirty, postponed and neighbour queues go stale and
        // are skipped when reached.
        true
    }

    /// Keeps the wheel entry in step with the connection's next deadline.
    /// A later deadline keeps the earlier entry (it re-arms when it fires),
    /// so restarting the RTO on every ACK does not churn the wheel.
    pub(crate) fn reschedule_timer(&mut self, id: ConnId) {
        let Some(slot) = self.conns.get_mut(id) else { return };
        let wanted = slot.conn.poll_timeout();
        match (slot.timer, wanted) {
            (Some((_, at)), Some(deadline)) if at <= deadline => {}
            (current, wanted) => {
                if let Some((timer, _)) = current {
                    self.timers.cancel(timer);
                }
                slot.timer = wanted.map(|deadline| (self.timers.insert(deadline, id), deadline));
            }
        }
    }
}
