//! The ACK field and everything that hangs on it: the send window, RTT
//! samples (RFC 6298, RFC 7323 §4), congestion control, duplicate ACKs and
//! fast recovery (RFC 6675 with SACK, RFC 6582 NewReno without), and the
//! retransmission timeout (RFC 6298 §5, RFC 5681 §3.1).

use super::state::*;
use super::{TcpConn, TcpState};
use crate::error::Error;
use crate::session::event::EventSet;
use crate::tcp::seq::SeqNum;
use crate::time::{Duration, Instant};
use crate::wire::TcpRepr;

/// TSecr samples older than this are treated as garbage (a peer echoing junk).
const MAX_TSECR_RTT_MS: u32 = 10 * 60 * 1000;

/// Whether loss-recovery retransmissions are waiting to be sent.
pub(super) fn fast_retransmit_pending(conn: &TcpConn) -> bool {
    if !conn.rec.active || !conn.can_send_data() {
        return false;
    }
    conn.rec.head_due || (conn.flags.sack && conn.pipe() < conn.cc.cwnd() && conn.next_sack_retransmission().is_some())
}

impl TcpConn {
    /// States in which data and FIN may be (re)transmitted.
    pub(super) fn can_send_data(&self) -> bool {
        matches!(
            self.state,
            TcpState::Established | TcpState::CloseWait | TcpState::FinWait1 | TcpState::Closing | TcpState::LastAck
        )
    }

    /// Sequence number of the first byte in the send buffer (the SYN occupies ISS).
    pub(super) fn buf_front(&self) -> SeqNum {
        if self.flags.syn_acked { self.snd.una } else { self.snd.iss + 1 }
    }
    /// Sequence number just past the last queued byte.
    pub(super) fn data_end(&self) -> SeqNum {
        self.buf_front() + self.send_buf.len()
    }
    /// Our FIN's sequence number once it has been sent.
    pub(super) fn fin_seq(&self) -> Option<SeqNum> {
        self.snd.fin
    }
    /// Our FIN has been sent and acknowledged.
    pub(super) fn fin_acked(&self) -> bool {
        self.snd.fin.is_some_and(|fin| self.snd.una > fin)
    }

    /// RFC 6675 §4 SetPipe, or the plain flight size without SACK information.
    pub(super) fn pipe(&self) -> usize {
        if self.snd.nxt < self.snd.max {
            // Go-back after an RTO: everything above SND.NXT is presumed lost,
            // everything below it not SACKed was sent again since.
            return self.scoreboard.unsacked_between(self.snd.una, self.snd.nxt);
        }
        if self.flags.sack && !self.scoreboard.is_empty() {
            return self.scoreboard.pipe(self.snd.una, self.snd.max, self.rec.high_rxt, self.send_mss(), DUP_THRESH);
        }
        self.snd.max.distance_from(self.snd.una)
    }

    /// RFC 6675 §4 NextSeg rules 1 and 3: the next hole to retransmit.
    /// Rule 3 (a hole not yet deemed lost) only when no new data can go instead (rule 2).
    pub(super) fn next_sack_retransmission(&self) -> Option<(SeqNum, usize)> {
        let highest = self.scoreboard.highest_sacked()?;
        let from = self.rec.high_rxt.max(self.snd.una);
        let (start, end) = self.scoreboard.next_hole(from, highest)?;
        let mss = self.send_mss();
        let lost = self.scoreboard.is_lost(start, mss, DUP_THRESH);
        if !lost && self.new_data_sendable() {
            return None;
        }
        let len = end.distance_from(start).min(mss);
        if len == 0 { None } else { Some((start, len)) }
    }

    /// New data (or a first FIN) waits and the peer's window has room for some.
    pub(super) fn new_data_sendable(&self) -> bool {
        let end = self.data_end();
        let fin_unsent = self.flags.fin_queued && self.fin_seq().is_none();
        let unsent = end.distance_from(self.snd.max) > 0;
        let window_room = (self.snd.una + self.snd.wnd as usize).distance_from(self.snd.max) > 0;
        (unsent && window_room) || (fin_unsent && self.snd.max == end)
    }

