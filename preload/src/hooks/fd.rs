//! Descriptor bookkeeping: `close`, `close_range`, `closefrom`, `fclose`,
//! `dup`, `dup2`, `dup3` (and `fcntl(F_DUPFD*)` through [`dup_tracked`]).
//!
//! A dup copies the fd-table mapping (one more reference to the candidate,
//! session or epoll instance); closing a descriptor, or making it the target
//! of `dup2`/`dup3`, releases its reference (design §5.2). Closing follows
//! the tombstone protocol of [`crate::fdtable`].

use std::os::fd::RawFd;

use libc::{c_int, c_uint};

use super::{backend, untracked};
use crate::candidate;
use crate::errno::{check, Errno};
use crate::fdtable::{Entry, FDS};
use crate::hook::{self, Outcome};
use crate::real;
use crate::trace;

crate::hook! {
    fn close(fd: c_int) -> c_int;
    kernel_if untracked(fd);
    // SAFETY: closes the caller's descriptor, as asked.
    close_tracked(fd, || check(unsafe { real::close(fd) }))
}

crate::hook! {
    /// `fclose` closes its descriptor inside libc, past our `close`.
    fn fclose(stream: *mut libc::FILE) -> c_int;
    kernel_if stream.is_null() || untracked(stream_fd(stream));
    // SAFETY: closes the caller's stream, as asked.
    close_tracked(stream_fd(stream), || check(unsafe { real::fclose(stream) }))
}

fn stream_fd(stream: *mut libc::FILE) -> RawFd {
    // fileno sets errno for streams without a descriptor (fmemopen); the
    // caller's errno must survive a successful fclose.
    let saved = Errno::last();
    // SAFETY: a non-NULL stream the caller is about to fclose, so valid.
    let fd = unsafe { libc::fileno(stream) };
    saved.set();
    fd
}

/// Closes a descriptor with `closer` (the real `close`/`fclose`) and
/// releases what its entry referred to.
fn close_tracked(fd: RawFd, closer: impl FnOnce() -> Result<c_int, Errno>) -> Result<Outcome<c_int>, Errno> {
    let entry = FDS.get(fd);
    match entry {
        Entry::Candidate(id) => {
            let mut store = candidate::lock();
            if !FDS.begin_close(fd, entry) {
                drop(store);
                return closer().map(Outcome::Done);
            }
            if let Some(candidate) = store.get_mut(id) {
                candidate.fds.retain(|&named| named != fd);
                candidate::epoll::forget_fd(candidate, fd);
                if candidate.fds.is_empty() {
                    store.remove(id);
                }
            }
            let result = closer();
            FDS.finish_close(fd);
            result.map(Outcome::Done)
        }
        Entry::Session(_) | Entry::Epoll(_) => {
            if !FDS.begin_close(fd, entry) {
                if matches!(FDS.get(fd), Entry::Session(_)) {
                    // Not closed by another thread but re-pointed (an
                    // inherited listener re-created meanwhile): close what
                    // it names now.
                    return close_tracked(fd, closer);
                }
                return closer().map(Outcome::Done);
            }
            let result = closer();
            release(entry);
            FDS.finish_close(fd);
            result.map(Outcome::Done)
        }
        Entry::Kernel | Entry::Closing => closer().map(Outcome::Done),
    }
}

/// Drops the reference a (no longer existing) descriptor held on a session
/// or epoll instance. Candidates are handled under the store lock by callers.
fn release(entry: Entry) {
    let Ok(backend) = backend() else { return };
    match entry {
        Entry::Session(s) => backend.release(s),
        Entry::Epoll(e) => backend.epoll_release(e),
        _ => {}
    }
}

/// Closes every tracked descriptor in `first..=last` with `closer`, which
/// closes the whole range (and so the untracked ones too).
fn close_range_tracked(
    first: c_int,
    last: c_int,
    closer: impl FnOnce() -> Result<c_int, Errno>,
) -> Result<c_int, Errno> {
    let mut store = candidate::lock();
    let mut closing = Vec::new();
    FDS.for_each_tracked(first..=last, |fd, entry| {
        if FDS.begin_close(fd, entry) {
            closing.push((fd, entry));
        }
    });
    let result = closer();
    for &(fd, entry) in &closing {
        match entry {
            Entry::Candidate(id) => {
                if let Some(candidate) = store.get_mut(id) {
                    candidate.fds.retain(|&named| named != fd);
                    candidate::epoll::forget_fd(candidate, fd);
                    if candidate.fds.is_empty() {
                        store.remove(id);
                    }
                }
            }
            _ => release(entry),
        }
        FDS.finish_close(fd);
    }
    result
}

/// Whether any descriptor in `first..=last` is tracked.
fn any_tracked(first: c_int, last: c_int) -> bool {
    let mut found = false;
    FDS.for_each_tracked(first..=last, |_, _| found = true);
    found
}

fn range_end(last: c_uint) -> c_int {
    last.min(c_int::MAX as c_uint) as c_int
}

crate::hook! {
    fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int;
    // CLOSE_RANGE_CLOEXEC only marks descriptors; placeholders carry the
    // flag like the sockets they stand for.
    kernel_if first > c_int::MAX as c_uint
        || flags & libc::CLOSE_RANGE_CLOEXEC as c_int != 0
        || !any_tracked(first as c_int, range_end(last));
    close_range_tracked(first as c_int, range_end(last), || {
        // SAFETY: closes the caller's range, as asked.
        check(unsafe { real::close_range(first, last, flags) })
    })
    .map(Outcome::Done)
}

