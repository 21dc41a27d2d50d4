//! Opening sessions: `listen`, `accept` and `connect` on a [`Socket`].

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use sluice_shm::protocol::Request;

use crate::error::{Errno, Result};
use crate::replies::Purpose;
use crate::session::{bits, Session, State};
use crate::socket::Socket;
use crate::wait::WaitOpts;

impl Socket {
    /// Starts listening on the bound address (`0.0.0.0:0` if unbound) with
    /// `backlog` pushed-but-unaccepted connections at most. Again on a
    /// listener: nothing; on a connected socket: `EINVAL`.
    pub fn listen(&self, backlog: u32) -> Result<()> {
        let vcl = &*self.vcl;
        vcl.drain();
        let s = self.session()?;
        if s.state() == State::Listening {
            return Ok(());
        }
        if !s.transition(State::Candidate, State::ListenPending) {
            return Err(Errno::EINVAL);
        }
        let (local, reuse_port, inherited) = {
            let setup = s.setup.lock();
            (setup.bound.unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)), setup.reuse_port, setup.inherited)
        };
        s.accept.lock().backlog = backlog.max(1);
        let req_id = vcl.replies.register(Purpose::Listen(self.key));
        let request = match inherited {
            true => Request::ListenInherited { req_id, local, backlog, reuse_port },
            false => Request::Listen { req_id, local, backlog, reuse_port },
        };
        if let Err(e) = vcl.send(vcl.link.home(), &request) {
            vcl.replies.abandon(req_id);
            s.transition(State::ListenPending, State::Candidate);
            return Err(e);
        }
        let waited =
            vcl.wait_until(&[&vcl.replies.waiters], WaitOpts::uninterruptible(), || vcl.replies.is_done(req_id));
        if let Err(e) = waited {
            vcl.replies.abandon(req_id);
            return Err(e);
        }
        match vcl.replies.take(req_id) {
            Some(Ok(_)) if self.session()?.state() == State::Listening => {
                // Kept privately for a fork child, which cannot read the desc.
                let s = self.session()?;
                if let Some(w) = s.daemon().and_then(|h| vcl.slots.words(h.index)) {
                    s.setup.lock().bound = Some(w.local_addr());
                }
                crate::fork::listener_opened();
                Ok(())
            }
            Some(Ok(_)) => Err(Errno::EBADF),
            Some(Err(e)) => Err(Errno(e)),
            None => Err(Errno::EIO),
        }
    }

    /// Takes a connection from a listener: blocks until one comes (or
    /// `EAGAIN` when non-blocking or past the read timeout). Returns the
    /// connection (blocking, like `accept(2)`'s) and its peer's address.
    pub fn accept(&self) -> Result<(Socket, SocketAddrV4)> {
        let vcl = &*self.vcl;
        vcl.drain();
        let s = self.session()?;
        if s.state() != State::Listening {
            return Err(Errno::EINVAL);
        }
        vcl.ensure_accepting(s)?;
        let mut deadline = None;
        let mut first = true;
        loop {
            if let Some(conn) = vcl.pop_accepted(self.key, s)? {
                let peer = vcl
                    .table
                    .get(conn)
                    .and_then(|cs| cs.daemon())
                    .and_then(|h| vcl.slots.words(h.index))
                    .map_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0), |w| w.remote_addr());
                return Ok((Socket::new(Arc::clone(&self.vcl), conn), peer));
            }
            if s.bits.load(Ordering::Acquire) & bits::SHUT_RD != 0 {
                return Err(Errno::EINVAL);
            }
            if s.nonblocking.load(Ordering::Relaxed) {
                return Err(Errno::EAGAIN);
            }
            if first {
                deadline = s.read_timeout().map(|t| Instant::now() + t);
                first = false;
            }
            let key = self.key;
            let ready = || {
                !vcl.table.is_live(key)
                    || s.queued.load(Ordering::Acquire) > 0
                    || s.bits.load(Ordering::Acquire) & bits::SHUT_RD != 0
            };
            if !vcl.wait_until(&[&s.waiters], WaitOpts::interruptible(deadline), ready)? {
                return Err(Errno::EAGAIN);
            }
            self.session()?;
        }
    }

    /// Connects to `addr`. Blocking: returns once connected, or the error
    /// (`ECONNREFUSED`, `ETIMEDOUT`, ...); a signal gives `EINTR` and the
    /// write timeout `EINPROGRESS`, the attempt going on either way.
    /// Non-blocking: `EINPROGRESS` at once; the socket becomes writable when
    /// done and [`take_error`](Self::take_error) says how it went.
    pub fn connect(&self, addr: SocketAddrV4) -> Result<()> {
        let vcl = &*self.vcl;
        vcl.drain();
        let s = self.session()?;
        if addr.port() == 0 || addr.ip().is_unspecified() {
            return Err(Errno::ECONNREFUSED);
        }
        if addr.ip().is_broadcast() {
            return Err(Errno(libc::ENETUNREACH));
        }
        loop {
            match s.state() {
                State::Candidate => {
                    if s.transition(State::Candidate, State::Connecting) {
                        break;
                    }
                }
                State::Failed => self.reset_failed(s)?,
                State::Connecting => return Err(Errno::EALREADY),
                State::Connected | State::Listening | State::ListenPending => return Err(Errno::EISCONN),
            }
        }
        let local = s.setup.lock().bound;
        let req_id = vcl.replies.register(Purpose::Connect(self.key));
        if let Err(e) = vcl.send(vcl.link.home(), &Request::Connect { req_id, remote: addr, local }) {
            vcl.replies.abandon(req_id);
            s.transition(State::Connecting, State::Candidate);
            return Err(e);
        }
        if s.nonblocking.load(Ordering::Relaxed) {
            return Err(Errno::EINPROGRESS);
        }
        let deadline = s.write_timeout().map(|t| Instant::now() + t);
        let key = self.key;
        let ready = || !vcl.table.is_live(key) || s.state() != State::Connecting;
        if !vcl.wait_until(&[&s.waiters], WaitOpts::interruptible(deadline), ready)? {
            return Err(Errno::EINPROGRESS);
        }
        let s = self.session()?;
        match s.state() {
            State::Connected => Ok(()),
            State::Failed => Err(s.take_errno().map_or(Errno::ECONNREFUSED, Errno)),
            _ => Err(Errno::EBADF),
        }
    }

    /// A failed connection attempt is over; a new `connect` starts afresh
    /// (Linux allows it on a socket back in `TCP_CLOSE`).
    fn reset_failed(&self, s: &Session) -> Result<()> {
        let old = {
            let mut rx = s.rx.lock();
            let mut tx = s.tx.lock();
            if rx.life != self.key.gen || s.state() != State::Failed {
                return Ok(());
            }
            rx.fifo = None;
            tx.fifo = None;
            let h = s.daemon();
            s.set_daemon(None);
            s.errno.store(0, Ordering::Release);
            s.bits.store(0, Ordering::Release);
            s.set_state(State::Candidate);
            h
        };
        if let Some(handle) = old {
            self.vcl.slots.clear_owner(handle, self.key);
            self.vcl.send(s.worker(), &Request::Abort { handle })?;
        }
        Ok(())
    }
}
