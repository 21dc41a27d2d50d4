//! [`Socket`]: a TCP socket on Sluice, with the kernel's semantics. This
//! file has the handle, options, addresses, shutdown and close; opening
//! (`listen`, `accept`, `connect`) is in `open.rs`, reads and writes in
//! `transfer.rs`.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use sluice_shm::protocol::{Request, ShutdownHow, SockOption};

use crate::error::{Errno, Result};
use crate::readiness::Readiness;
use crate::replies::Purpose;
use crate::session::{bits, Session, State};
use crate::table::Key;
use crate::wait::WaitOpts;
use crate::Vcl;

/// Per-call flags of [`Socket::recv`] and [`Socket::send`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsgFlags {
    /// `MSG_PEEK` (receive only): leave the bytes queued.
    pub peek: bool,
    /// `MSG_DONTWAIT`: this call does not block.
    pub dont_wait: bool,
}

/// A socket's identity as a plain number, to keep in a table (the preload's
/// fd table) and turn back into a [`Socket`] with [`Socket::from_key`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SocketKey(pub u64);

/// A TCP socket. Dropping it closes it; share it between threads with an
/// `Arc` (every method takes `&self`, as the kernel's calls take an fd).
/// A `Socket` whose session was closed through another handle fails with
/// `EBADF`.
pub struct Socket {
    pub(crate) vcl: Arc<Vcl>,
    pub(crate) key: Key,
    /// Closed or turned into a key: nothing to do on drop.
    released: bool,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket").field("index", &self.key.index).field("gen", &self.key.gen).finish()
    }
}

impl Socket {
    pub(crate) fn new(vcl: Arc<Vcl>, key: Key) -> Socket {
        Socket { vcl, key, released: false }
    }

    pub(crate) fn key(&self) -> Key {
        self.key
    }

    /// The attachment this socket lives in.
    pub fn vcl(&self) -> &Arc<Vcl> {
        &self.vcl
    }

    /// Gives up the handle without closing the socket.
    pub fn into_key(mut self) -> SocketKey {
        self.released = true;
        SocketKey(self.key.pack())
    }

    /// A handle for a key made by [`into_key`](Self::into_key). The handle
    /// owns the socket again (dropping it closes it); a key whose socket was
    /// closed gives a handle whose calls fail with `EBADF`.
    pub fn from_key(vcl: Arc<Vcl>, key: SocketKey) -> Socket {
        // An invalid key becomes one that never matches a slot's life.
        let key = Key::unpack(key.0).unwrap_or(Key { index: u32::MAX, gen: 1 });
        Socket::new(vcl, key)
    }

    /// The live session, or `ENOTCONN` for a socket a fork child inherited
    /// (the session is its parent's; see [`crate::fork`]).
    pub(crate) fn session(&self) -> Result<&Session> {
        if self.vcl.is_stale() {
            return Err(Errno::ENOTCONN);
        }
        self.vcl.table.get(self.key).ok_or(Errno::EBADF)
    }

    /// Binds to a local address before `listen` or `connect` (checked by
    /// the daemon then). `EINVAL` once bound, listening or connected.
    pub fn bind(&self, addr: SocketAddrV4) -> Result<()> {
        let s = self.session()?;
        let mut setup = s.setup.lock();
        if s.state() != State::Candidate || setup.bound.is_some() {
            return Err(Errno::EINVAL);
        }
        setup.bound = Some(addr);
        Ok(())
    }

    /// `SO_REUSEPORT` (before `listen`): share the port with other listeners
    /// that set it too.
    pub fn set_reuse_port(&self, on: bool) -> Result<()> {
        let s = self.session()?;
        s.setup.lock().reuse_port = on;
        Ok(())
    }

    /// Shuts one or both directions (`shutdown(2)`): reads then end at the
    /// queued bytes, writes fail with `EPIPE`; the daemon sends FIN after
    /// the TX fifo. On a listener, `Read`/`Both` stop it accepting.
    /// `ENOTCONN` on a socket that is not connected.
    pub fn shutdown(&self, how: ShutdownHow) -> Result<()> {
        let vcl = &*self.vcl;
        vcl.drain();
        let s = self.session()?;
        let local = match how {
            ShutdownHow::Read => bits::SHUT_RD,
            ShutdownHow::Write => bits::SHUT_WR,
            ShutdownHow::Both => bits::SHUT_RD | bits::SHUT_WR,
        };
        match (s.state(), how) {
            (State::Connected, _) | (State::Listening, ShutdownHow::Read | ShutdownHow::Both) => {}
            _ => return Err(Errno::ENOTCONN),
        }
        let handle = s.daemon().ok_or(Errno::ENOTCONN)?;
        if s.bits.fetch_or(local, Ordering::AcqRel) & local != local {
            vcl.send(s.worker(), &Request::Shutdown { handle, how })?;
        }
        s.changed(self.key);
        Ok(())
    }

