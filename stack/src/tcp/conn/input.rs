//! Segment arrival (RFC 9293 §3.10.7.4) for every state but SYN-SENT:
//! PAWS (RFC 7323 §5), the acceptability test, RST and SYN handling with
//! RFC 5961 challenge ACKs, the ACK field, then text and FIN.

use super::state::*;
use super::{SegmentOutcome, TcpConn, TcpState};
use crate::error::Error;
use crate::session::event::EventSet;
use crate::tcp::seq::SeqNum;
use crate::time::Instant;
use crate::wire::TcpRepr;

pub(super) fn on_segment(conn: &mut TcpConn, now: Instant, seg: &TcpRepr, payload: &[u8]) -> SegmentOutcome {
    conn.counters.segs_in += 1;
    match conn.state {
        // A closed connection answers nothing; the engine resets strays itself.
        TcpState::Closed => return SegmentOutcome::Done,
        TcpState::SynSent => {
            conn.on_segment_syn_sent(now, seg, payload);
            return SegmentOutcome::Done;
        }
        _ => {}
    }
    let flags = seg.flags;
    let tsval = if conn.flags.timestamps { seg.options.timestamps.map(|(v, _)| v) } else { None };

    // RFC 9293 §3.10.7.4 / RFC 6191: a new SYN for a TIME-WAIT connection may reopen it
    // if its sequence number (or timestamp) is above the old incarnation's.
    if conn.state == TcpState::TimeWait && flags.syn() && !flags.rst() && !flags.ack() {
        let newer_ts = tsval.is_some_and(|v| ts_before(conn.rcv.ts_recent, v));
        let paws_ok = !tsval.is_some_and(|v| ts_before(v, conn.rcv.ts_recent));
        if paws_ok && (seg.seq > conn.rcv.nxt || newer_ts) {
            return SegmentOutcome::ReopenFromTimeWait;
        }
    }

    // RFC 7323 §5.3 R1 (PAWS): an old timestamp marks a segment from an earlier
    // wrap of the sequence space. RSTs are exempt.
    if let Some(tsval) = tsval {
        if !flags.rst() && ts_before(tsval, conn.rcv.ts_recent) {
            if now.saturating_since(conn.rcv.ts_recent_at).total_millis() > PAWS_IDLE_LIMIT_MS {
                // §5.5: TS.Recent is too old to judge by; start over from this one.
                conn.rcv.ts_recent = tsval;
                conn.rcv.ts_recent_at = now;
            } else {
                conn.flags.ack_now = true;
                return SegmentOutcome::Done;
            }
        }
    }

    let mut seq = seg.seq;
    let mut syn = flags.syn();
    // Simultaneous open: the peer's SYN-ACK reaching us in SYN-RECEIVED acknowledges
    // our SYN; treat it as the ACK it is (RFC 5961 §4.2, as Linux does).
    if conn.state == TcpState::SynReceived && syn && !flags.rst() && seq + 1 == conn.rcv.nxt {
        if flags.ack() && seg.ack == conn.snd.max {
            syn = false;
            seq = seq + 1;
        } else if !flags.ack() {
            // A retransmitted SYN: our SYN-ACK was lost, send it again.
            conn.flags.syn_due = true;
            return SegmentOutcome::Done;
        }
    }

    let data_len = payload.len();
    let seg_len = data_len + syn as usize + flags.fin() as usize;
    let wnd = conn.rcv.adv.distance_from(conn.rcv.nxt);

    if flags.rst() {
        on_reset(conn, now, seq, wnd);
        return SegmentOutcome::Done;
    }

    if syn {
        // RFC 5961 §4: a SYN in a synchronized state, whatever its sequence number,
        // gets a (rate-limited) challenge ACK and is dropped.
        conn.challenge_ack(now);
        return SegmentOutcome::Done;
    }

    // Linux (tcp_sequence) also takes a segment that ends at or after the
    // RCV.NXT we last acknowledged: a retransmission (a FIN, say) whose ACK
    // field is news must not be thrown away with its old sequence numbers.
    let end = seq + seg_len;
    let retransmission_with_news = seg_len > 0 && end >= conn.rcv.last_ack_sent && seq <= conn.rcv.nxt + wnd;
    if !acceptable(conn.rcv.nxt, wnd, seq, seg_len) && !retransmission_with_news {
        // RFC 9293: an unacceptable segment is answered with an ACK and dropped.
        // A zero window still lets an in-sequence segment's ACK through (below).
        let zero_window_head = wnd == 0 && seq == conn.rcv.nxt;
        if !zero_window_head {
            if conn.state == TcpState::TimeWait && flags.fin() {
                // A retransmitted FIN: our last ACK was lost. Restart 2*MSL (RFC 9293 §3.10.7.4).
                conn.timers.close = Some(now + conn.config.time_wait);
            }
            if seg_len == 0 {
                // An empty segment out of window could be one side of an ACK
                // loop: answer at a limited rate (Linux's tcp_oow_rate_limited).
                conn.challenge_ack(now);
            } else {
                conn.flags.ack_now = true;
            }
            return SegmentOutcome::Done;
        }
    }

    if seg_len > 0 && end <= conn.rcv.nxt {
        // Nothing new in sequence space: the peer missed our ACK, repeat it.
        conn.flags.ack_now = true;
        if conn.state == TcpState::TimeWait && flags.fin() {
            // A retransmitted FIN: restart 2*MSL (RFC 9293 §3.10.7.4).
            conn.timers.close = Some(now + conn.config.time_wait);
        }
    }

    // RFC 7323 §4.3: record TS.Recent from segments at or before Last.ACK.sent.
    if let Some(tsval) = tsval {
        if seq <= conn.rcv.last_ack_sent && !ts_before(tsval, conn.rcv.ts_recent) {
            conn.rcv.ts_recent = tsval;
            conn.rcv.ts_recent_at = now;
        }
    }

    let Some(ack) = seg.ack_number() else {
        // RFC 9293: without ACK the segment is dropped.
        return SegmentOutcome::Done;
    };

    if conn.state == TcpState::SynReceived {
        if ack <= conn.snd.una || ack > conn.snd.max {
            conn.pending_rst = Some(PendingRst { seq: ack, ack: None });
            return SegmentOutcome::Done;
        }
        conn.timers.rto = None;
        conn.flags.syn_due = false;
        conn.snd.una = conn.snd.una + 1;
        conn.flags.syn_acked = true;
        conn.snd.nxt = conn.snd.nxt.max(conn.snd.una);
        conn.rtt_sample_for_syn(now, seg);
        conn.rec.retries = 0;
        conn.snd.wl1 = seq - 1; // let this segment's window be taken below
        conn.established(now);
    }

    // RFC 5961 §5: acceptable ACKs lie in [SND.UNA - MAX.SND.WND, SND.NXT].
    let oldest = conn.snd.una - (conn.snd.max_wnd as usize);
    if ack > conn.snd.max || ack < oldest {
        conn.challenge_ack(now);
        return SegmentOutcome::Done;
    }
    conn.rec.probes = 0;
    conn.arm_keepalive(now);
    conn.on_ack(now, seg, seq, ack, data_len);
    if conn.state == TcpState::Closed {
        return SegmentOutcome::Done;
    }

    // Text (RFC 9293 §3.10.7.4 "seventh"): only where the peer may still send.
    let may_receive = matches!(conn.state, TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2);
    if data_len > 0 && may_receive {
        conn.receive_data(now, seq, payload);
        if conn.state == TcpState::Closed {
            return SegmentOutcome::Done;
        }
    }
    if flags.fin() && may_receive {
        let fin_seq = seq + data_len;
        if fin_seq == conn.rcv.nxt {
            conn.on_fin(now);
        } else if fin_seq > conn.rcv.nxt {
            // Out of order: remember it for when the gap fills.
            conn.rcv.fin_at = Some(fin_seq);
        }
    }
    SegmentOutcome::Done
}

