//! Closing: half-close, close (graceful orphan or abortive), abort, and the
//! terminal transitions (TIME-WAIT, CLOSED) (RFC 9293 §3.6, §3.10.4).

use super::state::PendingRst;
use super::{TcpConn, TcpState};
use crate::error::Error;
use crate::session::event::EventSet;
use crate::tcp::buffer::{RecvBuffer, SendBuffer};
use crate::time::Instant;

/// shutdown(SHUT_WR): a FIN follows the queued data (RFC 9293 §3.10.4 CLOSE).
pub(super) fn shutdown_write(conn: &mut TcpConn) {
    if conn.flags.fin_queued {
        return;
    }
    match conn.state {
        TcpState::Established => conn.state = TcpState::FinWait1,
        TcpState::CloseWait => conn.state = TcpState::LastAck,
        // FIN goes out once the handshake completes (see `established`).
        TcpState::SynSent | TcpState::SynReceived => {}
        _ => return,
    }
    conn.flags.fin_queued = true;
}

/// The application released the socket.
pub(super) fn close(conn: &mut TcpConn, now: Instant) {
    let unread = conn.recv_buf.readable() > 0;
    conn.flags.orphan = true;
    conn.flags.read_shut = true;
    match conn.state {
        TcpState::Closed => {}
        // Nothing was promised to anyone yet: just forget the attempt (RFC 9293 §3.10.4).
        TcpState::SynSent => conn.enter_closed(EventSet::EMPTY),
        _ if unread || conn.config.linger_zero => {
            // RFC 2525 §2.17: closing with unread data (or SO_LINGER 0) resets, so the
            // peer learns its data was not consumed.
            reset_peer(conn);
        }
        TcpState::FinWait2 => conn.timers.close = Some(now + conn.config.fin_wait2_timeout),
        _ => shutdown_write(conn),
    }
}

/// Abortive close: RST in the states where the peer holds state for us
/// (Linux's tcp_need_reset), then CLOSED.
pub(super) fn abort(conn: &mut TcpConn, _now: Instant) {
    conn.flags.orphan = true;
    match conn.state {
        TcpState::Closed => {}
        TcpState::SynReceived | TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2 | TcpState::CloseWait => {
            reset_peer(conn)
        }
        _ => conn.enter_closed(EventSet::EMPTY),
    }
}

/// Queue an RST|ACK at the highest sequence number sent (what the peer
/// expects next) and close.
fn reset_peer(conn: &mut TcpConn) {
    conn.pending_rst = Some(PendingRst { seq: conn.snd.max, ack: Some(conn.rcv.nxt) });
    conn.enter_closed(EventSet::EMPTY);
}

impl TcpConn {
    pub(super) fn enter_time_wait(&mut self, now: Instant) {
        self.state = TcpState::TimeWait;
        self.stop_transmitting();
        self.timers.close = Some(now + self.config.time_wait);
        self.send_buf = SendBuffer::new(self.config.send_buffer);
        self.release_receive_storage();
    }

    /// No more data can arrive: free the receive storage unless the
    /// application still has bytes to read (an orphan never reads them).
    fn release_receive_storage(&mut self) {
        if self.flags.orphan {
            self.recv_buf = RecvBuffer::new(self.config.recv_buffer);
        } else {
            self.recv_buf.release_if_empty();
        }
    }

    /// CLOSED: no timer stays armed and nothing is ever (re)transmitted again
    /// (seed 003: retransmissions must never outlive their connection). An RST
    /// already queued still goes out.
    pub(super) fn enter_closed(&mut self, events: EventSet) {
        self.state = TcpState::Closed;
        self.stop_transmitting();
        self.flags.ack_now = false;
        self.events.insert(events | EventSet::CLOSED);
        self.send_buf = SendBuffer::new(self.config.send_buffer);
        self.release_receive_storage();
    }

    /// The connection failed: record the error for SO_ERROR and close.
    pub(super) fn fail(&mut self, error: Error, events: EventSet) {
        self.error = Some(error);
        self.enter_closed(events);
    }

    fn stop_transmitting(&mut self) {
        self.timers.clear();
        self.rec.active = false;
        self.rec.head_due = false;
        self.flags.syn_due = false;
        self.flags.probe_due = false;
        self.flags.keepalive_due = false;
        self.flags.force_send = false;
        self.scoreboard.clear();
    }
}
