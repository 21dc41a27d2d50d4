//! Transmission: SYN/SYN-ACK, budgeted loss-recovery retransmissions, new data
//! and go-back retransmissions under the receiver window and cwnd, Nagle
//! (RFC 9293 §3.7.4), TCP_CORK (tcp(7)), sender silly-window avoidance
//! (§3.8.6.2.1), probes, pure ACKs and RSTs.

use super::open::timestamp_option_len;
use super::state::*;
use super::{SegmentSink, TcpConn, TcpState, TxBudget, TxReport};
use crate::tcp::seq::SeqNum;
use crate::time::Instant;
use crate::wire::{SackBlocks, TcpFlags, TcpOptions, TcpRepr};

/// One data segment chosen by `next_data_segment`.
struct DataSegment {
    seq: SeqNum,
    len: usize,
    /// Shorter than a full segment (counts for Nagle's rule).
    small: bool,
    fin: bool,
    /// Below the highest sequence sent: a go-back retransmission after an RTO.
    retransmission: bool,
    sack: SackBlocks,
}

pub(super) fn poll_transmit(conn: &mut TcpConn, now: Instant, budget: &mut TxBudget, sink: &mut SegmentSink<'_>) -> TxReport {
    let mut report = TxReport::default();
    if let Some(rst) = conn.pending_rst.take() {
        // An RST is never retransmitted (RFC 9293 §3.10.7.1), so the connection
        // does not linger for it: a sink that cannot take it now reports the
        // poll blocked, and the engine moves the RST to its control queue,
        // sent first at the next poll, when it frees the connection.
        if conn.emit_rst(rst, sink) {
            report.segments += 1;
        } else {
            report.blocked = true;
        }
    }
    if conn.state == TcpState::Closed {
        return report;
    }
    if conn.flags.syn_due && matches!(conn.state, TcpState::SynSent | TcpState::SynReceived) {
        if conn.emit_syn(now, sink) {
            report.segments += 1;
        } else {
            report.blocked = true;
        }
    }
    if conn.can_send_data() && !report.blocked {
        conn.send_recovery(now, budget, sink, &mut report);
        if !report.fast_retransmit_postponed && !report.blocked {
            conn.send_data(now, sink, &mut report);
        }
        if conn.flags.probe_due && !report.blocked {
            // Zero-window probe: an old sequence number that makes the peer
            // answer with its current window (Linux's tcp_xmit_probe_skb).
            if conn.emit_bare(now, conn.snd.una - 1, sink) {
                conn.flags.probe_due = false;
                report.segments += 1;
            } else {
                report.blocked = true;
            }
        }
    }
    if conn.flags.keepalive_due && !report.blocked && conn.state != TcpState::SynSent {
        // RFC 9293 §3.8.4: SEG.SEQ = SND.NXT - 1 (nothing is outstanding), no data.
        if conn.emit_bare(now, conn.snd.una - 1, sink) {
            conn.flags.keepalive_due = false;
            report.segments += 1;
        } else {
            report.blocked = true;
        }
    }
    if conn.flags.ack_now && !report.blocked && conn.state != TcpState::SynSent {
        // One ACK per out-of-order segment processed since the last poll.
        let copies = conn.acks_owed();
        // SEQ is the highest sequence number sent, not a pulled-back SND.NXT:
        // the peer only accepts an empty segment at or above its RCV.NXT.
        for _ in 0..copies {
            if !conn.emit_bare(now, conn.snd.max, sink) {
                report.blocked = true;
                break;
            }
            report.segments += 1;
        }
    }
    conn.update_persist_timer(now);
    if report.blocked && conn.state != TcpState::Closed && conn.timers.rto.is_none() {
        // Output is waiting on the sink (device ring full, neighbour
        // unresolved). Keep a timer so the attempt is repeated even if the
        // engine forgets us: a SYN counts it as a retry with back-off, as if
        // the segment had been lost; otherwise it is a plain retry.
        conn.timers.rto = Some(now + conn.rtt.rto());
    }
    report
}

