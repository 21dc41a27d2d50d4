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
//! reordering timer), so a retransmission that was merely delayed by less
//! than the window is not sent again.
//!
//! The response follows Linux (tcp_input.c, "reduce cwnd if retransmit is
//! lost in CA_Loss"), which applies RFC 5681 §4.3 ("the loss of a
//! retransmission ... cwnd (and ssthresh) MUST be lowered twice") as one
//! more congestion response per loss episode:
//! - outside fast recovery (go-back after an RTO, whose slow start would
//!   otherwise go on growing cwnd into the loss), a new recovery episode
//!   starts: ssthresh and cwnd are lowered and SACK recovery (RFC 6675 §5)
//!   repairs every hole, paced by pipe rather than in a go-back burst;
//! - inside fast recovery the episode's reduction stands (RFC 6675 §5 and
//!   Linux reduce once per episode); the holes are rescanned from SND.UNA.
//!   Lowering again here was measured to cost far more RTOs at 20% random
//!   loss: windows of two or three segments lose whole flights to lost ACKs.
//!
//! Needs SACK: without it nothing says which data arrived, and NewReno
//! (RFC 6582) keeps relying on the RTO for a lost retransmission.

use super::TcpConn;
use crate::tcp::seq::SeqNum;
use crate::time::{Duration, Instant};

impl TcpConn {
    /// A loss-recovery retransmission (fast recovery or go-back) went out.
    pub(super) fn retransmission_sent(&mut self) {
        self.rec.rxt_fence = Some(self.snd.max);
    }

    /// SND.UNA moved to `ack`: once it reaches the fence, every
    /// retransmission made before it has been delivered.
    pub(super) fn lost_retransmission_on_ack(&mut self, ack: SeqNum) {
        if self.rec.rxt_fence.is_some_and(|fence| ack >= fence) {
            self.rec.rxt_fence = None;
            self.timers.reorder = None;
        }
    }

    /// Forget everything (a timeout: go-back starts over, with a new fence).
    pub(super) fn lost_retransmission_reset(&mut self) {
        self.rec.rxt_fence = None;
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
        let Some(fence) = self.rec.rxt_fence else {
            return false;
        };
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

    /// Every hole below the fence holds a lost transmission: repair them.
    fn on_lost_retransmission(&mut self, now: Instant) {
        self.counters.lost_retransmissions += 1;
        if !self.rec.active {
            // Go-back after an RTO lost a retransmission: one more congestion
            // response, and SACK recovery from SND.UNA (see the module docs).
            // The RecoveryPoint of the timeout does not hold this back: that
            // guard is against the duplicate ACKs the go-back itself causes,
            // and this loss was sent after the timeout. The reduction is from
            // cwnd, as Linux's ssthresh hooks: after a go-back, HighData -
            // SND.UNA is mostly data presumed lost, not data in flight.
            let in_flight = self.cc.cwnd().min(self.snd.max.distance_from(self.snd.una));
            self.enter_recovery(now, in_flight);
            return;
        }
        // RFC 6675 §4 NextSeg again from SND.UNA: retransmissions below
        // HighRxt that are still holes are lost, not in flight (the pipe no
        // longer counts them), and IsLost picks which to resend. SND.UNA's
        // hole goes first, at once, as on entering recovery.
        self.rec.high_rxt = self.snd.una;
        self.rec.head_due = true;
    }
}
