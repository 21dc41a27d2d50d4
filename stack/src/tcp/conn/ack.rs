//! Receiving text and deciding when to acknowledge it: delayed ACKs
//! (RFC 9293 §3.8.6.3, RFC 5681 §4.2). What SACK blocks those ACKs carry is
//! `sack_report`'s job.

use super::{TcpConn, TcpState};
use crate::error::Error;
use crate::session::event::EventSet;
use crate::tcp::seq::SeqNum;
use crate::time::Instant;

impl TcpConn {
    /// Place a segment's payload (RFC 9293 §3.10.7.4 "seventh"). `seq` is the
    /// sequence number of `payload[0]`; the segment already passed the acceptability test.
    pub(super) fn receive_data(&mut self, now: Instant, seq: SeqNum, payload: &[u8]) {
        // Trim what we already have.
        let skip = self.rcv.nxt.distance_from(seq).min(payload.len());
        let data = payload.get(skip..).unwrap_or(&[]);
        if data.is_empty() {
            // Entirely old: the peer missed our ACK; tell it again at once.
            self.flags.ack_now = true;
            return;
        }
        let start = seq + skip;
        let offset = start.distance_from(self.rcv.nxt);

        if self.flags.orphan && matches!(self.state, TcpState::FinWait1 | TcpState::FinWait2) {
            // New data for a socket the application closed can never be read: reset,
            // as Linux does (tcp_rcv_state_process, RFC 9293 §3.10.4 / RFC 2525 §2.17).
            self.pending_rst = Some(super::state::PendingRst { seq: self.snd.nxt, ack: None });
            self.fail(Error::ConnectionReset, EventSet::RESET);
            return;
        }

        self.rcv.mss_est = self.rcv.mss_est.max(data.len().min(self.local_mss as usize) as u16);
        let had_out_of_order = self.recv_buf.has_out_of_order();
        let advanced = if self.flags.read_shut {
            // shutdown(SHUT_RD): acknowledge in-order data and throw it away.
            if offset == 0 {
                let n = data.len().min(self.recv_window_limit());
                self.rcv.nxt = self.rcv.nxt + n;
                n
            } else {
                0
            }
        } else {
            let placed = self.recv_buf.place(offset, data);
            if placed.stored < data.len() {
                // Beyond our window or our out-of-order capacity: say where we are.
                self.flags.ack_now = true;
            }
            self.rcv.nxt = self.rcv.nxt + placed.advanced;
            if placed.advanced > 0 {
                self.events.insert(EventSet::READABLE);
            }
            placed.advanced
        };
        self.counters.bytes_received += advanced as u64;

        if offset > 0 || had_out_of_order {
            // RFC 9293 §3.8.6.3 / RFC 5681 §4.2: out-of-order data, and data that
            // fills a gap, are acknowledged immediately (fast retransmit depends on it),
            // one ACK per out-of-order segment even if several arrive between two polls.
            if offset > 0 {
                self.out_of_order_arrival(start);
            } else {
                self.rcv.sack.acknowledged(self.rcv.nxt);
            }
            self.flags.ack_now = true;
        } else if advanced > 0 {
            self.rcv.unacked_bytes = self.rcv.unacked_bytes.saturating_add(advanced as u32);
            // At least every second full-sized segment, and every segment while
            // the connection is fresh, as Linux's quick-ACK mode does
            // (tcp_incr_quickack on the first data): a first request written in
            // two parts would otherwise wait on this ACK behind Nagle, and a
            // slow start grows with each ACK.
            let quick = self.rcv.quick_acks > 0;
            if quick || self.rcv.unacked_bytes as usize >= 2 * self.rcv.mss_est as usize {
                self.flags.ack_now = true;
            } else if self.timers.delayed_ack.is_none() {
                self.timers.delayed_ack = Some(now + self.config.delayed_ack);
            }
        }
        if let Some(fin_at) = self.rcv.fin_at {
            if fin_at == self.rcv.nxt {
                self.on_fin(now);
            } else if fin_at < self.rcv.nxt {
                // Data beyond the peer's FIN: that FIN was bogus. Forget it
                // rather than keep a marker that 2^31 bytes later would look
                // ahead of RCV.NXT again.
                self.rcv.fin_at = None;
            }
        }
    }

    /// How much in-order data we would accept right now (used when discarding).
    fn recv_window_limit(&self) -> usize {
        self.rcv.adv.distance_from(self.rcv.nxt)
    }

    /// An ACK (or a segment carrying one) went out: the delayed ACK is paid,
    /// and so is one out-of-order arrival; while others are still owed an
    /// ACK of their own (a data segment carried this one), one stays due.
    pub(super) fn ack_sent(&mut self) {
        self.rcv.sack.ack_sent(self.rcv.nxt);
        self.flags.ack_now = self.rcv.sack.owed() > 0;
        if self.rcv.unacked_bytes > 0 {
            self.rcv.quick_acks = self.rcv.quick_acks.saturating_sub(1);
        }
        self.timers.delayed_ack = None;
        self.rcv.unacked_bytes = 0;
        self.rcv.last_ack_sent = self.rcv.nxt;
    }
}
