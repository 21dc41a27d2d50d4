//! IPv4 fragment reassembly (RFC 791 §3.2, hole bookkeeping after RFC 815).
//!
//! Datagrams are identified by (source, destination, protocol, identification)
//! (RFC 791 §2.3 "Fragmentation"). Each datagram in progress keeps a list of
//! holes, the byte ranges still missing; a fragment must fall entirely inside
//! one hole. A fragment that overlaps bytes already received drops the whole
//! datagram: overlaps are how fragment-based attacks rewrite headers past
//! filters, and RFC 5722 (for IPv6) makes dropping them the rule — we apply
//! the same rule to IPv4. The exception is an exact duplicate (same place,
//! same bytes), which networks produce innocently: it is dropped alone and
//! the datagram goes on, as in Linux (IPFRAG_DUP).
//!
//! Memory is bounded: at most `MAX_DATAGRAMS` datagrams and `buffer_limit`
//! bytes across all of them. When a new fragment needs room, the oldest
//! datagrams are evicted (Linux does the same past `ipfrag_high_thresh`), so a
//! flood of never-completed fragments cannot block legitimate ones for the
//! whole timeout. Buffers are recycled, so steady reassembly allocates nothing.

use crate::engine::Stats;
use crate::time::{Duration, Instant};
use crate::wire::Ipv4Addr;

/// Datagrams reassembled at once, at the most.
const MAX_DATAGRAMS: usize = 64;
/// The largest IPv4 payload: total length is 16 bits and the header at least 20 bytes.
const MAX_PAYLOAD: usize = 65_535 - 20;

/// RFC 791 §2.3: the fields that identify the datagram a fragment belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragmentKey {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub ident: u16,
}

/// One received fragment: its place in the datagram's payload and its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Fragment<'a> {
    pub key: FragmentKey,
    /// Offset of `data` in the datagram's payload, in bytes.
    pub offset: usize,
    /// The More Fragments flag.
    pub more: bool,
    pub data: &'a [u8],
}

/// A complete datagram's payload. Hand the buffer back with
/// [`Reassembler::recycle`] once processed so it is reused.
#[derive(Debug)]
pub struct Reassembled {
    pub key: FragmentKey,
    pub payload: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Hole {
    first: usize,
    /// One past the last missing byte; `usize::MAX` until the last fragment arrives.
    end: usize,
}

struct Datagram {
    key: FragmentKey,
    started: Instant,
    deadline: Instant,
    holes: Vec<Hole>,
    data: Vec<u8>,
    /// One past the highest byte received.
    received_end: usize,
    /// Payload length, known once the fragment without MF arrived.
    total_len: Option<usize>,
    fragments: u64,
}

pub struct Reassembler {
    buffer_limit: usize,
    timeout: Duration,
    datagrams: Vec<Datagram>,
    bytes_in_use: usize,
    spare_buffers: Vec<Vec<u8>>,
    spare_holes: Vec<Vec<Hole>>,
}

impl Reassembler {
    pub fn new(buffer_limit: usize, timeout: Duration) -> Self {
        Reassembler {
            buffer_limit,
            timeout,
            datagrams: Vec::with_capacity(MAX_DATAGRAMS),
            bytes_in_use: 0,
            spare_buffers: Vec::new(),
            spare_holes: Vec::new(),
        }
    }

    /// Datagrams in progress.
    pub fn len(&self) -> usize {
        self.datagrams.len()
    }
    pub fn is_empty(&self) -> bool {
        self.datagrams.is_empty()
    }
    /// Bytes held for datagrams in progress.
    pub fn bytes_in_use(&self) -> usize {
        self.bytes_in_use
    }

    /// Adds a fragment; returns the datagram once complete.
    pub fn push(&mut self, now: Instant, frag: &Fragment<'_>, stats: &mut Stats) -> Option<Reassembled> {
        let end = frag.offset.saturating_add(frag.data.len());
        // RFC 791 §3.2: every fragment but the last carries a multiple of 8 bytes.
        let misaligned = frag.more && !frag.data.len().is_multiple_of(8);
        if end > MAX_PAYLOAD || misaligned || (frag.more && frag.data.is_empty()) {
            stats.ipv4_fragments_dropped += 1;
            stats.ipv4_reassembly_invalid += 1;
            if let Some(i) = self.find(&frag.key) {
                self.discard(i, stats);
            }
            return None;
        }
        let index = match self.find(&frag.key) {
            Some(i) => i,
            None => self.start(now, frag.key, stats),
        };
        match self.place(index, frag, end, stats) {
            Placement::Incomplete => None,
            Placement::Duplicate => {
                stats.ipv4_fragments_dropped += 1;
                None
            }
            Placement::Complete => Some(self.finish(index, stats)),
            Placement::Invalid => {
                stats.ipv4_fragments_dropped += 1;
                self.discard(index, stats);
                None
            }
            Placement::NoRoom => {
                stats.ipv4_fragments_dropped += 1;
                stats.ipv4_reassembly_no_room += 1;
                self.discard(index, stats);
                None
            }
        }
    }