/// `closefrom(3)` returns nothing, so it is written out by hand rather than
/// with `hook!`.
///
/// # Safety
/// As `closefrom(3)`.
#[no_mangle]
pub unsafe extern "C" fn closefrom(lowfd: c_int) {
    if crate::guard::inside() {
        // SAFETY: the caller's argument, forwarded.
        return unsafe { real::closefrom(lowfd) };
    }
    if any_tracked(lowfd.max(0), c_int::MAX) {
        let _ = hook::run_guarded("closefrom", || {
            close_range_tracked(lowfd.max(0), c_int::MAX, || {
                // SAFETY: as above.
                unsafe { real::closefrom(lowfd) };
                Ok(0)
            })
        });
    } else {
        // SAFETY: as above.
        unsafe { real::closefrom(lowfd) };
    }
    if trace::enabled() {
        let done = trace::Outcome { value: trace::Arg::from(0i32), errno: None };
        trace::call("closefrom", &[trace::Arg::from(lowfd)], &done);
    }
}

crate::hook! {
    fn dup(fd: c_int) -> c_int;
    kernel_if untracked(fd);
    // SAFETY: duplicates the caller's descriptor, as asked.
    dup_tracked(fd, || check(unsafe { real::dup(fd) }))
}

/// Duplicates a tracked `fd` with `duplicate` (the real `dup` or
/// `fcntl(F_DUPFD*)`) and records the new descriptor as naming the same
/// object.
pub fn dup_tracked(fd: RawFd, duplicate: impl FnOnce() -> Result<c_int, Errno>) -> Result<Outcome<c_int>, Errno> {
    let mut store = candidate::lock();
    let entry = FDS.get(fd);
    if matches!(entry, Entry::Kernel | Entry::Closing) {
        return Ok(Outcome::Real);
    }
    let new = duplicate()?;
    if let Err(err) = adopt(&mut store, new, entry) {
        // SAFETY: closing the descriptor just created.
        unsafe { real::close(new) };
        return Err(err);
    }
    Ok(Outcome::Done(new))
}

/// Records `new`, a fresh descriptor for the same open file as one whose
/// entry is `entry`.
fn adopt(store: &mut candidate::Store, new: RawFd, entry: Entry) -> Result<(), Errno> {
    match entry {
        Entry::Candidate(id) => {
            let candidate = store.get_mut(id).ok_or(Errno::EBADF)?;
            FDS.register(new, entry).map_err(|_| Errno::EMFILE)?;
            candidate.fds.push(new);
        }
        Entry::Session(s) => {
            FDS.register(new, entry).map_err(|_| Errno::EMFILE)?;
            backend()?.add_ref(s);
        }
        Entry::Epoll(e) => {
            FDS.register(new, entry).map_err(|_| Errno::EMFILE)?;
            backend()?.epoll_add_ref(e);
        }
        Entry::Kernel | Entry::Closing => {}
    }
    Ok(())
}

crate::hook! {
    fn dup2(old: c_int, new: c_int) -> c_int;
    kernel_if untracked(old) && untracked(new);
    // SAFETY: the caller's descriptors, as asked.
    dup_onto(old, new, || check(unsafe { real::dup2(old, new) }))
}

crate::hook! {
    fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int;
    kernel_if untracked(old) && untracked(new);
    // SAFETY: the caller's descriptors, as asked.
    dup_onto(old, new, || check(unsafe { real::dup3(old, new, flags) }))
}

/// `dup2(old, new)` with the table kept, for the interposer's own use (the
/// hook is bypassed inside the guard).
pub fn dup2_tracked(old: RawFd, new: RawFd) -> Result<c_int, Errno> {
    // SAFETY: descriptors the caller owns.
    let dup2 = || check(unsafe { real::dup2(old, new) });
    match dup_onto(old, new, dup2)? {
        Outcome::Done(fd) => Ok(fd),
        Outcome::Real => dup2(),
    }
}

/// `dup2`/`dup3`: the target's old entry is released as if closed, and it
/// takes the source's entry.
fn dup_onto(old: RawFd, new: RawFd, duplicate: impl FnOnce() -> Result<c_int, Errno>) -> Result<Outcome<c_int>, Errno> {
    if old == new {
        // dup2 checks `old` and returns it, dup3 fails with EINVAL: no change.
        return Ok(Outcome::Real);
    }
    let mut store = candidate::lock();
    let source = FDS.get(old);
    let target = FDS.get(new);
    let closing = !matches!(target, Entry::Kernel | Entry::Closing) && FDS.begin_close(new, target);
    match duplicate() {
        Ok(fd) => {
            if closing {
                match target {
                    Entry::Candidate(id) => {
                        if let Some(candidate) = store.get_mut(id) {
                            candidate.fds.retain(|&named| named != new);
                            if candidate.fds.is_empty() {
                                store.remove(id);
                            }
                        }
                    }
                    _ => release(target),
                }
                FDS.finish_close(new);
            }
            if let Err(err) = adopt(&mut store, new, source) {
                // The copy exists in the kernel but cannot be tracked; it
                // must not pose as a socket.
                // SAFETY: closing the descriptor dup just created.
                unsafe { real::close(new) };
                return Err(err);
            }
            Ok(Outcome::Done(fd))
        }
        Err(err) => {
            if closing {
                FDS.replace(new, Entry::Closing, target);
            }
            Err(err)
        }
    }
}
