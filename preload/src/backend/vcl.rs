//! `SLUICE_BACKEND=vcl` (the default): sessions of the Sluice daemon, through
//! the session library `sluice-vcl` (design §5).
//!
//! * The process attaches to the daemon at its first Sluice socket
//!   (`attachment`); when that fails the socket is `Unreachable` and
//!   `SLUICE_FALLBACK` applies. A daemon that died is attached to again by
//!   the next new socket (the old sessions fail with `ENETDOWN`).
//! * A [`SessionRef`] is a vcl [`SocketKey`] plus the attachment's epoch:
//!   `epoch << 53 | generation << 21 | slot` (vcl has at most 2^21 slots), so
//!   a reference from another attachment (the parent's, in a forked child;
//!   one from before the daemon restarted) fails with `EBADF` instead of
//!   reaching a session of the new one.
//! * Per session the backend keeps a record (`records.rs`): descriptor
//!   references and the option values `getsockopt` reports. Only setup and
//!   option calls take its lock; reads and writes go to vcl directly.
//! * Readiness of mixed sets is in `wait.rs` (`poll`, `epoll_*`); options in
//!   `options.rs`.
//!
//! # fork
//! The fork hooks are vcl's fork support (`sluice_vcl::fork`):
//! [`Backend::before_fork`] runs `fork::prepare` and takes the backend's
//! locks, [`Backend::after_fork_child`] runs `fork::child` (atomics and
//! `dup2` only) and forgets the parent's attachment as the current one,
//! [`Backend::after_fork_parent`] reports the child to the daemon
//! (`fork::parent`, which waits for the daemon's answer, never for the
//! child). The child's inherited sessions are `inherited.rs`'s: a listener
//! is re-created on its first use (and joins the parent's listen group, so
//! pre-fork servers and nginx's workers share the connections), a
//! connection stays the parent's (`ENOTCONN`), closing either is local.
//! The attachment is vcl's process-wide one ([`Vcl::global`]), which
//! `fork::parent` reports through.
//!
//! # exec
//! Sessions reach an exec'd image as descriptions in `SLUICE_INHERITED`,
//! which its preload adopts at start and re-creates at first use like a
//! fork child's (`exec.rs`).
//!
//! The epoch has 9 bits: after 512 attachments in one process lineage an old
//! reference could name a session again (generation and slot must match too).

mod exec;
mod inherited;
mod options;
mod records;
mod wait;

use std::io::{IoSlice, IoSliceMut};
use std::net::SocketAddrV4;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use libc::c_int;
use sluice_vcl::{fork, MsgFlags, ShutdownHow, Socket, SocketKey, Vcl};

use super::{Backend, EpollRef, IntIoctl, OpenError, SessionRef, Unreachable};
use crate::errno::Errno;
use crate::spinlock::SpinLock;

pub struct VclBackend;

/// `net.core.somaxconn`'s default.
const SOMAXCONN: c_int = 4096;

/// The current attachment: a leaked box, replaced (and the old one leaked,
/// never freed: a racing thread may still read it) on re-attach or fork.
static ATTACHED: AtomicPtr<Attachment> = AtomicPtr::new(std::ptr::null_mut());
/// Serialises attaching (the slow path of the first socket).
static ATTACHING: SpinLock<()> = SpinLock::new(());
/// Bumped at every new attachment and in a forked child.
static EPOCH: AtomicU64 = AtomicU64::new(1);

const SLOT_BITS: u32 = 21;
const GEN_BITS: u32 = 32;
const EPOCH_SHIFT: u32 = SLOT_BITS + GEN_BITS;
/// 62 - 53 bits of epoch.
const EPOCH_MASK: u64 = (1 << (62 - EPOCH_SHIFT)) - 1;

struct Attachment {
    vcl: Arc<Vcl>,
    epoch: u64,
    /// vcl's process epoch when it was made: another one means this
    /// process inherited it through `fork`.
    fork_epoch: u32,
}

impl Attachment {
    fn is_inherited(&self) -> bool {
        self.fork_epoch != fork::epoch()
    }
}

fn current() -> Option<&'static Attachment> {
    let p = ATTACHED.load(Ordering::Acquire);
    // SAFETY: non-null values are leaked boxes, never freed.
    unsafe { p.as_ref() }
}

