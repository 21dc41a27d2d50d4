//! The receive buffer. Logically, from the ring's head: the in-order bytes
//! the application has not read yet, then the window starting at `rcv_nxt`,
//! where out-of-order segments are written at their offset and tracked by the
//! assembler until the gap before them fills (RFC 9293 §3.10.7.4: segments
//! inside the window may be kept for later processing; data beyond the
//! window is cut).

use super::assembler::{Assembler, MAX_RANGES};
use super::chunks::Chunks;

/// Result of placing a segment's payload into the receive buffer.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Placed {
    /// Bytes of the segment that were stored (the rest did not fit the window
    /// or the out-of-order range limit). Bytes already held are counted: a
    /// duplicate inside the window is "stored" again.
    pub stored: usize,
    /// How far the in-order edge (rcv_nxt) advanced, including out-of-order
    /// data this segment connected.
    pub advanced: usize,
}

/// Received bytes; offset 0 is `rcv_nxt` for writes, and the application reads
/// the in-order part before it.
#[derive(Clone, Debug)]
pub struct RecvBuffer {
    /// Sparse: only the chunks holding data are allocated, so an
    /// out-of-order segment far ahead does not allocate the window before it.
    storage: Chunks,
    /// In-order bytes before rcv_nxt not yet read.
    readable: usize,
    /// The configured maximum (SO_RCVBUF).
    limit: usize,
    assembler: Assembler,
}

impl RecvBuffer {
    /// Out-of-order ranges tracked at the most; a segment that would need more is dropped.
    pub const MAX_RANGES: usize = MAX_RANGES;

    /// No storage is allocated until data arrives.
    pub fn new(limit: usize) -> Self {
        RecvBuffer { storage: Chunks::default(), readable: 0, limit, assembler: Assembler::default() }
    }
    pub fn limit(&self) -> usize {
        self.limit
    }
    /// Change the limit (SO_RCVBUF). Buffered data, in order or not, is never
    /// dropped; a lower limit shrinks the window offered from now on.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }
    /// In-order bytes the application can read.
    pub fn readable(&self) -> usize {
        self.readable
    }
    /// Receive window: limit minus readable bytes (out-of-order data lives inside it).
    pub fn window(&self) -> usize {
        self.limit.saturating_sub(self.readable)
    }
    /// Place `data` at `offset` bytes after rcv_nxt (offset 0 = in order).
    pub fn place(&mut self, offset: usize, data: &[u8]) -> Placed {
        let window = self.window();
        if data.is_empty() || offset >= window {
            return Placed::default();
        }
        let end = offset + data.len().min(window - offset);
        if offset > 0 && !self.assembler.can_insert(offset, end) {
            return Placed::default();
        }
        let stored = self.storage.write_at(self.readable + offset, &data[..end - offset]);
        if offset > 0 {
            self.assembler.insert(offset, end);
            return Placed { stored, advanced: 0 };
        }
        let advanced = self.assembler.absorb_from(end);
        self.assembler.shift_down(advanced);
        self.readable += advanced;
        Placed { stored, advanced }
    }
    /// Copy out and consume up to `buf.len()` in-order bytes.
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let n = self.peek(0, buf);
        self.consume(n);
        n
    }
    /// Copy without consuming, starting `offset` bytes into the readable data.
    pub fn peek(&self, offset: usize, buf: &mut [u8]) -> usize {
        if offset >= self.readable {
            return 0;
        }
        let n = buf.len().min(self.readable - offset);
        self.storage.read_at(offset, &mut buf[..n])
    }
    /// The readable bytes as at most two slices (zero-copy peek). Storage is
    /// chunked, so when the bytes span more than two chunks this is only a
    /// prefix of them: consume it and call again for the rest.
    pub fn readable_slices(&self) -> (&[u8], &[u8]) {
        let first = self.storage.contiguous(0, self.readable);
        let second = self.storage.contiguous(first.len(), self.readable - first.len());
        (first, second)
    }
    /// Consume `n` readable bytes (after a zero-copy peek).
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.readable);
        self.storage.advance(n);
        self.readable -= n;
        if self.readable == 0 && self.assembler.is_empty() {
            self.storage.reset_head();
        }
    }
    /// Nothing buffered, in order or out of order.
    pub fn is_empty(&self) -> bool {
        self.readable == 0 && self.assembler.is_empty()
    }
    pub fn has_out_of_order(&self) -> bool {
        !self.assembler.is_empty()
    }
    /// Out-of-order ranges as `(start_offset, end_offset)` relative to rcv_nxt,
    /// most recently updated first (RFC 2018 §4: the first SACK block reports
    /// the most recent segment).
    pub fn out_of_order_ranges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.assembler.ranges().iter().copied()
    }
    /// Frees the storage if nothing is buffered (for idle connections); the
    /// next segment allocates again.
    pub fn release_if_empty(&mut self) {
        if self.readable == 0 && self.assembler.is_empty() {
            self.storage.release();
        }
    }
    /// Bytes of storage currently allocated.
    pub fn allocated(&self) -> usize {
        self.storage.allocated()
    }
}

#[cfg(test)]
mod tests;