/// RFC 9293 §3.10.7.4 acceptability table, modulo 2^32.
fn acceptable(rcv_nxt: SeqNum, wnd: usize, seq: SeqNum, seg_len: usize) -> bool {
    let wnd_end = rcv_nxt + wnd;
    match (seg_len, wnd) {
        (0, 0) => seq == rcv_nxt,
        (0, _) => seq.in_range(rcv_nxt, wnd_end),
        (_, 0) => false,
        _ => seq.in_range(rcv_nxt, wnd_end) || (seq + (seg_len - 1)).in_range(rcv_nxt, wnd_end),
    }
}

/// RST processing with RFC 5961 §3.2: exactly RCV.NXT resets; elsewhere in the
/// window earns a challenge ACK; outside it is ignored.
fn on_reset(conn: &mut TcpConn, now: Instant, seq: SeqNum, wnd: usize) {
    if seq == conn.rcv.nxt {
        match conn.state {
            // Passive half-open: nothing for the application to learn.
            TcpState::SynReceived if !conn.flags.active_open => conn.enter_closed(EventSet::RESET),
            // TIME-WAIT killed by RST (Linux's default; RFC 1337 would ignore it).
            TcpState::TimeWait | TcpState::Closing | TcpState::LastAck => conn.enter_closed(EventSet::EMPTY),
            TcpState::SynReceived => conn.fail(Error::ConnectionRefused, EventSet::RESET | EventSet::ERROR),
            _ => conn.fail(Error::ConnectionReset, EventSet::RESET | EventSet::ERROR),
        }
    } else if wnd > 0 && seq.in_range(conn.rcv.nxt, conn.rcv.nxt + wnd) {
        conn.challenge_ack(now);
    }
}

impl TcpConn {
    /// RFC 5961 §3.2/§4.2/§5.2 challenge ACK, rate-limited per §7.
    pub(super) fn challenge_ack(&mut self, now: Instant) {
        if self.challenge.allow(now) {
            self.flags.ack_now = true;
        }
    }

    /// The peer's FIN is now in order (RFC 9293 §3.10.7.4 "eighth").
    pub(super) fn on_fin(&mut self, now: Instant) {
        self.rcv.nxt = self.rcv.nxt + 1;
        self.rcv.fin_at = None;
        self.flags.fin_received = true;
        self.flags.ack_now = true;
        self.events.insert(EventSet::PEER_CLOSED | EventSet::READABLE);
        match self.state {
            TcpState::Established => self.state = TcpState::CloseWait,
            TcpState::FinWait1 => {
                if self.fin_acked() {
                    self.enter_time_wait(now);
                } else {
                    // Simultaneous close (RFC 9293 §3.6 Figure 13).
                    self.state = TcpState::Closing;
                }
            }
            TcpState::FinWait2 => self.enter_time_wait(now),
            _ => {}
        }
    }
}
