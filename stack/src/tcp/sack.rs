//! The sender's SACK scoreboard and the RFC 6675 loss-recovery primitives
//! (IsLost, NextSeg's hole search, SetPipe). Bounded: at most `MAX_BLOCKS`
//! disjoint SACKed ranges are kept; when a new range would exceed that, the
//! highest ranges are forgotten (a receiver may renege anyway, RFC 2018 §8).
//!
//! Implements: RFC 2018 §3–4 (interpreting SACK blocks), RFC 2883 §4 (D-SACK
//! blocks, which report data below the cumulative ACK or already SACKed, add
//! nothing here), RFC 6675 §4 (IsLost, the hole search of NextSeg rule 1,
//! SetPipe). Sequence numbers wrap: every comparison is a `SeqNum` (serial
//! number) comparison relative to `snd_una`.
//!
//! Storage is a fixed array, so the scoreboard never allocates.

use crate::tcp::seq::SeqNum;

/// A SACKed range `[start, end)`.
type Block = (SeqNum, SeqNum);

#[derive(Clone, Debug, Default)]
pub struct Scoreboard {
    /// Sorted, disjoint, non-adjacent ranges; only `blocks[..len]` are live.
    blocks: [Block; Scoreboard::MAX_BLOCKS],
    len: usize,
}

/// SACKed data above a sequence number, for IsLost.
#[derive(Clone, Copy, Default)]
struct Above {
    bytes: usize,
    ranges: usize,
}

impl Above {
    /// RFC 6675 §4 IsLost: `dup_thresh` discontiguous SACKed ranges, or more
    /// than `(dup_thresh - 1) * mss` SACKed bytes, above the sequence number.
    fn means_lost(self, mss: usize, dup_thresh: usize) -> bool {
        let dup_thresh = dup_thresh.max(1);
        self.ranges >= dup_thresh || self.bytes > (dup_thresh - 1).saturating_mul(mss)
    }
}

impl Scoreboard {
    pub const MAX_BLOCKS: usize = 32;

