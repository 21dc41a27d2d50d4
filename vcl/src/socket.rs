//! [`Socket`]: a TCP socket on Sluice, with the kernel's semantics.

use std::io::{IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_shm::protocol::{Request, ShutdownHow, SockOption};

use crate::error::{Errno, Result};
use crate::io::Attempt;
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
    vcl: Arc<Vcl>,
    key: Key,
    /// Closed or turned into a key: nothing to do on drop.
    released: bool,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket").field("index", &self.key.index).field("gen", &self.key.gen).finish()
    }
}

/// Skips `skip` bytes of `bufs`.
fn advance<'a>(bufs: &'a [IoSlice<'a>], mut skip: usize) -> Vec<IoSlice<'a>> {
    let mut out = Vec::with_capacity(bufs.len());
    for b in bufs {
        if skip >= b.len() {
            skip -= b.len();
            continue;
        }
        out.push(IoSlice::new(&b[skip..]));
        skip = 0;
    }
    out
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

    fn session(&self) -> Result<&Session> {
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
        let (local, reuse_port) = {
            let setup = s.setup.lock();
            (setup.bound.unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)), setup.reuse_port)
        };
        s.accept.lock().backlog = backlog.max(1);
        let req_id = vcl.replies.register(Purpose::Listen(self.key));
        if let Err(e) = vcl.send(vcl.link.home(), &Request::Listen { req_id, local, backlog, reuse_port }) {
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
            Some(Ok(_)) if self.session()?.state() == State::Listening => Ok(()),
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

    /// Reads up to `buf.len()` bytes: queued bytes first, then a pending
    /// error once (`ECONNRESET`), then 0 at end of stream. Blocks while
    /// nothing is there (or `EAGAIN`).
    pub fn read(&self, buf: &mut [u8]) -> Result<usize> {
        self.recv(buf, MsgFlags::default())
    }

    /// [`read`](Self::read) with flags: `peek`, `dont_wait`.
    pub fn recv(&self, buf: &mut [u8], flags: MsgFlags) -> Result<usize> {
        if buf.is_empty() {
            return self.session().map(|_| 0);
        }
        if flags.peek {
            self.recv_with(&mut |f| f.peek(buf), false, flags.dont_wait)
        } else {
            self.recv_with(&mut |f| f.read(buf), true, flags.dont_wait)
        }
    }

    /// Copies queued bytes without consuming them (`MSG_PEEK`).
    pub fn peek(&self, buf: &mut [u8]) -> Result<usize> {
        self.recv(buf, MsgFlags { peek: true, dont_wait: false })
    }

    /// Reads into `bufs` in order (`readv(2)`).
    pub fn readv(&self, bufs: &mut [IoSliceMut<'_>]) -> Result<usize> {
        if bufs.iter().all(|b| b.is_empty()) {
            return self.session().map(|_| 0);
        }
        self.recv_with(&mut |f| f.read_vectored(bufs), true, false)
    }

    /// Bytes queued for reading (`FIONREAD`).
    pub fn nread(&self) -> Result<usize> {
        let s = self.session()?;
        Ok(s.daemon().and_then(|h| self.vcl.slots.words(h.index)).map_or(0, |w| w.rx_readable() as usize))
    }

    fn recv_with(
        &self,
        op: &mut dyn FnMut(&mut sluice_shm::FifoConsumer) -> Result<usize, sluice_shm::Violation>,
        consume: bool,
        dont_wait: bool,
    ) -> Result<usize> {
        let vcl = &*self.vcl;
        let mut deadline = None;
        let mut first = true;
        loop {
            vcl.drain();
            let s = self.session()?;
            if let Attempt::Done(n) = vcl.try_recv(self.key, s, op, consume)? {
                return Ok(n);
            }
            if dont_wait || s.nonblocking.load(Ordering::Relaxed) {
                return Err(Errno::EAGAIN);
            }
            if first {
                deadline = s.read_timeout().map(|t| Instant::now() + t);
                first = false;
            }
            let key = self.key;
            if !vcl.wait_until(&[&s.waiters], WaitOpts::interruptible(deadline), || vcl.recv_ready(key, s))? {
                return Err(Errno::EAGAIN);
            }
        }
    }

    /// Writes `buf`. Blocking: returns once all of it is in the TX fifo, or
    /// with the count so far when a signal or the write timeout ends the
    /// wait (`EINTR`/`EAGAIN` if nothing was written). Non-blocking: what
    /// fits, or `EAGAIN`. A reset connection fails with `ECONNRESET` once,
    /// then `EPIPE` (no `SIGPIPE`: that is the preload's business).
    pub fn write(&self, buf: &[u8]) -> Result<usize> {
        self.send(buf, MsgFlags::default())
    }

    /// [`write`](Self::write) with flags: `dont_wait`.
    pub fn send(&self, buf: &[u8], flags: MsgFlags) -> Result<usize> {
        self.send_with(buf.len(), &mut |f, done| f.write(&buf[done..]), flags.dont_wait)
    }

    /// Writes `bufs` in order (`writev(2)`).
    pub fn writev(&self, bufs: &[IoSlice<'_>]) -> Result<usize> {
        let total = bufs.iter().map(|b| b.len()).sum();
        self.send_with(
            total,
            &mut |f, done| if done == 0 { f.write_vectored(bufs) } else { f.write_vectored(&advance(bufs, done)) },
            false,
        )
    }

    fn send_with(
        &self,
        total: usize,
        op: &mut dyn FnMut(&mut sluice_shm::FifoProducer, usize) -> Result<usize, sluice_shm::Violation>,
        dont_wait: bool,
    ) -> Result<usize> {
        let vcl = &*self.vcl;
        if total == 0 {
            return self.session().map(|_| 0);
        }
        let mut done = 0;
        let mut deadline = None;
        let mut first = true;
        let partial = |done: usize, e: Errno| if done > 0 { Ok(done) } else { Err(e) };
        loop {
            vcl.drain();
            let s = match self.session() {
                Ok(s) => s,
                Err(e) => return partial(done, e),
            };
            let nonblocking = dont_wait || s.nonblocking.load(Ordering::Relaxed);
            match vcl.try_send(self.key, s, &mut |f| op(f, done)) {
                Ok(Attempt::Done(n)) => {
                    done += n;
                    if done >= total || nonblocking {
                        return Ok(done);
                    }
                    continue;
                }
                Ok(Attempt::WouldBlock) => {}
                Err(e) => return partial(done, e),
            }
            if nonblocking {
                return partial(done, Errno::EAGAIN);
            }
            if first {
                deadline = s.write_timeout().map(|t| Instant::now() + t);
                first = false;
            }
            let key = self.key;
            match vcl.wait_until(&[&s.waiters], WaitOpts::interruptible(deadline), || vcl.send_ready(key, s)) {
                Ok(true) => {}
                Ok(false) => return partial(done, Errno::EAGAIN),
                Err(e) => return partial(done, e),
            }
        }
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
