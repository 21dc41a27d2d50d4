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
//! first. Reporting only the newest ranges to every ACK of a batch leaves the
//! older ranges of a large batch unreported, and the sender resends them.

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

    /// What arrival `index` of the batch landed in: a byte of its range, or
    /// `None` for an arrival past the runs.
    fn arrival(&self, index: usize) -> Option<SeqNum> {
        let mut first = 0;
        for (&seq, &len) in self.run_seq.iter().zip(&self.run_len).take(self.runs as usize) {
            first += len as usize;
            if index < first {
                return Some(seq);
            }
        }
        None
    }

    /// An ACK went out: it answered the oldest arrival still owed one.
    pub(super) fn ack_sent(&mut self) {
        if self.owed() > 0 {
            self.answered += 1;
        }
        if self.owed() == 0 {
            *self = SackReport::default();
        }
    }
}

impl TcpConn {
    /// Note an out-of-order segment whose first new byte is `seq`, already
    /// placed in the receive buffer: it is owed an ACK of its own.
    pub(super) fn out_of_order_arrival(&mut self, seq: SeqNum) {
        let same_range = match (self.rcv.sack.last_placed(), self.out_of_order_range_holding(seq)) {
            (Some(previous), Some((start, end))) => {
                previous >= self.rcv.nxt && (start..end).contains(&previous.distance_from(self.rcv.nxt))
            }
            _ => false,
        };
        self.rcv.sack.arrived(seq, same_range);
    }

    /// Segments owed at the next poll while an ACK is due: one per
    /// out-of-order arrival not yet answered (the sender counts duplicate
    /// ACKs, RFC 5681 §4.2, and Linux sends one per segment), otherwise one.
    pub(super) fn acks_owed(&self) -> usize {
        self.rcv.sack.owed().max(1)
    }

    /// SACK blocks for the next segment we send, as many as fit next to the
    /// other options (RFC 2018 §3, §4). Ranges are looked up now, so a block
    /// reports what has grown or merged since its arrival.
    pub(super) fn sack_blocks(&self) -> SackBlocks {
        let mut blocks = SackBlocks::default();
        if !self.flags.sack || self.flags.read_shut {
            return blocks;
        }
        // 40 option bytes: 4 blocks alone, 3 next to timestamps (RFC 2018 §3).
        let max = if self.flags.timestamps { 3 } else { SackBlocks::MAX };
        let mut add = |(start, end): (usize, usize)| {
            let block = (self.rcv.nxt + start, self.rcv.nxt + end);
            // Ranges are disjoint, so a range already reported is equal, not overlapping.
            if blocks.len() < max && !blocks.as_slice().contains(&block) {
                blocks.push(block.0, block.1);
            }
        };
        if self.rcv.sack.owed() > 0 {
            // This ACK answers arrival `answered`; the ones before it led the
            // previous ACKs of the batch.
            for index in (0..=self.rcv.sack.answered as usize).rev() {
                if let Some(range) = self.arrival_range(index) {
                    add(range);
                }
            }
        }
        for range in self.recv_buf.out_of_order_ranges() {
            add(range);
        }
        blocks
    }

    /// The range arrival `index` of the batch landed in. For an arrival past
    /// the runs: each arrival moves its range to the front of the recency
    /// order, so the last `n` arrivals landed among the first `n` ranges; the
    /// ACKs owed to them lead with recency positions `n - 1` down to 0
    /// (cycling when there are fewer ranges), which leads with each of those
    /// ranges at least once and ends with the newest.
    fn arrival_range(&self, index: usize) -> Option<(usize, usize)> {
        match self.rcv.sack.arrival(index) {
            Some(seq) => self.out_of_order_range_holding(seq),
            None => {
                let count = self.recv_buf.out_of_order_ranges().count();
                let position = (self.rcv.sack.arrivals as usize).checked_sub(index + 1)?.checked_rem(count)?;
                self.recv_buf.out_of_order_ranges().nth(position)
            }
        }
    }

    /// The out-of-order range (offsets from RCV.NXT) holding `seq`; None once
    /// it is acknowledged cumulatively, or if it was never stored.
    fn out_of_order_range_holding(&self, seq: SeqNum) -> Option<(usize, usize)> {
        if seq < self.rcv.nxt {
            return None;
        }
        let offset = seq.distance_from(self.rcv.nxt);
        self.recv_buf.out_of_order_ranges().find(|&(start, end)| (start..end).contains(&offset))
    }
}
