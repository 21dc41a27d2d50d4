//! Raw views of memory shared with another process.
//!
//! The peer (an app, for the daemon) may write any byte of a shared segment at
//! any time. Rust forbids a `&T`/`&mut T` to memory that someone else mutates,
//! so a [`Region`] never hands out one: index words are reached as atomics
//! (whose shared references are sound under concurrent writes), payload bytes
//! are moved with raw-pointer copies into or out of private buffers, and
//! zero-copy access is offered as [`RawSpan`]s (pointer + length, for
//! `readv`/`pread`-style syscalls) rather than slices.
//!
//! All the raw-pointer work of the crate's ring and fifo code happens in the
//! few small functions of this file.

use std::alloc::{self, Layout};
use std::fmt;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::Arc;

/// Memory that a [`Region`] views: a shared mapping, or an aligned heap
/// buffer in tests and in-process setups.
///
/// # Safety
/// `base()` must point to `len()` bytes that are readable (and writable, if
/// any writing accessor is used on them), aligned to at least 64 bytes, and
/// that stay mapped at the same address until the implementor is dropped.
pub unsafe trait Backing: Send + Sync + 'static {
    /// First byte of the memory.
    fn base(&self) -> NonNull<u8>;
    /// Length in bytes.
    fn len(&self) -> usize;
    /// Whether the memory has no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Alignment of [`HeapMemory`]: a page, like a real mapping, so layouts that
/// work on the heap also work on a memfd.
const HEAP_ALIGN: usize = 4096;

/// Zeroed, page-aligned heap memory. Stands in for a mapping in tests and
/// when both ends of a protocol live in one process.
pub struct HeapMemory {
    base: NonNull<u8>,
    layout: Layout,
}

impl HeapMemory {
    /// Allocates `len` zeroed bytes (at least one byte is allocated).
    ///
    /// # Panics
    /// If `len` overflows a `Layout` (a caller bug, never peer input).
    pub fn zeroed(len: usize) -> HeapMemory {
        let layout =
            Layout::from_size_align(len.max(1), HEAP_ALIGN).expect("heap region too large");
        // SAFETY: the layout has a non-zero size (len.max(1)).
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let Some(base) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        HeapMemory { base, layout }
    }
}

impl Drop for HeapMemory {
    fn drop(&mut self) {
        // SAFETY: `base` came from `alloc_zeroed` with exactly this layout and is freed once, here.
        unsafe { alloc::dealloc(self.base.as_ptr(), self.layout) }
    }
}

// SAFETY: the buffer is only ever accessed through raw pointers and atomics (never references), which is what concurrent access from several threads requires; the pointer itself is owned by this value.
unsafe impl Send for HeapMemory {}
// SAFETY: as for Send.
unsafe impl Sync for HeapMemory {}

// SAFETY: `base` points to `layout.size()` bytes (>= the requested len), aligned to 4096, owned until drop.
unsafe impl Backing for HeapMemory {
    fn base(&self) -> NonNull<u8> {
        self.base
    }
    fn len(&self) -> usize {
        self.layout.size()
    }
}

/// A layout that does not fit the memory it was applied to. Layouts come from
/// the creator's private geometry, so this is a configuration error, reported
/// rather than panicked on because a segment's size may come from a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// `offset + len` lies beyond the region.
    OutOfBounds {
        offset: usize,
        len: usize,
        region_len: usize,
    },
    /// An atomic word's offset is not a multiple of its size.
    Misaligned { offset: usize, align: usize },
    /// A fifo or ring capacity that is not a non-zero power of two in range.
    BadCapacity { capacity: usize },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LayoutError::OutOfBounds {
                offset,
                len,
                region_len,
            } => {
                write!(
                    f,
                    "{len} bytes at offset {offset} exceed a region of {region_len} bytes"
                )
            }
            LayoutError::Misaligned { offset, align } => {
                write!(f, "offset {offset} is not aligned to {align}")
            }
            LayoutError::BadCapacity { capacity } => {
                write!(f, "capacity {capacity} is not a power of two in range")
            }
        }
    }
}

impl std::error::Error for LayoutError {}

/// A bounds-checked window onto [`Backing`] memory. Cloning is cheap (an
/// `Arc`), and every clone keeps the memory mapped.
#[derive(Clone)]
pub struct Region {
    backing: Arc<dyn Backing>,
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: a Region only reaches its memory through atomics and raw copies, which are sound from any thread; `Backing` is Send + Sync.
unsafe impl Send for Region {}
// SAFETY: as for Send.
unsafe impl Sync for Region {}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("base", &self.base)
            .field("len", &self.len)
            .finish()
    }
}

impl Region {
    /// The whole of `backing`.
    pub fn new(backing: Arc<dyn Backing>) -> Region {
        let (base, len) = (backing.base(), backing.len());
        Region { backing, base, len }
    }