    /// Returns a payload buffer from [`Reassembled`] for reuse.
    pub fn recycle(&mut self, mut payload: Vec<u8>) {
        if self.spare_buffers.len() < MAX_DATAGRAMS {
            payload.clear();
            self.spare_buffers.push(payload);
        }
    }

    /// When the oldest datagram in progress times out.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.datagrams.iter().map(|d| d.deadline).min()
    }

    /// Drops datagrams whose reassembly timed out (RFC 791 §3.2 "timer").
    pub fn expire(&mut self, now: Instant, stats: &mut Stats) {
        let mut i = 0;
        while i < self.datagrams.len() {
            if self.datagrams[i].deadline <= now {
                stats.ipv4_reassembly_timeouts += 1;
                self.discard(i, stats);
            } else {
                i += 1;
            }
        }
    }

    fn find(&self, key: &FragmentKey) -> Option<usize> {
        self.datagrams.iter().position(|d| d.key == *key)
    }

    fn start(&mut self, now: Instant, key: FragmentKey, stats: &mut Stats) -> usize {
        if self.datagrams.len() >= MAX_DATAGRAMS {
            self.evict_oldest(stats);
        }
        let mut holes = self.spare_holes.pop().unwrap_or_default();
        holes.clear();
        holes.push(Hole { first: 0, end: usize::MAX });
        self.datagrams.push(Datagram {
            key,
            started: now,
            deadline: now + self.timeout,
            holes,
            data: self.spare_buffers.pop().unwrap_or_default(),
            received_end: 0,
            total_len: None,
            fragments: 0,
        });
        self.datagrams.len() - 1
    }

    fn place(&mut self, index: usize, frag: &Fragment<'_>, end: usize, stats: &mut Stats) -> Placement {
        let d = &self.datagrams[index];
        if let Some(total) = d.total_len {
            // A second "last" fragment, or data past the end: inconsistent.
            if end > total || (!frag.more && end != total) {
                stats.ipv4_reassembly_invalid += 1;
                return Placement::Invalid;
            }
        }
        if !frag.more && d.received_end > end {
            stats.ipv4_reassembly_invalid += 1;
            return Placement::Invalid;
        }
        let Some(hole_index) = d.holes.iter().position(|h| h.first <= frag.offset && end <= h.end) else {
            // Data already received in full, byte for byte, is a duplicate
            // (networks duplicate packets): only the copy is dropped, as
            // Linux does (IPFRAG_DUP). Anything else overlapping received
            // data would rewrite it and kills the datagram (overlap attacks,
            // RFC 5722 in spirit). A "last" fragment is a duplicate only if
            // it repeats the known end; otherwise it is inconsistent.
            let intersects = d.holes.iter().any(|h| h.first < end && frag.offset < h.end);
            let repeats_end = frag.more || d.total_len == Some(end);
            let identical = d.data.get(frag.offset..end) == Some(frag.data);
            if !intersects && repeats_end && identical {
                stats.ipv4_fragments_duplicate += 1;
                return Placement::Duplicate;
            }
            stats.ipv4_reassembly_overlaps += 1;
            return Placement::Invalid;
        };
        if frag.data.is_empty() {
            return Placement::Incomplete;
        }
        // Grow the buffer, making room within the byte budget first.
        let grow = end.saturating_sub(d.data.len());
        if self.bytes_in_use + grow > self.buffer_limit {
            let key = d.key;
            self.evict_oldest_for(key, grow, stats);
            if self.bytes_in_use + grow > self.buffer_limit {
                return Placement::NoRoom;
            }
        }
        // Eviction may have moved this datagram.
        let Some(index) = self.find(&frag.key) else { return Placement::NoRoom };
        let d = &mut self.datagrams[index];
        if grow > 0 {
            d.data.resize(end, 0);
            self.bytes_in_use += grow;
        }
        d.data[frag.offset..end].copy_from_slice(frag.data);
        d.fragments += 1;
        d.received_end = d.received_end.max(end);

        // RFC 815 steps 4-6: replace the hole by what is left on either side.
        let hole = d.holes.swap_remove(hole_index);
        if frag.offset > hole.first {
            d.holes.push(Hole { first: hole.first, end: frag.offset });
        }
        if end < hole.end && frag.more {
            d.holes.push(Hole { first: end, end: hole.end });
        }
        if !frag.more {
            d.total_len = Some(end);
            // Nothing lies beyond the end: no hole may reach past it.
            d.holes.retain(|h| h.first < end);
            for h in d.holes.iter_mut() {
                h.end = h.end.min(end);
            }
        }
        if d.holes.is_empty() && d.total_len.is_some() {
            Placement::Complete
        } else {
            Placement::Incomplete
        }
    }

