//! Which SACK blocks each ACK reports (RFC 2018 §4) when several out-of-order
//! segments are processed between two polls and answered by one ACK each.
//!
//! RFC 2018 §4: the first block of an ACK holds the segment that triggered it,
//! the others repeat the most recently reported blocks. A receiver that ACKs
//! every segment as it arrives (Linux) gets that from a move-to-front list of
//! ranges. We process a batch before sending anything, so we remember which
//! range each arrival landed in and, for the k-th ACK of the batch, report the
//! range of arrival k, then those of arrivals k-1, k-2, ... (what the ACKs
//! just before it led with), then the remaining ranges, most recently changed
//! first, except those only later arrivals landed in. Reporting only the
//! newest ranges to every ACK of a batch left the older ranges of a large
//! batch unreported, and the sender resent them.
//!
//! The sequence numbers remembered stay within a receive window of RCV.NXT:
//! they are forgotten as soon as no ACK is owed, and the peer cannot send
//! past the window we advertise without our ACKs.

use super::TcpConn;
use super::state::MAX_EXTRA_ACKS;
use crate::tcp::seq::SeqNum;
use crate::wire::SackBlocks;

/// Runs of arrivals remembered per batch. A run is a sequence of arrivals that
/// landed in one range (typically consecutive segments after one hole), so a
/// few runs describe large batches. Arrivals beyond them still get an ACK each.
pub(super) const SACK_RUNS: usize = 6;

/// The out-of-order arrivals owed an ACK since the last time none was owed,
/// as runs of arrivals that landed in one range. Fixed size, no allocation.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct SackReport {
    /// A byte of each run's range: the first new byte of its first segment.
    run_seq: [SeqNum; SACK_RUNS],
    /// Arrivals in each run; `run_len[..runs]` are in use, each at least 1.
    run_len: [u8; SACK_RUNS],
    runs: u8,
    /// Arrivals owed an ACK, at most `MAX_EXTRA_ACKS`; those past the
    /// runs are counted but not placed.
    arrivals: u8,
    /// How many of them an ACK has answered.
    answered: u8,
}

impl SackReport {
    /// An out-of-order segment whose first new byte is `seq` arrived;
    /// `same_range` if it landed in the range of the previous arrival.
    fn arrived(&mut self, seq: SeqNum, same_range: bool) {
        if self.arrivals >= MAX_EXTRA_ACKS {
            return;
        }
        let runs = self.runs as usize;
        // Once an arrival is left unplaced, so are all after it.
        if self.placed() == self.arrivals as usize {
            match runs.checked_sub(1) {
                Some(last) if same_range => self.run_len[last] += 1,
                _ if runs < SACK_RUNS => {
                    self.run_seq[runs] = seq;
                    self.run_len[runs] = 1;
                    self.runs += 1;
                }
                _ => {}
            }
        }
        self.arrivals += 1;
    }

    /// Arrivals placed in runs.
    fn placed(&self) -> usize {
        self.run_len.iter().take(self.runs as usize).map(|&n| n as usize).sum()
    }

    /// A byte of the previous arrival's range, if it was placed in a run.
    fn last_placed(&self) -> Option<SeqNum> {
        let last = (self.runs as usize).checked_sub(1)?;
        (self.placed() == self.arrivals as usize).then(|| self.run_seq[last])
    }

    pub(super) fn owed(&self) -> usize {
        self.arrivals.saturating_sub(self.answered) as usize
    }

    /// Each run as the index of its first arrival and a byte of its range.
    fn runs(&self) -> impl Iterator<Item = (usize, SeqNum)> + '_ {
        let lens = self.run_len.iter().take(self.runs as usize);
        let firsts = lens.scan(0, |first, &len| {
            let this = *first;
            *first += len as usize;
            Some(this)
        });
        firsts.zip(self.run_seq.iter().copied())
    }

    /// The run arrival `index` of the batch belongs to (the index of its
    /// first arrival and a byte of its range), or `None` past the runs.
    fn run_of(&self, index: usize) -> Option<(usize, SeqNum)> {
        if index >= self.placed() {
            return None;
        }
        self.runs().take_while(|&(first, _)| first <= index).last()
    }

    /// A byte of the range arrival `index` of the batch landed in, or `None`
    /// for an arrival past the runs.
    fn arrival(&self, index: usize) -> Option<SeqNum> {
        self.run_of(index).map(|(_, seq)| seq)
    }

    /// Whether arrival `index` has been acknowledged cumulatively since.
    fn superseded(&self, index: usize, rcv_nxt: SeqNum) -> bool {
        self.arrival(index).is_some_and(|seq| seq < rcv_nxt)
    }

    /// RCV.NXT moved to `rcv_nxt`: arrivals below it need no ACK of their own
    /// any more (a gap below them was filled), so skip those next in line.
    /// Their duplicate ACKs would now repeat the new cumulative ACK, which
    /// the sender counts as evidence that the next hole is lost.
    pub(super) fn acknowledged(&mut self, rcv_nxt: SeqNum) {
        while self.owed() > 0 && self.superseded(self.answered as usize, rcv_nxt) {
            self.answered += 1;
        }
        if self.owed() == 0 {
            *self = SackReport::default();
        }
    }

    /// ACKs still owed with RCV.NXT at `rcv_nxt`.
    fn live(&self, rcv_nxt: SeqNum) -> usize {
        (self.answered as usize..self.arrivals as usize).filter(|&i| !self.superseded(i, rcv_nxt)).count()
    }

    /// An ACK went out with RCV.NXT at `rcv_nxt`: it answered the oldest
    /// arrival still owed one.
    pub(super) fn ack_sent(&mut self, rcv_nxt: SeqNum) {
        if self.owed() > 0 {
            self.answered += 1;
        }
        self.acknowledged(rcv_nxt);
    }
}

