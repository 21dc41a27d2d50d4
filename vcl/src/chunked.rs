//! A lazily allocated array indexed by `u32`: fixed-size chunks allocated on
//! first use and never moved or freed while the array lives, so a lookup is
//! two loads and returns a plain reference, without a lock.

use std::sync::OnceLock;

/// Entries per chunk.
const CHUNK: usize = 256;

pub(crate) struct Chunked<T> {
    chunks: Box<[OnceLock<Box<[T]>>]>,
    len: u32,
}

impl<T: Default> Chunked<T> {
    /// An array of `len` entries, none allocated yet.
    pub(crate) fn new(len: u32) -> Chunked<T> {
        let chunks = (len as usize).div_ceil(CHUNK);
        Chunked { chunks: (0..chunks).map(|_| OnceLock::new()).collect(), len }
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> u32 {
        self.len
    }

    /// Entry `i` if its chunk exists; `None` past the end or before the
    /// chunk's first use.
    pub(crate) fn get(&self, i: u32) -> Option<&T> {
        if i >= self.len {
            return None;
        }
        let i = i as usize;
        self.chunks[i / CHUNK].get().map(|c| &c[i % CHUNK])
    }

    /// Entry `i`, allocating its chunk (default entries) on first use;
    /// `None` past the end. Racing first uses allocate once.
    pub(crate) fn get_or_alloc(&self, i: u32) -> Option<&T> {
        if i >= self.len {
            return None;
        }
        let i = i as usize;
        let chunk = self.chunks[i / CHUNK].get_or_init(|| (0..CHUNK).map(|_| T::default()).collect());
        Some(&chunk[i % CHUNK])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn entries_appear_on_first_use_and_stay() {
        let a: Chunked<AtomicU32> = Chunked::new(1000);
        assert!(a.get(700).is_none());
        a.get_or_alloc(700).unwrap().store(7, Ordering::Relaxed);
        assert_eq!(a.get(700).unwrap().load(Ordering::Relaxed), 7);
        assert_eq!(a.get(701).unwrap().load(Ordering::Relaxed), 0, "same chunk");
        assert!(a.get_or_alloc(1000).is_none());
        assert!(a.get(u32::MAX).is_none());
    }
}
