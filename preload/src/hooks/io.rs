//! Data transfer: `read`, `write`, `readv`, `writev`, `recv`, `send`,
//! `recvfrom`, `sendto`, `recvmsg`, `sendmsg`, `recvmmsg`, `sendmmsg`,
//! `sendfile`, `sendfile64`, and the `_FORTIFY_SOURCE` entry points
//! (`__read_chk`, `__recv_chk`, `__recvfrom_chk`) that hardened programs
//! call instead of the plain ones.
//!
//! A candidate is converted first (the kernel answers `ENOTCONN`/`EPIPE`).
//! A session's buffers are passed as `IoSlice`s, which are ABI-compatible with
//! `struct iovec`, so vectored calls cost no copy of the vector. TCP ignores
//! addresses on send and reports none on receive, as the kernel does.

use std::io::{IoSlice, IoSliceMut};
use std::time::{Duration, Instant};

use libc::{c_int, c_uint, c_void, size_t, sockaddr, socklen_t, ssize_t};

use super::{backend, on_fd, ssize, untracked};
use crate::addr;
use crate::backend::SessionRef;
use crate::errno::Errno;
use crate::fdtable::{Entry, FDS};
use crate::hook::Outcome;
use crate::real;

/// `UIO_MAXIOV`: the kernel's limit on a vector's length.
const IOV_MAX: c_int = 1024;

/// One receive buffer from a C pointer and length.
///
/// # Safety
/// `buf` is NULL or writable for `len` bytes for `'a`.
unsafe fn buffer_mut<'a>(buf: *mut c_void, len: size_t) -> Result<[IoSliceMut<'a>; 1], Errno> {
    if len == 0 {
        return Ok([IoSliceMut::new(&mut [])]);
    }
    if buf.is_null() {
        return Err(Errno::EFAULT);
    }
    // SAFETY: non-NULL and writable for `len` bytes (contract).
    Ok([IoSliceMut::new(unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), len) })])
}

/// One send buffer from a C pointer and length.
///
/// # Safety
/// `buf` is NULL or readable for `len` bytes for `'a`.
unsafe fn buffer<'a>(buf: *const c_void, len: size_t) -> Result<[IoSlice<'a>; 1], Errno> {
    if len == 0 {
        return Ok([IoSlice::new(&[])]);
    }
    if buf.is_null() {
        return Err(Errno::EFAULT);
    }
    // SAFETY: non-NULL and readable for `len` bytes (contract).
    Ok([IoSlice::new(unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) })])
}

