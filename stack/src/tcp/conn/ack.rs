//! Receiving text and deciding when to acknowledge it: delayed ACKs
//! (RFC 9293 §3.8.6.3, RFC 5681 §4.2) and SACK blocks (RFC 2018 §4).

use super::state::MAX_EXTRA_ACKS;
use super::{TcpConn, TcpState};
use crate::error::Error;
use crate::session::event::EventSet;
use crate::tcp::seq::SeqNum;
use crate::time::Instant;
use crate::wire::SackBlocks;

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
                self.rcv.sack.arrived(start);
            }
            self.flags.ack_now = true;
        } else if advanced > 0 {
            self.rcv.unacked_bytes = self.rcv.unacked_bytes.saturating_add(advanced as u32);
            // At least every second full-sized segment.
            if self.rcv.unacked_bytes as usize >= 2 * self.rcv.mss_est as usize {
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


    /// Segments owed at the next poll while an ACK is due: one per
    /// out-of-order arrival not yet answered (so the sender sees one duplicate
    /// ACK per segment, RFC 5681 §4.2, as Linux sends them), otherwise one.
    pub(super) fn acks_owed(&self) -> usize {
        self.rcv.sack.owed().max(1)
    }

    /// SACK blocks for the next segment we send (RFC 2018 §4): first the range
    /// holding the out-of-order arrival this ACK answers, then the ranges
    /// reported most recently, then any others, as many as fit next to the
    /// other options. Ranges are looked up now, so a block reports what has
    /// merged or grown since the arrival.
    pub(super) fn sack_blocks(&self) -> SackBlocks {
        let mut blocks = SackBlocks::default();
        if !self.flags.sack || self.flags.read_shut {
            return blocks;
        }
        // 40 option bytes: 4 blocks alone, 3 next to timestamps (RFC 2018 §3).
        let max = if self.flags.timestamps { 3 } else { SackBlocks::MAX };
        let mut add = |range: Option<(usize, usize)>| {
            let Some((start, end)) = range else { return };
            let block = (self.rcv.nxt + start, self.rcv.nxt + end);
            // Ranges are disjoint, so a range already reported is equal, not overlapping.
            if blocks.len() < max && end > start && !blocks.as_slice().contains(&block) {
                blocks.push(block.0, block.1);
            }
        };
        add(match self.rcv.sack.next_trigger() {
            Trigger::Arrival(seq) => self.out_of_order_range_holding(seq),
            Trigger::Overflow { remaining } => self.recently_changed_range(remaining),
            Trigger::None => None,
        });
        for &(left, _) in self.rcv.sack.last_reported() {
            add(self.out_of_order_range_holding(left));
        }
        for range in self.recv_buf.out_of_order_ranges() {
            add(Some(range));
        }
        blocks
    }

    /// The out-of-order range (offsets from RCV.NXT) holding `seq`; None once
    /// it is acknowledged cumulatively or if it was never stored.
    fn out_of_order_range_holding(&self, seq: SeqNum) -> Option<(usize, usize)> {
        if seq < self.rcv.nxt {
            return None;
        }
        let offset = seq.distance_from(self.rcv.nxt);
        self.recv_buf.out_of_order_ranges().find(|&(start, end)| start <= offset && offset < end)
    }

    /// First block for an arrival beyond the remembered ones. Each arrival moves
    /// its range to the front of the recency order, so the ranges the last `n`
    /// arrivals touched are among the first `n`; the ACKs owed to them, with
    /// `remaining` counting down to 1, name recency positions `remaining - 1`
    /// down to 0 (cycling when there are fewer ranges), which reports each of
    /// those ranges first at least once and ends with the newest.
    fn recently_changed_range(&self, remaining: usize) -> Option<(usize, usize)> {
        let count = self.recv_buf.out_of_order_ranges().count();
        let index = remaining.checked_sub(1)?.checked_rem(count)?;
        self.recv_buf.out_of_order_ranges().nth(index)
    }

    /// A segment carrying an ACK and these SACK blocks went out: the delayed
    /// ACK is paid, and so is the oldest out-of-order arrival still owed one.
    /// While arrivals remain unanswered (a data segment took the place of a
    /// pure ACK) another ACK stays due.
    pub(super) fn ack_sent(&mut self, sack: SackBlocks) {
        self.rcv.sack.sent(sack);
        self.flags.ack_now = self.rcv.sack.owed() > 0;
        self.timers.delayed_ack = None;
        self.rcv.unacked_bytes = 0;
        self.rcv.last_ack_sent = self.rcv.nxt;
    }
}

/// Out-of-order arrivals whose ACK remembers exactly which segment it answers.
/// Arrivals beyond these, in one batch between two polls, still get an ACK
/// each, with first blocks cycling through the recently changed ranges.
pub(super) const SACK_TRIGGERS: usize = 16;

/// What the first SACK block of the next ACK reports (RFC 2018 §4).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Trigger {
    /// The range holding this sequence number, the first new byte of an arrival.
    Arrival(SeqNum),
    /// An arrival past `SACK_TRIGGERS`; `remaining` ACKs are owed including this one.
    Overflow { remaining: usize },
    /// No out-of-order arrival is waiting for its ACK.
    None,
}

/// The receive side's SACK reporting state: the out-of-order arrivals owed an
/// ACK since the last one was sent, and the blocks the last segment reported.
/// Fixed size: nothing is allocated per segment.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct SackReport {
    /// First new byte of each out-of-order arrival owed an ACK, in arrival
    /// order; `triggers[..arrivals.min(SACK_TRIGGERS)]` are in use.
    triggers: [SeqNum; SACK_TRIGGERS],
    /// Out-of-order arrivals since no ACK was owed (at most `MAX_EXTRA_ACKS`).
    arrivals: u8,
    /// How many of those arrivals an ACK has answered.
    answered: u8,
    /// The SACK blocks of the last segment sent, repeated after the first
    /// block so each range is reported in several successive ACKs (RFC 2018 §4).
    last: SackBlocks,
}

impl SackReport {
    /// An out-of-order segment starting at `seq` arrived: it is owed an ACK.
    fn arrived(&mut self, seq: SeqNum) {
        if self.arrivals >= MAX_EXTRA_ACKS {
            return;
        }
        if let Some(slot) = self.triggers.get_mut(self.arrivals as usize) {
            *slot = seq;
        }
        self.arrivals += 1;
    }

    fn owed(&self) -> usize {
        self.arrivals.saturating_sub(self.answered) as usize
    }

    fn next_trigger(&self) -> Trigger {
        if self.owed() == 0 {
            return Trigger::None;
        }
        match self.triggers.get(self.answered as usize) {
            Some(&seq) => Trigger::Arrival(seq),
            None => Trigger::Overflow { remaining: self.owed() },
        }
    }

    fn last_reported(&self) -> &[(SeqNum, SeqNum)] {
        self.last.as_slice()
    }

    /// A segment reporting `blocks` went out, answering the oldest arrival owed an ACK.
    fn sent(&mut self, blocks: SackBlocks) {
        self.last = blocks;
        if self.owed() > 0 {
            self.answered += 1;
        }
        if self.owed() == 0 {
            self.arrivals = 0;
            self.answered = 0;
        }
    }
}
