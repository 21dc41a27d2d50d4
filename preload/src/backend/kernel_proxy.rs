//! `SLUICE_BACKEND=kernel-proxy`: sessions that are private kernel sockets.
//!
//! Each session owns a kernel TCP socket moved to a high descriptor number
//! (at or above half of `RLIMIT_NOFILE`, close-on-exec), and every [`Backend`]
//! method is the same call on that socket. The program sees only the
//! placeholder eventfd, exactly as with the real session library, so this
//! backend drives every session path of the hooks (fd-table entries with
//! references, dup/close/fork/exec of sessions, epoll and poll over mixed
//! sets) against the kernel as the oracle. Epoll registrations put the
//! private socket in the program's epoll instance with the program's event
//! data, so the kernel reports sessions and kernel descriptors together.
//!
//! Known differences, all corner cases: the private sockets use descriptor
//! numbers from the top half of the table; one epoll instance cannot hold
//! two dups of one session (the kernel allows that); sessions survive an
//! exec as kernel sockets (`prepare_exec` puts the private socket at the
//! placeholder's number).
//!
//! References are counted per private descriptor in a lock-free table:
//! `(generation << 32) | references`, so a stale [`SessionRef`] fails with
//! `EBADF` instead of reaching a reused descriptor.

use std::io::{IoSlice, IoSliceMut};
use std::net::SocketAddrV4;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::Duration;

use libc::{c_int, c_long, socklen_t};

use super::{Backend, EpollRef, IntIoctl, OpenError, SessionRef};
use crate::addr;
use crate::errno::{check, Errno};
use crate::fdtable::MAX_FDS;
use crate::hooks::poll::timespec;
use crate::real;

pub struct KernelProxy;

/// Per private descriptor: generation (high 32 bits) and references.
static SLOTS: [AtomicU64; MAX_FDS] = [const { AtomicU64::new(0) }; MAX_FDS];

const GEN_MASK: u64 = 0x3fff_ffff;

/// The proxy keeps no per-epoll state: registrations live in the kernel.
const EPOLL_INSTANCE: u64 = 1;

fn slot(fd: RawFd) -> Result<&'static AtomicU64, Errno> {
    usize::try_from(fd).ok().and_then(|i| SLOTS.get(i)).ok_or(Errno::EBADF)
}

/// The private descriptor of a live session.
fn private(s: SessionRef) -> Result<RawFd, Errno> {
    let fd = (s.raw() & 0xffff_ffff) as RawFd;
    let word = slot(fd)?.load(Ordering::Acquire);
    if word >> 32 != s.raw() >> 32 || word & 0xffff_ffff == 0 {
        return Err(Errno::EBADF);
    }
    Ok(fd)
}

/// First descriptor number for private sockets.
fn private_base() -> c_int {
    static BASE: AtomicI32 = AtomicI32::new(0);
    let base = BASE.load(Ordering::Relaxed);
    if base > 0 {
        return base;
    }
    // SAFETY: an all-zero rlimit is a valid out-buffer.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: getrlimit into a local.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur.min(MAX_FDS as u64)
    } else {
        1024
    };
    let base = ((soft / 2) as c_int).max(64);
    BASE.store(base, Ordering::Relaxed);
    base
}

/// Moves a fresh kernel socket to the private range and makes it a session
/// with one reference.
fn adopt(fd: RawFd) -> Result<SessionRef, Errno> {
    // SAFETY: F_DUPFD_CLOEXEC of a descriptor this backend just created.
    let moved = unsafe { real::fcntl(fd, libc::F_DUPFD_CLOEXEC, private_base() as c_long) };
    let private = if moved >= 0 {
        // SAFETY: closing the low-numbered original.
        unsafe { real::close(fd) };
        moved
    } else {
        // The top half is full or the limit shrank: keep the number we got.
        fd
    };
    let Ok(word) = slot(private) else {
        // SAFETY: closing the descriptor this function was handed.
        unsafe { real::close(private) };
        return Err(Errno::EMFILE);
    };
    let gen = ((word.load(Ordering::Acquire) >> 32) + 1) & GEN_MASK;
    word.store((gen << 32) | 1, Ordering::Release);
    // A 30-bit generation above a 32-bit descriptor fits the 62 bits.
    Ok(SessionRef::from_raw((gen << 32) | private as u64))
}

