//! The fd table: which of the process's descriptors the interposer tracks,
//! and as what (design §5.2).
//!
//! Every descriptor number has one `AtomicU64` word; 0 means "a kernel
//! descriptor, not ours", which is what all but a handful of entries say. A
//! hook's fast path is one bounds check and one load of that word.
//!
//! The words live in a static array of 2^20 entries (the kernel's default
//! `fs.nr_open`, the ceiling of `RLIMIT_NOFILE`). It sits in `.bss`, so the
//! kernel backs untouched pages with the shared zero page: the 8 MiB cost
//! nothing until descriptors in a range are registered (4 KiB per 512
//! descriptors). This gives what design §5.2's chunked, `RLIMIT_NOFILE`-sized
//! array was for without a pointer chase on the fast path. A descriptor at or
//! above 2^20 (possible only when `fs.nr_open` was raised) is never tracked:
//! a socket that gets one goes to the kernel at once.
//!
//! Closing follows §5.2: the entry is swapped to a tombstone, the descriptor
//! is closed, then the tombstone is cleared only if it is still there, so a
//! registration made meanwhile by another thread that got the same number
//! from the kernel is not clobbered.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use libc::c_int;

use crate::backend::{EpollRef, SessionRef};

/// Number of descriptors the process-wide table covers.
pub const MAX_FDS: usize = 1 << 20;

/// The process's table.
pub static FDS: FdTable<MAX_FDS> = FdTable::new();

const EMPTY: u64 = 0;
const TOMBSTONE: u64 = 1;
const TAG_SHIFT: u32 = 62;
const PAYLOAD_MASK: u64 = (1 << TAG_SHIFT) - 1;
const TAG_CANDIDATE: u64 = 1;
const TAG_SESSION: u64 = 2;
const TAG_EPOLL: u64 = 3;

/// A candidate socket's place in the candidate store: slot index and the
/// slot's generation when it was allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CandidateId {
    pub index: u32,
    pub gen: u32,
}

/// What a descriptor is to the interposer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Not ours: every call goes to the kernel.
    Kernel,
    /// Being closed by some thread; treated as the kernel's.
    Closing,
    /// A socket whose kernel-or-Sluice decision is still open; the descriptor
    /// is its placeholder eventfd.
    Candidate(CandidateId),
    /// A backend session; the descriptor is its placeholder eventfd.
    Session(SessionRef),
    /// A kernel epoll instance a backend watches sessions for.
    Epoll(EpollRef),
}

impl Entry {
    fn encode(self) -> u64 {
        match self {
            Entry::Kernel => EMPTY,
            Entry::Closing => TOMBSTONE,
            Entry::Candidate(id) => {
                // 30 bits of index are plenty: there are never more live
                // candidates than descriptors (2^20).
                (TAG_CANDIDATE << TAG_SHIFT) | ((id.index as u64 & 0x3fff_ffff) << 32) | id.gen as u64
            }
            Entry::Session(s) => (TAG_SESSION << TAG_SHIFT) | s.raw(),
            Entry::Epoll(e) => (TAG_EPOLL << TAG_SHIFT) | e.raw(),
        }
    }

    fn decode(word: u64) -> Entry {
        let payload = word & PAYLOAD_MASK;
        match word >> TAG_SHIFT {
            TAG_CANDIDATE => Entry::Candidate(CandidateId { index: (payload >> 32) as u32, gen: payload as u32 }),
            TAG_SESSION => Entry::Session(SessionRef::from_raw(payload)),
            TAG_EPOLL => Entry::Epoll(EpollRef::from_raw(payload)),
            _ if word == EMPTY => Entry::Kernel,
            _ => Entry::Closing,
        }
    }
}

/// A descriptor-indexed table of entries.
pub struct FdTable<const N: usize> {
    words: [AtomicU64; N],
    /// One past the highest descriptor ever registered: scans stop there.
    high_water: AtomicUsize,
}

impl<const N: usize> FdTable<N> {
    pub const fn new() -> Self {
        FdTable { words: [const { AtomicU64::new(EMPTY) }; N], high_water: AtomicUsize::new(0) }
    }

    fn word(&self, fd: c_int) -> Option<&AtomicU64> {
        usize::try_from(fd).ok().and_then(|i| self.words.get(i))
    }

    /// Whether `fd` is tracked at all: the hooks' fast-path test.
    #[inline(always)]
    pub fn is_tracked(&self, fd: c_int) -> bool {
        match usize::try_from(fd).ok().and_then(|i| self.words.get(i)) {
            Some(word) => word.load(Ordering::Acquire) > TOMBSTONE,
            None => false,
        }
    }

    pub fn get(&self, fd: c_int) -> Entry {
        self.word(fd).map_or(Entry::Kernel, |w| Entry::decode(w.load(Ordering::Acquire)))
    }

