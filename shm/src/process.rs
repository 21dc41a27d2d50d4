//! Process lifetime helpers for fork support (design §4.5): a pidfd to
//! watch a forked child's death, and `pthread_atfork` registration for
//! programs that use the session library without the preload.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

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
        // SAFETY: pidfd_open takes a pid and flags by value and returns a new descriptor or -1; no memory is passed.
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
    // SAFETY: the three arguments are plain `extern "C" fn()` pointers that live for the whole program.
    let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Makes descriptor `fd` refer to what `replacement` refers to
/// (`dup2(2)`), dropping its old open file description in this process
/// only. Async-signal-safe, so a fork child handler may call it: the child
/// lets go of an inherited socket (the daemon then sees the parent's own
/// hang-up) while the descriptor number stays valid for the code that
/// still owns it and will close it later.
pub fn replace_fd(fd: RawFd, replacement: RawFd) -> io::Result<()> {
    // SAFETY: dup2 takes two integers; on a bad descriptor it fails with EBADF and changes nothing.
    let rc = unsafe { libc::dup2(replacement, fd) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Opens `/dev/null` read-only, close-on-exec: the harmless file that
/// [`replace_fd`] puts in place of a descriptor given up in a fork child.
pub fn open_dev_null() -> io::Result<OwnedFd> {
    Ok(std::fs::File::options().read(true).open("/dev/null")?.into())
}

/// What [`fork`] returned in this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forked {
    /// In the parent, with the child's pid.
    Parent(i32),
    Child,
}

/// `fork(2)`. In a multi-threaded parent the child may only make
/// async-signal-safe calls until it execs or has re-initialised what it
/// uses (`fork(2)`, `signal-safety(7)`); the caller is responsible for that.
pub fn fork() -> io::Result<Forked> {
    // SAFETY: fork has no arguments; its effects on the child's state are the caller's documented responsibility above.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
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
    fn a_replaced_fd_lets_go_of_its_old_file() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let null = open_dev_null().unwrap();
        replace_fd(a.as_raw_fd(), null.as_raw_fd()).unwrap();
        // `a`'s number now names /dev/null: the socket's only other end is
        // gone, so `b` reads end of stream.
        let mut buf = [0u8; 1];
        assert_eq!(std::io::Read::read(&mut &b, &mut buf).unwrap(), 0);
        drop(a);
    }

    #[test]
    fn no_process_is_esrch() {
        assert_eq!(PidFd::open(0).unwrap_err().raw_os_error(), Some(libc::ESRCH));
    }
}