/// Checks a C `iovec` array the way the kernel does before using it.
///
/// # Safety
/// `iov` is NULL or readable for `count` entries.
unsafe fn check_iovecs(iov: *const libc::iovec, count: usize) -> Result<(), Errno> {
    if count == 0 {
        return Ok(());
    }
    if iov.is_null() {
        return Err(Errno::EFAULT);
    }
    // SAFETY: readable for `count` entries (contract).
    let entries = unsafe { std::slice::from_raw_parts(iov, count) };
    let mut total: usize = 0;
    for entry in entries {
        if entry.iov_len > ssize_t::MAX as usize {
            return Err(Errno::EINVAL);
        }
        if entry.iov_base.is_null() && entry.iov_len > 0 {
            return Err(Errno::EFAULT);
        }
        total = total.checked_add(entry.iov_len).ok_or(Errno::EINVAL)?;
    }
    if total > ssize_t::MAX as usize {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

fn vector_len(count: c_int) -> Result<usize, Errno> {
    if !(0..=IOV_MAX).contains(&count) {
        return Err(Errno::EINVAL);
    }
    Ok(count as usize)
}

/// A C `iovec` array as receive buffers.
///
/// # Safety
/// `iov` is NULL or valid for `count` entries, each writable as described,
/// for `'a`.
unsafe fn iovecs_mut<'a>(iov: *const libc::iovec, count: usize) -> Result<&'a mut [IoSliceMut<'a>], Errno> {
    // SAFETY: forwarded contract.
    unsafe { check_iovecs(iov, count) }?;
    if count == 0 {
        return Ok(&mut []);
    }
    // SAFETY: IoSliceMut is ABI-compatible with `struct iovec` on Unix (documented by std); the entries were checked above and are writable per the contract.
    Ok(unsafe { std::slice::from_raw_parts_mut(iov as *mut IoSliceMut<'a>, count) })
}

/// A C `iovec` array as send buffers.
///
/// # Safety
/// As [`iovecs_mut`], readable instead of writable.
unsafe fn iovecs<'a>(iov: *const libc::iovec, count: usize) -> Result<&'a [IoSlice<'a>], Errno> {
    // SAFETY: forwarded contract.
    unsafe { check_iovecs(iov, count) }?;
    if count == 0 {
        return Ok(&[]);
    }
    // SAFETY: IoSlice is ABI-compatible with `struct iovec` on Unix.
    Ok(unsafe { std::slice::from_raw_parts(iov as *const IoSlice<'a>, count) })
}

fn recv_one(s: SessionRef, buf: *mut c_void, len: size_t, flags: c_int) -> Result<ssize_t, Errno> {
    if buf.is_null() && len > 0 && flags & libc::MSG_TRUNC != 0 {
        // TCP's MSG_TRUNC discards the bytes without touching the buffer,
        // which may be NULL: give the backend one to discard into (at most
        // 64 KiB per call).
        let mut scratch = vec![0u8; len.min(1 << 16)];
        return backend()?.recv(s, &mut [IoSliceMut::new(&mut scratch)], flags).map(ssize);
    }
    // SAFETY: the caller's buffer, as the C call's contract gives it.
    let mut bufs = unsafe { buffer_mut(buf, len) }?;
    backend()?.recv(s, &mut bufs, flags).map(ssize)
}

/// `read`/`readv` of nothing return 0 at once on a socket (net/socket.c
/// `sock_read_iter`, "Match SYS5 behaviour"), whereas `recv` of nothing waits
/// for data like any receive.
fn read_session(s: SessionRef, bufs: &mut [IoSliceMut<'_>]) -> Result<ssize_t, Errno> {
    if bufs.iter().all(|b| b.is_empty()) {
        return Ok(0);
    }
    backend()?.recv(s, bufs, 0).map(ssize)
}

fn send_one(s: SessionRef, buf: *const c_void, len: size_t, flags: c_int) -> Result<ssize_t, Errno> {
    // SAFETY: as above.
    let bufs = unsafe { buffer(buf, len) }?;
    backend()?.send(s, &bufs, flags).map(ssize)
}

crate::hook! {
    fn read(fd: c_int, buf: *mut c_void, count: size_t) -> ssize_t;
    kernel_if untracked(fd);
    on_fd(fd, |_, s| {
        // SAFETY: the caller's buffer.
        let mut bufs = unsafe { buffer_mut(buf, count) }?;
        read_session(s, &mut bufs)
    })
}

crate::hook! {
    fn write(fd: c_int, buf: *const c_void, count: size_t) -> ssize_t;
    kernel_if untracked(fd);
    on_fd(fd, |_, s| send_one(s, buf, count, 0))
}

crate::hook! {
    fn recv(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t;
    kernel_if untracked(fd);
    on_fd(fd, |_, s| recv_one(s, buf, len, flags))
}

crate::hook! {
    fn send(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> ssize_t;
    kernel_if untracked(fd);
    on_fd(fd, |_, s| send_one(s, buf, len, flags))
}

crate::hook! {
    fn recvfrom(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int, addr: *mut sockaddr, addrlen: *mut socklen_t)
        -> ssize_t;
    kernel_if untracked(fd);
    on_fd(fd, |_, s| {
        let n = recv_one(s, buf, len, flags)?;
        // SAFETY: the caller's length pointer.
        unsafe { addr::write_none(addr, addrlen) };
        Ok(n)
    })
}

crate::hook! {
    fn sendto(fd: c_int, buf: *const c_void, len: size_t, flags: c_int, addr: *const sockaddr, addrlen: socklen_t)
        -> ssize_t;
    kernel_if untracked(fd);
    on_fd(fd, |_, s| send_one(s, buf, len, flags))
}

crate::hook! {
    fn readv(fd: c_int, iov: *const libc::iovec, iovcnt: c_int) -> ssize_t;
    kernel_if untracked(fd);
    on_fd(fd, |_, s| {
        // SAFETY: the caller's vector.
        let bufs = unsafe { iovecs_mut(iov, vector_len(iovcnt)?) }?;
        read_session(s, bufs)
    })
}

crate::hook! {
    fn writev(fd: c_int, iov: *const libc::iovec, iovcnt: c_int) -> ssize_t;
    kernel_if untracked(fd);
    on_fd(fd, |backend, s| {
        // SAFETY: the caller's vector.
        let bufs = unsafe { iovecs(iov, vector_len(iovcnt)?) }?;
        backend.send(s, bufs, 0).map(ssize)
    })
}

/// `recvmsg` on a session: data into the vector; no address, no control
/// data, no flags back (TCP's answer).
///
/// # Safety
/// `msg` is NULL or a valid `msghdr` whose vector is valid.
unsafe fn recvmsg_session(s: SessionRef, msg: *mut libc::msghdr, flags: c_int) -> Result<usize, Errno> {
    if msg.is_null() {
        return Err(Errno::EFAULT);
    }
    // SAFETY: non-NULL and valid (contract).
    let msg = unsafe { &mut *msg };
    let count = vector_len(c_int::try_from(msg.msg_iovlen).map_err(|_| Errno(libc::EMSGSIZE))?)
        .map_err(|_| Errno(libc::EMSGSIZE))?;
    // SAFETY: the message's vector (contract).
    let bufs = unsafe { iovecs_mut(msg.msg_iov, count) }?;
    let n = backend()?.recv(s, bufs, flags)?;
    if !msg.msg_name.is_null() {
        msg.msg_namelen = 0;
    }
    msg.msg_controllen = 0;
    msg.msg_flags = 0;
    Ok(n)
}

/// `sendmsg` on a session: the vector's data; the address is ignored (the
/// socket is connected, or the backend says why not); control data is
/// refused (`EINVAL`), none being meaningful for a Sluice session.
///
/// # Safety
/// As [`recvmsg_session`], read-only.
unsafe fn sendmsg_session(s: SessionRef, msg: *const libc::msghdr, flags: c_int) -> Result<usize, Errno> {
    if msg.is_null() {
        return Err(Errno::EFAULT);
    }
    // SAFETY: non-NULL and valid (contract).
    let msg = unsafe { &*msg };
    if msg.msg_controllen > 0 && !msg.msg_control.is_null() {
        return Err(Errno::EINVAL);
    }
    let count = vector_len(c_int::try_from(msg.msg_iovlen).map_err(|_| Errno(libc::EMSGSIZE))?)
        .map_err(|_| Errno(libc::EMSGSIZE))?;
    // SAFETY: the message's vector (contract).
    let bufs = unsafe { iovecs(msg.msg_iov, count) }?;
    backend()?.send(s, bufs, flags)
}

crate::hook! {
    fn recvmsg(fd: c_int, msg: *mut libc::msghdr, flags: c_int) -> ssize_t;
    kernel_if untracked(fd);
    // SAFETY: the caller's message.
    on_fd(fd, |_, s| unsafe { recvmsg_session(s, msg, flags) }.map(ssize))
}

crate::hook! {
    fn sendmsg(fd: c_int, msg: *const libc::msghdr, flags: c_int) -> ssize_t;
    kernel_if untracked(fd);
    // SAFETY: the caller's message.
    on_fd(fd, |_, s| unsafe { sendmsg_session(s, msg, flags) }.map(ssize))
}

/// `MSG_WAITFORONE`: after the first message, do not wait for more.
const MSG_WAITFORONE: c_int = 0x10000;

crate::hook! {
    fn recvmmsg(fd: c_int, msgs: *mut libc::mmsghdr, vlen: c_uint, flags: c_int, timeout: *mut libc::timespec)
        -> c_int;
    kernel_if untracked(fd);
    on_fd(fd, |_, s| {
        // SAFETY: the caller's message array and timeout.
        unsafe { recvmmsg_session(s, msgs, vlen, flags, timeout) }
    })
}

/// `recvmmsg` as a loop of `recvmsg` (design §5.3). As in the kernel, the
/// timeout is only checked after each message, and an error after at least
/// one message ends the batch without being reported.
///
/// # Safety
/// `msgs` is valid for `vlen` entries; `timeout` is NULL or valid.
unsafe fn recvmmsg_session(
    s: SessionRef,
    msgs: *mut libc::mmsghdr,
    vlen: c_uint,
    flags: c_int,
    timeout: *mut libc::timespec,
) -> Result<c_int, Errno> {
    let deadline = if timeout.is_null() {
        None
    } else {
        // SAFETY: non-NULL and valid (contract).
        let ts = unsafe { *timeout };
        Some(Instant::now() + super::poll::duration(&ts)?)
    };
    let vlen = vlen.min(1024);
    if vlen > 0 && msgs.is_null() {
        return Err(Errno::EFAULT);
    }
    let mut received = 0;
    while received < vlen {
        let mut this_flags = flags & !MSG_WAITFORONE;
        if received > 0 && flags & MSG_WAITFORONE != 0 {
            this_flags |= libc::MSG_DONTWAIT;
        }
        // SAFETY: entry `received` < vlen of the caller's array.
        let entry = unsafe { &mut *msgs.add(received as usize) };
        // SAFETY: the entry's header (contract).
        match unsafe { recvmsg_session(s, &mut entry.msg_hdr, this_flags) } {
            Ok(n) => entry.msg_len = n.min(c_uint::MAX as usize) as c_uint,
            Err(err) if received == 0 => return Err(err),
            Err(_) => break,
        }
        received += 1;
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            // SAFETY: non-NULL and valid (contract).
            unsafe { *timeout = super::poll::timespec(left) };
            if left == Duration::ZERO {
                break;
            }
        }
    }
    Ok(received as c_int)
}

crate::hook! {
    fn sendmmsg(fd: c_int, msgs: *mut libc::mmsghdr, vlen: c_uint, flags: c_int) -> c_int;
    kernel_if untracked(fd);
    on_fd(fd, |_, s| {
        let vlen = vlen.min(1024);
        if vlen > 0 && msgs.is_null() {
            return Err(Errno::EFAULT);
        }
        let mut sent = 0;
        while sent < vlen {
            // SAFETY: entry `sent` < vlen of the caller's array.
            let entry = unsafe { &mut *msgs.add(sent as usize) };
            // SAFETY: the entry's header (the caller's contract).
            match unsafe { sendmsg_session(s, &entry.msg_hdr, flags) } {
                Ok(n) => entry.msg_len = n.min(c_uint::MAX as usize) as c_uint,
                Err(err) if sent == 0 => return Err(err),
                Err(_) => break,
            }
            sent += 1;
        }
        Ok(sent as c_int)
    })
}

/// `sendfile` with a session on either end: out is the backend's job; a
/// socket as the input is `EINVAL`, as the kernel says for sockets.
fn sendfile_tracked(out_fd: c_int, in_fd: c_int, offset: *mut i64, count: size_t) -> Result<Outcome<ssize_t>, Errno> {
    for fd in [in_fd, out_fd] {
        if let Entry::Candidate(_) = FDS.get(fd) {
            crate::decide::commit_to_kernel(fd)?;
        }
    }
    if let Entry::Session(_) = FDS.get(in_fd) {
        return Err(Errno::EINVAL);
    }
    match FDS.get(out_fd) {
        Entry::Session(s) => {
            // SAFETY: the caller's offset pointer, NULL or valid.
            let offset = unsafe { offset.as_mut() };
            backend()?.sendfile(s, in_fd, offset, count).map(|n| Outcome::Done(ssize(n)))
        }
        _ => Ok(Outcome::Real),
    }
}

crate::hook! {
    fn sendfile(out_fd: c_int, in_fd: c_int, offset: *mut libc::off_t, count: size_t) -> ssize_t;
    kernel_if untracked(out_fd) && untracked(in_fd);
    sendfile_tracked(out_fd, in_fd, offset, count)
}

crate::hook! {
    fn sendfile64(out_fd: c_int, in_fd: c_int, offset: *mut libc::off64_t, count: size_t) -> ssize_t;
    kernel_if untracked(out_fd) && untracked(in_fd);
    sendfile_tracked(out_fd, in_fd, offset, count)
}

/// `_FORTIFY_SOURCE` checks: a length beyond the destination buffer is a
/// detected overflow, reported the way glibc does.
fn fortify_check(len: size_t, buflen: size_t) {
    if len > buflen {
        real::chk_fail();
    }
}

/// # Safety
/// As `__read_chk` (`read` with the buffer's size).
#[no_mangle]
pub unsafe extern "C" fn __read_chk(fd: c_int, buf: *mut c_void, nbytes: size_t, buflen: size_t) -> ssize_t {
    fortify_check(nbytes, buflen);
    // SAFETY: same contract as `read`.
    unsafe { read(fd, buf, nbytes) }
}

/// # Safety
/// As `__recv_chk`.
#[no_mangle]
pub unsafe extern "C" fn __recv_chk(fd: c_int, buf: *mut c_void, len: size_t, buflen: size_t, flags: c_int) -> ssize_t {
    fortify_check(len, buflen);
    // SAFETY: same contract as `recv`.
    unsafe { recv(fd, buf, len, flags) }
}

/// # Safety
/// As `__recvfrom_chk`.
#[no_mangle]
pub unsafe extern "C" fn __recvfrom_chk(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    buflen: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    addrlen: *mut socklen_t,
) -> ssize_t {
    fortify_check(len, buflen);
    // SAFETY: same contract as `recvfrom`.
    unsafe { recvfrom(fd, buf, len, flags, addr, addrlen) }
}