    /// A fresh zeroed heap region of `len` bytes.
    pub fn heap(len: usize) -> Region {
        let region = Region::new(Arc::new(HeapMemory::zeroed(len)));
        region
            .sub(0, len)
            .expect("heap memory is at least len bytes")
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn check(&self, offset: usize, len: usize) -> Result<(), LayoutError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(LayoutError::OutOfBounds {
                offset,
                len,
                region_len: self.len,
            }),
        }
    }

    /// The `len` bytes at `offset`, as a region of their own.
    pub fn sub(&self, offset: usize, len: usize) -> Result<Region, LayoutError> {
        self.check(offset, len)?;
        // SAFETY: offset + len <= self.len, so the result stays inside (or one past the end of) the same allocation.
        let base = unsafe { NonNull::new_unchecked(self.base.as_ptr().add(offset)) };
        Ok(Region {
            backing: Arc::clone(&self.backing),
            base,
            len,
        })
    }

    fn word_ptr(&self, offset: usize, size: usize) -> Result<*mut u8, LayoutError> {
        self.check(offset, size)?;
        let addr = self.base.as_ptr() as usize + offset;
        // `size` is 4 or 8, a power of two.
        if addr & (size - 1) != 0 {
            return Err(LayoutError::Misaligned {
                offset,
                align: size,
            });
        }
        // SAFETY: in bounds, checked above.
        Ok(unsafe { self.base.as_ptr().add(offset) })
    }

    /// The `u32` at `offset` as an atomic.
    ///
    /// # Panics
    /// If the word is out of bounds or misaligned: offsets are the caller's
    /// own layout constants, never peer input (use [`Region::shared_u32`] to
    /// check a layout once up front).
    pub fn atomic_u32(&self, offset: usize) -> &AtomicU32 {
        let ptr = self
            .word_ptr(offset, 4)
            .expect("atomic u32 outside its region");
        // An `&AtomicU32` is sound even while another thread or process writes
        // the word, since all access to it is atomic (interior mutability).
        // SAFETY: in bounds and 4-aligned (checked); the memory lives as long as `self` (Backing contract).
        unsafe { &*ptr.cast::<AtomicU32>() }
    }

    /// The `u64` at `offset` as an atomic. Panics like [`Region::atomic_u32`].
    pub fn atomic_u64(&self, offset: usize) -> &AtomicU64 {
        let ptr = self
            .word_ptr(offset, 8)
            .expect("atomic u64 outside its region");
        // SAFETY: as in `atomic_u32`, with 8-byte alignment checked.
        unsafe { &*ptr.cast::<AtomicU64>() }
    }

    /// An owned handle to the `u32` at `offset`, checked once here.
    pub fn shared_u32(&self, offset: usize) -> Result<SharedU32, LayoutError> {
        self.word_ptr(offset, 4)?;
        Ok(SharedU32 {
            region: self.sub(offset, 4)?,
        })
    }

    /// An owned handle to the `u64` at `offset`, checked once here.
    pub fn shared_u64(&self, offset: usize) -> Result<SharedU64, LayoutError> {
        self.word_ptr(offset, 8)?;
        Ok(SharedU64 {
            region: self.sub(offset, 8)?,
        })
    }

    /// Copies `src` into the region at `offset`.
    pub fn write_at(&self, offset: usize, src: &[u8]) -> Result<(), LayoutError> {
        self.check(offset, src.len())?;
        // A raw copy forms no reference to the shared bytes, which the peer
        // may write concurrently.
        // SAFETY: the destination is in bounds (checked); `src` is private, so they cannot overlap.
        unsafe { ptr::copy_nonoverlapping(src.as_ptr(), self.base.as_ptr().add(offset), src.len()) }
        Ok(())
    }

    /// Copies bytes at `offset` out of the region into `dst`. A concurrent
    /// write by the peer may tear the copy; the bytes are then garbage the
    /// caller validates, never a memory-safety problem for the caller.
    pub fn read_at(&self, offset: usize, dst: &mut [u8]) -> Result<(), LayoutError> {
        self.check(offset, dst.len())?;
        // SAFETY: the source range is in bounds (checked) and `dst` is private, so they cannot overlap; no reference to shared bytes is formed.
        unsafe {
            ptr::copy_nonoverlapping(self.base.as_ptr().add(offset), dst.as_mut_ptr(), dst.len())
        }
        Ok(())
    }

    /// Like [`read_at`](Self::read_at), with one volatile load per byte.
    /// For small records that are decoded after the copy (request bodies):
    /// a plain `memcpy` lets the optimiser forward later reads of `dst` to
    /// the shared source, so a field checked in the copy could be re-fetched,
    /// changed by the peer, from shared memory. Volatile loads are never
    /// merged or repeated, so each shared byte is read exactly once.
    pub fn read_volatile_at(&self, offset: usize, dst: &mut [u8]) -> Result<(), LayoutError> {
        self.check(offset, dst.len())?;
        for (i, byte) in dst.iter_mut().enumerate() {
            // SAFETY: offset + i < offset + dst.len() <= self.len (checked); a raw volatile load forms no reference to the shared byte.
            *byte = unsafe { ptr::read_volatile(self.base.as_ptr().add(offset + i)) };
        }
        Ok(())
    }

    /// Pointer and length of `len` bytes at `offset`, for zero-copy syscalls.
    pub fn span(&self, offset: usize, len: usize) -> Result<RawSpan, LayoutError> {
        self.check(offset, len)?;
        // SAFETY: in bounds, checked above.
        let ptr = unsafe { self.base.as_ptr().add(offset) };
        Ok(RawSpan { ptr, len })
    }

    /// Start of the region, for comparisons and syscalls.
    pub fn as_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }
}

