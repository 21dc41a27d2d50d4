//! Timer expiry: retransmission, delayed ACK, persist (zero-window probing,
//! RFC 9293 §3.8.6.1), keepalive (§3.8.4), TIME-WAIT and the FIN-WAIT-2 limit,
//! and the release of idle buffers. Each kind has one deadline in `Timers`;
//! `poll_timeout` reports the earliest.

use super::{TcpConn, TcpState};
use crate::error::Error;
use crate::session::event::EventSet;
use crate::time::{Duration, Instant};

/// Probe intervals stop doubling after this many back-offs (the RTO maximum caps them anyway).
const MAX_PERSIST_BACKOFF: u32 = 16;

/// How long both buffers must stay empty before their storage is freed.
/// Linux frees an skb as soon as it is acknowledged or read; we keep the
/// rings through short pauses so a busy connection does not allocate per
/// packet, but an idle keep-alive or pooled connection shrinks back to the
/// bare `TcpConn`.
pub(super) const BUFFER_IDLE_RELEASE: Duration = Duration::from_secs(1);

pub(super) fn on_timeout(conn: &mut TcpConn, now: Instant) {
    let due = |deadline: Option<Instant>| deadline.is_some_and(|at| at <= now);
    if due(conn.timers.close) {
        // TIME-WAIT is over, or an orphan sat in FIN-WAIT-2 too long (tcp_fin_timeout).
        conn.timers.close = None;
        if matches!(conn.state, TcpState::TimeWait | TcpState::FinWait2) {
            conn.enter_closed(EventSet::EMPTY);
            return;
        }
    }
    if due(conn.timers.rto) {
        conn.timers.rto = None;
        conn.on_retransmission_timeout(now);
        if conn.state == TcpState::Closed {
            return;
        }
    }
    if due(conn.timers.delayed_ack) {
        conn.timers.delayed_ack = None;
        conn.flags.ack_now = true;
    }
    if due(conn.timers.persist) {
        conn.timers.persist = None;
        conn.on_persist_timeout();
        if conn.state == TcpState::Closed {
            return;
        }
    }
    if due(conn.timers.reorder) {
        // The reordering window after proof of a lost retransmission passed.
        conn.detect_lost_retransmission(now);
    }
    if due(conn.timers.keepalive) {
        conn.timers.keepalive = None;
        conn.on_keepalive_timeout(now);
    }
    if due(conn.timers.buffer_release) {
        conn.timers.buffer_release = None;
        // Disarmed whenever data was buffered since it was armed, so the
        // buffers have been empty for the whole idle period.
        conn.send_buf.release_if_empty();
        conn.recv_buf.release_if_empty();
    }
}

impl TcpConn {
    /// The persist timer fired: probe a zero window, or override sender SWS
    /// avoidance for a small one (RFC 9293 §3.8.6.2.1 "override timeout") or
    /// the hold of cork on a partial segment.
    fn on_persist_timeout(&mut self) {
        let room = (self.snd.una + self.snd.wnd as usize).distance_from(self.snd.nxt);
        if room > 0 {
            self.flags.force_send = true;
            return;
        }
        self.rec.probes += 1;
        let limit = if self.flags.orphan { self.config.orphan_retries } else { self.config.data_retries };
        // Probes went unanswered: the peer is gone. An orphan also gives up on a
        // peer that answers but never opens its window, or it would live forever
        // (Linux's tcp_probe_timer bounds orphans by back-off, answered or not).
        let orphan_stuck = self.flags.orphan && self.rec.persist_backoff >= self.config.orphan_retries;
        if self.rec.probes > limit || orphan_stuck {
            self.fail(Error::TimedOut, EventSet::ERROR);
            return;
        }
        self.flags.probe_due = true;
        self.rec.persist_backoff = (self.rec.persist_backoff + 1).min(MAX_PERSIST_BACKOFF);
    }

    /// Arm or disarm the persist timer after a transmission opportunity: it
    /// runs while data waits, nothing is in flight, and the window will not
    /// take it or cork holds it. The latter is Linux's TCP_CORK ceiling
    /// (tcp(7) "200 millisecond ceiling"): `tcp_write_xmit` leaves the corked
    /// tail queued with nothing in flight, `tcp_check_probe_timer` arms the
    /// probe timer at max(RTO, TCP_RTO_MIN), and `tcp_write_wakeup` sends the
    /// tail when it fires (here `force_send`).
    pub(super) fn update_persist_timer(&mut self, now: Instant) {
        let unsent = self.data_end().distance_from(self.snd.nxt);
        let room = (self.snd.una + self.snd.wnd as usize).distance_from(self.snd.nxt);
        let blocked = self.can_send_data()
            && unsent > 0
            && self.snd.nxt == self.snd.una
            && self.timers.rto.is_none()
            && (room < unsent.min(self.send_mss()) || self.cork_holds(unsent));
        if !blocked {
            self.timers.persist = None;
        } else if self.timers.persist.is_none() {
            let interval = self.rtt.rto().saturating_mul(1u64 << self.rec.persist_backoff);
            self.timers.persist = Some(now + interval.min(self.config.max_rto));
        }
    }

    /// Arm the buffer release while both buffers are empty but hold storage;
    /// disarm it as soon as either holds data. Called after every segment and
    /// every transmission opportunity, which is when their contents change
    /// (a read the engine does not follow with a poll is caught at the next one).
    pub(super) fn update_buffer_release_timer(&mut self, now: Instant) {
        let idle = self.send_buf.is_empty() && self.recv_buf.is_empty();
        let allocated = self.send_buf.allocated() + self.recv_buf.allocated() > 0;
        if !idle || !allocated {
            self.timers.buffer_release = None;
        } else if self.timers.buffer_release.is_none() && self.state != TcpState::Closed {
            self.timers.buffer_release = Some(now + BUFFER_IDLE_RELEASE);
        }
    }

    /// (Re)start the keepalive idle timer: called whenever the peer is heard from.
    pub(super) fn arm_keepalive(&mut self, now: Instant) {
        self.rec.keepalive_probes = 0;
        let synchronized = matches!(
            self.state,
            TcpState::Established | TcpState::CloseWait | TcpState::FinWait1 | TcpState::FinWait2
        );
        self.timers.keepalive = match self.config.keepalive {
            Some(keepalive) if synchronized => Some(now + keepalive.idle),
            _ => None,
        };
    }

    /// RFC 9293 §3.8.4: after `idle` without hearing from the peer, probe every
    /// `interval`; after `probes` unanswered probes the connection is dead.
    fn on_keepalive_timeout(&mut self, now: Instant) {
        let Some(keepalive) = self.config.keepalive else { return };
        if self.snd.max > self.snd.una || !self.send_buf.is_empty() {
            // Data in flight has its own timer; look again after another idle period.
            self.timers.keepalive = Some(now + keepalive.idle);
            return;
        }
        if self.rec.keepalive_probes >= keepalive.probes {
            self.fail(Error::TimedOut, EventSet::ERROR);
            return;
        }
        self.rec.keepalive_probes += 1;
        self.flags.keepalive_due = true;
        self.timers.keepalive = Some(now + keepalive.interval.max(Duration::from_millis(1)));
    }
}
