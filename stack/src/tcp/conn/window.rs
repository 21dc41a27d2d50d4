//! The receive window we advertise: never more than the buffer can take,
//! never a right edge that moves left (RFC 7323 §2.4, RFC 9293 §3.8.6.2.2),
//! receiver-side silly window avoidance, and window updates when the
//! application reads (Linux's `__tcp_cleanup_rbuf`).

use super::{TcpConn, TcpState};

impl TcpConn {
    /// Bytes of window the receive buffer can offer from RCV.NXT, after
    /// receiver SWS avoidance: the right edge only moves when it can move by
    /// at least min(buffer/2, MSS) (RFC 9293 §3.8.6.2.2).
    fn offerable_window(&self) -> usize {
        let free = self.recv_buf.window();
        let current = self.rcv.adv.distance_from(self.rcv.nxt);
        if free <= current {
            return current;
        }
        let threshold = (self.recv_buf.limit() / 2).min(self.rcv.mss_est as usize).max(1);
        if free - current < threshold {
            current
        } else {
            free
        }
    }

    /// The window field for an outgoing segment and the right edge it
    /// advertises. `syn`: the field of a SYN or SYN-ACK is never scaled (RFC 7323 §2.2).
    pub(super) fn window_field(&self, syn: bool) -> (u16, usize) {
        let window = self.offerable_window();
        if syn {
            let field = window.min(u16::MAX as usize);
            return (field as u16, field);
        }
        let shift = self.rcv.wscale;
        let current = self.rcv.adv.distance_from(self.rcv.nxt);
        let mut field = (window >> shift).min(u16::MAX as usize);
        // Scaling rounds down; round up instead if that would shrink the
        // window already promised (Linux's tcp_select_window does the same).
        if (field << shift) < current && field < u16::MAX as usize {
            field += 1;
        }
        (field as u16, field << shift)
    }

    /// Remember the right edge a segment advertised once it has been sent.
    pub(super) fn window_advertised(&mut self, window: usize) {
        let edge = self.rcv.nxt + window;
        if edge > self.rcv.adv {
            self.rcv.adv = edge;
        }
    }

    /// The application read data: if that opened the window enough, send a
    /// window update now instead of waiting for the peer to probe. Linux sends
    /// one when the window grows by at least 2*MSS or half the buffer.
    pub(super) fn after_read(&mut self) {
        if !matches!(self.state, TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2) {
            return;
        }
        let current = self.rcv.adv.distance_from(self.rcv.nxt);
        let offered = self.offerable_window();
        let growth = offered.saturating_sub(current);
        let mss = self.rcv.mss_est as usize;
        let limit = self.recv_buf.limit();
        // Linux also answers once the window at least doubles from at most half
        // the buffer, which covers reopening a zero window.
        let doubled = 2 * current <= limit && offered >= 2 * current;
        if growth > 0 && (growth >= 2 * mss || growth >= (limit / 2).max(1) || doubled) {
            self.flags.ack_now = true;
        }
    }
}

pub(super) fn after_read(conn: &mut TcpConn) {
    conn.after_read();
}