    pub fn new() -> Self {
        Self::default()
    }
    /// Forget all SACK information (after a retransmission timeout, RFC 2018 §8).
    pub fn clear(&mut self) {
        self.len = 0;
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Number of disjoint SACKed ranges held.
    pub fn block_count(&self) -> usize {
        self.len
    }
    /// The SACKed ranges `[start, end)`, lowest first.
    pub fn blocks(&self) -> &[(SeqNum, SeqNum)] {
        &self.blocks[..self.len]
    }

    /// Apply an ACK: drop everything below `snd_una`, merge `blocks` that lie
    /// within `(snd_una, snd_nxt]` (others, including D-SACKs, are ignored).
    /// Returns the number of bytes newly SACKed.
    pub fn on_ack(&mut self, snd_una: SeqNum, snd_nxt: SeqNum, blocks: &[(SeqNum, SeqNum)]) -> usize {
        self.drop_below(snd_una);
        let before = self.sacked_bytes();
        for &(start, end) in blocks {
            // A valid block starts after the cumulative ACK, is non-empty, and
            // covers only data we sent. A D-SACK below snd_una (RFC 2883) and
            // garbage both fail this; a D-SACK inside SACKed data merges to nothing.
            if start > snd_una && end > start && end <= snd_nxt {
                self.insert(start, end);
            }
        }
        self.sacked_bytes().saturating_sub(before)
    }

    pub fn is_sacked(&self, seq: SeqNum) -> bool {
        self.blocks().iter().any(|&(start, end)| seq >= start && seq < end)
    }

    /// Total bytes currently SACKed.
    pub fn sacked_bytes(&self) -> usize {
        self.blocks().iter().map(|&(start, end)| end.distance_from(start)).sum()
    }

    /// End of the highest SACKed range.
    pub fn highest_sacked(&self) -> Option<SeqNum> {
        self.blocks().last().map(|&(_, end)| end)
    }

    /// RFC 6675 §4 IsLost(seq): at least `dup_thresh` discontiguous SACKed
    /// ranges, or more than `(dup_thresh - 1) * mss` SACKed bytes, lie above `seq`.
    pub fn is_lost(&self, seq: SeqNum, mss: usize, dup_thresh: usize) -> bool {
        self.above(seq).means_lost(mss, dup_thresh)
    }

    /// The first un-SACKed range `[start, end)` at or after `from` and below
    /// `limit` (the highest SACKed byte, for RFC 6675 NextSeg rule 1).
    pub fn next_hole(&self, from: SeqNum, limit: SeqNum) -> Option<(SeqNum, SeqNum)> {
        let mut cursor = from;
        for &(start, end) in self.blocks() {
            if cursor >= limit {
                return None;
            }
            if end <= cursor {
                continue;
            }
            if start <= cursor {
                cursor = end;
                continue;
            }
            return Some((cursor, start.min(limit)));
        }
        (cursor < limit).then_some((cursor, limit))
    }

    /// RFC 6675 §4 SetPipe: bytes in flight between `snd_una` and `snd_nxt`.
    /// Each un-SACKed byte counts once unless IsLost, and once more if it was
    /// retransmitted in this recovery, i.e. lies below `high_rxt` (kept as the
    /// end of the highest retransmission, so `high_rxt == snd_una` — RFC 6675
    /// §5's initial HighRxt = HighACK — means nothing was retransmitted).
    pub fn pipe(&self, snd_una: SeqNum, snd_nxt: SeqNum, high_rxt: SeqNum, mss: usize, dup_thresh: usize) -> usize {
        // Every byte of a hole has the same SACKed data above it, so IsLost is
        // decided once per hole rather than per byte.
        let in_window = |&&(start, end): &&Block| end > snd_una && start < snd_nxt;
        let mut above = Above::default();
        for &(start, end) in self.blocks().iter().filter(in_window) {
            above.bytes += end.min(snd_nxt).distance_from(start.max(snd_una));
            above.ranges += 1;
        }
        let mut pipe = 0usize;
        let mut cursor = snd_una;
        let mut count_hole = |hole_start: SeqNum, hole_end: SeqNum, above: Above| {
            if hole_end <= hole_start {
                return;
            }
            if !above.means_lost(mss, dup_thresh) {
                pipe += hole_end.distance_from(hole_start);
            }
            pipe += hole_end.min(high_rxt).distance_from(hole_start);
        };
        for &(start, end) in self.blocks().iter().filter(in_window) {
            count_hole(cursor, start, above);
            above.bytes -= end.min(snd_nxt).distance_from(start.max(snd_una));
            above.ranges -= 1;
            cursor = cursor.max(end);
        }
        count_hole(cursor, snd_nxt, above);
        pipe
    }

    /// SACKed bytes and ranges strictly above `seq`.
    fn above(&self, seq: SeqNum) -> Above {
        let mut above = Above::default();
        for &(start, end) in self.blocks().iter().rev() {
            let first = start.max(seq + 1);
            if end <= first {
                break;
            }
            above.bytes += end.distance_from(first);
            above.ranges += 1;
        }
        above
    }

    /// Forget ranges (and parts of ranges) below `snd_una`.
    fn drop_below(&mut self, snd_una: SeqNum) {
        let gone = self.blocks().iter().take_while(|&&(_, end)| end <= snd_una).count();
        self.remove(0, gone);
        if self.len > 0 {
            self.blocks[0].0 = self.blocks[0].0.max(snd_una);
        }
    }

    /// Merge `[start, end)` into the sorted set, joining overlapping and
    /// adjacent ranges. If that would exceed `MAX_BLOCKS`, the highest range
    /// (possibly the new one) is forgotten.
    fn insert(&mut self, start: SeqNum, end: SeqNum) {
        // First range that touches or follows the new one, and first one past it.
        let first = self.blocks().iter().take_while(|&&(_, e)| e < start).count();
        let past = first + self.blocks()[first..].iter().take_while(|&&(s, _)| s <= end).count();
        if first < past {
            let merged = (start.min(self.blocks[first].0), end.max(self.blocks[past - 1].1));
            self.blocks[first] = merged;
            self.remove(first + 1, past - first - 1);
            return;
        }
        if self.len == Self::MAX_BLOCKS {
            if first == self.len {
                return;
            }
            self.len -= 1;
        }
        self.blocks.copy_within(first..self.len, first + 1);
        self.blocks[first] = (start, end);
        self.len += 1;
    }

    /// Remove `count` ranges starting at index `at`.
    fn remove(&mut self, at: usize, count: usize) {
        if count == 0 {
            return;
        }
        self.blocks.copy_within(at + count..self.len, at);
        self.len -= count;
    }
}

#[cfg(test)]
mod tests;
