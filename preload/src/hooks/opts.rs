//! `getsockopt`, `setsockopt`, `fcntl`/`fcntl64`, `ioctl`.
//!
//! `fcntl` and `ioctl` are variadic in C; their optional argument is always an
//! `int` or a pointer, which the x86-64 and AArch64 calling conventions pass
//! in the same integer register as a named pointer-sized argument, so the
//! hooks declare it as a `c_long`.

use std::os::fd::RawFd;

use libc::{c_int, c_long, c_ulong, c_void, socklen_t};

use super::fd::dup_tracked;
use super::{backend, commit, untracked};
use crate::backend::{IntIoctl, SessionRef};
use crate::candidate::{self, options};
use crate::errno::{check, Errno};
use crate::fdtable::{Entry, FDS};
use crate::hook::Outcome;
use crate::real;

crate::hook! {
    fn getsockopt(fd: c_int, level: c_int, name: c_int, value: *mut c_void, len: *mut socklen_t) -> c_int;
    kernel_if untracked(fd);
    match FDS.get(fd) {
        Entry::Candidate(id) if options::answerable(level, name) => {
            let scratch = {
                let mut store = candidate::lock();
                let Some(candidate) = store.get_mut(id) else { return Ok(Outcome::Real) };
                options::Scratch::new(candidate.protocol, &candidate.options)?
            };
            // SAFETY: the caller's buffers, handed to the kernel, which checks them (EFAULT) exactly as for the real socket.
            check(unsafe { real::getsockopt(scratch.fd(), level, name, value, len) }).map(Outcome::Done)
        }
        Entry::Candidate(_) => commit(fd),
        Entry::Session(s) => {
            // SAFETY: the caller's buffers.
            unsafe { session_getsockopt(s, level, name, value, len) }.map(|()| Outcome::Done(0))
        }
        _ => Ok(Outcome::Real),
    }
}

/// # Safety
/// `len` is NULL or valid; `value` is NULL or writable for `*len` bytes.
unsafe fn session_getsockopt(
    s: SessionRef,
    level: c_int,
    name: c_int,
    value: *mut c_void,
    len: *mut socklen_t,
) -> Result<(), Errno> {
    if len.is_null() {
        return Err(Errno::EFAULT);
    }
    // SAFETY: non-NULL, valid per the contract.
    let room = unsafe { *len } as i32;
    if room < 0 {
        return Err(Errno::EINVAL);
    }
    if value.is_null() && room > 0 {
        return Err(Errno::EFAULT);
    }
    let buf: &mut [u8] = if room == 0 {
        &mut []
    } else {
        // SAFETY: non-NULL and writable for `room` bytes per the contract.
        unsafe { std::slice::from_raw_parts_mut(value.cast::<u8>(), room as usize) }
    };
    let stored = backend()?.getsockopt(s, level, name, buf)?;
    // SAFETY: as above.
    unsafe { *len = stored as socklen_t };
    Ok(())
}

crate::hook! {
    fn setsockopt(fd: c_int, level: c_int, name: c_int, value: *const c_void, len: socklen_t) -> c_int;
    kernel_if untracked(fd);
    match FDS.get(fd) {
        Entry::Candidate(id) if options::storable(level, name) && len as usize <= options::VALUE_MAX => {
            // The kernel judges the value on a scratch socket; only accepted
            // values are stored.
            let scratch = options::Scratch::new(0, &[])?;
            // SAFETY: the caller's buffer, checked by the kernel (EFAULT).
            check(unsafe { real::setsockopt(scratch.fd(), level, name, value, len) })?;
            let bytes = if len == 0 {
                &[][..]
            } else {
                // SAFETY: the kernel just read these `len` bytes successfully.
                unsafe { std::slice::from_raw_parts(value.cast::<u8>(), len as usize) }
            };
            let mut store = candidate::lock();
            match store.get_mut(id) {
                Some(candidate) if FDS.get(fd) == Entry::Candidate(id) => {
                    options::record(&mut candidate.options, level, name, bytes);
                    Ok(Outcome::Done(0))
                }
                // Decided meanwhile by another thread: apply it for real.
                _ => Ok(Outcome::Real),
            }
        }
        Entry::Candidate(_) => {
            // An option the kernel refuses on a TCP/IPv4 socket (IPv6-level
            // ones such as Python's IPV6_V6ONLY, bad values) is answered
            // with the kernel's error and leaves the candidate undecided;
            // one it accepts commits the socket to the kernel, which keeps
            // its semantics.
            let scratch = options::Scratch::new(0, &[])?;
            // SAFETY: the caller's buffer, checked by the kernel (EFAULT).
            check(unsafe { real::setsockopt(scratch.fd(), level, name, value, len) })?;
            commit(fd)
        }
        Entry::Session(s) => {
            if (len as i32) < 0 {
                return Err(Errno::EINVAL);
            }
            if value.is_null() && len > 0 {
                return Err(Errno::EFAULT);
            }
            let bytes = if len == 0 {
                &[][..]
            } else {
                // SAFETY: non-NULL and readable for `len` bytes per the caller's contract.
                unsafe { std::slice::from_raw_parts(value.cast::<u8>(), len as usize) }
            };
            backend()?.setsockopt(s, level, name, bytes).map(|()| Outcome::Done(0))
        }
        _ => Ok(Outcome::Real),
    }
}