    /// Process an acceptable ACK field (RFC 9293 §3.10.7.4 "fifth").
    pub(super) fn on_ack(&mut self, now: Instant, seg: &TcpRepr, seq: SeqNum, ack: SeqNum, data_len: usize) {
        let prior_una = self.snd.una;
        let prior_flight = self.snd.max.distance_from(prior_una);
        let new_wnd = (seg.window as u32) << self.snd.wscale;
        let window_unchanged = new_wnd == self.snd.wnd;

        // RFC 9293 §3.10.7.4: update the send window from segments that
        // acknowledge at least SND.UNA and are not older than the last update.
        // An ACK of new data is always newer (the peer's ACKs only move
        // forward), so it updates too, as in Linux's tcp_may_update_window:
        // SND.WL1/WL2 are then refreshed at least once per window of data and
        // cannot drift 2^31 away from the peer's sequence numbers.
        let newer = ack > prior_una || self.snd.wl1 < seq || (self.snd.wl1 == seq && self.snd.wl2 <= ack);
        if ack >= prior_una && newer {
            self.snd.wnd = new_wnd;
            self.snd.max_wnd = self.snd.max_wnd.max(new_wnd);
            self.snd.wl1 = seq;
            self.snd.wl2 = ack;
            if new_wnd > 0 && self.flags.peer_window_zero {
                // The window reopened: stop probing, forget the probe back-off.
                self.timers.persist = None;
                self.rec.persist_backoff = 0;
            }
            self.flags.peer_window_zero = new_wnd == 0;
        }

        let mut acked_bytes = 0;
        if ack > prior_una {
            acked_bytes = self.on_new_ack(now, seg, ack);
        }
        let newly_sacked = if self.flags.sack {
            self.scoreboard.on_ack(self.snd.una, self.snd.max, seg.options.sack.as_slice())
        } else {
            0
        };

        if ack > prior_una {
            if self.rec.active {
                self.on_recovery_ack(now, ack, acked_bytes);
            } else {
                self.cc.on_ack(now, acked_bytes, prior_flight, self.rtt.srtt());
            }
            self.rec.dupacks = 0;
        } else if ack == prior_una
            && self.snd.max > self.snd.una
            && data_len == 0
            && !seg.flags.fin()
            && (window_unchanged || newly_sacked > 0)
        {
            // A duplicate ACK (RFC 5681 §2; RFC 6675 §2 counts new SACK information too).
            self.rec.dupacks = self.rec.dupacks.saturating_add(1);
            if self.rec.active && !self.flags.sack {
                // RFC 6582 §3.2 step 4: inflate by one segment per duplicate ACK.
                self.cc.set_cwnd(self.cc.cwnd() + self.send_mss());
            }
        }
        self.maybe_enter_recovery(now);
        self.after_ack_state_changes(now);
    }

    /// A cumulative ACK of new data: buffers, RTT, RTO, writability.
    fn on_new_ack(&mut self, now: Instant, seg: &TcpRepr, ack: SeqNum) -> usize {
        let front = self.buf_front();
        let data_acked = ack.min(self.data_end()).distance_from(front);
        self.send_buf.consume(data_acked);
        self.snd.una = ack;
        if self.snd.nxt < ack {
            self.snd.nxt = ack;
        }
        // Markers behind SND.UNA are refreshed now, while they are still
        // comparable with it (less than 2^31 apart): HighRxt never lags
        // SND.UNA, and a RecoveryPoint that SND.UNA has passed guards nothing.
        self.rec.high_rxt = self.rec.high_rxt.max(ack);
        if self.rec.recover.is_some_and(|recover| ack > recover) {
            self.rec.recover = None;
        }
        self.counters.bytes_acked += data_acked as u64;

        // RTT: prefer the timed segment (microseconds); fall back to TSecr, which
        // is valid for retransmitted segments too (RFC 7323 §4.1).
        let mut sampled = false;
        if let Some(timed) = self.rec.timed_seq {
            if ack >= timed {
                self.rtt.on_sample(now.saturating_since(self.rec.timed_at));
                self.rec.timed_seq = None;
                // Echoes of segments sent before this one add nothing (and keep
                // the floor within 2^31 ms of the clock on long connections).
                self.rec.tsecr_floor = ts_clock(self.rec.timed_at, self.ts_offset);
                sampled = true;
            }
        }
        if !sampled && self.flags.timestamps {
            if let Some((_, tsecr)) = seg.options.timestamps {
                if tsecr != 0 {
                    self.rtt_sample_from_tsecr(now, tsecr);
                }
            }
        }
        self.rec.retries = 0;
        // RFC 6298 §5.2–5.3: stop the timer when all is acked, else restart it.
        self.timers.rto = if self.snd.una == self.snd.max { None } else { Some(now + self.rtt.rto()) };

        if self.flags.writable_wanted && self.send_buf.free() * 3 >= self.send_buf.limit() {
            self.flags.writable_wanted = false;
            self.events.insert(EventSet::WRITABLE);
        }
        data_acked
    }

    /// An RTT sample from an echoed timestamp (RFC 7323 §4). Echoes older than
    /// the last timeout are ignored: a receiver with a hole keeps echoing the
    /// segment before it (§4.3 case C), so such an echo measures how long the
    /// hole stayed open, roughly the RTO itself, and feeding it back would
    /// ratchet the RTO up to its maximum under heavy loss.
    pub(super) fn rtt_sample_from_tsecr(&mut self, now: Instant, tsecr: u32) {
        if ts_before(tsecr, self.rec.tsecr_floor) {
            return;
        }
        let ms = ts_clock(now, self.ts_offset).wrapping_sub(tsecr);
        if ms < MAX_TSECR_RTT_MS {
            self.rtt.on_sample(Duration::from_millis(u64::from(ms.max(1))));
        }
    }

