//! `poll`, `ppoll`, `select`, `pselect` (and the fortified `__poll_chk`,
//! `__ppoll_chk`) over sets that may mix sessions with kernel descriptors.
//!
//! A set without tracked descriptors is the kernel's. Candidates in a set are
//! converted first (a fresh kernel socket reports `POLLOUT | POLLHUP`, which
//! a placeholder would not). A set with sessions, or with an epoll
//! descriptor that holds sessions, goes to the backend's
//! `poll`, which waits in a real `ppoll` with the caller's timeout and
//! signal mask. `select`/`pselect` with sessions are evaluated as `ppoll`
//! (placeholders are ordinary numbers below `FD_SETSIZE`), with the kernel's
//! mapping between the two (fs/select.c `POLLIN_SET`/`POLLOUT_SET`/
//! `POLLEX_SET`); `select` then stores the time left, as Linux does.

use std::time::{Duration, Instant};

use libc::{c_int, c_short, nfds_t, size_t};

use super::{backend, untracked};
use crate::decide;
use crate::errno::Errno;
use crate::fdtable::{Entry, FDS, MAX_FDS};
use crate::hook::Outcome;
use crate::real;

/// A C `timespec` as a duration; `EINVAL` for the values the kernel rejects.
pub fn duration(ts: &libc::timespec) -> Result<Duration, Errno> {
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return Err(Errno::EINVAL);
    }
    Ok(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

pub fn timespec(d: Duration) -> libc::timespec {
    libc::timespec { tv_sec: d.as_secs().min(libc::time_t::MAX as u64) as libc::time_t, tv_nsec: d.subsec_nanos() as _ }
}

/// # Safety
/// `fds` is NULL or readable for `nfds` entries.
unsafe fn pollfds_untracked(fds: *const libc::pollfd, nfds: nfds_t) -> bool {
    // A NULL or oversized set is the kernel's to refuse (EFAULT/EINVAL).
    if fds.is_null() || nfds as usize > MAX_FDS {
        return true;
    }
    // SAFETY: readable for nfds entries (contract).
    let set = unsafe { std::slice::from_raw_parts(fds, nfds as usize) };
    set.iter().all(|p| untracked(p.fd))
}

/// The body of every poll flavour once the set has tracked descriptors.
///
/// # Safety
/// `fds` is valid for `nfds` entries.
unsafe fn poll_tracked(
    fds: *mut libc::pollfd,
    nfds: nfds_t,
    timeout: Option<Duration>,
    sigmask: Option<&libc::sigset_t>,
) -> Result<Outcome<c_int>, Errno> {
    // SAFETY: valid for nfds entries (contract; checked non-NULL by the fast-path test that sent us here).
    let set = unsafe { std::slice::from_raw_parts_mut(fds, nfds as usize) };
    for p in set.iter() {
        if let Entry::Candidate(_) = FDS.get(p.fd) {
            decide::commit_to_kernel(p.fd)?;
        }
    }
    let sessions: Vec<_> = set
        .iter()
        .map(|p| match FDS.get(p.fd) {
            Entry::Session(s) => Some(s),
            _ => None,
        })
        .collect();
    if sessions.iter().all(Option::is_none) && !set.iter().any(|p| names_epoll(p.fd)) {
        return Ok(Outcome::Real);
    }
    let ready = backend()?.poll(set, &sessions, timeout, sigmask)?;
    Ok(Outcome::Done(ready as c_int))
}

/// An epoll instance holding sessions: it polls readable only while the
/// daemon's events are applied, so a wait on it goes through the backend
/// (which waits on it as a kernel descriptor, applying them).
fn names_epoll(fd: c_int) -> bool {
    matches!(FDS.get(fd), Entry::Epoll(_))
}

fn millis(timeout: c_int) -> Option<Duration> {
    (timeout >= 0).then(|| Duration::from_millis(timeout as u64))
}

crate::hook! {
    fn poll(fds: *mut libc::pollfd, nfds: nfds_t, timeout: c_int) -> c_int;
    // SAFETY: the caller's set.
    kernel_if unsafe { pollfds_untracked(fds, nfds) };

    // SAFETY: the caller's set of nfds entries.
    unsafe { poll_tracked(fds, nfds, millis(timeout), None) }
}

crate::hook! {
    fn ppoll(fds: *mut libc::pollfd, nfds: nfds_t, timeout: *const libc::timespec, sigmask: *const libc::sigset_t)
        -> c_int;
    // SAFETY: the caller's set.
    kernel_if unsafe { pollfds_untracked(fds, nfds) };
    {
        // SAFETY: the caller's timeout and mask, NULL or valid.
        let (timeout, sigmask) = unsafe { (timeout.as_ref(), sigmask.as_ref()) };
        let timeout = timeout.map(duration).transpose()?;
        // SAFETY: the caller's set.
        unsafe { poll_tracked(fds, nfds, timeout, sigmask) }
    }
}

/// # Safety
/// As `__poll_chk` (`poll` with the array's size in bytes).
#[no_mangle]
pub unsafe extern "C" fn __poll_chk(fds: *mut libc::pollfd, nfds: nfds_t, timeout: c_int, fdslen: size_t) -> c_int {
    if fdslen / std::mem::size_of::<libc::pollfd>() < nfds as usize {
        real::chk_fail();
    }
    // SAFETY: same contract as `poll`.
    unsafe { poll(fds, nfds, timeout) }
}

/// # Safety
/// As `__ppoll_chk`.
#[no_mangle]
pub unsafe extern "C" fn __ppoll_chk(
    fds: *mut libc::pollfd,
    nfds: nfds_t,
    timeout: *const libc::timespec,
    sigmask: *const libc::sigset_t,
    fdslen: size_t,
) -> c_int {
    if fdslen / std::mem::size_of::<libc::pollfd>() < nfds as usize {
        real::chk_fail();
    }
    // SAFETY: same contract as `ppoll`.
    unsafe { ppoll(fds, nfds, timeout, sigmask) }
}

/// The three `select` sets, any of them NULL.
#[derive(Clone, Copy)]
struct FdSets {
    read: *mut libc::fd_set,
    write: *mut libc::fd_set,
    except: *mut libc::fd_set,
}

const SET_WORD_BITS: usize = 8 * std::mem::size_of::<libc::c_ulong>();

/// # Safety
/// `set` is NULL or holds at least `nfds` bits.
unsafe fn is_set(set: *const libc::fd_set, fd: usize) -> bool {
    if set.is_null() {
        return false;
    }
    // SAFETY: fd < nfds, within the caller's bitmap (contract); fd_set is an array of longs (glibc's __fds_bits), so this reads one word of it.
    let word = unsafe { *set.cast::<libc::c_ulong>().add(fd / SET_WORD_BITS) };
    word & (1 << (fd % SET_WORD_BITS)) != 0
}

/// # Safety
/// `set` is NULL or holds at least `nfds` bits, writable.
unsafe fn assign(set: *mut libc::fd_set, fd: usize, on: bool) {
    if set.is_null() {
        return;
    }
    // SAFETY: as in `is_set`, writable (contract).
    let word = unsafe { &mut *set.cast::<libc::c_ulong>().add(fd / SET_WORD_BITS) };
    let bit = 1 << (fd % SET_WORD_BITS);
    if on {
        *word |= bit;
    } else {
        *word &= !bit;
    }
}

impl FdSets {
    /// Descriptors below `limit` named in any set. Only numbers below the
    /// fd table's high-water mark can be tracked, so callers bound `limit` by
    /// it and never read past what the caller's sets must hold.
    ///
    /// # Safety
    /// Each non-NULL set holds at least `limit` bits.
    unsafe fn members(self, limit: usize) -> impl Iterator<Item = usize> {
        (0..limit).filter(move |&fd| {
            // SAFETY: fd < limit (contract).
            unsafe { is_set(self.read, fd) || is_set(self.write, fd) || is_set(self.except, fd) }
        })
    }
}

fn select_scan_limit(nfds: c_int) -> usize {
    (nfds.max(0) as usize).min(FDS.high_water())
}

/// # Safety
/// Each non-NULL set holds at least `nfds` bits.
unsafe fn sets_untracked(nfds: c_int, sets: FdSets) -> bool {
    // SAFETY: the limit is at most nfds (contract).
    unsafe { sets.members(select_scan_limit(nfds)) }.all(|fd| untracked(fd as c_int))
}

/// `select`/`pselect` once the sets have tracked descriptors. `Real` means
/// none is a session (after converting candidates).
///
/// # Safety
/// Each non-NULL set holds at least `nfds` bits.
unsafe fn select_tracked(
    nfds: c_int,
    sets: FdSets,
    timeout: Option<Duration>,
    sigmask: Option<&libc::sigset_t>,
) -> Result<Outcome<c_int>, Errno> {
    if nfds < 0 {
        return Err(Errno::EINVAL);
    }
    // Every member, not only the tracked ones: with sessions the whole set
    // is evaluated as one ppoll.
    // SAFETY: nfds bits (contract).
    let members: Vec<usize> = unsafe { sets.members(nfds as usize) }.collect();
    for &fd in &members {
        if let Entry::Candidate(_) = FDS.get(fd as c_int) {
            decide::commit_to_kernel(fd as c_int)?;
        }
    }
    let sessions: Vec<_> = members
        .iter()
        .map(|&fd| match FDS.get(fd as c_int) {
            Entry::Session(s) => Some(s),
            _ => None,
        })
        .collect();
    if sessions.iter().all(Option::is_none) && !members.iter().any(|&fd| names_epoll(fd as c_int)) {
        return Ok(Outcome::Real);
    }
    const IN: c_short = libc::POLLIN | libc::POLLRDNORM | libc::POLLRDBAND;
    const OUT: c_short = libc::POLLOUT | libc::POLLWRNORM | libc::POLLWRBAND;
    let mut pollfds: Vec<libc::pollfd> = members
        .iter()
        .map(|&fd| {
            // SAFETY: fd < nfds (contract).
            let (r, w, e) = unsafe { (is_set(sets.read, fd), is_set(sets.write, fd), is_set(sets.except, fd)) };
            let mut events = 0;
            if r {
                events |= IN;
            }
            if w {
                events |= OUT;
            }
            if e {
                events |= libc::POLLPRI;
            }
            libc::pollfd { fd: fd as c_int, events, revents: 0 }
        })
        .collect();
    backend()?.poll(&mut pollfds, &sessions, timeout, sigmask)?;
    if pollfds.iter().any(|p| p.revents & libc::POLLNVAL != 0) {
        return Err(Errno::EBADF);
    }
    let mut count = 0;
    for p in &pollfds {
        let fd = p.fd as usize;
        // SAFETY: fd < nfds (contract).
        let (r, w, e) = unsafe { (is_set(sets.read, fd), is_set(sets.write, fd), is_set(sets.except, fd)) };
        let readable = r && p.revents & (IN | libc::POLLHUP | libc::POLLERR) != 0;
        let writable = w && p.revents & (OUT | libc::POLLERR) != 0;
        let exceptional = e && p.revents & libc::POLLPRI != 0;
        // SAFETY: fd < nfds; the sets are writable (contract).
        unsafe {
            assign(sets.read, fd, readable);
            assign(sets.write, fd, writable);
            assign(sets.except, fd, exceptional);
        }
        count += readable as c_int + writable as c_int + exceptional as c_int;
    }
    Ok(Outcome::Done(count))
}

crate::hook! {
    fn select(nfds: c_int, readfds: *mut libc::fd_set, writefds: *mut libc::fd_set, exceptfds: *mut libc::fd_set,
        timeout: *mut libc::timeval) -> c_int;
    // SAFETY: the caller's sets hold nfds bits.
    kernel_if unsafe { sets_untracked(nfds, FdSets { read: readfds, write: writefds, except: exceptfds }) };
    {
        let sets = FdSets { read: readfds, write: writefds, except: exceptfds };
        // SAFETY: the caller's timeout, NULL or valid.
        let limit = match unsafe { timeout.as_ref() } {
            None => None,
            Some(tv) if tv.tv_sec < 0 || !(0..1_000_000).contains(&tv.tv_usec) => return Err(Errno::EINVAL),
            Some(tv) => Some(Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000)),
        };
        let start = Instant::now();
        // SAFETY: as above.
        let outcome = unsafe { select_tracked(nfds, sets, limit, None) }?;
        if let (Outcome::Done(_), Some(limit)) = (&outcome, limit) {
            // Linux stores the time not slept.
            let left = limit.saturating_sub(start.elapsed());
            // SAFETY: non-NULL (limit is Some) and valid.
            unsafe {
                (*timeout).tv_sec = left.as_secs() as libc::time_t;
                (*timeout).tv_usec = left.subsec_micros() as libc::suseconds_t;
            }
        }
        Ok(outcome)
    }
}

