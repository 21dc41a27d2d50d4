//! `epoll_create`, `epoll_create1`, `epoll_ctl`, `epoll_wait`, `epoll_pwait`,
//! `epoll_pwait2`.
//!
//! Kernel descriptors are registered in the real epoll instance directly,
//! also in instances that watch sessions (design §4.4). Adding a session
//! hands it to the backend, and the epoll descriptor is recorded in the fd
//! table as that backend instance, so waits on it go to the backend, which
//! reports both kinds. A candidate's registrations are recorded and follow
//! it at its decision (`candidate::epoll`). Epoll
//! descriptors without sessions stay untracked: their waits are pure kernel
//! calls.

use std::time::Duration;

use libc::{c_int, epoll_event};

use super::poll::duration;
use super::{backend, untracked};
use crate::backend::SessionRef;
use crate::candidate;
use crate::errno::{check, Errno};
use crate::real;
use crate::fdtable::{Entry, FDS};
use crate::hook::Outcome;

crate::hook! {
    fn epoll_create(size: c_int) -> c_int;
    kernel_if true;
    Ok(Outcome::Real)
}

crate::hook! {
    fn epoll_create1(flags: c_int) -> c_int;
    kernel_if true;
    Ok(Outcome::Real)
}

crate::hook! {
    fn epoll_ctl(epfd: c_int, op: c_int, fd: c_int, event: *mut epoll_event) -> c_int;
    kernel_if untracked(fd);
    {
        if let Entry::Candidate(_) = FDS.get(fd) {
            let mut store = candidate::lock();
            // Re-read under the lock; if another thread decided or closed it
            // meanwhile, the call is for what `fd` names now.
            if let Entry::Candidate(id) = FDS.get(fd) {
                if let Some(candidate) = store.get_mut(id) {
                    // SAFETY: the caller's event, as epoll_ctl(2) takes it.
                    unsafe { candidate::epoll::ctl(candidate, epfd, op, fd, event) }?;
                    return Ok(Outcome::Done(0));
                }
            }
        }
        match FDS.get(fd) {
            Entry::Session(s) => {
                let event = if op == libc::EPOLL_CTL_DEL {
                    None
                } else if event.is_null() {
                    return Err(Errno::EFAULT);
                } else {
                    // SAFETY: non-NULL; the caller's event for ADD/MOD.
                    Some(unsafe { event.read_unaligned() })
                };
                session_ctl(epfd, op, fd, s, event)?;
                Ok(Outcome::Done(0))
            }
            Entry::Epoll(_) if op == libc::EPOLL_CTL_ADD => {
                // An instance with sessions nested in `epfd`: `epfd`'s waits
                // must go through the backend too (see `Backend::epoll_nest`).
                let instance = match FDS.get(epfd) {
                    Entry::Epoll(e) => Some(e),
                    Entry::Kernel => None,
                    _ => return Ok(Outcome::Real),
                };
                // SAFETY: the caller's event, handed to the kernel, which checks it (EFAULT) and the descriptors.
                check(unsafe { real::epoll_ctl(epfd, op, fd, event) })?;
                match backend()?.epoll_nest(epfd, instance) {
                    Ok(updated) if instance != Some(updated) => {
                        let expected = instance.map_or(Entry::Kernel, Entry::Epoll);
                        if !FDS.replace(epfd, expected, Entry::Epoll(updated)) {
                            log::warn!("epoll descriptor {epfd} changed while an epoll instance was added to it");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => log::warn!("epoll descriptor {epfd}: nesting an instance with sessions: {e}"),
                }
                Ok(Outcome::Done(0))
            }
            _ => Ok(Outcome::Real),
        }
    }
}

/// `epoll_ctl(epfd, op, fd, event)` for the session `s` that `fd` names:
/// the backend's instance for `epfd` takes it, and the fd table records the
/// instance's new state. Also how a candidate's registrations follow it when
/// it becomes a session.
pub fn session_ctl(
    epfd: c_int,
    op: c_int,
    fd: c_int,
    s: SessionRef,
    event: Option<epoll_event>,
) -> Result<(), Errno> {
    let instance = match FDS.get(epfd) {
        Entry::Epoll(e) => Some(e),
        Entry::Kernel => None,
        // Not an epoll descriptor (the kernel's check).
        _ => return Err(Errno::EINVAL),
    };
    let updated = backend()?.epoll_ctl(epfd, instance, op, fd, s, event)?;
    if instance != Some(updated) {
        let expected = instance.map_or(Entry::Kernel, Entry::Epoll);
        if !FDS.replace(epfd, expected, Entry::Epoll(updated)) {
            log::warn!("epoll descriptor {epfd} changed while a session was added to it");
        }
    }
    Ok(())
}

/// `epoll_pwait2` on an instance with sessions, after the kernel's argument
/// checks.
fn wait_tracked(
    epfd: c_int,
    events: *mut epoll_event,
    maxevents: c_int,
    timeout: Option<Duration>,
    sigmask: *const libc::sigset_t,
) -> Result<Outcome<c_int>, Errno> {
    let Entry::Epoll(instance) = FDS.get(epfd) else {
        return Ok(Outcome::Real);
    };
    /// fs/eventpoll.c `EP_MAX_EVENTS`.
    const MAX_EVENTS: c_int = (c_int::MAX as usize / std::mem::size_of::<epoll_event>()) as c_int;
    if maxevents <= 0 || maxevents > MAX_EVENTS {
        return Err(Errno::EINVAL);
    }
    if events.is_null() {
        return Err(Errno::EFAULT);
    }
    // SAFETY: the caller's array of `maxevents` events, writable.
    let out = unsafe { std::slice::from_raw_parts_mut(events, maxevents as usize) };
    // SAFETY: the caller's mask, NULL or valid.
    let sigmask = unsafe { sigmask.as_ref() };
    let n = backend()?.epoll_wait(epfd, instance, out, timeout, sigmask)?;
    Ok(Outcome::Done(n as c_int))
}

fn millis(timeout: c_int) -> Option<Duration> {
    (timeout >= 0).then(|| Duration::from_millis(timeout as u64))
}

crate::hook! {
    fn epoll_wait(epfd: c_int, events: *mut epoll_event, maxevents: c_int, timeout: c_int) -> c_int;
    kernel_if untracked(epfd);
    wait_tracked(epfd, events, maxevents, millis(timeout), std::ptr::null())
}

crate::hook! {
    fn epoll_pwait(epfd: c_int, events: *mut epoll_event, maxevents: c_int, timeout: c_int,
        sigmask: *const libc::sigset_t) -> c_int;
    kernel_if untracked(epfd);
    wait_tracked(epfd, events, maxevents, millis(timeout), sigmask)
}

crate::hook! {
    fn epoll_pwait2(epfd: c_int, events: *mut epoll_event, maxevents: c_int, timeout: *const libc::timespec,
        sigmask: *const libc::sigset_t) -> c_int;
    kernel_if untracked(epfd);
    {
        // SAFETY: the caller's timeout, NULL or valid.
        let timeout = unsafe { timeout.as_ref() }.map(duration).transpose()?;
        wait_tracked(epfd, events, maxevents, timeout, sigmask)
    }
}
