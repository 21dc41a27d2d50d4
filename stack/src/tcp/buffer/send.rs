//! The send buffer: bytes the application wrote that are not yet acknowledged.
//! Offset 0 is `snd_una`; the connection reads any offset for transmission and
//! retransmission and drops the front as ACKs arrive (RFC 9293 §3.10.7.4,
//! "SND.UNA < SEG.ACK =< SND.NXT ... segments on the retransmission queue
//! which are thereby entirely acknowledged are removed").

use super::ring::Ring;

/// Unacknowledged and unsent bytes; offset 0 is `snd_una`.
#[derive(Clone, Debug)]
pub struct SendBuffer {
    ring: Ring,
    /// Bytes buffered from the ring's head.
    len: usize,
    /// The configured maximum (SO_SNDBUF).
    limit: usize,
}

impl SendBuffer {
    /// No storage is allocated until the first write.
    pub fn new(limit: usize) -> Self {
        SendBuffer { ring: Ring::default(), len: 0, limit }
    }
    /// The configured limit, or the buffered amount if a lowered limit is
    /// still exceeded by data written before.
    pub fn limit(&self) -> usize {
        self.limit.max(self.len)
    }
    /// Change the limit (SO_SNDBUF); never below what is already buffered.
    /// Buffered data is never dropped: a lower limit only stops new writes
    /// until enough is acknowledged.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }
    /// Bytes buffered (sent-but-unacked plus unsent).
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Room left before the limit.
    pub fn free(&self) -> usize {
        self.limit.saturating_sub(self.len)
    }
    /// Append as much of `data` as fits; returns the count.
    pub fn write(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free());
        if n == 0 {
            return 0;
        }
        let needed = self.len + n;
        self.ring.reserve(self.len, needed, self.limit);
        let written = self.ring.write_at(self.len, &data[..n]);
        self.len += written;
        written
    }
    /// Up to `len` bytes starting `offset` bytes after the front, as at most two
    /// slices (the ring may wrap). Empty slices if out of range.
    pub fn slices_at(&self, offset: usize, len: usize) -> (&[u8], &[u8]) {
        if offset >= self.len {
            return (&[], &[]);
        }
        self.ring.slices(offset, len.min(self.len - offset))
    }
    /// Copies bytes starting `offset` bytes after the front into `buf`;
    /// returns the count (a convenience over `slices_at`).
    pub fn copy_at(&self, offset: usize, buf: &mut [u8]) -> usize {
        let (first, second) = self.slices_at(offset, buf.len());
        buf[..first.len()].copy_from_slice(first);
        buf[first.len()..first.len() + second.len()].copy_from_slice(second);
        first.len() + second.len()
    }
    /// Drop `n` acknowledged bytes from the front.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.ring.advance(n);
        self.len -= n;
        if self.len == 0 {
            // Keep later writes contiguous for as long as possible.
            self.ring.reset_head();
        }
    }
    /// Frees the storage if nothing is buffered (for idle connections); the
    /// next write allocates again.
    pub fn release_if_empty(&mut self) {
        if self.len == 0 {
            self.ring.release();
        }
    }
    /// Bytes of storage currently allocated.
    pub fn allocated(&self) -> usize {
        self.ring.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(start: usize, len: usize) -> Vec<u8> {
        (start..start + len).map(|i| (i * 7 + 3) as u8).collect()
    }

    fn collect(buf: &SendBuffer, offset: usize, len: usize) -> Vec<u8> {
        let (a, b) = buf.slices_at(offset, len);
        assert!(a.len() + b.len() <= len);
        [a, b].concat()
    }

    #[test]
    fn allocates_nothing_until_written() {
        let mut buf = SendBuffer::new(64 * 1024);
        assert_eq!(buf.allocated(), 0);
        assert_eq!(buf.write(&[]), 0);
        assert_eq!(buf.allocated(), 0);
        assert_eq!(buf.slices_at(0, 10), (&[][..], &[][..]));
        buf.consume(10);
        assert_eq!(buf.allocated(), 0);
        assert!(buf.is_empty());
    }

    #[test]
    fn write_stops_at_the_limit() {
        let mut buf = SendBuffer::new(10_000);
        assert_eq!(buf.write(&pattern(0, 6000)), 6000);
        assert_eq!(buf.free(), 4000);
        assert_eq!(buf.write(&pattern(6000, 6000)), 4000);
        assert_eq!(buf.len(), 10_000);
        assert_eq!(buf.write(b"x"), 0);
        assert!(buf.allocated() <= 10_000);
        assert_eq!(collect(&buf, 0, 10_000), pattern(0, 10_000));
    }

    #[test]
    fn storage_grows_by_doubling_and_keeps_contents() {
        let mut buf = SendBuffer::new(1 << 20);
        buf.write(&pattern(0, 100));
        let first = buf.allocated();
        assert!((100..1 << 20).contains(&first));
        buf.write(&pattern(100, first));
        assert_eq!(buf.allocated(), first * 2);
        assert_eq!(collect(&buf, 0, first + 100), pattern(0, first + 100));
    }

    #[test]
    fn slices_wrap_and_consume_drops_the_front() {
        let mut buf = SendBuffer::new(4096);
        buf.write(&pattern(0, 4000));
        buf.consume(3000);
        assert_eq!(buf.len(), 1000);
        // Now wrap: 1000 live bytes at the end, 2500 new bytes wrapped to the start.
        assert_eq!(buf.write(&pattern(4000, 2500)), 2500);
        assert_eq!(buf.allocated(), 4096, "no growth needed");
        let (a, b) = buf.slices_at(0, 3500);
        assert!(!a.is_empty() && !b.is_empty(), "the ring wrapped");
        assert_eq!([a, b].concat(), pattern(3000, 3500));
        assert_eq!(collect(&buf, 900, 200), pattern(3900, 200));
        assert_eq!(collect(&buf, 3400, 500), pattern(6400, 100));
        assert_eq!(collect(&buf, 3500, 1), Vec::<u8>::new());
        let mut out = [0u8; 300];
        assert_eq!(buf.copy_at(950, &mut out), 300);
        assert_eq!(out.to_vec(), pattern(3950, 300));
        buf.consume(10_000);
        assert!(buf.is_empty());
    }

    #[test]
    fn growth_while_wrapped_preserves_order() {
        let mut buf = SendBuffer::new(1 << 16);
        buf.write(&pattern(0, 4096));
        assert_eq!(buf.allocated(), 4096);
        buf.consume(4000);
        buf.write(&pattern(4096, 3000)); // wraps
        buf.write(&pattern(7096, 5000)); // forces growth of a wrapped ring
        assert_eq!(buf.allocated(), 8192);
        assert_eq!(collect(&buf, 0, 8096), pattern(4000, 8096));
    }

    #[test]
    fn lowering_the_limit_keeps_buffered_data() {
        let mut buf = SendBuffer::new(8000);
        buf.write(&pattern(0, 8000));
        buf.set_limit(1000);
        assert_eq!(buf.len(), 8000);
        assert_eq!(buf.limit(), 8000);
        assert_eq!(buf.free(), 0);
        assert_eq!(collect(&buf, 0, 8000), pattern(0, 8000));
        buf.consume(7500);
        assert_eq!(buf.limit(), 1000);
        assert_eq!(buf.free(), 500);
        buf.set_limit(20_000);
        assert_eq!(buf.write(&pattern(8000, 15_000)), 15_000);
        assert_eq!(buf.len(), 15_500);
        assert_eq!(collect(&buf, 0, 20_000), pattern(7500, 15_500));
    }

    #[test]
    fn release_if_empty_frees_only_idle_storage() {
        let mut buf = SendBuffer::new(8000);
        buf.write(b"abc");
        buf.release_if_empty();
        assert!(buf.allocated() > 0);
        buf.consume(3);
        buf.release_if_empty();
        assert_eq!(buf.allocated(), 0);
        assert_eq!(buf.write(b"def"), 3);
        assert_eq!(collect(&buf, 0, 3), b"def");
    }
}
