//! One connection on the control socket: what it is (app or admin), and
//! the replies waiting to be sent. Every send is non-blocking: a client that
//! does not read its replies fills its socket buffer, its replies wait here,
//! and after [`STUCK_LIMIT`] it is disconnected (design §3.6), so no client
//! can stall the control thread.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use sluice_shm::control::Message;
use sluice_shm::unix_socket;

use crate::app::AppId;

/// How long a client may leave replies unread before it is dropped.
pub const STUCK_LIMIT: Duration = Duration::from_secs(5);

/// What a connection has said it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Connected, no `Hello` yet.
    New,
    /// An attached app worker.
    App(AppId),
    /// `sluice stats`/`sessions`.
    Admin,
    /// `sluice capture`: receives every captured frame.
    Capture,
}

/// A control connection.
#[derive(Debug)]
pub struct Client {
    pub sock: OwnedFd,
    pub role: Role,
    outbox: VecDeque<Vec<u8>>,
    /// When the socket buffer was last found full with replies waiting.
    blocked_since: Option<Instant>,
    /// Whether the epoll interest includes `EPOLLOUT`.
    pub watching_out: bool,
}

/// What [`Client::flush`] achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flushed {
    /// Every queued reply is sent.
    All,
    /// The socket buffer is full; the rest waits for `EPOLLOUT`.
    Blocked,
}

impl Client {
    pub fn new(sock: OwnedFd) -> Client {
        Client { sock, role: Role::New, outbox: VecDeque::new(), blocked_since: None, watching_out: false }
    }

    /// Queues a reply (sent by [`Client::flush`]).
    pub fn queue(&mut self, message: &Message, request_id: u32) {
        self.outbox.push_back(message.encode(request_id));
    }

    /// Messages waiting to be sent.
    pub fn queued(&self) -> usize {
        self.outbox.len()
    }

    /// Sends queued replies until done or the socket is full. An error
    /// means the connection is broken.
    pub fn flush(&mut self, now: Instant) -> io::Result<Flushed> {
        while let Some(bytes) = self.outbox.front() {
            match unix_socket::send(self.sock.as_fd(), bytes, &[]) {
                Ok(()) => {
                    self.outbox.pop_front();
                    self.blocked_since = None;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.blocked_since.get_or_insert(now);
                    return Ok(Flushed::Blocked);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Flushed::All)
    }

    /// When this client stops being tolerated, if it is blocked.
    pub fn deadline(&self) -> Option<Instant> {
        self.blocked_since.map(|t| t + STUCK_LIMIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::FromRawFd;

    fn pair() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: `fds` is a live 2-int array for the call.
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        assert_eq!(rc, 0);
        // SAFETY: socketpair returned two new descriptors nobody else owns.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    #[test]
    fn replies_wait_while_the_peer_does_not_read_and_flow_when_it_does() {
        let (ours, theirs) = pair();
        let mut c = Client::new(ours);
        let big = Message::Text { last: false, text: "x".repeat(60_000) };
        for _ in 0..64 {
            c.queue(&big, 1);
        }
        let t0 = Instant::now();
        assert_eq!(c.flush(t0).unwrap(), Flushed::Blocked);
        assert_eq!(c.deadline(), Some(t0 + STUCK_LIMIT));
        // A later blocked flush keeps the first time: the limit is not extended.
        assert_eq!(c.flush(t0 + Duration::from_secs(1)).unwrap(), Flushed::Blocked);
        assert_eq!(c.deadline(), Some(t0 + STUCK_LIMIT));

        let mut buf = vec![0u8; 70_000];
        let mut received = 0;
        while received < 64 {
            match unix_socket::recv(theirs.as_fd(), &mut buf, libc::MSG_DONTWAIT) {
                Ok((n, _)) => {
                    assert!(n > 60_000);
                    received += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    c.flush(Instant::now()).unwrap();
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(c.flush(Instant::now()).unwrap(), Flushed::All);
        assert_eq!(c.deadline(), None);
    }

    #[test]
    fn a_closed_peer_is_an_error() {
        let (ours, theirs) = pair();
        drop(theirs);
        let mut c = Client::new(ours);
        c.queue(&Message::Text { last: true, text: "hi".into() }, 1);
        assert!(c.flush(Instant::now()).is_err());
    }
}
