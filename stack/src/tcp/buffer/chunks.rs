//! Sparse byte storage for the receive buffer: logical offsets are cut into
//! fixed-size chunks, each allocated when first written. A segment far ahead
//! of RCV.NXT therefore costs one chunk, not the whole window up to it (Linux
//! likewise charges only the queued skb), and a connection holds storage in
//! proportion to the bytes it actually buffers.
//!
//! Chunks are never freed while the connection is in use: one the reader has
//! moved past goes to the back of the queue and is reused for later data, so
//! once a connection has grown, receiving allocates nothing. `release` frees
//! everything when the owner knows nothing is buffered.

use std::collections::VecDeque;

/// Bytes per chunk: a page, so a tiny out-of-order segment costs little and
/// a full-size segment spans at most two chunks.
pub(super) const CHUNK: usize = 4096;

type Chunk = Box<[u8; CHUNK]>;

#[derive(Clone, Debug, Default)]
pub(super) struct Chunks {
    /// `chunks[i]` holds logical offsets `[i * CHUNK - head, (i + 1) * CHUNK - head)`;
    /// `None` where nothing was written yet.
    chunks: VecDeque<Option<Chunk>>,
    /// Position of logical offset 0 inside the first chunk; always `< CHUNK`.
    /// (`u32` keeps `TcpConn` small; both counts are far below 2^32.)
    head: u32,
    /// Chunks allocated (`Some` entries).
    allocated: u32,
}

impl Chunks {
    /// Bytes of chunk storage allocated.
    pub(super) fn allocated(&self) -> usize {
        self.allocated as usize * CHUNK
    }

    /// Frees every chunk; only valid when nothing is live.
    pub(super) fn release(&mut self) {
        *self = Chunks::default();
    }

    /// Puts logical offset 0 at the start of the first chunk; only valid
    /// when nothing is live.
    pub(super) fn reset_head(&mut self) {
        self.head = 0;
    }

    /// Drops the first `n` logical bytes. Chunks left entirely behind move
    /// to the back of the queue for reuse (they keep their allocation).
    pub(super) fn advance(&mut self, n: usize) {
        let mut head = self.head as usize + n;
        while head >= CHUNK {
            head -= CHUNK;
            if let Some(Some(chunk)) = self.chunks.pop_front() {
                self.chunks.push_back(Some(chunk));
            }
        }
        self.head = head as u32;
    }

    /// Copies `data` to logical offset `offset`, allocating the chunks it
    /// touches; returns the bytes copied (all of them).
    pub(super) fn write_at(&mut self, offset: usize, data: &[u8]) -> usize {
        let mut done = 0;
        while done < data.len() {
            let (index, within) = self.locate(offset + done);
            let n = (data.len() - done).min(CHUNK - within);
            let chunk = self.chunk_mut(index);
            chunk[within..within + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
        done
    }

    /// Copies logical `[offset, offset + buf.len())` into `buf`; stops early
    /// at a chunk never written (the owner only reads what it wrote).
    pub(super) fn read_at(&self, offset: usize, buf: &mut [u8]) -> usize {
        let mut done = 0;
        while done < buf.len() {
            let piece = self.contiguous(offset + done, buf.len() - done);
            if piece.is_empty() {
                break;
            }
            buf[done..done + piece.len()].copy_from_slice(piece);
            done += piece.len();
        }
        done
    }

    /// The longest run of logical `[offset, offset + len)` stored
    /// contiguously (up to the end of its chunk); empty if not written.
    pub(super) fn contiguous(&self, offset: usize, len: usize) -> &[u8] {
        let (index, within) = self.locate(offset);
        match self.chunks.get(index) {
            Some(Some(chunk)) => &chunk[within..within + len.min(CHUNK - within)],
            _ => &[],
        }
    }

    /// Chunk index and position inside it of a logical offset.
    fn locate(&self, offset: usize) -> (usize, usize) {
        let position = self.head as usize + offset;
        (position / CHUNK, position % CHUNK)
    }

    /// The chunk at `index`, allocated (and the queue extended) if needed.
    fn chunk_mut(&mut self, index: usize) -> &mut Chunk {
        if self.chunks.len() <= index {
            self.chunks.resize_with(index + 1, || None);
        }
        let slot = &mut self.chunks[index];
        if slot.is_none() {
            self.allocated += 1;
        }
        slot.get_or_insert_with(|| Box::new([0u8; CHUNK]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(start: usize, len: usize) -> Vec<u8> {
        (start..start + len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn a_far_write_allocates_only_the_chunks_it_touches() {
        let mut chunks = Chunks::default();
        assert_eq!(chunks.write_at(100 * CHUNK + 5, b"x"), 1);
        assert_eq!(chunks.allocated(), CHUNK);
        assert_eq!(chunks.write_at(3 * CHUNK - 2, b"abcd"), 4);
        assert_eq!(chunks.allocated(), 3 * CHUNK);
        let mut out = [0u8; 4];
        assert_eq!(chunks.read_at(3 * CHUNK - 2, &mut out), 4);
        assert_eq!(&out, b"abcd");
        // Reading runs into a chunk never written: it stops there.
        assert_eq!(chunks.read_at(CHUNK - 2, &mut [0u8; 8]), 0);
    }

    #[test]
    fn a_steady_stream_reuses_its_chunks() {
        let mut chunks = Chunks::default();
        let (mut written, mut read) = (0, 0);
        for _ in 0..200 {
            chunks.write_at(written - read, &pattern(written, 1460));
            written += 1460;
            if written - read > 2 * CHUNK {
                let mut out = vec![0u8; 1460];
                assert_eq!(chunks.read_at(0, &mut out), 1460);
                assert_eq!(out, pattern(read, 1460), "at {read}");
                chunks.advance(1460);
                read += 1460;
            }
        }
        // At most 2 * CHUNK + 1460 bytes are live: they span at most 4 chunks.
        assert!(chunks.allocated() <= 4 * CHUNK, "{} bytes allocated", chunks.allocated());
        chunks.release();
        assert_eq!(chunks.allocated(), 0);
    }

    #[test]
    fn contiguous_runs_end_at_chunk_boundaries() {
        let mut chunks = Chunks::default();
        chunks.write_at(0, &pattern(0, 2 * CHUNK));
        chunks.advance(CHUNK - 10);
        assert_eq!(chunks.contiguous(0, 100), &pattern(CHUNK - 10, 10)[..]);
        assert_eq!(chunks.contiguous(10, 100), &pattern(CHUNK, 100)[..]);
        assert_eq!(chunks.contiguous(2 * CHUNK, 100), &[][..]);
    }
}