/// The live attachment, attaching now if there is none (or the daemon died).
fn attachment() -> Result<&'static Attachment, Unreachable> {
    if let Some(a) = current().filter(|a| a.vcl.is_attached()) {
        return Ok(a);
    }
    let _serial = ATTACHING.lock();
    if let Some(a) = current().filter(|a| a.vcl.is_attached()) {
        return Ok(a);
    }
    match Vcl::global() {
        Ok(vcl) => Ok(adopt_locked(vcl)),
        Err(e) => {
            let path = sluice_vcl::default_control_path();
            Err(Unreachable { what: format!("the Sluice daemon at {}", path.display()), why: e.to_string() })
        }
    }
}

/// `vcl` as the current attachment (it is already, or gets a new epoch).
/// The caller holds `ATTACHING`.
fn adopt_locked(vcl: Arc<Vcl>) -> &'static Attachment {
    if let Some(a) = current().filter(|a| Arc::ptr_eq(&a.vcl, &vcl)) {
        return a;
    }
    let epoch = EPOCH.fetch_add(1, Ordering::AcqRel) & EPOCH_MASK;
    log::debug!("attached to the Sluice daemon as app worker {} (epoch {epoch})", vcl.app_worker_id());
    let fresh: &'static Attachment =
        Box::leak(Box::new(Attachment { vcl, epoch, fork_epoch: fork::epoch() }));
    inherited::register(fresh);
    ATTACHED.store(fresh as *const Attachment as *mut Attachment, Ordering::Release);
    fresh
}

pub(crate) fn to_ref(epoch: u64, key: SocketKey) -> SessionRef {
    let slot = key.0 & ((1 << SLOT_BITS) - 1);
    let gen = key.0 >> 32;
    SessionRef::from_raw((epoch & EPOCH_MASK) << EPOCH_SHIFT | gen << SLOT_BITS | slot)
}

fn to_key(s: SessionRef) -> (u64, SocketKey) {
    let raw = s.raw();
    let epoch = raw >> EPOCH_SHIFT;
    let gen = (raw >> SLOT_BITS) & ((1 << GEN_BITS) - 1);
    (epoch, SocketKey(gen << 32 | (raw & ((1 << SLOT_BITS) - 1))))
}

/// A borrowed vcl handle for `s`: dropping it leaves the session open.
pub(crate) struct Handle {
    socket: Option<Socket>,
    pub(crate) epoch: u64,
    /// The session the handle is for: `s` itself, or what the inherited
    /// listener `s` named was re-created as (records are kept under it).
    pub(crate) s: SessionRef,
    /// A session of the parent's, inherited through `fork` (not a listener):
    /// its calls fail with `ENOTCONN`, closing it is local.
    pub(crate) inherited: bool,
}

impl Handle {
    fn new(vcl: &Arc<Vcl>, s: SessionRef, epoch: u64, key: SocketKey, inherited: bool) -> Handle {
        Handle { socket: Some(Socket::from_key(Arc::clone(vcl), key)), epoch, s, inherited }
    }

    /// The handle for a call on `s`; re-creates `s` if it is an inherited
    /// listener (`inherited.rs`).
    pub(crate) fn get(s: SessionRef) -> Result<Handle, Errno> {
        let (epoch, key) = to_key(s);
        match current().filter(|a| a.epoch == epoch) {
            Some(a) => Ok(Handle::new(&a.vcl, s, epoch, key, false)),
            None => inherited::handle(s),
        }
    }

    /// Closes the session (the last descriptor is gone).
    fn close(mut self) -> Result<(), Errno> {
        match self.socket.take() {
            Some(socket) => socket.close().map_err(vcl_errno),
            None => Ok(()),
        }
    }
}

impl std::ops::Deref for Handle {
    type Target = Socket;
    fn deref(&self) -> &Socket {
        // Only `close` takes the socket, and it consumes the handle.
        self.socket.as_ref().expect("a handle holds its socket until closed")
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Some(socket) = self.socket.take() {
            let _ = socket.into_key();
        }
    }
}

pub(crate) fn vcl_errno(e: sluice_vcl::Errno) -> Errno {
    Errno(e.raw())
}

