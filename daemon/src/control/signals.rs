//! Waiting for SIGINT/SIGTERM without a signal handler: the signals are
//! blocked and read from a `signalfd(2)`, so nothing runs in signal context
//! (no async-signal-safety concerns) and the wait can include other
//! descriptors (a daemon thread that failed).
//!
//! The mask must be set before any other thread starts: threads inherit
//! their creator's mask, and a signal sent to the process is delivered to
//! any thread that does not block it (signal(7)); if one did not, it would
//! take the default action (terminate) there instead of reaching the fd.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// What ended a [`TerminationSignals::wait`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// This signal arrived.
    Signal(i32),
    /// The other descriptor became readable.
    Other,
}

/// SIGINT and SIGTERM, blocked in this thread and readable from a signalfd.
#[derive(Debug)]
pub struct TerminationSignals {
    fd: OwnedFd,
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

impl TerminationSignals {
    /// Blocks SIGINT and SIGTERM in the calling thread (and every thread it
    /// starts afterwards) and opens a signalfd for them.
    pub fn block() -> io::Result<TerminationSignals> {
        // SAFETY: sigset_t is plain data; sigemptyset initialises it below.
        let mut set: libc::sigset_t = unsafe { mem::zeroed() };
        // SAFETY: `set` is a valid sigset_t for each call; the signal numbers are valid.
        unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
        }
        // SAFETY: `set` is initialised; the old mask is not wanted (null).
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        // SAFETY: -1 asks for a new signalfd; `set` is initialised.
        let fd = check(unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC) })?;
        // SAFETY: signalfd returned a new descriptor nothing else owns.
        Ok(TerminationSignals { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// Waits until SIGINT/SIGTERM arrives or `other` becomes readable.
    pub fn wait(&self, other: BorrowedFd<'_>) -> io::Result<Wake> {
        loop {
            let mut fds = [
                libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 },
                libc::pollfd { fd: other.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            ];
            // SAFETY: `fds` is a live array of two pollfds for the call.
            match check(unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) }) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if fds[0].revents & libc::POLLIN != 0 {
                // SAFETY: signalfd_siginfo is plain data; all-zero is valid.
                let mut info: libc::signalfd_siginfo = unsafe { mem::zeroed() };
                let size = mem::size_of::<libc::signalfd_siginfo>();
                let n =
                    // SAFETY: `info` is valid for writes of `size` bytes for the call.
                    unsafe { libc::read(self.fd.as_raw_fd(), (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
                if n == size as isize {
                    return Ok(Wake::Signal(info.ssi_signo as i32));
                }
                continue;
            }
            if fds[1].revents != 0 {
                return Ok(Wake::Other);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_shm::os::EventFd;
    use std::os::fd::AsFd;

    #[test]
    fn a_signal_to_this_thread_is_read_not_delivered() {
        // On a thread of its own, so the mask does not leak into other tests.
        std::thread::spawn(|| {
            let signals = TerminationSignals::block().unwrap();
            let other = EventFd::new().unwrap();
            // Why this is sound: pthread_self is always valid; SIGTERM is blocked in
            // this thread, so it stays pending for the signalfd instead of
            // terminating the process.
            // SAFETY: SIGTERM is blocked in this thread, so it only becomes pending.
            let rc = unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGTERM) };
            assert_eq!(rc, 0);
            assert_eq!(signals.wait(other.as_fd()).unwrap(), Wake::Signal(libc::SIGTERM));
            other.notify().unwrap();
            assert_eq!(signals.wait(other.as_fd()).unwrap(), Wake::Other);
        })
        .join()
        .unwrap();
    }
}