/// A `u32` in shared memory, owned (keeps its memory mapped).
#[derive(Clone, Debug)]
pub struct SharedU32 {
    region: Region,
}

impl std::ops::Deref for SharedU32 {
    type Target = AtomicU32;
    fn deref(&self) -> &AtomicU32 {
        self.region.atomic_u32(0)
    }
}

/// A `u64` in shared memory, owned (keeps its memory mapped).
#[derive(Clone, Debug)]
pub struct SharedU64 {
    region: Region,
}

impl std::ops::Deref for SharedU64 {
    type Target = AtomicU64;
    fn deref(&self) -> &AtomicU64 {
        self.region.atomic_u64(0)
    }
}

/// Pointer and length of bytes in shared memory, for zero-copy I/O: pass it
/// to `readv`/`pread`/`writev` as an iovec. It is deliberately not a slice:
/// the peer may write those bytes, and a Rust reference to them would be
/// undefined behaviour. It is valid while the [`Region`] it came from lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawSpan {
    ptr: *mut u8,
    len: usize,
}

impl RawSpan {
    /// The empty span.
    pub const EMPTY: RawSpan = RawSpan {
        ptr: ptr::null_mut(),
        len: 0,
    };

    /// First byte.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the span has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The span as a `libc::iovec` for `readv`/`writev`/`preadv`.
    pub fn to_iovec(&self) -> libc::iovec {
        libc::iovec {
            iov_base: self.ptr.cast(),
            iov_len: self.len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn heap_region_is_zeroed_and_page_aligned() {
        let r = Region::heap(10_000);
        assert_eq!(r.len(), 10_000);
        assert_eq!(r.as_ptr() as usize % 4096, 0);
        let mut buf = vec![0xffu8; 10_000];
        r.read_at(0, &mut buf).unwrap();
        assert!(buf.iter().all(|&b| b == 0));
    }

    #[test]
    fn copies_round_trip_and_are_bounds_checked() {
        let r = Region::heap(64);
        r.write_at(60, &[1, 2, 3, 4]).unwrap();
        let mut out = [0u8; 4];
        r.read_at(60, &mut out).unwrap();
        assert_eq!(out, [1, 2, 3, 4]);
        assert_eq!(
            r.write_at(61, &[0; 4]),
            Err(LayoutError::OutOfBounds {
                offset: 61,
                len: 4,
                region_len: 64
            })
        );
        assert!(
            r.read_at(usize::MAX, &mut out).is_err(),
            "offset overflow is an error, not a wrap"
        );
        assert!(r.span(0, 65).is_err());
    }

    #[test]
    fn volatile_reads_copy_the_same_bytes_and_check_bounds() {
        let r = Region::heap(64);
        r.write_at(8, b"request body").unwrap();
        let mut out = [0u8; 12];
        r.read_volatile_at(8, &mut out).unwrap();
        assert_eq!(&out, b"request body");
        assert!(r.read_volatile_at(60, &mut out).is_err());
    }

    #[test]
    fn sub_regions_share_memory_and_nest_bounds() {
        let r = Region::heap(256);
        let s = r.sub(128, 64).unwrap();
        s.write_at(0, &[7]).unwrap();
        let mut b = [0u8];
        r.read_at(128, &mut b).unwrap();
        assert_eq!(b, [7]);
        assert!(
            s.sub(1, 64).is_err(),
            "a sub-region cannot reach past its own end"
        );
    }

    #[test]
    fn words_are_checked_for_alignment_and_bounds() {
        let r = Region::heap(64);
        assert_eq!(
            r.shared_u32(2).unwrap_err(),
            LayoutError::Misaligned {
                offset: 2,
                align: 4
            }
        );
        assert!(r.shared_u64(60).is_err());
        let w = r.shared_u64(56).unwrap();
        w.store(0x0102_0304_0506_0708, Ordering::Relaxed);
        assert_eq!(
            r.atomic_u64(56).load(Ordering::Relaxed),
            0x0102_0304_0506_0708
        );
        drop(r);
        // The handle keeps the memory alive after the region is dropped.
        assert_eq!(w.load(Ordering::Relaxed), 0x0102_0304_0506_0708);
    }
}