/// The kernel raises `SIGPIPE` for a write on a shut or broken stream unless
/// `MSG_NOSIGNAL` (tcp_sendmsg → `sk_stream_error`).
fn sigpipe_unless(flags: c_int, err: Errno) -> Errno {
    if err == Errno(libc::EPIPE) && flags & libc::MSG_NOSIGNAL == 0 {
        // SAFETY: raising a signal at the calling thread, as the kernel does.
        unsafe { libc::raise(libc::SIGPIPE) };
    }
    err
}

/// `MSG_MORE` state of a write (`Socket::set_more`); a failure (the
/// connection is gone) is for the write to report, not this hint.
fn push_hint(h: &Handle, more: bool) {
    if let Err(e) = h.set_more(more) {
        log::debug!("MSG_MORE {more}: {e:?}");
    }
}

fn total_len(bufs: &[IoSliceMut<'_>]) -> usize {
    bufs.iter().map(|b| b.len()).sum()
}

/// Copies `data` into `bufs` in order.
fn scatter(bufs: &mut [IoSliceMut<'_>], mut data: &[u8]) {
    for b in bufs.iter_mut() {
        if data.is_empty() {
            break;
        }
        let n = b.len().min(data.len());
        b[..n].copy_from_slice(&data[..n]);
        data = &data[n..];
    }
}

/// Skips the first `n` bytes of `bufs`, returning the rest as new slices.
fn rest<'a>(bufs: &'a mut [IoSliceMut<'_>], mut n: usize) -> Vec<IoSliceMut<'a>> {
    let mut out = Vec::new();
    for b in bufs.iter_mut() {
        if n >= b.len() {
            n -= b.len();
            continue;
        }
        out.push(IoSliceMut::new(&mut b[n..]));
        n = 0;
    }
    out
}

impl VclBackend {
    /// One receive attempt into `bufs` (blocking per the socket and flags).
    fn recv_once(&self, h: &Handle, bufs: &mut [IoSliceMut<'_>], flags: MsgFlags) -> Result<usize, Errno> {
        let want = total_len(bufs);
        if bufs.len() == 1 {
            return h.recv(&mut bufs[0], flags).map_err(vcl_errno);
        }
        if !flags.peek && !flags.dont_wait {
            return h.readv(bufs).map_err(vcl_errno);
        }
        // Vectored with flags: through one bounce buffer.
        let mut tmp = vec![0u8; want];
        let n = h.recv(&mut tmp, flags).map_err(vcl_errno)?;
        scatter(bufs, &tmp[..n]);
        Ok(n)
    }
}

impl Backend for VclBackend {
    fn name(&self) -> &'static str {
        "vcl"
    }

    fn open_stream(&self, nonblocking: bool) -> Result<SessionRef, OpenError> {
        let a = attachment().map_err(OpenError::Unreachable)?;
        let socket = a.vcl.socket().map_err(|e| OpenError::Failed(vcl_errno(e)))?;
        socket.set_nonblocking(nonblocking).map_err(|e| OpenError::Failed(vcl_errno(e)))?;
        let s = to_ref(a.epoch, socket.into_key());
        records::create(s, nonblocking);
        Ok(s)
    }

    fn add_ref(&self, s: SessionRef) {
        records::add_ref(inherited::resolve(s));
    }

    fn release(&self, s: SessionRef) {
        let s = inherited::resolve(s);
        if records::release(s) {
            if exec::forget(s) {
                // Handed over by the previous image and never used: nothing
                // to close anywhere.
                return;
            }
            // An inherited session's close is local: nothing to tell vcl,
            // whose stale handle would do nothing either.
            match inherited::handle_as_is(s) {
                Ok(h) if !h.inherited => {
                    if let Err(e) = h.close() {
                        log::debug!("closing session {s:?}: {e}");
                    }
                }
                _ => {}
            }
        }
    }

    fn set_nonblocking(&self, s: SessionRef, on: bool) -> Result<(), Errno> {
        // Needs no daemon, so it re-creates nothing: on an inherited session
        // the flag is only recorded (a listener's re-creation applies it).
        if exec::is_adopted(inherited::resolve(s)) {
            records::set_nonblocking(inherited::resolve(s), on);
            return Ok(());
        }
        let h = inherited::handle_as_is(s)?;
        records::set_nonblocking(h.s, on);
        if h.inherited {
            return Ok(());
        }
        h.set_nonblocking(on).map_err(vcl_errno)
    }

    fn bind(&self, s: SessionRef, addr: SocketAddrV4) -> Result<(), Errno> {
        Handle::get(s)?.bind(addr).map_err(vcl_errno)
    }

    fn listen(&self, s: SessionRef, backlog: c_int) -> Result<(), Errno> {
        // `__sys_listen`: a backlog above somaxconn (default 4096), or
        // negative (compared unsigned), is somaxconn.
        let backlog = if (0..=SOMAXCONN).contains(&backlog) { backlog as u32 } else { SOMAXCONN as u32 };
        let h = Handle::get(s)?;
        h.listen(backlog).map_err(vcl_errno)?;
        records::set_listening(h.s);
        Ok(())
    }

    fn accept(&self, s: SessionRef, nonblocking: bool) -> Result<(SessionRef, SocketAddrV4), Errno> {
        let h = Handle::get(s)?;
        let (conn, peer) = h.accept().map_err(vcl_errno)?;
        conn.set_nonblocking(nonblocking).map_err(vcl_errno)?;
        let accepted = to_ref(h.epoch, conn.into_key());
        records::create_accepted(accepted, h.s, nonblocking);
        Ok((accepted, peer))
    }

    fn connect(&self, s: SessionRef, addr: SocketAddrV4) -> Result<(), Errno> {
        Handle::get(s)?.connect(addr).map_err(vcl_errno)
    }

    fn recv(&self, s: SessionRef, bufs: &mut [IoSliceMut<'_>], flags: c_int) -> Result<usize, Errno> {
        if flags & libc::MSG_OOB != 0 {
            // No urgent data is ever queued (tcp_recv_urg).
            return Err(Errno::EINVAL);
        }
        let h = Handle::get(s)?;
        let mflags = MsgFlags { peek: flags & libc::MSG_PEEK != 0, dont_wait: flags & libc::MSG_DONTWAIT != 0 };
        let want = total_len(bufs);
        if want == 0 {
            return self.recv_once(&h, bufs, mflags);
        }
        if flags & libc::MSG_TRUNC != 0 && !mflags.peek {
            // TCP's MSG_TRUNC discards the bytes instead of copying them.
            let mut scratch = vec![0u8; want.min(1 << 20)];
            return h.recv(&mut scratch, mflags).map_err(vcl_errno);
        }
        let mut got = self.recv_once(&h, bufs, mflags)?;
        let waitall = flags & libc::MSG_WAITALL != 0 && !mflags.peek && !mflags.dont_wait;
        if !waitall || h.is_nonblocking().unwrap_or(true) {
            return Ok(got);
        }
        // MSG_WAITALL: keep reading until full, EOF, an error or a signal
        // (which then return what was read, tcp_recvmsg).
        while got > 0 && got < want {
            let mut left = rest(bufs, got);
            match self.recv_once(&h, &mut left, mflags) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        Ok(got)
    }

    fn send(&self, s: SessionRef, bufs: &[IoSlice<'_>], flags: c_int) -> Result<usize, Errno> {
        if flags & libc::MSG_OOB != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        let h = Handle::get(s)?;
        let mflags = MsgFlags { peek: false, dont_wait: flags & libc::MSG_DONTWAIT != 0 };
        // MSG_MORE corks the connection for these bytes; a write without it
        // pushes what earlier ones held (vcl's `cork` module). A hint: the
        // write itself reports the socket's errors.
        let more = flags & libc::MSG_MORE != 0;
        if more {
            push_hint(&h, true);
        }
        let sent = match bufs {
            [one] => h.send(one, mflags),
            _ if !mflags.dont_wait => h.writev(bufs),
            _ => h.send(&bufs.iter().flat_map(|b| b.iter().copied()).collect::<Vec<u8>>(), mflags),
        };
        if !more {
            push_hint(&h, false);
        }
        sent.map_err(|e| sigpipe_unless(flags, vcl_errno(e)))
    }

    fn sendfile(&self, s: SessionRef, in_fd: RawFd, offset: Option<&mut i64>, count: usize) -> Result<usize, Errno> {
        let h = Handle::get(s)?;
        // The file position is read and moved only by what was sent, so a
        // partial send leaves the file exactly after the bytes that went out.
        let (start, explicit) = match offset {
            Some(o) if *o < 0 => return Err(Errno::EINVAL),
            Some(o) => (*o, Some(o)),
            None => {
                // SAFETY: lseek on the caller's descriptor, no memory involved.
                let pos = unsafe { libc::lseek(in_fd, 0, libc::SEEK_CUR) };
                if pos < 0 {
                    // sendfile(2): "EINVAL ... fd is not mmap-able": a pipe
                    // or socket as the source.
                    let e = Errno::last();
                    return Err(if e == Errno(libc::ESPIPE) { Errno::EINVAL } else { e });
                }
                (pos, None)
            }
        };
        const CHUNK: usize = 128 * 1024;
        let mut buf = vec![0u8; CHUNK.min(count.max(1))];
        let mut done = 0usize;
        let mut failure = None;
        while done < count {
            let want = (count - done).min(buf.len());
            // SAFETY: pread into a live buffer of at least `want` bytes.
            let n = unsafe { libc::pread(in_fd, buf.as_mut_ptr().cast(), want, start + done as i64) };
            if n < 0 {
                let e = Errno::last();
                failure = Some(if e == Errno(libc::ESPIPE) { Errno::EINVAL } else { e });
                break;
            }
            if n == 0 {
                break;
            }
            let n = n as usize;
            // The socket's own O_NONBLOCK decides; a short write (no room,
            // a signal) ends the call with what went out.
            match h.send(&buf[..n], MsgFlags::default()) {
                Ok(k) => {
                    done += k;
                    if k < n {
                        break;
                    }
                }
                Err(e) => {
                    if done == 0 {
                        failure = Some(sigpipe_unless(0, vcl_errno(e)));
                    }
                    break;
                }
            }
        }
        // sendfile pushes at its end, as a write without MSG_MORE.
        push_hint(&h, false);
        match explicit {
            Some(o) => *o = start + done as i64,
            None => {
                // SAFETY: as above.
                unsafe { libc::lseek(in_fd, start + done as i64, libc::SEEK_SET) };
            }
        }
        match (done, failure) {
            (0, Some(e)) => Err(e),
            _ => Ok(done),
        }
    }

    fn shutdown(&self, s: SessionRef, how: c_int) -> Result<(), Errno> {
        let how = match how {
            libc::SHUT_RD => ShutdownHow::Read,
            libc::SHUT_WR => ShutdownHow::Write,
            libc::SHUT_RDWR => ShutdownHow::Both,
            _ => return Err(Errno::EINVAL),
        };
        Handle::get(s)?.shutdown(how).map_err(vcl_errno)
    }

    fn getsockopt(&self, s: SessionRef, level: c_int, name: c_int, value: &mut [u8]) -> Result<usize, Errno> {
        let h = Handle::get(s)?;
        options::get(&h, h.s, level, name, value)
    }

    fn setsockopt(&self, s: SessionRef, level: c_int, name: c_int, value: &[u8]) -> Result<(), Errno> {
        let h = Handle::get(s)?;
        options::set(&h, h.s, level, name, value)
    }

    fn local_addr(&self, s: SessionRef) -> Result<SocketAddrV4, Errno> {
        Handle::get(s)?.local_addr().map_err(vcl_errno)
    }

    fn peer_addr(&self, s: SessionRef) -> Result<SocketAddrV4, Errno> {
        Handle::get(s)?.peer_addr().map_err(vcl_errno)
    }

    fn ioctl_int(&self, s: SessionRef, request: IntIoctl) -> Result<c_int, Errno> {
        let h = Handle::get(s)?;
        match request {
            IntIoctl::BytesReadable if records::is_listening(h.s) => Err(Errno::EINVAL),
            IntIoctl::BytesReadable => Ok(h.nread().map_err(vcl_errno)?.min(c_int::MAX as usize) as c_int),
            // vcl does not expose the daemon's send queue: report none queued
            // (what a drained socket reports).
            IntIoctl::BytesUnacked | IntIoctl::BytesUnsent | IntIoctl::AtMark => Ok(0),
        }
    }

    fn poll(
        &self,
        fds: &mut [libc::pollfd],
        sessions: &[Option<SessionRef>],
        timeout: Option<Duration>,
        sigmask: Option<&libc::sigset_t>,
    ) -> Result<usize, Errno> {
        wait::poll(fds, sessions, timeout, sigmask)
    }

    fn epoll_ctl(
        &self,
        epfd: RawFd,
        instance: Option<EpollRef>,
        op: c_int,
        _fd: RawFd,
        s: SessionRef,
        event: Option<libc::epoll_event>,
    ) -> Result<EpollRef, Errno> {
        wait::epoll_ctl(epfd, instance, op, s, event)
    }

    fn epoll_nest(&self, epfd: RawFd, instance: Option<EpollRef>) -> Result<EpollRef, Errno> {
        wait::epoll_nest(epfd, instance)
    }

    fn epoll_wait(
        &self,
        epfd: RawFd,
        instance: EpollRef,
        events: &mut [libc::epoll_event],
        timeout: Option<Duration>,
        sigmask: Option<&libc::sigset_t>,
    ) -> Result<usize, Errno> {
        wait::epoll_wait(epfd, instance, events, timeout, sigmask)
    }

    fn epoll_add_ref(&self, instance: EpollRef) {
        wait::epoll_add_ref(instance);
    }

    fn epoll_release(&self, instance: EpollRef) {
        wait::epoll_release(instance);
    }

    fn before_fork(&self) {
        // Opens what the child's handler needs (it may not allocate): only
        // once attached (a descriptor the program would see otherwise; the
        // attach opened it already, this is for the rule's sake).
        if inherited::any_attachment() {
            fork::prepare();
        }
        // The child must find these locks free (they are taken only for
        // setup and options, never across a blocking call, except
        // ATTACHING while attaching or re-creating an inherited listener,
        // which the fork then waits for).
        ATTACHING.acquire();
        records::lock_for_fork();
        wait::lock_for_fork();
        exec::lock_for_fork();
    }

    fn after_fork_parent(&self, child: libc::pid_t) {
        exec::unlock_after_fork();
        wait::unlock_after_fork();
        records::unlock_after_fork();
        // SAFETY: taken by `before_fork` in the prepare step of this fork.
        unsafe { ATTACHING.release() };
        if child <= 0 {
            return;
        }
        // The daemon records the child as a holder of this process's listen
        // groups, so that it may re-create the listeners it inherited. This
        // waits for the daemon (which checks the child's parent, so must
        // hear before this process could exit), never for the child.
        if let Err(e) = fork::parent(child) {
            log::warn!("the Sluice daemon was not told of child {child}: {e}; its inherited listeners may not work");
        }
    }

    fn after_fork_child(&self) {
        // First: makes every attachment of the parent stale (atomics and
        // dup2 only).
        fork::child();
        exec::unlock_after_fork();
        wait::unlock_after_fork();
        records::unlock_after_fork();
        // SAFETY: taken by `before_fork` in the prepare step of this fork.
        unsafe { ATTACHING.release() };
        // The parent's attachment is not mapped here: it is not the current
        // one any more (it stays in `inherited.rs`'s list, for the sessions
        // this process inherited), and the next new socket attaches afresh.
        ATTACHED.store(std::ptr::null_mut(), Ordering::Release);
        EPOCH.fetch_add(1, Ordering::AcqRel);
        // The parent's pollers live in its segments' wake-ups: an epoll
        // instance made before the fork watches kernel descriptors only here.
        wait::forget_all();
    }

    fn prepare_exec(&self, _inherited: &[(RawFd, SessionRef)]) -> Vec<RawFd> {
        // Every session reaches the new image as its placeholder, described
        // by `handover` (`exec.rs`).
        Vec::new()
    }

    fn handover(&self, inherited: &[(RawFd, SessionRef)], exec_self: bool) -> Option<(&'static str, String)> {
        if exec_self {
            exec::announce(inherited);
        }
        exec::describe(inherited).map(|value| (exec::VARIABLE, value))
    }

    fn exec_failed(&self) {}

    fn spawned(&self, child: libc::pid_t) {
        // As after a fork: the child holds the listen groups it inherited.
        if let Err(e) = fork::parent(child) {
            log::warn!("the Sluice daemon was not told of spawned child {child}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_round_trip_keys_and_epochs() {
        let key = SocketKey((0xffff_fffdu64 << 32) | ((1 << SLOT_BITS) - 1));
        let s = to_ref(EPOCH_MASK, key);
        assert!(s.raw() <= super::super::REF_MAX);
        assert_eq!(to_key(s), (EPOCH_MASK, key));
        let s = to_ref(3, SocketKey((7 << 32) | 5));
        assert_eq!(to_key(s), (3, SocketKey((7 << 32) | 5)));
    }
}
