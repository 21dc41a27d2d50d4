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
//!
//! Only the kernel can say what a fresh socket reports (`EPOLLOUT|EPOLLHUP`
//! at once, `tcp_poll` of a closed socket), so a wait on an instance that
//! holds an undecided candidate converts that candidate to a kernel socket
//! first ([`settle`]), as any other call a candidate cannot answer does;
//! nginx connects right after its `epoll_ctl`, without waiting in between.
//! A thread already blocked in the wait when another thread adds the
//! candidate sees it only once it is decided (a documented limit).

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use libc::{c_int, epoll_event};

use super::{convert, Store};
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

/// Set (under the store lock) when a candidate is registered; cleared by
/// [`settle`] once no candidate is: waits need not look at the store when
/// no candidate is in any instance.
static REGISTERED: AtomicBool = AtomicBool::new(false);

/// Whether a candidate may be registered in some epoll instance.
pub fn any_registered() -> bool {
    REGISTERED.load(Ordering::Acquire)
}

/// Before a wait on `epfd`: converts the candidates registered in it to
/// kernel sockets (their registrations move to the kernel sockets).
pub fn settle(epfd: RawFd) -> Result<(), Errno> {
    let mut store = super::lock();
    let watched: Vec<RawFd> = store
        .iter()
        .filter(|c| c.epoll.iter().any(|r| r.epfd == epfd))
        .filter_map(|c| c.fds.first().copied())
        .collect();
    for fd in watched {
        convert::to_kernel(&mut store, fd)?;
    }
    if store.iter().all(|c| c.epoll.is_empty()) {
        REGISTERED.store(false, Ordering::Release);
    }
    Ok(())
}

/// `epoll_ctl` on the candidate `id` named by `fd` with the caller's event
/// (`None` for DEL); the caller holds the store lock. Errors are the kernel's for the same call on a fresh socket
/// (`EEXIST`, `ENOENT`, `EBADF`, `EINVAL`, `EFAULT`).
pub fn ctl(
    store: &mut Store,
    id: CandidateId,
    epfd: RawFd,
    op: c_int,
    fd: RawFd,
    wanted: Option<epoll_event>,
) -> Result<(), Errno> {
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
        REGISTERED.store(true, Ordering::Release);
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
        if let Err(err) = crate::hooks::epoll::session_ctl(r.epfd, libc::EPOLL_CTL_ADD, r.fd, session, Some(r.event()))
        {
            log::warn!("socket {}: adding its session to epoll instance {}: {err}", r.fd, r.epfd);
        }
    }
}