    fn finish(&mut self, index: usize, stats: &mut Stats) -> Reassembled {
        let mut d = self.datagrams.swap_remove(index);
        self.bytes_in_use -= d.data.len();
        stats.ipv4_reassembled += 1;
        let payload = core::mem::take(&mut d.data);
        self.spare_holes.push(core::mem::take(&mut d.holes));
        Reassembled { key: d.key, payload }
    }

    fn discard(&mut self, index: usize, stats: &mut Stats) {
        let mut d = self.datagrams.swap_remove(index);
        self.bytes_in_use -= d.data.len();
        stats.ipv4_fragments_dropped += d.fragments;
        self.recycle(core::mem::take(&mut d.data));
        if self.spare_holes.len() < MAX_DATAGRAMS {
            self.spare_holes.push(core::mem::take(&mut d.holes));
        }
    }

    /// Evicts the oldest datagrams other than `keep` until `need` more bytes fit.
    fn evict_oldest_for(&mut self, keep: FragmentKey, need: usize, stats: &mut Stats) {
        while self.bytes_in_use + need > self.buffer_limit {
            let oldest = self
                .datagrams
                .iter()
                .enumerate()
                .filter(|(_, d)| d.key != keep)
                .min_by_key(|(_, d)| d.started)
                .map(|(i, _)| i);
            match oldest {
                Some(i) => {
                    stats.ipv4_reassembly_no_room += 1;
                    self.discard(i, stats);
                }
                None => return,
            }
        }
    }

    fn evict_oldest(&mut self, stats: &mut Stats) {
        if let Some(i) = self.datagrams.iter().enumerate().min_by_key(|(_, d)| d.started).map(|(i, _)| i) {
            stats.ipv4_reassembly_no_room += 1;
            self.discard(i, stats);
        }
    }
}

