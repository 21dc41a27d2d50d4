//! Single-producer single-consumer byte fifo in shared memory.
//!
//! A fifo is a power-of-two data area plus two `u32` index words: `tail`
//! (written only by the producer) and `head` (written only by the consumer).
//! Indices count bytes and wrap at 2^32; `tail - head` (wrapping) is the
//! number of readable bytes and `index & (size - 1)` the position in the data
//! area. The size is at most 2^31, so that difference is unambiguous.
//!
//! Each half keeps its own index privately and never reads it back from
//! shared memory, and checks the peer's word against what the protocol
//! allows before using it (design §2.3): a consumer's head must lie in
//! `[last head seen, own tail]`, a producer's tail in `[last tail seen,
//! own head + size]`. An out-of-range word is returned as a [`Violation`] and
//! changes nothing, so a hostile peer can never make a half read or write
//! outside the data area or report more than `size` bytes.
//!
//! Ordering: the producer copies bytes, then stores `tail` with Release; the
//! consumer loads `tail` with Acquire before copying them out. Symmetrically
//! the consumer stores `head` with Release after its copy, and the producer
//! loads it with Acquire before overwriting the freed bytes.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::BorrowedFd;
use std::sync::atomic::Ordering;

use crate::os;

use crate::region::{LayoutError, RawSpan, Region, SharedU32};
use crate::violation::Violation;

/// Largest fifo: wrapping `u32` indices need `size <= 2^31`.
pub const MAX_FIFO_SIZE: usize = 1 << 31;

/// Where a fifo's pieces are. The index words may live in different segments
/// from each other and from the data (the design puts the daemon-written word
/// in the down segment and the app-written one in the up segment).
#[derive(Clone, Debug)]
pub struct FifoParts {
    /// Consumer-written index.
    pub head: SharedU32,
    /// Producer-written index.
    pub tail: SharedU32,
    /// The data area; its length is the fifo size.
    pub data: Region,
}

/// Geometry shared by both halves.
#[derive(Clone, Debug)]
struct Ring {
    data: Region,
    size: u32,
}

impl Ring {
    fn new(data: Region) -> Result<Ring, LayoutError> {
        let len = data.len();
        if !len.is_power_of_two() || len > MAX_FIFO_SIZE {
            return Err(LayoutError::BadCapacity { capacity: len });
        }
        Ok(Ring {
            data,
            size: len as u32,
        })
    }

    /// The (at most two) contiguous pieces of `len` bytes starting at
    /// logical index `pos`, as (offset, length) pairs.
    fn pieces(&self, pos: u32, len: u32) -> [(usize, usize); 2] {
        let offset = pos & (self.size - 1);
        let first = len.min(self.size - offset);
        [
            (offset as usize, first as usize),
            (0, (len - first) as usize),
        ]
    }

    fn copy_in(&self, pos: u32, src: &[u8]) {
        debug_assert!(src.len() <= self.size as usize);
        let [(off, first), (_, _)] = self.pieces(pos, src.len() as u32);
        // `pieces` keeps both ranges inside the data area, so these copies
        // cannot fail; a failure would be a bug in this file.
        self.data
            .write_at(off, &src[..first])
            .expect("fifo piece in bounds");
        self.data
            .write_at(0, &src[first..])
            .expect("fifo piece in bounds");
    }

    fn copy_out(&self, pos: u32, dst: &mut [u8]) {
        debug_assert!(dst.len() <= self.size as usize);
        let [(off, first), (_, _)] = self.pieces(pos, dst.len() as u32);
        let (a, b) = dst.split_at_mut(first);
        self.data.read_at(off, a).expect("fifo piece in bounds");
        self.data.read_at(0, b).expect("fifo piece in bounds");
    }

    fn spans(&self, pos: u32, len: u32) -> [RawSpan; 2] {
        self.pieces(pos, len).map(|(off, n)| {
            if n == 0 {
                RawSpan::EMPTY
            } else {
                self.data.span(off, n).expect("fifo piece in bounds")
            }
        })
    }
}