    /// A cumulative ACK during fast recovery.
    fn on_recovery_ack(&mut self, now: Instant, ack: SeqNum, acked_bytes: usize) {
        if self.rec.recover.is_none_or(|recover| ack >= recover) {
            // Full acknowledgment: recovery is over (RFC 6675 §5, RFC 6582 §3.2 step 3).
            self.rec.active = false;
            self.rec.head_due = false;
            self.cc.on_recovery_exit(now, self.snd.max.distance_from(self.snd.una));
            return;
        }
        if !self.flags.sack {
            // RFC 6582 §3.2 step 5: a partial ACK retransmits the next hole and deflates cwnd.
            let mss = self.send_mss();
            let mut cwnd = self.cc.cwnd().saturating_sub(acked_bytes);
            if acked_bytes >= mss {
                cwnd += mss;
            }
            self.cc.set_cwnd(cwnd.max(mss));
            self.rec.head_due = true;
        }
    }

    /// Enter fast recovery on DupThresh duplicate ACKs, or with SACK when the
    /// first unacknowledged segment is deemed lost (RFC 6675 §5).
    fn maybe_enter_recovery(&mut self, now: Instant) {
        if self.rec.active || !self.can_send_data() || self.snd.max == self.snd.una || self.snd.nxt < self.snd.max {
            return;
        }
        let mss = self.send_mss();
        let trigger = if self.flags.sack {
            // RecoveryPoint guard: losses of a previous episode do not start a new one.
            (self.rec.dupacks as usize >= DUP_THRESH || self.scoreboard.is_lost(self.snd.una, mss, DUP_THRESH))
                && self.rec.recover.is_none_or(|recover| self.snd.una >= recover)
        } else {
            // RFC 6582 §3.2 step 2: only if the ACK covers more than "recover".
            self.rec.dupacks as usize >= DUP_THRESH && self.rec.recover.is_none_or(|recover| self.snd.una > recover)
        };
        if !trigger {
            return;
        }
        let flight = self.snd.max.distance_from(self.snd.una);
        self.rec.active = true;
        self.rec.recover = Some(self.snd.max);
        self.rec.high_rxt = self.snd.una;
        self.rec.head_due = true;
        self.rec.timed_seq = None;
        self.cc.on_congestion_event(now, flight);
        if !self.flags.sack {
            // RFC 6582 §3.2 step 3: cwnd = ssthresh + 3*SMSS.
            self.cc.set_cwnd(self.cc.ssthresh() + DUP_THRESH * mss);
        }
    }

    /// FIN acknowledgment moves the closing states along (RFC 9293 §3.10.7.4).
    fn after_ack_state_changes(&mut self, now: Instant) {
        if !self.fin_acked() {
            return;
        }
        match self.state {
            TcpState::FinWait1 => {
                self.state = TcpState::FinWait2;
                self.timers.rto = None;
                if self.flags.orphan {
                    self.timers.close = Some(now + self.config.fin_wait2_timeout);
                }
            }
            TcpState::Closing => self.enter_time_wait(now),
            TcpState::LastAck => self.enter_closed(EventSet::EMPTY),
            _ => {}
        }
    }

    /// The retransmission timer expired (RFC 6298 §5.4–5.6).
    pub(super) fn on_retransmission_timeout(&mut self, now: Instant) {
        match self.state {
            TcpState::SynSent | TcpState::SynReceived => {
                self.rec.retries += 1;
                let limit =
                    if self.state == TcpState::SynSent { self.config.syn_retries } else { self.config.synack_retries };
                if self.rec.retries > limit {
                    self.fail(Error::TimedOut, EventSet::ERROR);
                    return;
                }
                self.rtt.on_timeout();
                self.counters.timeouts += 1;
                self.rec.timed_seq = None;
                self.rec.tsecr_floor = ts_clock(now, self.ts_offset);
                self.flags.syn_due = true;
            }
            _ if self.can_send_data() && self.snd.max > self.snd.una => {
                self.rec.retries += 1;
                let limit = if self.flags.orphan { self.config.orphan_retries } else { self.config.data_retries };
                if self.rec.retries > limit {
                    self.fail(Error::TimedOut, EventSet::ERROR);
                    return;
                }
                let flight = self.snd.max.distance_from(self.snd.una);
                self.cc.on_rto(now, flight);
                self.rtt.on_timeout();
                self.counters.timeouts += 1;
                // Leave fast recovery; RFC 6582 §4.1: remember HighData so the
                // duplicate ACKs this causes do not start another recovery.
                self.rec.active = false;
                self.rec.head_due = false;
                self.rec.dupacks = 0;
                self.rec.recover = Some(self.snd.max);
                self.rec.high_rxt = self.snd.una;
                self.rec.timed_seq = None;
                self.rec.tsecr_floor = ts_clock(now, self.ts_offset);
                // Go back: retransmit from SND.UNA under the loss window.
                self.snd.nxt = self.snd.una;
            }
            _ => {}
        }
    }
}
