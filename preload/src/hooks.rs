//! The interposed C functions, grouped by what they act on. Each file's
//! functions are built with [`hook!`](crate::hook!); this module holds what
//! they share.
//!
//! Every hook treats a descriptor by its fd-table entry:
//! * kernel (the overwhelming majority): the real function, untouched;
//! * candidate: answered as a fresh TCP socket, or converted first (see
//!   [`crate::candidate`]);
//! * session: the matching [`Backend`] method;
//! * epoll instance with sessions: the backend's epoll methods.

pub mod epoll;
pub mod exec_varargs;
pub mod fd;
pub mod io;
pub mod opts;
pub mod poll;
pub mod process;
pub mod socket;
pub mod splice;
pub mod stat;

use std::os::fd::RawFd;

use crate::backend::Backend;
use crate::decide;
use crate::errno::Errno;
use crate::fdtable::{Entry, FDS};
use crate::hook::Outcome;

/// Fast-path test: `fd` is not tracked.
#[inline(always)]
pub fn untracked(fd: RawFd) -> bool {
    !FDS.is_tracked(fd)
}

/// The backend that owns the sessions of this process. A session entry
/// exists only if the policy's backend was reachable, so this only fails if
/// the fd table was corrupted by a raw `close` behind our back.
pub fn backend() -> Result<&'static dyn Backend, Errno> {
    crate::policy::get().backend.as_ref().map(|b| *b).map_err(|_| Errno::EBADF)
}

/// For calls a candidate cannot answer: converts it to a kernel socket (if
/// `fd` still names one) so the real call that follows is the kernel's.
pub fn commit<R>(fd: RawFd) -> Result<Outcome<R>, Errno> {
    decide::commit_to_kernel(fd)?;
    Ok(Outcome::Real)
}

/// The usual body of a call on one descriptor: candidates convert, sessions
/// go to `on_session`, everything else to the kernel.
pub fn on_fd<R>(
    fd: RawFd,
    on_session: impl FnOnce(&'static dyn Backend, crate::backend::SessionRef) -> Result<R, Errno>,
) -> Result<Outcome<R>, Errno> {
    match FDS.get(fd) {
        Entry::Candidate(_) => commit(fd),
        Entry::Session(s) => on_session(backend()?, s).map(Outcome::Done),
        Entry::Kernel | Entry::Closing | Entry::Epoll(_) => Ok(Outcome::Real),
    }
}

/// A byte count as the `ssize_t` a C call returns.
pub fn ssize(n: usize) -> libc::ssize_t {
    n.min(libc::ssize_t::MAX as usize) as libc::ssize_t
}
