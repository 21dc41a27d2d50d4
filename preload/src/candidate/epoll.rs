//! `epoll_ctl` on a candidate: nginx registers an upstream socket in its
//! epoll instance *before* it connects it (`ngx_event_connect_peer` calls
//! `ngx_add_conn`, then `connect`), so converting the candidate to a kernel
//! socket there (as other calls do) would send every proxied connection to
//! the kernel whatever the policy says.
//!
//! Instead the registration is made on the placeholder by the real
//! `epoll_ctl` (so the kernel checks the arguments and keeps the
//! `EEXIST`/`ENOENT` bookkeeping per descriptor, as for a socket) and
//! recorded in the candidate as an [`Interest`]. At the decision the
//! interests move to what the descriptor became: [`withdraw`] takes the
//! placeholder out of the kernel instances (only where the kernel still has
//! it: a closed or renumbered epoll descriptor finds nothing), then the
//! caller re-registers the kernel socket ([`register_kernel`]) or hands the
//! session to the backend as an `EPOLL_CTL_ADD` would.
//!
//! Before the decision an undecided socket reports what its placeholder
//! does (`EPOLLOUT`: an eventfd at 0 is writable; a fresh kernel TCP socket
//! reports `EPOLLOUT | EPOLLHUP`); programs wait on it only after `connect`.

use std::os::fd::RawFd;

use libc::{c_int, epoll_event};

use super::Candidate;
use crate::errno::{check, Errno};
use crate::real;

/// One registration of a candidate's descriptor in an epoll instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interest {
    pub epfd: RawFd,
    pub fd: RawFd,
    pub events: u32,
    pub data: u64,
}

impl Interest {
    pub fn event(&self) -> epoll_event {
        epoll_event { events: self.events, u64: self.data }
    }
}

/// `epoll_ctl(epfd, op, fd, event)` for `fd`, a descriptor of `candidate`:
/// the real call on the placeholder, then the record.
pub fn ctl(candidate: &mut Candidate, epfd: RawFd, op: c_int, fd: RawFd, event: *mut epoll_event) -> Result<(), Errno> {
    // SAFETY: the caller's arguments, handed to the kernel, which checks
    // them (EBADF, EINVAL, EFAULT, EEXIST, ENOENT) as for a socket.
    check(unsafe { real::epoll_ctl(epfd, op, fd, event) })?;
    let known = candidate.epoll.iter().position(|i| i.epfd == epfd && i.fd == fd);
    if op == libc::EPOLL_CTL_DEL {
        if let Some(at) = known {
            candidate.epoll.swap_remove(at);
        }
        return Ok(());
    }
    // SAFETY: ADD and MOD succeeded, so the kernel read a valid event there.
    let event = unsafe { event.read_unaligned() };
    let interest = Interest { epfd, fd, events: event.events, data: event.u64 };
    match known {
        Some(at) => candidate.epoll[at] = interest,
        None => candidate.epoll.push(interest),
    }
    Ok(())
}

/// Takes the candidate's descriptors out of the kernel epoll instances they
/// were added to; returns the interests the kernel still had (those to
/// carry over to what the descriptors become).
pub fn withdraw(candidate: &mut Candidate) -> Vec<Interest> {
    let mut carried = std::mem::take(&mut candidate.epoll);
    carried.retain(|i| {
        // SAFETY: DEL takes no event; the kernel checks both descriptors.
        unsafe { real::epoll_ctl(i.epfd, libc::EPOLL_CTL_DEL, i.fd, std::ptr::null_mut()) == 0 }
    });
    carried
}

/// Registers the kernel socket now at each interest's descriptor.
pub fn register_kernel(interests: &[Interest]) {
    for interest in interests {
        let mut event = interest.event();
        // SAFETY: a valid event on the stack; the kernel checks the descriptors.
        if let Err(err) = check(unsafe { real::epoll_ctl(interest.epfd, libc::EPOLL_CTL_ADD, interest.fd, &mut event) }) {
            log::warn!("socket {}: re-adding it to epoll {} after its decision: {err}", interest.fd, interest.epfd);
        }
    }
}

/// A descriptor of the candidate was closed: its registrations go with it.
pub fn forget_fd(candidate: &mut Candidate, fd: RawFd) {
    candidate.epoll.retain(|i| i.fd != fd);
}