impl TcpConn {
    /// Loss-recovery retransmissions, each paid from the engine's budget
    /// (seed 003: the engine caps fast retransmits per poll and postpones the rest).
    fn send_recovery(&mut self, now: Instant, budget: &mut TxBudget, sink: &mut SegmentSink<'_>, report: &mut TxReport) {
        // `head_due` outside recovery: a lost go-back retransmission.
        while self.rec.active || self.rec.head_due {
            let mss = self.send_mss();
            let next = if self.rec.head_due {
                // The first unacknowledged segment, not running into SACKed data.
                let hole_end = match self.scoreboard.next_hole(self.snd.una, self.snd.max) {
                    Some((_, end)) => end,
                    None => self.snd.max,
                };
                Some((self.snd.una, hole_end.distance_from(self.snd.una).clamp(1, mss)))
            } else if self.rec.active && self.flags.sack && self.pipe() < self.cc.cwnd() {
                self.next_sack_retransmission()
            } else {
                None
            };
            let Some((seq, len)) = next else { break };
            if budget.fast_retransmits == 0 {
                report.fast_retransmit_postponed = true;
                break;
            }
            let data_end = self.data_end();
            let blocks = self.sack_blocks();
            let len = len.min(data_end.distance_from(seq)).min(self.max_payload(&blocks));
            let fin = self.snd.fin == Some(seq + len);
            if len == 0 && !fin {
                // Nothing left at that point (acknowledged meanwhile).
                self.rec.head_due = false;
                break;
            }
            if !self.emit_data(now, seq, len, fin, &blocks, sink) {
                report.blocked = true;
                break;
            }
            report.segments += 1;
            budget.fast_retransmits -= 1;
            self.counters.retransmits += 1;
            self.counters.fast_retransmits += 1;
            self.rec.head_due = false;
            self.retransmission_sent();
            let end = seq + len + fin as usize;
            self.rec.high_rxt = self.rec.high_rxt.max(end);
            if self.rec.timed_seq.is_some_and(|timed| timed > seq) {
                self.rec.timed_seq = None; // Karn: never time a retransmitted segment.
            }
            if self.timers.rto.is_none() {
                self.timers.rto = Some(now + self.rtt.rto());
            }
        }
    }

    /// The congestion window plus RFC 3042 limited transmit (two segments on
    /// the first duplicate ACKs) when not in recovery and without SACK.
    fn cwnd_limit(&self) -> usize {
        let cwnd = self.cc.cwnd();
        if !self.rec.active && !self.flags.sack {
            return cwnd + self.rec.dupacks.min(2) as usize * self.send_mss();
        }
        cwnd
    }

    /// New data, plus go-back retransmission from SND.NXT after an RTO.
    fn send_data(&mut self, now: Instant, sink: &mut SegmentSink<'_>, report: &mut TxReport) {
        // RFC 5681 §4.1: after an idle period longer than the RTO, restart from the restart window.
        if self.snd.una == self.snd.max
            && self.data_end() > self.snd.max
            && now.saturating_since(self.rec.last_data_sent) >= self.rtt.rto()
            && self.counters.bytes_sent > 0
        {
            self.cc.on_idle_restart(now);
        }
        while let Some(segment) = self.next_data_segment() {
            if !self.emit_data(now, segment.seq, segment.len, segment.fin, &segment.sack, sink) {
                report.blocked = true;
                break;
            }
            report.segments += 1;
            self.data_segment_sent(now, &segment);
            if segment.fin {
                break;
            }
        }
    }

