//! Detecting that a retransmission was itself lost, without waiting for the
//! retransmission timer.
//!
//! RFC 6675 retransmits each hole once per recovery (HighRxt only moves up),
//! and go-back after an RTO passes each hole once, so a lost retransmission
//! used to wait for the next, backed-off RTO: minutes on a lossy path.
//!
//! The rule is RACK's (RFC 8985 §6.2): a segment is lost once a segment sent
//! *after* it has been delivered and a reordering window has passed. RACK
//! keeps a transmit time per segment; we keep one sequence number instead,
//! the fence: HighData (`snd.max`) when the latest retransmission went out.
//! Data at or above the fence was first sent after every retransmission so
//! far (new data is sent in sequence order), so a SACK block above the fence
//! proves that something sent later than all of them arrived. Any hole still
//! open below the fence then holds a lost (re)transmission.
//!
//! The reordering window (RFC 8985 §6.2 step 4: min_RTT / 4, at most SRTT)
//! runs from the moment that proof arrives, on a timer of its own (§6.3's
//! reordering timer); retransmissions are then resumed from SND.UNA, paid
//! from the fast-retransmit budget like any loss-recovery retransmission.
//! No new recovery episode starts (RFC 6675 §5.1): the RecoveryPoint stays.
//!
//! Needs SACK: without it nothing says which data arrived, and NewReno
//! (RFC 6582) keeps relying on the RTO for a lost retransmission.

use super::TcpConn;
use crate::time::{Duration, Instant};

impl TcpConn {
    /// A loss-recovery retransmission (fast recovery or go-back) went out.
    pub(super) fn retransmission_sent(&mut self) {
        self.rec.rxt_fence = Some(self.snd.max);
    }

    /// SND.UNA moved to `ack`: once it reaches the fence, every
    /// retransmission made before it has been delivered.
    pub(super) fn lost_retransmission_on_ack(&mut self, ack: crate::tcp::seq::SeqNum) {
        if self.rec.rxt_fence.is_some_and(|fence| ack >= fence) {
            self.rec.rxt_fence = None;
            self.timers.reorder = None;
        }
    }

    /// Forget everything (a timeout: go-back starts over, with a new fence).
    pub(super) fn lost_retransmission_reset(&mut self) {
        self.rec.rxt_fence = None;
        self.rec.rxt_loss_reduced = false;
        self.timers.reorder = None;
    }

    /// After an ACK, or when the reordering timer expires: is there proof
    /// that a retransmission was lost, and has the reordering window passed?
    pub(super) fn detect_lost_retransmission(&mut self, now: Instant) {
        if !self.retransmission_loss_proven() {
            self.timers.reorder = None;
            return;
        }
        let deadline = *self.timers.reorder.get_or_insert(now + self.reordering_window());
        if deadline > now {
            return;
        }
        self.timers.reorder = None;
        self.rec.rxt_fence = None;
        self.on_lost_retransmission(now);
    }

    /// Data sent after the latest retransmission has been SACKed, so every
    /// hole below the fence (SND.UNA's at least) held a lost transmission.
    fn retransmission_loss_proven(&self) -> bool {
        let Some(fence) = self.rec.rxt_fence else { return false };
        let later_data_delivered = self.scoreboard.highest_sacked().is_some_and(|highest| highest > fence);
        // While go-back is still below HighData it has holes of its own to
        // pass over (and it cannot have sent anything above the fence yet).
        self.flags.sack && later_data_delivered && self.can_send_data() && self.snd.nxt >= self.snd.max
    }

    /// RFC 8985 §6.2 step 4: min_RTT / 4, bounded by SRTT.
    fn reordering_window(&self) -> Duration {
        let quarter = self.rtt.min_rtt().map_or(Duration::from_micros(0), |min| Duration::from_micros(min.total_micros() / 4));
        match self.rtt.srtt() {
            Some(srtt) if srtt < quarter => srtt,
            _ => quarter,
        }
    }

    /// Every hole below the fence is lost: retransmit from SND.UNA again.
    fn on_lost_retransmission(&mut self, now: Instant) {
        if !self.rec.active && self.new_episode_allowed() && self.snd.max != self.snd.una {
            self.enter_recovery(now);
            return;
        }
        if !self.rec.rxt_loss_reduced {
            // RFC 5681 §4.3: the loss of a retransmission is a second
            // congestion indication; cwnd and ssthresh are lowered again
            // (once per episode, however many retransmissions were lost).
            self.rec.rxt_loss_reduced = true;
            let in_flight = self.cc.cwnd().min(self.snd.max.distance_from(self.snd.una));
            self.cc.on_congestion_event(now, in_flight);
        }
        // Only SND.UNA's hole is certainly a hole: others may be SACKed at
        // the receiver in blocks it no longer reports (RFC 2018 §4 keeps the
        // most recent three or four), and rescanning them would resend data
        // that has arrived. The others are repaired as SND.UNA reaches them.
        self.rec.head_due = true;
    }
}
