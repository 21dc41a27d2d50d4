//! The sender's SACK scoreboard and the RFC 6675 loss-recovery primitives
//! (IsLost, NextSeg's hole search, SetPipe). Bounded: at most `MAX_BLOCKS`
//! disjoint SACKed ranges are kept; when a new range would exceed that, the
//! highest ranges are forgotten (a receiver may renege anyway, RFC 2018 §8).

use crate::tcp::seq::SeqNum;

#[derive(Clone, Debug, Default)]
pub struct Scoreboard {
    _todo: (),
}

impl Scoreboard {
    pub const MAX_BLOCKS: usize = 32;

    pub fn new() -> Self {
        todo!()
    }
    pub fn clear(&mut self) {
        todo!()
    }
    pub fn is_empty(&self) -> bool {
        todo!()
    }
    /// Apply an ACK: drop everything below `snd_una`, merge `blocks` that lie
    /// within `(snd_una, snd_nxt]` (others, including D-SACKs, are ignored).
    /// Returns the number of bytes newly SACKed.
    pub fn on_ack(&mut self, snd_una: SeqNum, snd_nxt: SeqNum, blocks: &[(SeqNum, SeqNum)]) -> usize {
        let _ = (snd_una, snd_nxt, blocks);
        todo!()
    }
    pub fn is_sacked(&self, seq: SeqNum) -> bool {
        let _ = seq;
        todo!()
    }
    /// Total bytes currently SACKed.
    pub fn sacked_bytes(&self) -> usize {
        todo!()
    }
    /// End of the highest SACKed range.
    pub fn highest_sacked(&self) -> Option<SeqNum> {
        todo!()
    }
    /// RFC 6675 §4 IsLost(seq): at least `dup_thresh` discontiguous SACKed
    /// ranges, or more than `(dup_thresh - 1) * mss` SACKed bytes, lie above `seq`.
    pub fn is_lost(&self, seq: SeqNum, mss: usize, dup_thresh: usize) -> bool {
        let _ = (seq, mss, dup_thresh);
        todo!()
    }
    /// The first un-SACKed range `[start, end)` at or after `from` and below
    /// `limit` (the highest SACKed byte, for RFC 6675 NextSeg rule 1).
    pub fn next_hole(&self, from: SeqNum, limit: SeqNum) -> Option<(SeqNum, SeqNum)> {
        let _ = (from, limit);
        todo!()
    }
    /// RFC 6675 §4 SetPipe: bytes in flight between `snd_una` and `snd_nxt`,
    /// counting un-SACKed bytes not deemed lost once and those at or below
    /// `high_rxt` (already retransmitted) once more.
    pub fn pipe(&self, snd_una: SeqNum, snd_nxt: SeqNum, high_rxt: SeqNum, mss: usize, dup_thresh: usize) -> usize {
        let _ = (snd_una, snd_nxt, high_rxt, mss, dup_thresh);
        todo!()
    }
}