enum Placement {
    Incomplete,
    Complete,
    /// Repeats data already received: this copy alone is dropped.
    Duplicate,
    /// Overlapping or inconsistent: the datagram is dropped.
    Invalid,
    /// The byte budget cannot hold it.
    NoRoom,
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: FragmentKey =
        FragmentKey { src: Ipv4Addr::new(10, 0, 0, 2), dst: Ipv4Addr::new(10, 0, 0, 1), protocol: 1, ident: 7 };

    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + 3) as u8).collect()
    }

    fn frag(data: &[u8], offset: usize, len: usize, more: bool) -> Fragment<'_> {
        Fragment { key: KEY, offset, more, data: &data[offset..offset + len] }
    }

    #[test]
    fn out_of_order_fragments_reassemble() {
        let mut stats = Stats::default();
        let mut r = Reassembler::new(64 * 1024, Duration::from_secs(30));
        let data = payload(2000);
        let now = Instant::ZERO;
        assert!(r.push(now, &frag(&data, 1600, 400, false), &mut stats).is_none());
        assert!(r.push(now, &frag(&data, 0, 800, true), &mut stats).is_none());
        let done = r.push(now, &frag(&data, 800, 800, true), &mut stats).expect("complete");
        assert_eq!(done.key, KEY);
        assert_eq!(done.payload, data);
        assert_eq!(r.bytes_in_use(), 0);
        assert!(r.is_empty());
        assert_eq!(stats.ipv4_reassembled, 1);
        r.recycle(done.payload);
    }

    #[test]
    fn overlap_drops_the_datagram() {
        let mut stats = Stats::default();
        let mut r = Reassembler::new(64 * 1024, Duration::from_secs(30));
        let data = payload(1600);
        let now = Instant::ZERO;
        assert!(r.push(now, &frag(&data, 0, 800, true), &mut stats).is_none());
        assert!(r.push(now, &frag(&data, 400, 800, true), &mut stats).is_none());
        assert!(r.is_empty(), "datagram discarded on overlap");
        assert_eq!(stats.ipv4_reassembly_overlaps, 1);
        assert_eq!(stats.ipv4_fragments_dropped, 2);
        // The rest of it arriving later never completes anything.
        assert!(r.push(now, &frag(&data, 1200, 400, false), &mut stats).is_none());
    }

    /// An exact duplicate of a fragment (networks duplicate packets) is
    /// dropped alone, as Linux does (IPFRAG_DUP); the datagram completes.
    #[test]
    fn exact_duplicate_is_dropped_alone() {
        let mut stats = Stats::default();
        let mut r = Reassembler::new(64 * 1024, Duration::from_secs(30));
        let data = payload(1600);
        assert!(r.push(Instant::ZERO, &frag(&data, 0, 800, true), &mut stats).is_none());
        assert!(r.push(Instant::ZERO, &frag(&data, 0, 800, true), &mut stats).is_none());
        let last = frag(&data, 800, 800, false);
        let done = r.push(Instant::ZERO, &last, &mut stats).expect("complete");
        assert_eq!(done.payload, data);
        assert_eq!(stats.ipv4_fragments_duplicate, 1);
        assert_eq!(stats.ipv4_reassembly_overlaps, 0);
        // A duplicate of the last fragment of a datagram still in progress, too.
        assert!(r.push(Instant::ZERO, &frag(&data, 800, 800, false), &mut stats).is_none());
        assert!(r.push(Instant::ZERO, &frag(&data, 800, 800, false), &mut stats).is_none());
        assert!(r.push(Instant::ZERO, &frag(&data, 0, 800, true), &mut stats).is_some());
        assert_eq!(stats.ipv4_fragments_duplicate, 2);
    }

    /// Same place, different bytes: an attempt to rewrite received data.
    #[test]
    fn conflicting_duplicate_drops_the_datagram() {
        let mut stats = Stats::default();
        let mut r = Reassembler::new(64 * 1024, Duration::from_secs(30));
        let data = payload(1600);
        let mut forged = data.clone();
        forged[10] ^= 0xff;
        assert!(r.push(Instant::ZERO, &frag(&data, 0, 800, true), &mut stats).is_none());
        assert!(r.push(Instant::ZERO, &frag(&forged, 0, 800, true), &mut stats).is_none());
        assert!(r.is_empty(), "datagram discarded");
        assert_eq!(stats.ipv4_reassembly_overlaps, 1);
        assert!(r.push(Instant::ZERO, &frag(&data, 800, 800, false), &mut stats).is_none());
    }

    #[test]
    fn inconsistent_and_oversized_fragments_are_dropped() {
        let mut stats = Stats::default();
        let mut r = Reassembler::new(64 * 1024, Duration::from_secs(30));
        let data = payload(70_000);
        // Past the largest IPv4 payload (the "ping of death").
        assert!(r.push(Instant::ZERO, &frag(&data, 65_000, 600, false), &mut stats).is_none());
        // MF set but not a multiple of 8.
        assert!(r.push(Instant::ZERO, &frag(&data, 0, 801, true), &mut stats).is_none());
        // Two different ends.
        assert!(r.push(Instant::ZERO, &frag(&data, 800, 80, false), &mut stats).is_none());
        assert!(r.push(Instant::ZERO, &frag(&data, 800, 160, false), &mut stats).is_none());
        // Data beyond an end already seen.
        assert!(r.push(Instant::ZERO, &frag(&data, 800, 80, false), &mut stats).is_none());
        assert!(r.push(Instant::ZERO, &frag(&data, 880, 8, true), &mut stats).is_none());
        assert_eq!(stats.ipv4_reassembled, 0);
        assert!(stats.ipv4_reassembly_invalid >= 4);
        assert!(r.is_empty());
    }

    #[test]
    fn bytes_are_bounded_and_oldest_evicted() {
        let mut stats = Stats::default();
        let mut r = Reassembler::new(4000, Duration::from_secs(30));
        let data = payload(3000);
        for ident in 0..10u16 {
            let key = FragmentKey { ident, ..KEY };
            let f = Fragment { key, offset: 0, more: true, data: &data[..1600] };
            assert!(r.push(Instant::from_millis(ident as u64), &f, &mut stats).is_none());
            assert!(r.bytes_in_use() <= 4000);
        }
        assert_eq!(r.len(), 2);
        assert!(stats.ipv4_reassembly_no_room >= 8);
        // A datagram larger than the whole budget cannot be held.
        let f = Fragment { key: KEY, offset: 0, more: true, data: &data[..2400] };
        assert!(r.push(Instant::ZERO, &f, &mut stats).is_none());
        let f = Fragment { key: KEY, offset: 2400, more: true, data: &data[..2400] };
        assert!(r.push(Instant::ZERO, &f, &mut stats).is_none());
        assert!(r.bytes_in_use() <= 4000);
    }

    #[test]
    fn incomplete_datagrams_time_out() {
        let mut stats = Stats::default();
        let mut r = Reassembler::new(64 * 1024, Duration::from_secs(30));
        let data = payload(1600);
        assert!(r.push(Instant::from_secs(1), &frag(&data, 0, 800, true), &mut stats).is_none());
        assert_eq!(r.poll_timeout(), Some(Instant::from_secs(31)));
        r.expire(Instant::from_secs(30), &mut stats);
        assert_eq!(r.len(), 1);
        r.expire(Instant::from_secs(31), &mut stats);
        assert!(r.is_empty());
        assert_eq!(r.poll_timeout(), None);
        assert_eq!(stats.ipv4_reassembly_timeouts, 1);
        assert_eq!(stats.ipv4_fragments_dropped, 1);
    }
}