/// The writing half. Exactly one may exist per fifo.
#[derive(Debug)]
pub struct FifoProducer {
    ring: Ring,
    head: SharedU32,
    tail: SharedU32,
    /// Authoritative tail: never re-read from shared memory.
    tail_private: u32,
    /// Last valid head read; heads must never move back past it.
    head_seen: u32,
}

impl FifoProducer {
    /// The producer of an empty fifo whose indices both start at `start`.
    /// Stores `start` into the tail word; the creator of the fifo is
    /// responsible for the head word holding `start` too.
    pub fn new(parts: FifoParts, start: u32) -> Result<FifoProducer, LayoutError> {
        let ring = Ring::new(parts.data)?;
        parts.tail.store(start, Ordering::Release);
        Ok(FifoProducer {
            ring,
            head: parts.head,
            tail: parts.tail,
            tail_private: start,
            head_seen: start,
        })
    }

    /// Fifo size in bytes.
    pub fn size(&self) -> u32 {
        self.ring.size
    }

    /// Bytes that can be written now. Reads and checks the consumer's head.
    pub fn free(&mut self) -> Result<u32, Violation> {
        let head = self.head.load(Ordering::Acquire);
        // Valid heads lie in [head_seen, tail_private], measured from head_seen.
        let advanced = head.wrapping_sub(self.head_seen);
        let outstanding = self.tail_private.wrapping_sub(self.head_seen);
        if advanced > outstanding {
            return Err(Violation::FifoHead {
                head,
                low: self.head_seen,
                high: self.tail_private,
            });
        }
        self.head_seen = head;
        Ok(self.ring.size - self.tail_private.wrapping_sub(head))
    }

    /// Writes as much of `src` as fits; returns the number of bytes written.
    pub fn write(&mut self, src: &[u8]) -> Result<usize, Violation> {
        let n = (self.free()? as usize).min(src.len());
        self.ring.copy_in(self.tail_private, &src[..n]);
        self.publish(n as u32);
        Ok(n)
    }

    /// Writes as much of `bufs`, in order, as fits; publishes once.
    pub fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> Result<usize, Violation> {
        let mut room = self.free()? as usize;
        let mut written = 0usize;
        for buf in bufs {
            let n = room.min(buf.len());
            self.ring
                .copy_in(self.tail_private.wrapping_add(written as u32), &buf[..n]);
            written += n;
            room -= n;
            if room == 0 {
                break;
            }
        }
        self.publish(written as u32);
        Ok(written)
    }

    /// The free space as up to two spans (the second is empty unless the
    /// space wraps), for reading from a file or socket straight into the
    /// fifo. Fill them in order, then [`commit`](Self::commit) the count.
    pub fn writable_spans(&mut self) -> Result<[RawSpan; 2], Violation> {
        let free = self.free()?;
        Ok(self.ring.spans(self.tail_private, free))
    }

    /// Publishes `n` bytes written through [`writable_spans`](Self::writable_spans).
    ///
    /// # Panics
    /// If `n` exceeds the free space those spans covered (a caller bug).
    pub fn commit(&mut self, n: usize) {
        let free = self.ring.size - self.tail_private.wrapping_sub(self.head_seen);
        assert!(
            n <= free as usize,
            "commit of {n} bytes with only {free} free"
        );
        self.publish(n as u32);
    }

    /// Reads from `fd` (a file or socket) straight into the free space with
    /// one `readv`, and publishes what arrived. `Ok(0)` means end of file or
    /// a full fifo (without a syscall); [`free`](Self::free) tells which.
    /// A peer violation is returned
    /// as `ErrorKind::InvalidData` wrapping the [`Violation`].
    pub fn fill_from(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        let spans = self
            .writable_spans()
            .map_err(|v| io::Error::new(io::ErrorKind::InvalidData, v))?;
        if spans[0].is_empty() {
            return Ok(0);
        }
        // SAFETY: the spans are the fifo's free space inside `self.ring.data`, which `self` keeps mapped; only this producer writes free space.
        let n = unsafe { os::readv_spans(fd, &spans) }?;
        self.commit(n);
        Ok(n)
    }

