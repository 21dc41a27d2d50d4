//! TIME-WAIT recycling. A connection in TIME-WAIT holds a full slot for
//! `time_wait` (60 s), and a server that closes first (HTTP keep-alive
//! timeouts, HTTP/1.0) accumulates one per request. When they fill
//! `max_connections`, the oldest one the application has released is freed
//! to make room, as Linux does when its TIME-WAIT buckets overflow
//! (`tcp_max_tw_buckets`): losing TIME-WAIT state risks a late duplicate
//! segment (RFC 9293 §3.4.2), refusing every new connection is certain harm.

use super::events::retract;
use super::{ConnId, Stack};
use crate::session::demux::FourTuple;
use crate::tcp::conn::TcpState;

impl Stack {
    /// Records `id` as recyclable once it is in TIME-WAIT and released by
    /// the application (called by `settle`; each connection is listed once).
    pub(crate) fn note_time_wait(&mut self, id: ConnId) {
        let Some(slot) = self.conns.get_mut(id) else { return };
        if slot.time_wait_listed || slot.conn.state() != TcpState::TimeWait || !slot.releasable() {
            return;
        }
        slot.time_wait_listed = true;
        self.time_wait.push_back(id);
        // Entries whose connection has since been freed are dropped from the
        // front (TIME-WAIT lasts the same for all, so they leave roughly in
        // order); the list stays about as long as the connections in it.
        while let Some(&oldest) = self.time_wait.front() {
            if self.is_recyclable(oldest) {
                break;
            }
            self.time_wait.pop_front();
        }
    }

    /// Whether one more connection fits in the table, freeing the oldest
    /// recyclable TIME-WAIT connection if that is what it takes.
    pub(crate) fn make_room_for_connection(&mut self) -> bool {
        if self.conns.len() < self.conns.limit() {
            return true;
        }
        while let Some(oldest) = self.time_wait.pop_front() {
            if self.is_recyclable(oldest) {
                self.retire_time_wait(oldest);
                self.stats.time_wait_recycled += 1;
                return self.conns.len() < self.conns.limit();
            }
        }
        false
    }

    fn is_recyclable(&self, id: ConnId) -> bool {
        self.conns.get(id).is_some_and(|s| s.conn.state() == TcpState::TimeWait && s.releasable())
    }

    /// Takes a TIME-WAIT connection's tuple out of the table and frees its
    /// slot unless the application still holds it (a new SYN reusing the
    /// tuple, RFC 9293 §3.10.7.4 / RFC 6191, or recycling).
    pub(crate) fn retire_time_wait(&mut self, id: ConnId) {
        let Some(slot) = self.conns.get_mut(id) else { return };
        if slot.in_table {
            slot.in_table = false;
            let tuple = FourTuple { local: slot.conn.local(), remote: slot.conn.remote() };
            self.conn_table.remove(&tuple);
        }
        if slot.releasable() {
            if let Some((timer, _)) = slot.timer.take() {
                self.timers.cancel(timer);
            }
            if let Some(mut slot) = self.conns.remove(id) {
                retract(&mut self.consumers, &mut self.stats, slot.owner, &mut slot.ticket);
            }
            self.stats.connections_closed += 1;
        }
    }
}