impl TcpConn {
    /// Note an out-of-order segment whose first new byte is `seq`, already
    /// placed in the receive buffer: it is owed an ACK of its own.
    pub(super) fn out_of_order_arrival(&mut self, seq: SeqNum) {
        let same_range = match (self.rcv.sack.last_placed(), self.out_of_order_range_holding(seq)) {
            (Some(previous), Some(range)) => self.range_holds(range, previous),
            _ => false,
        };
        self.rcv.sack.arrived(seq, same_range);
    }

    /// Segments owed at the next poll while an ACK is due: one per
    /// out-of-order arrival not yet answered (the sender counts duplicate
    /// ACKs, RFC 5681 §4.2, and Linux sends one per segment), otherwise one.
    pub(super) fn acks_owed(&self) -> usize {
        self.rcv.sack.live(self.rcv.nxt).max(1)
    }

    /// SACK blocks for the next segment we send, as many as fit next to the
    /// other options (RFC 2018 §3, §4). Ranges are looked up now, so a block
    /// reports what has grown or merged since its arrival.
    ///
    /// Asked for every segment sent, so the common answer (nothing out of
    /// order: no blocks) is inlined into the caller; only the search is a call.
    /// (Returned by value through a call, the empty block list cost a
    /// store-forwarding stall per segment.)
    #[inline]
    pub(super) fn sack_blocks(&self) -> SackBlocks {
        if !self.flags.sack || self.flags.read_shut || (self.rcv.sack.owed() == 0 && !self.recv_buf.has_out_of_order()) {
            return SackBlocks::default();
        }
        self.search_sack_blocks()
    }

    fn search_sack_blocks(&self) -> SackBlocks {
        let mut blocks = SackBlocks::default();
        // 40 option bytes: 4 blocks alone, 3 next to timestamps (RFC 2018 §3).
        let max = if self.flags.timestamps { 3 } else { SackBlocks::MAX };
        // Adds a block unless already there; true once the option is full.
        let mut add = |(start, end): (usize, usize)| {
            let block = (self.rcv.nxt + start, self.rcv.nxt + end);
            // Ranges are disjoint, so a range already reported is equal, not overlapping.
            if blocks.len() < max && !blocks.as_slice().contains(&block) {
                blocks.push(block.0, block.1);
            }
            blocks.len() == max
        };
        // The arrival this ACK answers; the ones before it led the previous ACKs of the batch.
        let answering = (self.rcv.sack.owed() > 0).then_some(self.rcv.sack.answered as usize);
        let mut index = answering;
        while let Some(i) = index {
            if self.arrival_range(i).is_some_and(&mut add) {
                return blocks;
            }
            // The arrivals of a run share its range: go on from the run before.
            index = self.rcv.sack.run_of(i).map_or(i, |(first, _)| first).checked_sub(1);
        }
        // Then the other ranges, most recently changed first, except those
        // holding only arrivals later ACKs answer: a range above a hole that a
        // later arrival filled, reported before that arrival, tells the sender
        // the hole's segment is lost, which a receiver ACKing each segment on
        // arrival never does.
        for (position, range) in self.recv_buf.out_of_order_ranges().enumerate() {
            if answering.is_none_or(|answering| !self.leads_later_ack(answering, position, range)) && add(range) {
                break;
            }
        }
        blocks
    }

    /// Whether an ACK after the one answering arrival `answering` leads with
    /// `range`, at `position` in the recency order.
    fn leads_later_ack(&self, answering: usize, position: usize, range: (usize, usize)) -> bool {
        let report = &self.rcv.sack;
        // Later arrivals past the runs lead with the recency positions below their count.
        let later_unplaced = (report.arrivals as usize).saturating_sub(report.placed().max(answering + 1));
        position < later_unplaced || report.runs().any(|(first, seq)| first > answering && self.range_holds(range, seq))
    }

    /// The range arrival `index` of the batch landed in. For an arrival past
    /// the runs, a range no later arrival touched, if one can be told: each
    /// arrival moves its range to the front of the recency order, so the
    /// arrivals after it touched at most the first `arrivals - 1 - index`
    /// ranges and the range at that position was touched last by this
    /// arrival or an earlier one. Counting down to position 0 over the ACKs
    /// owed, each range the unplaced arrivals touched leads one of them.
    fn arrival_range(&self, index: usize) -> Option<(usize, usize)> {
        match self.rcv.sack.arrival(index) {
            Some(seq) => self.out_of_order_range_holding(seq),
            None => {
                let position = (self.rcv.sack.arrivals as usize).checked_sub(index + 1)?;
                self.recv_buf.out_of_order_ranges().nth(position)
            }
        }
    }

    /// The out-of-order range (offsets from RCV.NXT) holding `seq`; None once
    /// it is acknowledged cumulatively, or if it was never stored.
    fn out_of_order_range_holding(&self, seq: SeqNum) -> Option<(usize, usize)> {
        self.recv_buf.out_of_order_ranges().find(|&range| self.range_holds(range, seq))
    }

    /// Whether the out-of-order range `(start, end)` (offsets from RCV.NXT) holds `seq`.
    fn range_holds(&self, (start, end): (usize, usize), seq: SeqNum) -> bool {
        seq >= self.rcv.nxt && (start..end).contains(&seq.distance_from(self.rcv.nxt))
    }
}
