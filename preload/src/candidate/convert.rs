//! Turning a candidate into a kernel socket at the same descriptor numbers
//! (design §5.2): create a real socket, give it the stored options and the
//! placeholder's file status flags (`O_NONBLOCK`), `dup3` it over every
//! placeholder descriptor naming the candidate (keeping each one's
//! `FD_CLOEXEC`) with its epoll registrations moved over, close the
//! temporary descriptor and forget the candidate.
//!
//! `dup3` replaces the placeholder atomically, so no other thread ever sees
//! the number free or naming something else.

use std::os::fd::RawFd;

use libc::{c_int, c_long};

use super::epoll;
use super::options::{self, StoredOption};
use super::{Candidate, Store};
use crate::errno::{check, Errno};
use crate::fdtable::{Entry, FDS};
use crate::real;

/// Converts the candidate `fd` names, if it still is one; the caller holds
/// the store lock. Afterwards `fd` (and its dups) are kernel sockets, or the
/// error says why not (then nothing changed).
pub fn to_kernel(store: &mut Store, fd: RawFd) -> Result<(), Errno> {
    let Entry::Candidate(id) = FDS.get(fd) else {
        // Converted (or closed) by another thread meanwhile.
        return Ok(());
    };
    let Some(candidate) = store.get_mut(id) else {
        return Ok(());
    };
    let socket = kernel_socket(candidate.protocol, &candidate.options, candidate.fds[0])?;
    // Out of the epoll sets before the placeholder goes, back in once the
    // socket is there (an epoll registration is per open file).
    let interests = epoll::withdraw(candidate);
    if let Err((target, err)) = replace_all(socket, &candidate.fds) {
        // dup3 over a descriptor we own fails only on resource exhaustion;
        // that descriptor is then still the placeholder, and a placeholder
        // posing as a decided socket would be worse than a clear error.
        log::error!("converting socket {target} to a kernel socket failed: {err}");
        epoll::register_kernel(&interests);
        epoll::restore(candidate, interests);
        return Err(err);
    }
    epoll::register_kernel(&interests);
    if let Some(Candidate { fds, .. }) = store.remove(id) {
        for target in fds {
            FDS.forget(target, Entry::Candidate(id));
        }
    }
    Ok(())
}

/// `dup3(file, target)` over every one of `targets`, then closes `file`
/// (the targets hold their own references). The last failure, if any, with
/// its target (which then still names what it named).
pub fn replace_all(file: RawFd, targets: &[RawFd]) -> Result<(), (RawFd, Errno)> {
    let mut failure = Ok(());
    for &target in targets {
        if let Err(err) = replace(file, target) {
            failure = Err((target, err));
        }
    }
    // SAFETY: closing the caller's temporary descriptor, as documented.
    unsafe { real::close(file) };
    failure
}

/// A fresh kernel TCP socket with the file status flags of `like`, to stand
/// in as a candidate's placeholder (see [`super::epoll`]).
pub fn fresh_socket(protocol: c_int, like: RawFd) -> Result<RawFd, Errno> {
    kernel_socket(protocol, &[], like)
}

/// Makes `fd`, a placeholder the fd table cannot hold, a kernel socket.
pub fn untracked_to_kernel(fd: RawFd, protocol: c_int) -> Result<(), Errno> {
    let socket = kernel_socket(protocol, &[], fd)?;
    let result = replace(socket, fd);
    // SAFETY: closing the temporary descriptor; `fd` holds the socket now.
    unsafe { real::close(socket) };
    if result.is_err() {
        // SAFETY: `fd` is the placeholder this call was given to convert.
        unsafe { real::close(fd) };
    }
    result
}

/// A new kernel TCP socket with `options` applied and the file status flags
/// of the placeholder `like`.
fn kernel_socket(protocol: c_int, stored: &[StoredOption], like: RawFd) -> Result<RawFd, Errno> {
    // SAFETY: F_GETFL on a descriptor the caller owns; no third argument.
    let status = check(unsafe { real::fcntl(like, libc::F_GETFL, 0) })?;
    // SAFETY: plain integer arguments.
    let socket = check(unsafe { real::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, protocol) })?;
    for option in stored {
        if let Err(err) = options::apply(socket, option) {
            log::debug!("replaying option {}/{} on a converted socket: {err}", option.level, option.name);
        }
    }
    // The access mode bits are ignored by F_SETFL; the status flags
    // (O_NONBLOCK, O_ASYNC, ...) carry over.
    // SAFETY: F_SETFL with an integer argument on the descriptor just created.
    if let Err(err) = check(unsafe { real::fcntl(socket, libc::F_SETFL, status as c_long) }) {
        // SAFETY: closing the descriptor created above.
        unsafe { real::close(socket) };
        return Err(err);
    }
    Ok(socket)
}

/// `dup3(socket, target)` keeping `target`'s `FD_CLOEXEC`.
fn replace(socket: RawFd, target: RawFd) -> Result<(), Errno> {
    // SAFETY: F_GETFD on a descriptor the caller owns.
    let fd_flags = check(unsafe { real::fcntl(target, libc::F_GETFD, 0) })?;
    let dup_flags = if fd_flags & libc::FD_CLOEXEC != 0 { libc::O_CLOEXEC } else { 0 };
    loop {
        // SAFETY: both descriptors are owned by the caller; dup3 replaces `target` atomically.
        match check(unsafe { real::dup3(socket, target, dup_flags) }) {
            Ok(_) => return Ok(()),
            // EBUSY: the kernel was mid-way installing `target` for a racing
            // open/dup; it resolves at once.
            Err(Errno(libc::EINTR | libc::EBUSY)) => continue,
            Err(err) => return Err(err),
        }
    }
}
