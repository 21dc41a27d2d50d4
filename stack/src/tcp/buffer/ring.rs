//! A circular byte store. Positions are logical offsets from the head; every
//! copy is at most two `copy_from_slice` calls (the part before the physical
//! end and the part wrapped to the start), never a per-byte loop.
//!
//! The ring does not know how many bytes are live: its owner does, and passes
//! the span to preserve when it asks for more room.

/// Smallest allocation, so a trickle of tiny writes does not double from 1.
const MIN_CAPACITY: usize = 4096;

#[derive(Clone, Debug, Default)]
pub(super) struct Ring {
    storage: Vec<u8>,
    /// Physical index of logical offset 0; always `< capacity` (or 0 when empty).
    head: usize,
}

impl Ring {
    pub(super) fn capacity(&self) -> usize {
        self.storage.len()
    }

    /// Makes room for logical offsets `[0, needed)`, keeping the first
    /// `preserve` bytes. Capacity doubles (at least `MIN_CAPACITY`) but does
    /// not exceed `limit` unless `needed` does.
    pub(super) fn reserve(&mut self, preserve: usize, needed: usize, limit: usize) {
        if needed <= self.capacity() {
            return;
        }
        let doubled = self.capacity().saturating_mul(2).max(MIN_CAPACITY);
        let new_capacity = doubled.min(limit).max(needed);
        let mut storage = vec![0u8; new_capacity];
        let preserve = preserve.min(self.capacity());
        let (first, second) = self.slices(0, preserve);
        storage[..first.len()].copy_from_slice(first);
        storage[first.len()..preserve].copy_from_slice(second);
        self.storage = storage;
        self.head = 0;
    }

    /// Frees the storage; only valid when nothing is live.
    pub(super) fn release(&mut self) {
        self.storage = Vec::new();
        self.head = 0;
    }

    /// Moves the head forward by `n` (dropping the first `n` logical bytes).
    pub(super) fn advance(&mut self, n: usize) {
        let capacity = self.capacity();
        if capacity > 0 {
            // `n` is at most the live span, so the modulo (a hardware divide,
            // tens of cycles, once per ACK) is only a fallback.
            let n = if n < capacity { n } else { n % capacity };
            self.head = wrap(self.head + n, capacity);
        }
    }

    /// Puts the head back at the physical start; only valid when nothing is live.
    pub(super) fn reset_head(&mut self) {
        self.head = 0;
    }

    /// The physical ranges holding logical `[offset, offset + len)`, clipped to
    /// the capacity: `(start, first_len, second_len)`.
    fn split(&self, offset: usize, len: usize) -> (usize, usize, usize) {
        let capacity = self.capacity();
        if offset >= capacity {
            return (0, 0, 0);
        }
        let len = len.min(capacity - offset);
        let start = wrap(self.head + offset, capacity);
        let first = len.min(capacity - start);
        (start, first, len - first)
    }

    /// Logical `[offset, offset + len)` as at most two slices.
    pub(super) fn slices(&self, offset: usize, len: usize) -> (&[u8], &[u8]) {
        let (start, first, second) = self.split(offset, len);
        (&self.storage[start..start + first], &self.storage[..second])
    }

    /// Copies `data` to logical offset `offset`; returns the bytes copied
    /// (fewer only if the capacity was not reserved).
    pub(super) fn write_at(&mut self, offset: usize, data: &[u8]) -> usize {
        let (start, first, second) = self.split(offset, data.len());
        self.storage[start..start + first].copy_from_slice(&data[..first]);
        self.storage[..second].copy_from_slice(&data[first..first + second]);
        first + second
    }
}

/// `index % capacity` for `index < 2 * capacity`, which is what head plus an
/// in-range offset always is: a compare instead of a divide on every copy.
fn wrap(index: usize, capacity: usize) -> usize {
    if index >= capacity {
        index - capacity
    } else {
        index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring_with_head(capacity: usize, head: usize) -> Ring {
        let mut ring = Ring::default();
        ring.reserve(0, capacity, capacity);
        ring.advance(head);
        ring
    }

    #[test]
    fn writes_and_reads_wrap_at_the_physical_end() {
        let mut ring = ring_with_head(MIN_CAPACITY, MIN_CAPACITY - 3);
        assert_eq!(ring.write_at(0, b"abcdefgh"), 8);
        let (first, second) = ring.slices(0, 8);
        assert_eq!((first, second), (&b"abc"[..], &b"defgh"[..]));
        let (first, second) = ring.slices(2, 6);
        assert_eq!([first, second].concat(), b"cdefgh");
    }

    #[test]
    fn growth_preserves_wrapped_contents_and_doubles() {
        let mut ring = ring_with_head(MIN_CAPACITY, MIN_CAPACITY - 2);
        ring.write_at(0, b"wxyz");
        ring.reserve(4, MIN_CAPACITY + 1, usize::MAX);
        assert_eq!(ring.capacity(), 2 * MIN_CAPACITY);
        assert_eq!(ring.slices(0, 4), (&b"wxyz"[..], &b""[..]));
    }

    #[test]
    fn growth_respects_the_limit_but_not_below_need() {
        let mut ring = Ring::default();
        ring.reserve(0, 10, 100);
        assert_eq!(ring.capacity(), 100);
        ring.reserve(10, 150, 120);
        assert_eq!(ring.capacity(), 150);
    }

    #[test]
    fn advance_wraps_for_any_distance() {
        let cap = MIN_CAPACITY;
        for (head, n, expected) in [(0, cap - 1, cap - 1), (cap - 1, 1, 0), (cap - 1, cap - 1, cap - 2), (5, cap, 5), (5, 3 * cap + 2, 7)] {
            let mut ring = ring_with_head(cap, head);
            ring.advance(n);
            assert_eq!(ring.head, expected, "head {head} + {n}");
        }
    }

    #[test]
    fn out_of_range_access_is_clipped() {
        let mut ring = Ring::default();
        assert_eq!(ring.slices(0, 10), (&[][..], &[][..]));
        assert_eq!(ring.write_at(0, b"abc"), 0);
        ring.reserve(0, 8, 8);
        assert_eq!(ring.write_at(6, b"abc"), 2);
        assert_eq!(ring.slices(10, 1), (&[][..], &[][..]));
    }
}
