//! `socket`, `bind`, `listen`, `connect`, `accept`, `accept4`, `shutdown`,
//! `getsockname`, `getpeername`.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::RawFd;

use libc::{c_int, sockaddr, socklen_t};

use super::{backend, commit, on_fd, untracked};
use crate::addr;
use crate::backend::SessionRef;
use crate::candidate;
use crate::decide::{self, Route};
use crate::errno::{check, Errno};
use crate::fdtable::{Entry, FDS};
use crate::hook::Outcome;
use crate::policy::{self, Decision};
use crate::real;

/// The `type` flags `socket`/`accept4` accept besides the socket type.
const TYPE_FLAGS: c_int = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;

/// Whether `socket(domain, ty, protocol)` makes a TCP/IPv4 socket, the only
/// kind that may become a session. UDP stays on the kernel until a backend
/// carries it (see `SLUICE_UDP` in [`crate::policy`]).
fn is_tcp_v4(domain: c_int, ty: c_int, protocol: c_int) -> bool {
    domain == libc::AF_INET && ty & !TYPE_FLAGS == libc::SOCK_STREAM && (protocol == 0 || protocol == libc::IPPROTO_TCP)
}

crate::hook! {
    /// TCP/IPv4 sockets become candidates (a placeholder eventfd); everything
    /// else, and every socket when the rules send all addresses to the
    /// kernel, is the kernel's.
    fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int;
    kernel_if !is_tcp_v4(domain, ty, protocol);
    {
        if policy::get().all_kernel() {
            Ok(Outcome::Real)
        } else {
            candidate::create(ty & TYPE_FLAGS, protocol).map(Outcome::Done)
        }
    }
}

crate::hook! {
    fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int;
    kernel_if untracked(fd);
    match FDS.get(fd) {
        Entry::Candidate(_) => {
            // SAFETY: the caller's address buffer of `len` bytes.
            match unsafe { addr::read_v4(addr, len) } {
                Some(local) => match decide::decide(fd, Decision::Local, local)? {
                    Route::Kernel => Ok(Outcome::Real),
                    Route::Session(s) => backend()?.bind(s, local).map(|()| Outcome::Done(0)),
                },
                None => commit(fd),
            }
        }
        // SAFETY: as above.
        Entry::Session(s) => backend()?.bind(s, unsafe { session_addr(addr, len, true) }?).map(|()| Outcome::Done(0)),
        _ => Ok(Outcome::Real),
    }
}

crate::hook! {
    fn listen(fd: c_int, backlog: c_int) -> c_int;
    kernel_if untracked(fd);
    match FDS.get(fd) {
        Entry::Candidate(_) => {
            // An unbound socket listens on the wildcard address.
            let local = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
            match decide::decide(fd, Decision::Local, local)? {
                Route::Kernel => Ok(Outcome::Real),
                Route::Session(s) => backend()?.listen(s, backlog).map(|()| Outcome::Done(0)),
            }
        }
        Entry::Session(s) => backend()?.listen(s, backlog).map(|()| Outcome::Done(0)),
        _ => Ok(Outcome::Real),
    }
}

crate::hook! {
    fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int;
    kernel_if untracked(fd);
    match FDS.get(fd) {
        Entry::Candidate(_) => {
            // SAFETY: the caller's address buffer of `len` bytes.
            match unsafe { addr::read_v4(addr, len) } {
                Some(remote) => match decide::decide(fd, Decision::Remote, remote)? {
                    Route::Kernel => Ok(Outcome::Real),
                    Route::Session(s) => backend()?.connect(s, remote).map(|()| Outcome::Done(0)),
                },
                None => commit(fd),
            }
        }
        Entry::Session(s) => {
            // SAFETY: as above.
            let remote = unsafe { session_addr(addr, len, false) }?;
            backend()?.connect(s, remote).map(|()| Outcome::Done(0))
        }
        _ => Ok(Outcome::Real),
    }
}

crate::hook! {
    fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int;
    kernel_if untracked(fd);
    on_fd(fd, |_, s| accept_session(s, addr, len, 0))
}