    /// Records `entry` for `fd`, a descriptor the caller just obtained from
    /// the kernel (so whatever was recorded for the number before is stale:
    /// nothing, or a tombstone of a close still finishing). Fails for a
    /// descriptor beyond the table.
    pub fn register(&self, fd: c_int, entry: Entry) -> Result<(), OutOfRange> {
        let word = self.word(fd).ok_or(OutOfRange)?;
        word.store(entry.encode(), Ordering::Release);
        self.high_water.fetch_max(fd as usize + 1, Ordering::AcqRel);
        Ok(())
    }

    /// Replaces `expected` with `new`; false if the entry changed meanwhile.
    pub fn replace(&self, fd: c_int, expected: Entry, new: Entry) -> bool {
        let Some(word) = self.word(fd) else { return false };
        word.compare_exchange(expected.encode(), new.encode(), Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// First step of a close: `expected` becomes a tombstone. False if the
    /// entry changed meanwhile (another thread closed it first).
    pub fn begin_close(&self, fd: c_int, expected: Entry) -> bool {
        self.replace(fd, expected, Entry::Closing)
    }

    /// Last step of a close, after the kernel descriptor is gone: clears the
    /// tombstone unless a new registration already replaced it.
    pub fn finish_close(&self, fd: c_int) {
        self.replace(fd, Entry::Closing, Entry::Kernel);
    }

    /// Forgets `fd` (an entry whose descriptor the kernel no longer has, or
    /// that now names a plain kernel object), if it still says `expected`.
    pub fn forget(&self, fd: c_int, expected: Entry) -> bool {
        self.replace(fd, expected, Entry::Kernel)
    }

    /// One past the highest descriptor ever registered (0: none ever was).
    pub fn high_water(&self) -> usize {
        self.high_water.load(Ordering::Acquire)
    }

    /// Calls `f` for every tracked descriptor in `range` (clamped to the
    /// registered range), lowest first.
    pub fn for_each_tracked(&self, range: std::ops::RangeInclusive<c_int>, mut f: impl FnMut(c_int, Entry)) {
        let start = (*range.start()).max(0) as usize;
        let end_excl = (*range.end() as i64 + 1).clamp(0, self.high_water.load(Ordering::Acquire) as i64) as usize;
        for fd in start..end_excl {
            let entry = Entry::decode(self.words[fd].load(Ordering::Acquire));
            if !matches!(entry, Entry::Kernel | Entry::Closing) {
                f(fd as c_int, entry);
            }
        }
    }
}

impl<const N: usize> Default for FdTable<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// The descriptor is beyond the table.
#[derive(Debug, PartialEq, Eq)]
pub struct OutOfRange;

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Box<FdTable<64>> {
        Box::new(FdTable::new())
    }

    #[test]
    fn entries_round_trip() {
        let cand = Entry::Candidate(CandidateId { index: 0x3fff_ffff, gen: u32::MAX });
        let session = Entry::Session(SessionRef::from_raw(PAYLOAD_MASK));
        let epoll = Entry::Epoll(EpollRef::from_raw(7));
        for entry in [Entry::Kernel, Entry::Closing, cand, session, epoll] {
            assert_eq!(Entry::decode(entry.encode()), entry);
        }
    }

    #[test]
    fn untracked_and_out_of_range_are_kernel() {
        let t = table();
        assert_eq!(t.get(5), Entry::Kernel);
        assert!(!t.is_tracked(-1));
        assert!(!t.is_tracked(64));
        assert_eq!(t.register(64, Entry::Closing), Err(OutOfRange));
    }

    #[test]
    fn close_does_not_clobber_a_concurrent_registration() {
        let t = table();
        let a = Entry::Candidate(CandidateId { index: 1, gen: 1 });
        let b = Entry::Candidate(CandidateId { index: 2, gen: 1 });
        t.register(3, a).unwrap();
        assert!(t.is_tracked(3));
        assert!(t.begin_close(3, a));
        assert!(!t.is_tracked(3), "a closing descriptor is passed to the kernel");
        // Another thread got number 3 from the kernel and registered it.
        t.register(3, b).unwrap();
        t.finish_close(3);
        assert_eq!(t.get(3), b);
        // A second close of the old entry loses the race cleanly.
        assert!(!t.begin_close(3, a));
    }

    #[test]
    fn scan_visits_tracked_entries_in_range() {
        let t = table();
        let a = Entry::Candidate(CandidateId { index: 1, gen: 1 });
        t.register(2, a).unwrap();
        t.register(9, Entry::Epoll(EpollRef::from_raw(1))).unwrap();
        t.register(20, a).unwrap();
        assert!(t.forget(20, a));
        let mut seen = Vec::new();
        t.for_each_tracked(0..=c_int::MAX, |fd, _| seen.push(fd));
        assert_eq!(seen, vec![2, 9]);
        seen.clear();
        t.for_each_tracked(3..=9, |fd, _| seen.push(fd));
        assert_eq!(seen, vec![9]);
    }
}
