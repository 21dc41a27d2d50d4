//! The few Linux calls the protocol needs: sealed memfds, shared mappings and
//! eventfds.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::time::Duration;

use crate::region::{Backing, RawSpan};

/// Calls a libc function, turning its `-1` into the thread's `errno`.
/// Each use is an `unsafe` call: the call site's `// SAFETY:` comment covers
/// the arguments.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        // SAFETY: see the call site; the macro adds nothing beyond the call.
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

/// Seals every segment gets (design §2.2): the peer can neither shrink it
/// (which would make our accesses SIGBUS) nor grow it, nor change the seals.
pub const SEGMENT_SEALS: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;

/// Creates a close-on-exec memfd of `size` bytes that accepts seals. The
/// memory is sparse: pages are allocated on first touch.
pub fn memfd_create(name: &str, size: u64) -> io::Result<OwnedFd> {
    let name =
        std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: `name` is a valid NUL-terminated string for the call's duration.
    let fd = syscall!(memfd_create(name.as_ptr(), flags))?;
    // SAFETY: memfd_create returned a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let size =
        libc::off_t::try_from(size).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: plain integer arguments on a descriptor we own.
    syscall!(ftruncate(fd.as_raw_fd(), size))?;
    Ok(fd)
}

/// Adds `seals` (`F_SEAL_*` bits) to a memfd.
pub fn add_seals(fd: BorrowedFd<'_>, seals: libc::c_int) -> io::Result<()> {
    // SAFETY: plain integer arguments on a live descriptor.
    syscall!(fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals))?;
    Ok(())
}

/// The seals a memfd has (to check a segment received from a peer).
pub fn seals(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    // SAFETY: plain integer arguments on a live descriptor.
    syscall!(fcntl(fd.as_raw_fd(), libc::F_GET_SEALS))
}

/// Size of the file behind `fd`.
pub fn file_size(fd: BorrowedFd<'_>) -> io::Result<u64> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable `stat` for the call's duration.
    syscall!(fstat(fd.as_raw_fd(), &mut st))?;
    u64::try_from(st.st_size).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}

/// `readv` into up to two spans of shared memory.
///
/// # Safety
/// Each span must be valid for writes of its length for the whole call, and
/// nothing else may be using those bytes (a fifo's free space, owned by its
/// producer).
pub(crate) unsafe fn readv_spans(fd: BorrowedFd<'_>, spans: &[RawSpan; 2]) -> io::Result<usize> {
    let iov = spans.map(|s| s.to_iovec());
    let count = if spans[1].is_empty() { 1 } else { 2 };
    // SAFETY: the caller guarantees the iovecs name writable memory; `iov`
    // lives for the call.
    let n = syscall!(readv(fd.as_raw_fd(), iov.as_ptr(), count))?;
    Ok(n as usize)
}

/// `writev` from up to two spans of shared memory.
///
/// # Safety
/// Each span must be valid for reads of its length for the whole call.
pub(crate) unsafe fn writev_spans(fd: BorrowedFd<'_>, spans: &[RawSpan; 2]) -> io::Result<usize> {
    let iov = spans.map(|s| s.to_iovec());
    let count = if spans[1].is_empty() { 1 } else { 2 };
    // SAFETY: the caller guarantees the iovecs name readable memory; `iov`
    // lives for the call.
    let n = syscall!(writev(fd.as_raw_fd(), iov.as_ptr(), count))?;
    Ok(n as usize)
}

/// Whether a mapping may be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `PROT_READ`: the app's view of the daemon-written segment. Writing
    /// through a [`Region`](crate::Region) on it faults (SIGSEGV).
    ReadOnly,
    /// `PROT_READ | PROT_WRITE`.
    ReadWrite,
}

/// A `MAP_SHARED` mapping of a file, unmapped on drop. Wrap it in an `Arc`
/// and a [`Region`](crate::Region) to use it.
#[derive(Debug)]
pub struct Mapping {
    base: NonNull<u8>,
    len: usize,
    /// The process that mapped it; set with [`dont_fork`](Self::dont_fork),
    /// after which a forked child has no such mapping and must not unmap
    /// the range (something else of the child's may live there by then).
    dont_fork_owner: std::sync::atomic::AtomicU32,
}