    fn publish(&mut self, n: u32) {
        if n == 0 {
            return;
        }
        self.tail_private = self.tail_private.wrapping_add(n);
        self.tail.store(self.tail_private, Ordering::Release);
    }
}

/// The reading half. Exactly one may exist per fifo.
#[derive(Debug)]
pub struct FifoConsumer {
    ring: Ring,
    head: SharedU32,
    tail: SharedU32,
    /// Authoritative head: never re-read from shared memory.
    head_private: u32,
    /// Last valid tail read; published bytes cannot be taken back.
    tail_seen: u32,
}

impl FifoConsumer {
    /// The consumer of an empty fifo whose indices both start at `start`.
    /// Stores `start` into the head word.
    pub fn new(parts: FifoParts, start: u32) -> Result<FifoConsumer, LayoutError> {
        let ring = Ring::new(parts.data)?;
        parts.head.store(start, Ordering::Release);
        Ok(FifoConsumer {
            ring,
            head: parts.head,
            tail: parts.tail,
            head_private: start,
            tail_seen: start,
        })
    }

    /// Fifo size in bytes.
    pub fn size(&self) -> u32 {
        self.ring.size
    }

    /// Bytes that can be read now, never more than the size. Reads and checks
    /// the producer's tail.
    pub fn readable(&mut self) -> Result<u32, Violation> {
        let tail = self.tail.load(Ordering::Acquire);
        let avail = tail.wrapping_sub(self.head_private);
        let published = self.tail_seen.wrapping_sub(self.head_private);
        if avail > self.ring.size || avail < published {
            return Err(Violation::FifoTail {
                tail,
                low: self.tail_seen,
                high: self.head_private.wrapping_add(self.ring.size),
            });
        }
        self.tail_seen = tail;
        Ok(avail)
    }

    /// Moves up to `dst.len()` bytes out; returns how many.
    pub fn read(&mut self, dst: &mut [u8]) -> Result<usize, Violation> {
        let n = self.peek(dst)?;
        self.release(n as u32);
        Ok(n)
    }

    /// Copies up to `dst.len()` bytes out without consuming them.
    pub fn peek(&mut self, dst: &mut [u8]) -> Result<usize, Violation> {
        self.peek_at(0, dst)
    }

    /// Copies bytes starting `skip` bytes past the head, without consuming
    /// anything (the engine sends from an offset into unacknowledged data).
    pub fn peek_at(&mut self, skip: usize, dst: &mut [u8]) -> Result<usize, Violation> {
        let avail = self.readable()? as usize;
        if skip >= avail {
            return Ok(0);
        }
        let n = (avail - skip).min(dst.len());
        self.ring
            .copy_out(self.head_private.wrapping_add(skip as u32), &mut dst[..n]);
        Ok(n)
    }

    /// Moves bytes out into `bufs` in order; consumes once.
    pub fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> Result<usize, Violation> {
        let mut left = self.readable()? as usize;
        let mut read = 0usize;
        for buf in bufs.iter_mut() {
            let n = left.min(buf.len());
            self.ring
                .copy_out(self.head_private.wrapping_add(read as u32), &mut buf[..n]);
            read += n;
            left -= n;
            if left == 0 {
                break;
            }
        }
        self.release(read as u32);
        Ok(read)
    }

    /// The readable bytes as up to two spans, for writing them to a file or
    /// socket without a copy. Then [`consume`](Self::consume) what was used.
    pub fn readable_spans(&mut self) -> Result<[RawSpan; 2], Violation> {
        let avail = self.readable()?;
        Ok(self.ring.spans(self.head_private, avail))
    }

    /// Drops `n` readable bytes (after [`readable_spans`](Self::readable_spans)
    /// or a [`peek`](Self::peek)).
    ///
    /// # Panics
    /// If `n` exceeds the bytes last seen readable (a caller bug).
    pub fn consume(&mut self, n: usize) {
        let avail = self.tail_seen.wrapping_sub(self.head_private);
        assert!(
            n <= avail as usize,
            "consume of {n} bytes with only {avail} readable"
        );
        self.release(n as u32);
    }