crate::hook! {
    fn pselect(nfds: c_int, readfds: *mut libc::fd_set, writefds: *mut libc::fd_set, exceptfds: *mut libc::fd_set,
        timeout: *const libc::timespec, sigmask: *const libc::sigset_t) -> c_int;
    // SAFETY: the caller's sets hold nfds bits.
    kernel_if unsafe { sets_untracked(nfds, FdSets { read: readfds, write: writefds, except: exceptfds }) };
    {
        let sets = FdSets { read: readfds, write: writefds, except: exceptfds };
        // SAFETY: the caller's timeout and mask, NULL or valid.
        let (timeout, sigmask) = unsafe { (timeout.as_ref(), sigmask.as_ref()) };
        let timeout = timeout.map(duration).transpose()?;
        // SAFETY: as above.
        unsafe { select_tracked(nfds, sets, timeout, sigmask) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespecs_are_checked_like_the_kernel() {
        let ok = libc::timespec { tv_sec: 1, tv_nsec: 5 };
        assert_eq!(duration(&ok), Ok(Duration::new(1, 5)));
        assert_eq!(duration(&libc::timespec { tv_sec: -1, tv_nsec: 0 }), Err(Errno::EINVAL));
        assert_eq!(duration(&libc::timespec { tv_sec: 0, tv_nsec: 1_000_000_000 }), Err(Errno::EINVAL));
        let back = timespec(Duration::new(3, 7));
        assert_eq!((back.tv_sec, back.tv_nsec), (3, 7));
    }

    #[test]
    fn set_bits() {
        // SAFETY: an all-zero fd_set is valid.
        let mut set: libc::fd_set = unsafe { std::mem::zeroed() };
        // SAFETY: 70 < FD_SETSIZE.
        unsafe {
            assign(&mut set, 70, true);
            assert!(is_set(&set, 70));
            assert!(!is_set(&set, 69));
            assert!(libc::FD_ISSET(70, &set));
            assign(&mut set, 70, false);
            assert!(!is_set(&set, 70));
        }
    }
}
