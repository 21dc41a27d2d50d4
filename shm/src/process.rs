//! Process lifetime helpers for fork support (design §4.5): a pidfd to
//! watch a forked child's death, and `pthread_atfork` registration for
//! programs that use the session library without the preload.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

/// A pidfd (`pidfd_open(2)`): refers to one process for its whole life,
/// never to a later process that reuses its pid, and polls readable once
/// the process has exited.
#[derive(Debug)]
pub struct PidFd {
    fd: OwnedFd,
    pid: i32,
}

impl PidFd {
    /// Opens a pidfd for `pid` (Linux 5.3+). `ESRCH` if no such process.
    pub fn open(pid: i32) -> io::Result<PidFd> {
        if pid <= 0 {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        // SAFETY: pidfd_open takes a pid and flags by value and returns a new
        // descriptor or -1; no memory is passed.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_long, 0 as libc::c_long) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this descriptor, and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        Ok(PidFd { fd, pid })
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Whether the process has exited (its pidfd polls readable; a zombie
    /// counts as exited: it holds no descriptors any more).
    pub fn has_exited(&self) -> bool {
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd on the stack, count 1, timeout 0 (no wait).
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        n > 0 && pfd.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
    }
}

impl AsFd for PidFd {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Registers fork handlers with `pthread_atfork(3)`: `prepare` runs in the
/// parent before `fork`, `parent` in the parent after it, `child` in the
/// child. The handlers run for every later `fork` in the process, including
/// those glibc's `system`/`posix_spawn` fallbacks make; the child handler
/// must be async-signal-safe (only atomics and `close`).
pub fn register_atfork(prepare: extern "C" fn(), parent: extern "C" fn(), child: extern "C" fn()) -> io::Result<()> {
    // SAFETY: the three arguments are plain `extern "C" fn()` pointers that
    // live for the whole program.
    let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pidfd_sees_its_process_exit() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "read x"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pidfd = PidFd::open(child.id() as i32).unwrap();
        assert!(!pidfd.has_exited());
        drop(child.stdin.take());
        child.wait().unwrap();
        assert!(pidfd.has_exited());
    }

    #[test]
    fn no_process_is_esrch() {
        assert_eq!(PidFd::open(0).unwrap_err().raw_os_error(), Some(libc::ESRCH));
    }
}