    /// Writes the readable bytes to `fd` with one `writev` and consumes
    /// what was written. A peer violation is returned as
    /// `ErrorKind::InvalidData` wrapping the [`Violation`].
    pub fn drain_to(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        let spans = self
            .readable_spans()
            .map_err(|v| io::Error::new(io::ErrorKind::InvalidData, v))?;
        if spans[0].is_empty() {
            return Ok(0);
        }
        // A concurrent write by a hostile peer changes the bytes sent, never
        // memory safety: the kernel only reads the spans.
        // SAFETY: the spans lie inside `self.ring.data`, which `self` keeps mapped.
        let n = unsafe { os::writev_spans(fd, &spans) }?;
        self.consume(n);
        Ok(n)
    }

    fn release(&mut self, n: u32) {
        if n == 0 {
            return;
        }
        self.head_private = self.head_private.wrapping_add(n);
        self.head.store(self.head_private, Ordering::Release);
    }
}

/// A fifo in a fresh heap region laid out as `[head u32][tail u32][pad][data]`,
/// for tests and in-process use. Returns the parts and the backing region.
pub fn heap_fifo(size: usize) -> Result<(FifoParts, Region), LayoutError> {
    const DATA_OFFSET: usize = 64;
    let region = Region::heap(DATA_OFFSET + size);
    let parts = FifoParts {
        head: region.shared_u32(0)?,
        tail: region.shared_u32(4)?,
        data: region.sub(DATA_OFFSET, size)?,
    };
    Ok((parts, region))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(size: usize, start: u32) -> (FifoProducer, FifoConsumer, Region) {
        let (parts, region) = heap_fifo(size).unwrap();
        let c = FifoConsumer::new(parts.clone(), start).unwrap();
        let p = FifoProducer::new(parts, start).unwrap();
        (p, c, region)
    }

    #[test]
    fn rejects_sizes_that_are_not_powers_of_two() {
        for size in [0usize, 3, 100] {
            let (parts, _r) = heap_fifo(size).unwrap();
            assert_eq!(
                FifoProducer::new(parts, 0).unwrap_err(),
                LayoutError::BadCapacity { capacity: size }
            );
        }
    }

    #[test]
    fn write_read_wraps_across_the_end_and_the_index_space() {
        // Start just below 2^32 so the indices wrap during the test too.
        let (mut p, mut c, _r) = pair(16, u32::MAX - 5);
        assert_eq!(p.write(b"0123456789").unwrap(), 10);
        let mut out = [0u8; 6];
        assert_eq!(c.read(&mut out).unwrap(), 6);
        assert_eq!(&out, b"012345");
        assert_eq!(p.free().unwrap(), 12);
        assert_eq!(
            p.write(b"abcdefghijklmnop").unwrap(),
            12,
            "only the free space is written"
        );
        assert_eq!(c.readable().unwrap(), 16);
        let mut all = [0u8; 16];
        assert_eq!(c.read(&mut all).unwrap(), 16);
        assert_eq!(&all, b"6789abcdefghijkl");
        assert_eq!(c.readable().unwrap(), 0);
    }

    #[test]
    fn peek_at_does_not_consume() {
        let (mut p, mut c, _r) = pair(8, 0);
        p.write(b"hello").unwrap();
        let mut out = [0u8; 3];
        assert_eq!(c.peek_at(2, &mut out).unwrap(), 3);
        assert_eq!(&out, b"llo");
        assert_eq!(c.peek_at(5, &mut out).unwrap(), 0);
        assert_eq!(c.readable().unwrap(), 5);
    }

    #[test]
    fn vectored_io_fills_and_drains_in_order() {
        let (mut p, mut c, _r) = pair(8, 6);
        let n = p
            .write_vectored(&[
                IoSlice::new(b"abc"),
                IoSlice::new(b""),
                IoSlice::new(b"defghij"),
            ])
            .unwrap();
        assert_eq!(n, 8);
        let (mut a, mut b) = ([0u8; 5], [0u8; 5]);
        let n = c
            .read_vectored(&mut [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)])
            .unwrap();
        assert_eq!(n, 8);
        assert_eq!(&a, b"abcde");
        assert_eq!(&b[..3], b"fgh");
    }

    #[test]
    fn spans_cover_free_and_readable_space_in_two_pieces() {
        let (mut p, mut c, region) = pair(8, 6);
        let [s1, s2] = p.writable_spans().unwrap();
        assert_eq!(
            (s1.len(), s2.len()),
            (2, 6),
            "free space wraps at the end of the data area"
        );
        assert_eq!(s2.as_ptr(), region.sub(64, 8).unwrap().as_ptr());
        p.commit(3);
        let [r1, r2] = c.readable_spans().unwrap();
        assert_eq!((r1.len(), r2.len()), (2, 1));
        c.consume(3);
        assert_eq!(c.readable().unwrap(), 0);
        assert_eq!(p.free().unwrap(), 8);
    }

    #[test]
    fn fill_from_and_drain_to_move_bytes_through_a_socket_without_a_copy() {
        use std::io::{Read, Write};
        use std::os::fd::AsFd;
        use std::os::unix::net::UnixStream;
        let (mut p, mut c, _r) = pair(8, 5);
        let (mut app, daemon) = UnixStream::pair().unwrap();
        app.write_all(b"0123456789").unwrap();
        assert_eq!(
            p.fill_from(daemon.as_fd()).unwrap(),
            8,
            "one readv fills both wrapped pieces"
        );
        assert_eq!(
            c.drain_to(daemon.as_fd()).unwrap(),
            8,
            "one writev drains both pieces"
        );
        assert_eq!(c.drain_to(daemon.as_fd()).unwrap(), 0, "nothing left");
        let mut out = [0u8; 8];
        app.read_exact(&mut out).unwrap();
        assert_eq!(&out, b"01234567");
        assert_eq!(p.fill_from(daemon.as_fd()).unwrap(), 2);
        let mut rest = [0u8; 2];
        assert_eq!(c.read(&mut rest).unwrap(), 2);
        assert_eq!(&rest, b"89");
    }

    #[test]
    #[should_panic(expected = "commit of 9 bytes")]
    fn commit_beyond_free_space_is_a_caller_bug() {
        let (mut p, _c, _r) = pair(8, 0);
        p.commit(9);
    }

    #[test]
    fn consumer_rejects_a_tail_claiming_more_than_the_size() {
        let (mut p, mut c, _r) = pair(16, 100);
        p.write(b"abcd").unwrap();
        assert_eq!(c.readable().unwrap(), 4);
        // The hostile producer rewrites its tail word.
        for bad in [
            100 + 17,
            100 + 3,
            99,
            u32::MAX,
            100u32.wrapping_sub(1 << 31),
        ] {
            p.tail.store(bad, Ordering::Relaxed);
            assert!(
                matches!(c.readable(), Err(Violation::FifoTail { tail, .. }) if tail == bad),
                "tail {bad}"
            );
            let mut buf = [0u8; 64];
            assert!(c.read(&mut buf).is_err());
        }
        // A tail back in range is accepted again; nothing was consumed meanwhile.
        p.tail.store(100 + 16, Ordering::Relaxed);
        assert_eq!(c.readable().unwrap(), 16);
    }

    #[test]
    fn producer_rejects_a_head_out_of_range() {
        let (mut p, mut c, _r) = pair(16, 0);
        p.write(b"abcdefgh").unwrap();
        let mut out = [0u8; 2];
        c.read(&mut out).unwrap();
        assert_eq!(p.free().unwrap(), 10);
        for bad in [9u32, 1, u32::MAX, 1000] {
            c.head.store(bad, Ordering::Relaxed);
            assert!(
                matches!(p.free(), Err(Violation::FifoHead { head, .. }) if head == bad),
                "head {bad}"
            );
            assert!(p.write(b"x").is_err());
        }
        // Head at the tail (everything read) is legal.
        c.head.store(8, Ordering::Relaxed);
        assert_eq!(p.free().unwrap(), 16);
    }
}
