//! A candidate's epoll registrations. nginx adds an upstream socket to its
//! epoll instance (`EPOLLIN|EPOLLOUT|EPOLLET`) before it calls `connect`
//! (`ngx_event_connect_peer`), so `epoll_ctl` must not decide the socket:
//! converting it then would send every proxied connection to the kernel.
//!
//! Instead the kernel checks the call on the placeholder, registered with
//! no events (an eventfd never reports `EPOLLERR`/`EPOLLHUP`, so it stays
//! silent; epoll(7): those two are reported whatever the mask), and the
//! candidate remembers the caller's event. The decision replays it: a
//! kernel socket is added to the same instance under the same number
//! ([`replay_on_kernel`]; the `dup3` over the placeholder dropped the silent
//! registration with the eventfd's last reference), a session goes through
//! the backend as if the program had added it after `connect`
//! ([`replay_on_session`]).

use std::os::fd::RawFd;

use libc::{c_int, epoll_event};

use super::Store;
use crate::backend::SessionRef;
use crate::errno::{check, Errno};
use crate::fdtable::CandidateId;
use crate::real;

/// `epoll_ctl(epfd, ADD/MOD, fd, event)` as the program made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registration {
    pub epfd: RawFd,
    pub fd: RawFd,
    pub events: u32,
    pub data: u64,
}

impl Registration {
    fn event(&self) -> epoll_event {
        epoll_event { events: self.events, u64: self.data }
    }
}

/// `epoll_ctl` on the candidate `id` named by `fd`; the caller holds the
/// store lock. Errors are the kernel's for the same call on a fresh socket
/// (`EEXIST`, `ENOENT`, `EBADF`, `EINVAL`, `EFAULT`).
pub fn ctl(store: &mut Store, id: CandidateId, epfd: RawFd, op: c_int, fd: RawFd, event: *mut epoll_event) -> Result<(), Errno> {
    let wanted = if op == libc::EPOLL_CTL_DEL {
        None
    } else if event.is_null() {
        return Err(Errno::EFAULT);
    } else {
        // SAFETY: non-NULL; the caller's event for ADD/MOD.
        Some(unsafe { event.read_unaligned() })
    };
    // Only EPOLLEXCLUSIVE changes what the kernel accepts (it refuses it
    // with MOD); the readiness bits stay off so the placeholder is silent.
    let mut silent = epoll_event { events: wanted.map_or(0, |e| e.events & libc::EPOLLEXCLUSIVE as u32), u64: 0 };
    let arg = if wanted.is_some() { &mut silent as *mut epoll_event } else { std::ptr::null_mut() };
    // SAFETY: `arg` is NULL (DEL) or points to a local event; the kernel
    // checks the descriptors.
    check(unsafe { real::epoll_ctl(epfd, op, fd, arg) })?;
    let Some(candidate) = store.get_mut(id) else { return Ok(()) };
    candidate.epoll.retain(|r| !(r.epfd == epfd && r.fd == fd));
    if let Some(e) = wanted {
        candidate.epoll.push(Registration { epfd, fd, events: e.events, data: e.u64 });
    }
    Ok(())
}

/// Adds the converted kernel socket at each registration's number to its
/// instance with the program's event.
pub fn replay_on_kernel(registrations: &[Registration]) {
    for r in registrations {
        let mut event = r.event();
        // SAFETY: a local event; the kernel checks the descriptors (the
        // program may have closed the instance meanwhile).
        if let Err(err) = check(unsafe { real::epoll_ctl(r.epfd, libc::EPOLL_CTL_ADD, r.fd, &mut event) }) {
            log::warn!("socket {}: re-adding it to epoll instance {} after its conversion: {err}", r.fd, r.epfd);
        }
    }
}

/// Hands each registration of what is now `session` to the backend, after
/// taking the silent placeholder out of the kernel's instance. Called
/// without the store lock (the backend takes its own).
pub fn replay_on_session(session: SessionRef, registrations: &[Registration]) {
    for r in registrations {
        // SAFETY: DEL takes no event.
        let _ = unsafe { real::epoll_ctl(r.epfd, libc::EPOLL_CTL_DEL, r.fd, std::ptr::null_mut()) };
        if let Err(err) = crate::hooks::epoll::session_ctl(r.epfd, libc::EPOLL_CTL_ADD, r.fd, session, Some(r.event())) {
            log::warn!("socket {}: adding its session to epoll instance {}: {err}", r.fd, r.epfd);
        }
    }
}