fn ok(rc: c_int) -> Result<(), Errno> {
    check(rc).map(drop)
}

fn to_usize(n: isize) -> Result<usize, Errno> {
    check(n).map(|n| n as usize)
}

fn msghdr(iov: *mut libc::iovec, len: usize) -> libc::msghdr {
    // SAFETY: an all-zero msghdr is valid (no name, no control).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = len as _;
    msg
}

fn addr_of(call: impl FnOnce(*mut libc::sockaddr, *mut socklen_t) -> c_int) -> Result<SocketAddrV4, Errno> {
    // SAFETY: an all-zero sockaddr_in is valid.
    let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as socklen_t;
    ok(call((&mut sin as *mut libc::sockaddr_in).cast(), &mut len))?;
    // SAFETY: a local sockaddr_in of the stated length.
    unsafe { addr::read_v4((&sin as *const libc::sockaddr_in).cast(), len) }.ok_or(Errno::EINVAL)
}

impl Backend for KernelProxy {
    fn name(&self) -> &'static str {
        "kernel-proxy"
    }

    fn open_stream(&self, nonblocking: bool) -> Result<SessionRef, OpenError> {
        let mut ty = libc::SOCK_STREAM | libc::SOCK_CLOEXEC;
        if nonblocking {
            ty |= libc::SOCK_NONBLOCK;
        }
        // SAFETY: plain integer arguments.
        let fd = check(unsafe { real::socket(libc::AF_INET, ty, 0) }).map_err(OpenError::Failed)?;
        adopt(fd).map_err(OpenError::Failed)
    }

    fn add_ref(&self, s: SessionRef) {
        if let Ok(fd) = private(s) {
            if let Ok(word) = slot(fd) {
                word.fetch_add(1, Ordering::AcqRel);
            }
        }
    }

    fn release(&self, s: SessionRef) {
        let Ok(fd) = private(s) else { return };
        let Ok(word) = slot(fd) else { return };
        let before = word.fetch_sub(1, Ordering::AcqRel);
        if before & 0xffff_ffff == 1 {
            // SAFETY: the last reference to this private socket is gone.
            unsafe { real::close(fd) };
        }
    }

    fn set_nonblocking(&self, s: SessionRef, on: bool) -> Result<(), Errno> {
        let fd = private(s)?;
        // SAFETY: F_GETFL/F_SETFL on the private socket.
        let flags = check(unsafe { real::fcntl(fd, libc::F_GETFL, 0) })?;
        let flags = if on { flags | libc::O_NONBLOCK } else { flags & !libc::O_NONBLOCK };
        // SAFETY: as above.
        ok(unsafe { real::fcntl(fd, libc::F_SETFL, flags as c_long) })
    }

    fn bind(&self, s: SessionRef, addr: SocketAddrV4) -> Result<(), Errno> {
        let sin = addr::to_sockaddr_in(addr);
        let len = std::mem::size_of_val(&sin) as socklen_t;
        // SAFETY: a local sockaddr_in of the stated length.
        ok(unsafe { real::bind(private(s)?, (&sin as *const libc::sockaddr_in).cast(), len) })
    }

    fn listen(&self, s: SessionRef, backlog: c_int) -> Result<(), Errno> {
        // SAFETY: plain integer arguments.
        ok(unsafe { real::listen(private(s)?, backlog) })
    }

    fn accept(&self, s: SessionRef, nonblocking: bool) -> Result<(SessionRef, SocketAddrV4), Errno> {
        let listener = private(s)?;
        let mut flags = libc::SOCK_CLOEXEC;
        if nonblocking {
            flags |= libc::SOCK_NONBLOCK;
        }
        let mut fd = -1;
        let peer = addr_of(|addr, len| {
            // SAFETY: accept4 with the local address buffers of `addr_of`.
            fd = unsafe { real::accept4(listener, addr, len, flags) };
            fd.min(0)
        })?;
        Ok((adopt(fd)?, peer))
    }

    fn connect(&self, s: SessionRef, addr: SocketAddrV4) -> Result<(), Errno> {
        let sin = addr::to_sockaddr_in(addr);
        let len = std::mem::size_of_val(&sin) as socklen_t;
        // SAFETY: a local sockaddr_in of the stated length.
        ok(unsafe { real::connect(private(s)?, (&sin as *const libc::sockaddr_in).cast(), len) })
    }

    fn recv(&self, s: SessionRef, bufs: &mut [IoSliceMut<'_>], flags: c_int) -> Result<usize, Errno> {
        let mut msg = msghdr(bufs.as_mut_ptr().cast(), bufs.len());
        // SAFETY: IoSliceMut is ABI-compatible with iovec; the buffers are live and writable.
        to_usize(unsafe { real::recvmsg(private(s)?, &mut msg, flags) })
    }

    fn send(&self, s: SessionRef, bufs: &[IoSlice<'_>], flags: c_int) -> Result<usize, Errno> {
        let msg = msghdr(bufs.as_ptr() as *mut libc::iovec, bufs.len());
        // SAFETY: IoSlice is ABI-compatible with iovec; sendmsg only reads.
        to_usize(unsafe { real::sendmsg(private(s)?, &msg, flags) })
    }

    fn sendfile(&self, s: SessionRef, in_fd: RawFd, offset: Option<&mut i64>, count: usize) -> Result<usize, Errno> {
        let offset = offset.map_or(std::ptr::null_mut(), |o| o as *mut i64);
        // SAFETY: the offset is NULL or a live i64.
        to_usize(unsafe { real::sendfile(private(s)?, in_fd, offset, count) })
    }

    fn shutdown(&self, s: SessionRef, how: c_int) -> Result<(), Errno> {
        // SAFETY: plain integer arguments.
        ok(unsafe { real::shutdown(private(s)?, how) })
    }

    fn getsockopt(&self, s: SessionRef, level: c_int, name: c_int, value: &mut [u8]) -> Result<usize, Errno> {
        let mut len = value.len() as socklen_t;
        // SAFETY: a live buffer of `len` bytes.
        ok(unsafe { real::getsockopt(private(s)?, level, name, value.as_mut_ptr().cast(), &mut len) })?;
        Ok(len as usize)
    }

    fn setsockopt(&self, s: SessionRef, level: c_int, name: c_int, value: &[u8]) -> Result<(), Errno> {
        let len = value.len() as socklen_t;
        // SAFETY: a live buffer of `len` bytes.
        ok(unsafe { real::setsockopt(private(s)?, level, name, value.as_ptr().cast(), len) })
    }

    fn local_addr(&self, s: SessionRef) -> Result<SocketAddrV4, Errno> {
        let fd = private(s)?;
        // SAFETY: local buffers from `addr_of`.
        addr_of(|addr, len| unsafe { real::getsockname(fd, addr, len) })
    }

    fn peer_addr(&self, s: SessionRef) -> Result<SocketAddrV4, Errno> {
        let fd = private(s)?;
        // SAFETY: local buffers from `addr_of`.
        addr_of(|addr, len| unsafe { real::getpeername(fd, addr, len) })
    }

    fn ioctl_int(&self, s: SessionRef, request: IntIoctl) -> Result<c_int, Errno> {
        let code = match request {
            IntIoctl::BytesReadable => libc::FIONREAD,
            IntIoctl::BytesUnacked => libc::TIOCOUTQ,
            IntIoctl::BytesUnsent => 0x894B,
            IntIoctl::AtMark => 0x8905,
        };
        let mut value: c_int = 0;
        // SAFETY: an int out-parameter.
        ok(unsafe { real::ioctl(private(s)?, code, (&mut value as *mut c_int) as c_long) })?;
        Ok(value)
    }

    fn poll(
        &self,
        fds: &mut [libc::pollfd],
        sessions: &[Option<SessionRef>],
        timeout: Option<Duration>,
        sigmask: Option<&libc::sigset_t>,
    ) -> Result<usize, Errno> {
        let mut kernel: Vec<libc::pollfd> = fds.to_vec();
        for (entry, session) in kernel.iter_mut().zip(sessions) {
            if let Some(s) = session {
                entry.fd = private(*s)?;
            }
        }
        let ts = timeout.map(timespec);
        let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
        let mask_ptr = sigmask.map_or(std::ptr::null(), |m| m as *const libc::sigset_t);
        // SAFETY: a local pollfd array, timeout and mask, NULL or valid.
        let n = check(unsafe { real::ppoll(kernel.as_mut_ptr(), kernel.len() as libc::nfds_t, ts_ptr, mask_ptr) })?;
        for (user, kernel) in fds.iter_mut().zip(&kernel) {
            user.revents = kernel.revents;
        }
        Ok(n as usize)
    }

    fn epoll_ctl(
        &self,
        epfd: RawFd,
        _instance: Option<EpollRef>,
        op: c_int,
        _fd: RawFd,
        s: SessionRef,
        event: Option<libc::epoll_event>,
    ) -> Result<EpollRef, Errno> {
        let mut event = event.unwrap_or(libc::epoll_event { events: 0, u64: 0 });
        // SAFETY: a local event; the kernel checks epfd and op.
        ok(unsafe { real::epoll_ctl(epfd, op, private(s)?, &mut event) })?;
        Ok(EpollRef::from_raw(EPOLL_INSTANCE))
    }

    fn epoll_nest(&self, _epfd: RawFd, _instance: Option<EpollRef>) -> Result<EpollRef, Errno> {
        // The kernel sees the private sockets in the inner instance itself.
        Ok(EpollRef::from_raw(EPOLL_INSTANCE))
    }

    fn epoll_wait(
        &self,
        epfd: RawFd,
        _instance: EpollRef,
        events: &mut [libc::epoll_event],
        timeout: Option<Duration>,
        sigmask: Option<&libc::sigset_t>,
    ) -> Result<usize, Errno> {
        let ts = timeout.map(timespec);
        let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
        let mask_ptr = sigmask.map_or(std::ptr::null(), |m| m as *const libc::sigset_t);
        // SAFETY: the caller's event array of the stated length; timeout and mask NULL or valid.
        let n = unsafe { real::epoll_pwait2(epfd, events.as_mut_ptr(), events.len() as c_int, ts_ptr, mask_ptr) };
        check(n).map(|n| n as usize)
    }

    fn epoll_add_ref(&self, _instance: EpollRef) {}

    fn epoll_release(&self, _instance: EpollRef) {}

    fn before_fork(&self) {}

    fn after_fork_parent(&self, _child: libc::pid_t) {}

    fn after_fork_child(&self) {}

    fn prepare_exec(&self, inherited: &[(RawFd, SessionRef)]) -> Vec<RawFd> {
        let mut replaced = Vec::new();
        for &(fd, s) in inherited {
            let Ok(socket) = private(s) else { continue };
            // dup3 without O_CLOEXEC: the descriptor survives the exec, as
            // the placeholder would have.
            // SAFETY: both descriptors are ours; dup3 replaces `fd` atomically.
            if unsafe { real::dup3(socket, fd, 0) } == fd {
                replaced.push(fd);
            }
        }
        replaced
    }

    fn exec_failed(&self) {}
}