// SAFETY: the mapping is plain memory owned by this value; all access goes through raw pointers and atomics, which any thread may use.
unsafe impl Send for Mapping {}
// SAFETY: as for Send.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps the first `len` bytes of `fd`, shared.
    pub fn map(fd: BorrowedFd<'_>, len: usize, access: Access) -> io::Result<Mapping> {
        if len == 0 {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let prot = match access {
            Access::ReadOnly => libc::PROT_READ,
            Access::ReadWrite => libc::PROT_READ | libc::PROT_WRITE,
        };
        // SAFETY: a fresh mapping at an address the kernel chooses; it aliases no Rust object.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::from(io::ErrorKind::Other))?;
        Ok(Mapping { base, len, dont_fork_owner: std::sync::atomic::AtomicU32::new(0) })
    }

    /// Keeps the mapping out of children created by `fork` (design §2.2: a
    /// forked child must not scribble on its parent's segment).
    pub fn dont_fork(&self) -> io::Result<()> {
        // SAFETY: the range is exactly this live mapping.
        syscall!(madvise(
            self.base.as_ptr().cast(),
            self.len,
            libc::MADV_DONTFORK
        ))?;
        self.dont_fork_owner.store(std::process::id(), std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        let owner = self.dont_fork_owner.load(std::sync::atomic::Ordering::Relaxed);
        if owner != 0 && owner != std::process::id() {
            // A forked child's copy of the value: the range was never
            // mapped here (MADV_DONTFORK).
            return;
        }
        // SAFETY: the range is exactly the mapping made in `map`, unmapped once; no Region outlives it (each holds an Arc of this Mapping).
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

// SAFETY: mmap returns page-aligned memory of `len` bytes that stays mapped until drop. Read-only mappings must only be read (a write faults).
unsafe impl Backing for Mapping {
    fn base(&self) -> NonNull<u8> {
        self.base
    }
    fn len(&self) -> usize {
        self.len
    }
}

/// A non-blocking, close-on-exec eventfd used as a wake-up signal.
#[derive(Debug)]
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// A new eventfd with counter 0.
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: integer arguments only.
        let fd = syscall!(eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC))?;
        // SAFETY: eventfd returned a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(EventFd { fd })
    }

    /// Wraps a descriptor received from the peer.
    pub fn from_fd(fd: OwnedFd) -> EventFd {
        EventFd { fd }
    }

    /// Adds 1 to the counter, waking a poller. A full counter (`EAGAIN`)
    /// already means "readable", so it counts as success.
    pub fn notify(&self) -> io::Result<()> {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live local.
        match syscall!(write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8)) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Reads and resets the counter; 0 when it was already 0.
    pub fn drain(&self) -> io::Result<u64> {
        let mut value: u64 = 0;
        // SAFETY: reads 8 bytes into a live local.
        match syscall!(read(
            self.fd.as_raw_fd(),
            (&mut value as *mut u64).cast(),
            8
        )) {
            Ok(_) => Ok(value),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Blocks in `poll` until the eventfd is readable or `timeout` passes
    /// (`None`: no timeout). Returns whether it became readable. A signal
    /// ends the wait with `ErrorKind::Interrupted`.
    pub fn wait(&self, timeout: Option<Duration>) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.map_or(-1, |t| {
            libc::c_int::try_from(t.as_millis()).unwrap_or(libc::c_int::MAX)
        });
        // SAFETY: one valid pollfd, live for the call.
        let n = syscall!(poll(&mut pfd, 1, ms))?;
        Ok(n > 0)
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::Region;
    use std::sync::Arc;

    #[test]
    fn memfd_mappings_share_memory() {
        let fd = memfd_create("sluice-test", 8192).unwrap();
        assert_eq!(file_size(fd.as_fd()).unwrap(), 8192);
        let a = Region::new(Arc::new(
            Mapping::map(fd.as_fd(), 8192, Access::ReadWrite).unwrap(),
        ));
        let b = Region::new(Arc::new(
            Mapping::map(fd.as_fd(), 8192, Access::ReadOnly).unwrap(),
        ));
        a.write_at(5000, b"shared").unwrap();
        let mut out = [0u8; 6];
        b.read_at(5000, &mut out).unwrap();
        assert_eq!(&out, b"shared");
    }

    #[test]
    fn sealed_memfd_cannot_shrink_or_grow() {
        let fd = memfd_create("sluice-seal", 4096).unwrap();
        add_seals(fd.as_fd(), SEGMENT_SEALS).unwrap();
        assert_eq!(seals(fd.as_fd()).unwrap() & SEGMENT_SEALS, SEGMENT_SEALS);
        // SAFETY: integer arguments on a descriptor we own.
        assert!(
            syscall!(ftruncate(fd.as_raw_fd(), 0)).is_err(),
            "shrinking a sealed segment fails"
        );
        // SAFETY: as above.
        assert!(
            syscall!(ftruncate(fd.as_raw_fd(), 8192)).is_err(),
            "growing a sealed segment fails"
        );
        assert!(
            add_seals(fd.as_fd(), libc::F_SEAL_WRITE).is_err(),
            "F_SEAL_SEAL freezes the seals"
        );
    }

    #[test]
    fn eventfd_counts_and_drains() {
        let efd = EventFd::new().unwrap();
        assert!(!efd.wait(Some(Duration::ZERO)).unwrap());
        assert_eq!(efd.drain().unwrap(), 0);
        efd.notify().unwrap();
        efd.notify().unwrap();
        assert!(efd.wait(Some(Duration::ZERO)).unwrap());
        assert_eq!(efd.drain().unwrap(), 2);
        assert!(!efd.wait(Some(Duration::ZERO)).unwrap());
    }

    #[test]
    fn mapping_zero_length_is_refused() {
        let fd = memfd_create("sluice-zero", 4096).unwrap();
        assert_eq!(
            Mapping::map(fd.as_fd(), 0, Access::ReadWrite)
                .unwrap_err()
                .kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