crate::hook! {
    fn fcntl(fd: c_int, cmd: c_int, arg: c_long) -> c_int;
    kernel_if untracked(fd);
    fcntl_tracked(fd, cmd, arg)
}

/// `fcntl64` is what programs built with `_FILE_OFFSET_BITS=64` call; the
/// commands are the same on 64-bit targets.
///
/// # Safety
/// As `fcntl(2)`.
#[no_mangle]
pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: c_long) -> c_int {
    // SAFETY: same contract.
    unsafe { fcntl(fd, cmd, arg) }
}

fn fcntl_tracked(fd: RawFd, cmd: c_int, arg: c_long) -> Result<Outcome<c_int>, Errno> {
    let entry = FDS.get(fd);
    match cmd {
        // SAFETY: duplicates the caller's descriptor, as asked.
        libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => dup_tracked(fd, || check(unsafe { real::fcntl(fd, cmd, arg) })),
        // Descriptor and status flags live on the placeholder, which shares
        // them between dups exactly as a socket's open file does.
        libc::F_GETFD | libc::F_SETFD | libc::F_GETFL => Ok(Outcome::Real),
        libc::F_SETFL => match entry {
            Entry::Session(s) => {
                // SAFETY: F_SETFL with an integer argument on the placeholder.
                let rc = check(unsafe { real::fcntl(fd, cmd, arg) })?;
                backend()?.set_nonblocking(s, arg as c_int & libc::O_NONBLOCK != 0)?;
                Ok(Outcome::Done(rc))
            }
            _ => Ok(Outcome::Real),
        },
        // Locks, owners, signals, leases...: a candidate becomes the kernel
        // socket that answers them; a session's placeholder answers the
        // generic ones (locks) and refuses the socket-specific ones.
        _ => match entry {
            Entry::Candidate(_) => commit(fd),
            _ => Ok(Outcome::Real),
        },
    }
}

/// `SIOCINQ` is `FIONREAD`; the other socket queue ioctls (linux/sockios.h).
const SIOCOUTQ: c_ulong = libc::TIOCOUTQ;
const SIOCOUTQNSD: c_ulong = 0x894B;
const SIOCATMARK: c_ulong = 0x8905;

fn int_ioctl(request: c_ulong) -> Option<IntIoctl> {
    Some(match request {
        libc::FIONREAD => IntIoctl::BytesReadable,
        SIOCOUTQ => IntIoctl::BytesUnacked,
        SIOCOUTQNSD => IntIoctl::BytesUnsent,
        SIOCATMARK => IntIoctl::AtMark,
        _ => return None,
    })
}

crate::hook! {
    fn ioctl(fd: c_int, request: c_ulong, arg: c_long) -> c_int;
    kernel_if untracked(fd);
    ioctl_tracked(fd, request, arg)
}

fn ioctl_tracked(fd: RawFd, request: c_ulong, arg: c_long) -> Result<Outcome<c_int>, Errno> {
    let entry = FDS.get(fd);
    match (entry, request) {
        // FIONBIO sets O_NONBLOCK on the open file; FIOCLEX/FIONCLEX the
        // descriptor flag: the placeholder carries both.
        (Entry::Candidate(_), libc::FIONBIO | libc::FIOCLEX | libc::FIONCLEX) => Ok(Outcome::Real),
        (Entry::Candidate(id), _) if int_ioctl(request).is_some() => {
            let scratch = {
                let mut store = candidate::lock();
                let Some(candidate) = store.get_mut(id) else { return Ok(Outcome::Real) };
                options::Scratch::new(candidate.protocol, &candidate.options)?
            };
            // SAFETY: the caller's int pointer, checked by the kernel.
            check(unsafe { real::ioctl(scratch.fd(), request, arg) }).map(Outcome::Done)
        }
        (Entry::Candidate(_), _) => commit(fd),
        (Entry::Session(s), libc::FIONBIO) => {
            // SAFETY: FIONBIO with the caller's int pointer, on the placeholder.
            let rc = check(unsafe { real::ioctl(fd, request, arg) })?;

            // SAFETY: the kernel just read this int successfully.
            let on = unsafe { *(arg as *const c_int) } != 0;
            backend()?.set_nonblocking(s, on)?;
            Ok(Outcome::Done(rc))
        }
        (Entry::Session(s), _) => match int_ioctl(request) {
            Some(which) => {
                let value = backend()?.ioctl_int(s, which)?;
                let out = arg as *mut c_int;
                if out.is_null() {
                    return Err(Errno::EFAULT);
                }
                // SAFETY: non-NULL; the caller passes an int pointer for these requests.
                unsafe { out.write_unaligned(value) };
                Ok(Outcome::Done(0))
            }
            // Generic file ioctls work on the placeholder; socket-specific
            // ones get ENOTTY from it.
            None => Ok(Outcome::Real),
        },
        _ => Ok(Outcome::Real),
    }
}
