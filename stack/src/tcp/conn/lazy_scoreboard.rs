//! The SACK scoreboard, allocated on first use: most connections never see
//! a SACK block, and the scoreboard is the largest part of a connection.
//! One allocation per connection at most, none per segment.

use crate::tcp::sack::Scoreboard;
use crate::tcp::seq::SeqNum;

#[derive(Clone, Debug, Default)]
pub(super) struct LazyScoreboard(Option<Box<Scoreboard>>);

impl LazyScoreboard {
    pub fn clear(&mut self) {
        if let Some(board) = self.0.as_mut() {
            board.clear();
        }
    }
    pub fn is_empty(&self) -> bool {
        match self.0.as_ref() {
            Some(board) => board.is_empty(),
            None => true,
        }
    }
    /// See `Scoreboard::on_ack`; allocates only when SACK blocks arrive.
    pub fn on_ack(&mut self, snd_una: SeqNum, snd_nxt: SeqNum, blocks: &[(SeqNum, SeqNum)]) -> usize {
        match self.0.as_mut() {
            Some(board) => board.on_ack(snd_una, snd_nxt, blocks),
            None if blocks.is_empty() => 0,
            None => self.0.insert(Box::new(Scoreboard::new())).on_ack(snd_una, snd_nxt, blocks),
        }
    }
    pub fn is_sacked(&self, seq: SeqNum) -> bool {
        self.0.as_ref().is_some_and(|board| board.is_sacked(seq))
    }
    pub fn highest_sacked(&self) -> Option<SeqNum> {
        self.0.as_ref().and_then(|board| board.highest_sacked())
    }
    pub fn is_lost(&self, seq: SeqNum, mss: usize, dup_thresh: usize) -> bool {
        self.0.as_ref().is_some_and(|board| board.is_lost(seq, mss, dup_thresh))
    }
    pub fn next_hole(&self, from: SeqNum, limit: SeqNum) -> Option<(SeqNum, SeqNum)> {
        match self.0.as_ref() {
            Some(board) => board.next_hole(from, limit),
            None if from < limit => Some((from, limit)),
            None => None,
        }
    }
    /// Bytes in `[from, to)` not covered by SACKed ranges.
    pub fn unsacked_between(&self, from: SeqNum, to: SeqNum) -> usize {
        let Some(board) = self.0.as_ref() else { return to.distance_from(from) };
        let mut total = 0;
        let mut cursor = from;
        // Holes alternate with SACKed blocks, so there are at most MAX_BLOCKS + 1.
        for _ in 0..=Scoreboard::MAX_BLOCKS {
            let Some((start, end)) = board.next_hole(cursor, to) else { break };
            total += end.distance_from(start);
            cursor = end;
        }
        total
    }
    pub fn pipe(&self, snd_una: SeqNum, snd_nxt: SeqNum, high_rxt: SeqNum, mss: usize, dup_thresh: usize) -> usize {
        match self.0.as_ref() {
            Some(board) => board.pipe(snd_una, snd_nxt, high_rxt, mss, dup_thresh),
            // Nothing SACKed: every byte is in flight, retransmitted ones twice.
            None => snd_nxt.distance_from(snd_una) + high_rxt.min(snd_nxt).distance_from(snd_una),
        }
    }
}