    /// Closes the socket: the daemon sends what was written, then FIN (or
    /// RST with `SockOption::LingerZero`, or when unread bytes are left, as
    /// the kernel does). A listener's never-accepted connections are reset.
    pub fn close(mut self) -> Result<()> {
        self.released = true;
        self.vcl.drain();
        self.vcl.close_key(self.key, false)
    }

    /// Sets an option that takes effect in the daemon. Before the socket is
    /// known to the daemon (not yet connected or listening) it is kept and
    /// applied when it is.
    pub fn set_option(&self, option: SockOption, value: u64) -> Result<()> {
        if option == SockOption::Cork {
            return self.set_cork(value != 0);
        }
        self.send_option(option, value)
    }

    /// `SET_OPTION` to the daemon (or kept until the daemon knows the socket).
    pub(crate) fn send_option(&self, option: SockOption, value: u64) -> Result<()> {
        let vcl = &*self.vcl;
        vcl.drain();
        let s = self.session()?;
        let req_id = {
            let mut setup = s.setup.lock();
            let Some(handle) = s.daemon() else {
                setup.options.push((option, value));
                return Ok(());
            };
            let req_id = vcl.replies.register(Purpose::Wait);
            // Sent under the setup lock: after any option queued before the
            // handle existed (see `bind`).
            if let Err(e) = vcl.send(s.worker(), &Request::SetOption { req_id, handle, option, value }) {
                vcl.replies.abandon(req_id);
                return Err(e);
            }
            req_id
        };
        if let Err(e) =
            vcl.wait_until(&[&vcl.replies.waiters], WaitOpts::uninterruptible(), || vcl.replies.is_done(req_id))
        {
            vcl.replies.abandon(req_id);
            return Err(e);
        }
        match vcl.replies.take(req_id) {
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(Errno(e)),
            None => Err(Errno::EIO),
        }
    }

    /// `getsockname(2)`: the bound or assigned local address.
    pub fn local_addr(&self) -> Result<SocketAddrV4> {
        let s = self.session()?;
        if let Some(w) = s.daemon().and_then(|h| self.vcl.slots.words(h.index)) {
            return Ok(w.local_addr());
        }
        Ok(s.setup.lock().bound.unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)))
    }

    /// `getpeername(2)`: the peer's address; `ENOTCONN` unless connected.
    pub fn peer_addr(&self) -> Result<SocketAddrV4> {
        let s = self.session()?;
        if s.state() != State::Connected {
            return Err(Errno::ENOTCONN);
        }
        s.daemon().and_then(|h| self.vcl.slots.words(h.index)).map(|w| w.remote_addr()).ok_or(Errno::ENOTCONN)
    }

    /// `O_NONBLOCK`.
    pub fn set_nonblocking(&self, on: bool) -> Result<()> {
        self.session()?.nonblocking.store(on, Ordering::Relaxed);
        Ok(())
    }

    pub fn is_nonblocking(&self) -> Result<bool> {
        Ok(self.session()?.nonblocking.load(Ordering::Relaxed))
    }

    /// `SO_RCVTIMEO` (`None` or zero: none): blocking reads and accepts give
    /// `EAGAIN` after it.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        self.session()?.set_read_timeout(timeout);
        Ok(())
    }

    /// `SO_SNDTIMEO`: blocking writes give what they wrote, or `EAGAIN`,
    /// after it; a blocking connect gives `EINPROGRESS`.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        self.session()?.set_write_timeout(timeout);
        Ok(())
    }

    pub fn read_timeout(&self) -> Result<Option<Duration>> {
        Ok(self.session()?.read_timeout())
    }

    pub fn write_timeout(&self) -> Result<Option<Duration>> {
        Ok(self.session()?.write_timeout())
    }

    /// `SO_ERROR`: the pending error, cleared by reading it.
    pub fn take_error(&self) -> Result<Option<Errno>> {
        self.vcl.drain();
        Ok(self.session()?.take_errno().map(Errno))
    }

    /// What `poll(2)` would report now.
    pub fn readiness(&self) -> Result<Readiness> {
        self.vcl.drain();
        Ok(self.vcl.readiness_of(self.session()?))
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        if !self.released {
            let _ = self.vcl.close_key(self.key, false);
        }
    }
}
