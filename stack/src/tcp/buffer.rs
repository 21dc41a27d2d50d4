//! Per-connection byte buffers: the send buffer (unacknowledged + unsent data,
//! read at an offset for (re)transmission) and the receive buffer (in-order data
//! for the application plus out-of-order segments placed at their offset and
//! tracked by an assembler). Storage is allocated lazily and grown by doubling
//! up to the configured limit, so idle connections stay small and the steady
//! state allocates nothing.

/// Unacknowledged and unsent bytes; offset 0 is `snd_una`.
#[derive(Clone, Debug)]
pub struct SendBuffer {
    _todo: (),
}

impl SendBuffer {
    pub fn new(limit: usize) -> Self {
        let _ = limit;
        todo!()
    }
    pub fn limit(&self) -> usize {
        todo!()
    }
    /// Change the limit (SO_SNDBUF); never below what is already buffered.
    pub fn set_limit(&mut self, limit: usize) {
        let _ = limit;
        todo!()
    }
    /// Bytes buffered (sent-but-unacked plus unsent).
    pub fn len(&self) -> usize {
        todo!()
    }
    pub fn is_empty(&self) -> bool {
        todo!()
    }
    /// Room left before the limit.
    pub fn free(&self) -> usize {
        todo!()
    }
    /// Append as much of `data` as fits; returns the count.
    pub fn write(&mut self, data: &[u8]) -> usize {
        let _ = data;
        todo!()
    }
    /// Up to `len` bytes starting `offset` bytes after the front, as at most two
    /// slices (the ring may wrap). Empty slices if out of range.
    pub fn slices_at(&self, offset: usize, len: usize) -> (&[u8], &[u8]) {
        let _ = (offset, len);
        todo!()
    }
    /// Drop `n` acknowledged bytes from the front.
    pub fn consume(&mut self, n: usize) {
        let _ = n;
        todo!()
    }
    /// Bytes of storage currently allocated.
    pub fn allocated(&self) -> usize {
        todo!()
    }
}

/// Result of placing a segment's payload into the receive buffer.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Placed {
    /// Bytes of the segment that were stored (the rest did not fit the window
    /// or the out-of-order range limit).
    pub stored: usize,
    /// How far the in-order edge (rcv_nxt) advanced, including out-of-order
    /// data this segment connected.
    pub advanced: usize,
}

/// Received bytes; offset 0 is `rcv_nxt` for writes, and the application reads
/// the in-order part before it.
#[derive(Clone, Debug)]
pub struct RecvBuffer {
    _todo: (),
}

impl RecvBuffer {
    /// Out-of-order ranges tracked at the most; a segment that would need more is dropped.
    pub const MAX_RANGES: usize = 16;

    pub fn new(limit: usize) -> Self {
        let _ = limit;
        todo!()
    }
    pub fn limit(&self) -> usize {
        todo!()
    }
    pub fn set_limit(&mut self, limit: usize) {
        let _ = limit;
        todo!()
    }
    /// In-order bytes the application can read.
    pub fn readable(&self) -> usize {
        todo!()
    }
    /// Receive window: limit minus readable bytes (out-of-order data lives inside it).
    pub fn window(&self) -> usize {
        todo!()
    }
    /// Place `data` at `offset` bytes after rcv_nxt (offset 0 = in order).
    pub fn place(&mut self, offset: usize, data: &[u8]) -> Placed {
        let _ = (offset, data);
        todo!()
    }
    /// Copy out and consume up to `buf.len()` in-order bytes.
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let _ = buf;
        todo!()
    }
    /// Copy without consuming, starting `offset` bytes into the readable data.
    pub fn peek(&self, offset: usize, buf: &mut [u8]) -> usize {
        let _ = (offset, buf);
        todo!()
    }
    /// The readable bytes as at most two slices (zero-copy peek).
    pub fn readable_slices(&self) -> (&[u8], &[u8]) {
        todo!()
    }
    /// Consume `n` readable bytes (after a zero-copy peek).
    pub fn consume(&mut self, n: usize) {
        let _ = n;
        todo!()
    }
    pub fn has_out_of_order(&self) -> bool {
        todo!()
    }
    /// Out-of-order ranges as `(start_offset, end_offset)` relative to rcv_nxt,
    /// most recently updated first (RFC 2018 §4: the first SACK block reports
    /// the most recent segment).
    pub fn out_of_order_ranges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        todo!();
        #[allow(unreachable_code)]
        core::iter::empty()
    }
    pub fn allocated(&self) -> usize {
        todo!()
    }
}
