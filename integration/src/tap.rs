//! A Linux TAP device: whole Ethernet frames in and out of the kernel through
//! `/dev/net/tun`, non-blocking, with `poll(2)` for waiting.
//!
//! Every `unsafe` block of the integration crate lives in this module.

use std::ffi::CStr;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

/// Run a libc call and turn a `-1` result into the thread's `errno`
/// (the `syscall!` macro of mio).
macro_rules! syscall {
    ($fn: ident ( $($arg: expr),* $(,)* ) ) => {{
        #[allow(unused_unsafe)]
        // SAFETY: every call site passes arguments valid for `$fn` and says why in its own comment.
        let res = unsafe { libc::$fn($($arg, )*) };
        if res == -1 {
            Err(io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

/// Largest frame a TAP device hands out: the kernel limits a TAP's MTU to
/// 65535 bytes, plus the Ethernet header.
pub const MAX_FRAME: usize = 65535 + 14;

/// What `TapDevice::wait` found ready.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Readiness {
    pub readable: bool,
    pub writable: bool,
}

/// An open TAP device (IFF_TAP | IFF_NO_PI: every read and write is exactly
/// one Ethernet frame, with no packet-information prefix).
#[derive(Debug)]
pub struct TapDevice {
    fd: OwnedFd,
    name: String,
}

impl TapDevice {
    /// Attach to the TAP device `name` in the caller's network namespace, or
    /// create a transient one if none exists (it vanishes when this closes).
    pub fn open(name: &str) -> io::Result<TapDevice> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("interface name {name:?} must have 1..{} bytes", libc::IFNAMSIZ - 1),
            ));
        }
        if name.as_bytes().contains(&0) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "interface name contains NUL"));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(|e| io::Error::new(e.kind(), format!("open /dev/net/tun: {e}")))?;
        let fd = OwnedFd::from(file);

        // SAFETY: `ifreq` is plain old data for which all-zero bytes are a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
            *dst = *src as libc::c_char;
        }
        // IFF_* are small positive constants that fit the C `short` field.
        req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one `ifreq`; `req` is a valid,
        // exclusively borrowed `ifreq` that lives across the call, and `fd` is open.
        syscall!(ioctl(fd.as_raw_fd(), libc::TUNSETIFF as _, &mut req as *mut libc::ifreq))
            .map_err(|e| io::Error::new(e.kind(), format!("TUNSETIFF {name}: {e}")))?;

        // SAFETY: the kernel wrote a NUL-terminated name into the IFNAMSIZ-byte array (the zeroed tail guarantees a terminator).
        let actual = unsafe { CStr::from_ptr(req.ifr_name.as_ptr()) };
        Ok(TapDevice { fd, name: actual.to_string_lossy().into_owned() })
    }

    /// The interface name the kernel attached us to.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Read one frame into `buf`. `Ok(None)` when no frame is waiting. A frame
    /// longer than `buf` is truncated by the kernel, so pass `MAX_FRAME` bytes.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole
        // call, and `self.fd` is an open descriptor we own.
        match syscall!(read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())) {
            // read(2) returns a count in 0..=buf.len() on success.
            Ok(n) => Ok(Some(n as usize)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Write one whole frame. `Ok(false)` when the device cannot take it now
    /// (the caller keeps the frame and waits for `writable`).
    pub fn send(&self, frame: &[u8]) -> io::Result<bool> {
        // SAFETY: `frame` is valid for reads of `frame.len()` bytes for the
        // whole call, and `self.fd` is an open descriptor we own.
        match syscall!(write(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len())) {
            Ok(n) if n as usize == frame.len() => Ok(true),
            Ok(n) => Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("TAP took {n} of {} bytes of a frame", frame.len()),
            )),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Block until a frame can be read (and, if `want_write`, a frame can be
    /// written), or `timeout` passes (`None` = no limit). Sub-millisecond
    /// timeouts round up so a near deadline never turns into a busy loop.
    pub fn wait(&self, want_write: bool, timeout: Option<Duration>) -> io::Result<Readiness> {
        let mut events = libc::POLLIN;
        if want_write {
            events |= libc::POLLOUT;
        }
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events, revents: 0 };
        let timeout_ms: libc::c_int = match timeout {
            None => -1,
            Some(t) => {
                let ms = t.as_micros().div_ceil(1000);
                libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
            }
        };
        // SAFETY: `pfd` is one valid, exclusively borrowed `pollfd` for the
        // whole call, matching the count of 1.
        match syscall!(poll(&mut pfd, 1, timeout_ms)) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Readiness::default()),
            Err(e) => return Err(e),
        }
        if pfd.revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
            return Err(io::Error::other(format!("poll on TAP {}: revents {:#x}", self.name, pfd.revents)));
        }
        Ok(Readiness {
            readable: pfd.revents & libc::POLLIN != 0,
            writable: pfd.revents & libc::POLLOUT != 0,
        })
    }
}

impl AsFd for TapDevice {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_do_not_fit_ifreq_are_rejected_before_any_syscall() {
        let long = "x".repeat(libc::IFNAMSIZ);
        assert_eq!(TapDevice::open(&long).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(TapDevice::open("").unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(TapDevice::open("a\0b").unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }
}