    /// What may go out next from SND.NXT under the receiver window, cwnd,
    /// sender SWS avoidance, cork and Nagle; None if nothing may.
    fn next_data_segment(&mut self) -> Option<DataSegment> {
        while self.snd.nxt < self.snd.max && self.flags.sack && self.scoreboard.is_sacked(self.snd.nxt) {
            // Going back over data the receiver already has: skip to the next hole.
            self.snd.nxt = match self.scoreboard.next_hole(self.snd.nxt, self.snd.max) {
                Some((start, _)) if start > self.snd.nxt => start,
                _ => self.snd.max,
            };
        }
        let going_back = self.snd.nxt < self.snd.max;
        let data_end = self.data_end();
        // FIN is due if queued and not yet sent, or sent and SND.NXT went back before it.
        let fin_due = self.flags.fin_queued
            && match self.snd.fin {
                Some(fin) => self.snd.nxt <= fin,
                None => true,
            };
        let unsent = data_end.distance_from(self.snd.nxt);
        if unsent == 0 && !fin_due {
            return None;
        }
        let sack = self.sack_blocks();
        let max_payload = self.max_payload(&sack);
        let window_room = (self.snd.una + self.snd.wnd as usize).distance_from(self.snd.nxt);
        let pipe = self.pipe();
        let cwnd_room = self.cwnd_limit().saturating_sub(pipe);
        let mut len = unsent.min(max_payload).min(window_room);
        if going_back && self.flags.sack {
            if let Some((_, hole_end)) = self.scoreboard.next_hole(self.snd.nxt, self.snd.max) {
                len = len.min(hole_end.distance_from(self.snd.nxt).max(1));
            }
        }
        if cwnd_room < len {
            // cwnd-limited: wait for ACKs rather than cut a runt segment,
            // unless nothing is in flight to bring one.
            if pipe > 0 {
                return None;
            }
            len = len.min(cwnd_room.max(max_payload.min(unsent)));
        }
        if len == 0 && unsent > 0 {
            return None; // window-limited: the persist timer takes over.
        }
        let runt = len < unsent && len < max_payload;
        if runt && len == window_room && !self.flags.force_send && len < (self.snd.max_wnd as usize / 2).max(1) {
            // Sender SWS avoidance (RFC 9293 §3.8.6.2.1): a window-limited runt
            // only if it is at least half the largest window offered.
            return None;
        }
        let small = len < max_payload;
        // A partial segment at the end of the queued data (Linux's `partial`
        // in `tcp_nagle_check`). A FIN lifts both holds: `tcp_send_fin` pushes
        // with TCP_NAGLE_OFF, so close and shutdown flush a corked tail.
        let partial_tail = len > 0 && len == unsent && small && !self.flags.fin_queued && !going_back;
        if partial_tail && self.config.cork && !self.flags.force_send {
            // TCP_CORK (tcp(7); TCP_NAGLE_CORK in `tcp_nagle_check`): only
            // full segments while corked, whatever TCP_NODELAY says. The probe
            // timer lets it out if cork stays on (`update_persist_timer`).
            return None;
        }
        let nagle = !self.config.nodelay && !self.flags.fin_queued && !going_back;
        if nagle && partial_tail && self.small_segment_unacked() {
            // Nagle (RFC 9293 §3.7.4) as Linux applies it (Minshall's variant,
            // `tcp_nagle_check`): hold a partial segment only while an earlier
            // partial one is unacknowledged. Waiting for every full segment
            // would stall the short tail of a single write behind the peer's
            // delayed ACK.
            return None;
        }
        let seq = self.snd.nxt;
        Some(DataSegment { seq, len, small, fin: fin_due && seq + len == data_end, retransmission: going_back, sack })
    }

    /// Whether cork holds back `unsent` bytes: a partial segment while
    /// TCP_CORK is set, with no FIN to push it and no probe-timer override.
    pub(super) fn cork_holds(&self, unsent: usize) -> bool {
        self.config.cork
            && !self.flags.fin_queued
            && !self.flags.force_send
            && unsent > 0
            && unsent < self.max_payload(&self.sack_blocks())
    }

    /// Whether the last partial segment sent is still in flight (Linux's
    /// `tcp_minshall_check`: SND.UNA < snd_sml <= SND.NXT).
    fn small_segment_unacked(&self) -> bool {
        self.snd.sml > self.snd.una && self.snd.sml <= self.snd.max
    }

    /// Bookkeeping after a data segment went out: SND.NXT/max, FIN, RTT timing, RTO.
    fn data_segment_sent(&mut self, now: Instant, segment: &DataSegment) {
        self.flags.force_send = false;
        self.snd.nxt = segment.seq + segment.len + segment.fin as usize;
        if segment.fin {
            self.snd.fin = Some(segment.seq + segment.len);
        }
        if segment.retransmission {
            self.counters.retransmits += 1;
            self.retransmission_sent();
        } else {
            self.counters.bytes_sent += segment.len as u64;
            if segment.small && segment.len > 0 {
                self.snd.sml = segment.seq + segment.len;
            } else if self.snd.sml < self.snd.una {
                // Keep it within the window so the modular comparison in
                // `small_segment_unacked` stays meaningful after wrap-around.
                self.snd.sml = self.snd.una;
            }
            if self.rec.timed_seq.is_none() {
                self.rec.timed_seq = Some(self.snd.nxt);
                self.rec.timed_at = now;
            }
        }
        if self.snd.nxt > self.snd.max {
            self.snd.max = self.snd.nxt;
        }
        if segment.len > 0 {
            self.rec.last_data_sent = now;
        }
        if self.timers.rto.is_none() {
            self.timers.rto = Some(now + self.rtt.rto());
        }
    }

