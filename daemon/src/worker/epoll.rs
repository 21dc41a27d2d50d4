//! A minimal `epoll(7)` wrapper: level-triggered interest in descriptors,
//! each tagged with a caller-chosen token. Used by the worker threads (device,
//! command bell, app doorbells) and by the control thread (listener, clients).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Readable.
pub const IN: u32 = libc::EPOLLIN as u32;
/// Writable.
pub const OUT: u32 = libc::EPOLLOUT as u32;
/// Hang-up (always reported, need not be requested).
pub const HUP: u32 = libc::EPOLLHUP as u32;
/// Error (always reported).
pub const ERR: u32 = libc::EPOLLERR as u32;
/// The peer shut its writing side down (`SOCK_SEQPACKET`/stream sockets).
pub const RDHUP: u32 = libc::EPOLLRDHUP as u32;

/// One readiness report: the token given at registration and the event bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ready {
    pub token: u64,
    pub events: u32,
}

/// An epoll instance (close-on-exec).
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
    /// Scratch for `epoll_wait` (kept so a wait does not allocate).
    buf: Vec<libc::epoll_event>,
}

impl Epoll {
    /// A new instance reporting up to `batch` descriptors per wait.
    pub fn new(batch: usize) -> io::Result<Epoll> {
        // SAFETY: plain integer argument; the result is checked below.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: epoll_create1 returned a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Epoll { fd, buf: vec![libc::epoll_event { events: 0, u64: 0 }; batch.max(1)] })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, token: u64, events: u32) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is a live, initialised epoll_event for the call; the kernel copies it and keeps no pointer to it.
        let rc = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Starts watching `fd` (an open descriptor; epoll_ctl checks it) for `events` (level-triggered), reported with `token`.
    pub fn add(&self, fd: RawFd, token: u64, events: u32) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token, events)
    }

    /// Changes the events (and token) watched on `fd`.
    pub fn modify(&self, fd: RawFd, token: u64, events: u32) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token, events)
    }

    /// Stops watching `fd`. Must be called while `fd` is still open: epoll
    /// keys its entries on the open file, so an entry whose descriptor was
    /// closed while another process holds the same file (an app's copy of a
    /// doorbell) would stay in the set and could not be removed any more
    /// (epoll(7), "Questions and answers", Q6).
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// Waits up to `timeout_ms` (-1: forever, 0: just look) and returns what
    /// is ready. A signal ends the wait early with nothing ready.
    pub fn wait(&mut self, timeout_ms: i32) -> io::Result<impl Iterator<Item = Ready> + '_> {
        let cap = libc::c_int::try_from(self.buf.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `buf` has room for `cap` events and lives across the call.
        let n = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), self.buf.as_mut_ptr(), cap, timeout_ms) };
        let n = if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
            0
        } else {
            n as usize
        };
        // `epoll_event` is packed on x86-64: copy the fields out by value.
        Ok(self.buf[..n].iter().map(|ev| {
            let (token, events) = (ev.u64, ev.events);
            Ready { token, events }
        }))
    }
}

impl AsRawFd for Epoll {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_shm::os::EventFd;

    #[test]
    fn reports_readable_descriptors_with_their_tokens_until_removed() {
        let mut ep = Epoll::new(4).unwrap();
        let a = EventFd::new().unwrap();
        let b = EventFd::new().unwrap();
        ep.add(a.as_raw_fd(), 7, IN).unwrap();
        ep.add(b.as_raw_fd(), 9, IN).unwrap();
        assert_eq!(ep.wait(0).unwrap().count(), 0);
        b.notify().unwrap();
        let ready: Vec<Ready> = ep.wait(1000).unwrap().collect();
        assert_eq!(ready, vec![Ready { token: 9, events: IN }]);
        // Level-triggered: still reported until drained.
        assert_eq!(ep.wait(0).unwrap().count(), 1);
        b.drain().unwrap();
        ep.delete(b.as_raw_fd()).unwrap();
        b.notify().unwrap();
        assert_eq!(ep.wait(0).unwrap().count(), 0);
        ep.modify(a.as_raw_fd(), 11, IN).unwrap();
        a.notify().unwrap();
        assert_eq!(ep.wait(0).unwrap().map(|r| r.token).collect::<Vec<_>>(), vec![11]);
    }
}