crate::hook! {
    fn accept4(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> c_int;
    kernel_if untracked(fd);
    on_fd(fd, |_, s| accept_session(s, addr, len, flags))
}

crate::hook! {
    fn shutdown(fd: c_int, how: c_int) -> c_int;
    kernel_if untracked(fd);
    on_fd(fd, |backend, s| backend.shutdown(s, how).map(|()| 0))
}

crate::hook! {
    fn getsockname(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int;
    kernel_if untracked(fd);
    match FDS.get(fd) {
        // An unbound TCP socket: 0.0.0.0:0 (inet_getname).
        // SAFETY: the caller's address buffer and length.
        Entry::Candidate(_) => unsafe { store_addr(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0), addr, len) },
        // SAFETY: as above.
        Entry::Session(s) => unsafe { store_addr(backend()?.local_addr(s)?, addr, len) },
        _ => Ok(Outcome::Real),
    }
}

crate::hook! {
    fn getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int;
    kernel_if untracked(fd);
    match FDS.get(fd) {
        Entry::Candidate(_) => Err(Errno::ENOTCONN),
        // SAFETY: the caller's address buffer and length.
        Entry::Session(s) => unsafe { store_addr(backend()?.peer_addr(s)?, addr, len) },
        _ => Ok(Outcome::Real),
    }
}

/// # Safety
/// `addr` and `len` as for `getsockname`.
unsafe fn store_addr(value: SocketAddrV4, addr: *mut sockaddr, len: *mut socklen_t) -> Result<Outcome<c_int>, Errno> {
    // SAFETY: forwarded under the caller's contract.
    unsafe { addr::write_v4(value, addr, len) }.map(|()| Outcome::Done(0))
}

/// The IPv4 address of a bind/connect on a session, with the kernel's
/// errors for anything else (`inet_bind`, `tcp_v4_connect`). A bind may use
/// `AF_UNSPEC` with the wildcard address, for old programs.
///
/// # Safety
/// `addr` is NULL or readable for `len` bytes.
unsafe fn session_addr(addr: *const sockaddr, len: socklen_t, bind: bool) -> Result<SocketAddrV4, Errno> {
    if (len as i32) < 0 || len as usize > std::mem::size_of::<libc::sockaddr_storage>() {
        return Err(Errno::EINVAL);
    }
    if addr.is_null() {
        return Err(Errno::EFAULT);
    }
    if (len as usize) < std::mem::size_of::<libc::sockaddr_in>() {
        return Err(Errno::EINVAL);
    }
    // SAFETY: readable for len >= sizeof(sockaddr_in) bytes (caller).
    let sin = unsafe { std::ptr::read_unaligned(addr.cast::<libc::sockaddr_in>()) };
    let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
    let family = c_int::from(sin.sin_family);
    let unspec_wildcard = bind && family == libc::AF_UNSPEC && ip.is_unspecified();
    if family != libc::AF_INET && !unspec_wildcard {
        return Err(Errno(libc::EAFNOSUPPORT));
    }
    Ok(SocketAddrV4::new(ip, u16::from_be(sin.sin_port)))
}

/// `accept4` on a listening session. The placeholder is created before the
/// connection is taken, as the kernel reserves the descriptor first: a full
/// descriptor table fails with `EMFILE` and leaves the connection queued.
fn accept_session(s: SessionRef, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> Result<c_int, Errno> {
    if flags & !TYPE_FLAGS != 0 {
        return Err(Errno::EINVAL);
    }
    let backend = backend()?;
    let placeholder = new_placeholder(flags)?;
    let taken = backend.accept(s, flags & libc::SOCK_NONBLOCK != 0);
    let (session, peer) = match taken {
        Ok(taken) => taken,
        Err(err) => {
            // SAFETY: closing the placeholder created above.
            unsafe { real::close(placeholder) };
            return Err(err);
        }
    };
    let stored = if addr.is_null() {
        Ok(())
    } else {
        // SAFETY: the caller's address buffer and length.
        unsafe { addr::write_v4(peer, addr, len) }
    };
    let registered =
        stored.and_then(|()| FDS.register(placeholder, Entry::Session(session)).map_err(|_| Errno::EMFILE));
    if let Err(err) = registered {
        backend.release(session);
        // SAFETY: closing the placeholder created above.
        unsafe { real::close(placeholder) };
        return Err(err);
    }
    Ok(placeholder)
}

/// A placeholder eventfd with `SOCK_CLOEXEC`/`SOCK_NONBLOCK` from `flags`.
pub fn new_placeholder(flags: c_int) -> Result<RawFd, Errno> {
    let mut efd_flags = 0;
    if flags & libc::SOCK_CLOEXEC != 0 {
        efd_flags |= libc::EFD_CLOEXEC;
    }
    if flags & libc::SOCK_NONBLOCK != 0 {
        efd_flags |= libc::EFD_NONBLOCK;
    }
    // SAFETY: plain integer arguments; eventfd is not hooked.
    check(unsafe { libc::eventfd(0, efd_flags) })
}