    /// Payload that fits one segment next to this segment's options.
    fn max_payload(&self, blocks: &SackBlocks) -> usize {
        let sack_len = if blocks.is_empty() { 0 } else { (2 + 8 * blocks.len() + 3) & !3 };
        let overhead = timestamp_option_len(self.flags.timestamps) + sack_len;
        (self.snd.mss_clamp as usize).saturating_sub(overhead).max(1)
    }

    /// The options of an established connection's segment: SACK blocks and
    /// timestamps (RFC 7323 §3.2). Written into the segment's (default)
    /// options in place: built as a
    /// struct and assigned, the options went through a stack temporary whose
    /// copy the store buffer could not forward, a stall on every segment.
    fn set_established_options(&self, now: Instant, blocks: &SackBlocks, options: &mut TcpOptions) {
        options.sack = *blocks;
        options.timestamps = if self.flags.timestamps { Some((ts_clock(now, self.ts_offset), self.rcv.ts_recent)) } else { None };
    }

    fn header(&self, seq: SeqNum, flags: u8) -> TcpRepr {
        TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq,
            ack: if flags & TcpFlags::ACK != 0 { self.rcv.nxt } else { SeqNum(0) },
            flags: TcpFlags(flags),
            ..TcpRepr::default()
        }
    }

    /// One segment of data (possibly empty) from the send buffer, ACKing RCV.NXT.
    fn emit_data(&mut self, now: Instant, seq: SeqNum, len: usize, fin: bool, blocks: &SackBlocks, sink: &mut SegmentSink<'_>) -> bool {
        let mut flags = TcpFlags::ACK;
        if fin {
            flags |= TcpFlags::FIN;
        }
        if len > 0 && seq + len == self.data_end() {
            flags |= TcpFlags::PSH;
        }
        let (window, advertised) = self.window_field(false);
        let mut repr = self.header(seq, flags);
        repr.window = window;
        self.set_established_options(now, blocks, &mut repr.options);
        repr.payload_len = len;
        let offset = seq.distance_from(self.buf_front());
        let (first, second) = self.send_buf.slices_at(offset, len);
        if first.len() + second.len() != len || !sink(&repr, first, second) {
            return false;
        }
        self.counters.segs_out += 1;
        self.window_advertised(advertised);
        self.ack_sent();
        true
    }

    /// A segment without data: pure ACK, window update, or probe.
    fn emit_bare(&mut self, now: Instant, seq: SeqNum, sink: &mut SegmentSink<'_>) -> bool {
        let blocks = self.sack_blocks();
        let (window, advertised) = self.window_field(false);
        let mut repr = self.header(seq, TcpFlags::ACK);
        repr.window = window;
        self.set_established_options(now, &blocks, &mut repr.options);
        if !sink(&repr, &[], &[]) {
            return false;
        }
        self.counters.segs_out += 1;
        self.window_advertised(advertised);
        self.ack_sent();
        true
    }

    /// SYN (SYN-SENT) or SYN-ACK (SYN-RECEIVED), with our options.
    fn emit_syn(&mut self, now: Instant, sink: &mut SegmentSink<'_>) -> bool {
        let syn_ack = self.state == TcpState::SynReceived;
        let flags = if syn_ack { TcpFlags::SYN | TcpFlags::ACK } else { TcpFlags::SYN };
        let (window, advertised) = self.window_field(true);
        let mut repr = self.header(self.snd.iss, flags);
        repr.window = window;
        repr.options = self.syn_options(now);
        if !sink(&repr, &[], &[]) {
            return false;
        }
        self.counters.segs_out += 1;
        self.flags.syn_due = false;
        if self.snd.max == self.snd.iss {
            self.snd.nxt = self.snd.iss + 1;
            self.snd.max = self.snd.nxt;
        }
        if self.rec.retries == 0 {
            self.rec.timed_seq = Some(self.snd.iss + 1);
            self.rec.timed_at = now;
        }
        if self.timers.rto.is_none() {
            self.timers.rto = Some(now + self.rtt.rto());
        }
        if syn_ack {
            self.window_advertised(advertised);
            self.ack_sent();
        }
        true
    }

    fn emit_rst(&mut self, rst: PendingRst, sink: &mut SegmentSink<'_>) -> bool {
        let mut repr = self.header(rst.seq, TcpFlags::RST);
        if let Some(ack) = rst.ack {
            repr.flags = TcpFlags(TcpFlags::RST | TcpFlags::ACK);
            repr.ack = ack;
        }
        if !sink(&repr, &[], &[]) {
            return false;
        }
        self.counters.segs_out += 1;
        true
    }
}
