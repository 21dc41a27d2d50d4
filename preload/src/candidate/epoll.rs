//! `epoll_ctl` on a candidate: nginx registers an upstream socket in its
//! epoll instance *before* it connects it (`ngx_event_connect_peer` calls
//! `ngx_add_conn`, then `connect`), so converting the candidate to a kernel
//! socket there (as other calls do) would send every proxied connection to
//! the kernel whatever the policy says.
//!
//! Instead the registration is made on the placeholder by the real
//! `epoll_ctl` (so the kernel checks the arguments and keeps the
//! `EEXIST`/`ENOENT` bookkeeping per descriptor, as for a socket) and
//! recorded in the candidate as an [`Interest`]. The first registration
//! makes the placeholder a fresh kernel TCP socket (it was an eventfd), so
//! that until the decision the set reports what it reports for a fresh
//! socket (`EPOLLOUT | EPOLLHUP`); the candidate is still undecided.
//!
//! At the decision the interests move to what the descriptor became:
//! [`withdraw`] takes the placeholder out of the kernel instances (only
//! where the kernel still has it: a closed or renumbered epoll descriptor
//! finds nothing), then the caller re-registers the kernel socket
//! ([`register_kernel`]) or, for a session ([`for_session`]: its
//! placeholder an eventfd again), hands it to the backend as an
//! `EPOLL_CTL_ADD` would.

use std::os::fd::RawFd;

use libc::{c_int, epoll_event};

use super::{convert, Candidate};
use crate::errno::{check, Errno};
use crate::real;

/// A candidate's epoll registrations.
#[derive(Debug, Default)]
pub struct Registrations {
    interests: Vec<Interest>,
    /// The placeholder is a fresh kernel socket (not an eventfd).
    socket_placeholder: bool,
}

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
///
/// # Safety
///
/// `event` is what `epoll_ctl(2)` takes: NULL, or readable when the kernel
/// accepts it (it is read here only after the kernel did, for ADD and MOD).
pub unsafe fn ctl(
    candidate: &mut Candidate,
    epfd: RawFd,
    op: c_int,
    fd: RawFd,
    event: *mut epoll_event,
) -> Result<(), Errno> {
    if op == libc::EPOLL_CTL_ADD && !candidate.epoll.socket_placeholder {
        let socket = convert::fresh_socket(candidate.protocol, candidate.fds[0])?;
        convert::replace_all(socket, &candidate.fds).map_err(|(_, err)| err)?;
        candidate.epoll.socket_placeholder = true;
    }
    // SAFETY: the caller's arguments, handed to the kernel, which checks them (EBADF, EINVAL, EFAULT, EEXIST, ENOENT) as for a socket.
    check(unsafe { real::epoll_ctl(epfd, op, fd, event) })?;
    let known = candidate.epoll.interests.iter().position(|i| i.epfd == epfd && i.fd == fd);
    if op == libc::EPOLL_CTL_DEL {
        if let Some(at) = known {
            candidate.epoll.interests.swap_remove(at);
        }
        return Ok(());
    }
    // SAFETY: ADD and MOD succeeded, so the kernel read a valid event there.
    let event = unsafe { event.read_unaligned() };
    let interest = Interest { epfd, fd, events: event.events, data: event.u64 };
    match known {
        Some(at) => candidate.epoll.interests[at] = interest,
        None => candidate.epoll.interests.push(interest),
    }
    Ok(())
}

/// Takes the candidate's descriptors out of the kernel epoll instances they
/// were added to; returns the interests the kernel still had (those to
/// carry over to what the descriptors become).
pub fn withdraw(candidate: &mut Candidate) -> Vec<Interest> {
    let mut carried = std::mem::take(&mut candidate.epoll.interests);
    carried.retain(|i| {
        // SAFETY: DEL takes no event; the kernel checks both descriptors.
        unsafe { real::epoll_ctl(i.epfd, libc::EPOLL_CTL_DEL, i.fd, std::ptr::null_mut()) == 0 }
    });
    carried
}

/// [`withdraw`] for a candidate becoming a session: its placeholder is an
/// eventfd again, as every session's (kept a socket if that fails: a
/// placeholder either way).
pub fn for_session(candidate: &mut Candidate) -> Vec<Interest> {
    let carried = withdraw(candidate);
    if candidate.epoll.socket_placeholder {
        // SAFETY: F_GETFL on the caller's descriptor, no third argument.
        let status = unsafe { real::fcntl(candidate.fds[0], libc::F_GETFL, 0) };
        let flags = if status >= 0 && status & libc::O_NONBLOCK != 0 { libc::SOCK_NONBLOCK } else { 0 };
        let restored = crate::hooks::socket::new_placeholder(flags)
            .and_then(|eventfd| convert::replace_all(eventfd, &candidate.fds).map_err(|(_, err)| err));
        match restored {
            Ok(()) => candidate.epoll.socket_placeholder = false,
            Err(err) => log::debug!("socket {}: keeping a socket as its placeholder: {err}", candidate.fds[0]),
        }
    }
    carried
}

/// Registers the kernel socket now at each interest's descriptor.
pub fn register_kernel(interests: &[Interest]) {
    for interest in interests {
        let mut event = interest.event();
        // SAFETY: a valid event on the stack; the kernel checks the descriptors.
        let added = check(unsafe { real::epoll_ctl(interest.epfd, libc::EPOLL_CTL_ADD, interest.fd, &mut event) });
        if let Err(err) = added {
            log::warn!("socket {}: re-adding it to epoll {} after its decision: {err}", interest.fd, interest.epfd);
        }
    }
}

/// Puts back what [`withdraw`] took (the decision failed; the placeholder
/// is registered again).
pub fn restore(candidate: &mut Candidate, interests: Vec<Interest>) {
    candidate.epoll.interests = interests;
}

/// A descriptor of the candidate was closed: its registrations go with it.
pub fn forget_fd(candidate: &mut Candidate, fd: RawFd) {
    candidate.epoll.interests.retain(|i| i.fd != fd);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(fd: RawFd) -> Candidate {
        Candidate { fds: vec![fd], protocol: 0, options: Vec::new(), epoll: Default::default() }
    }

    /// [`ctl`] with an event on the caller's stack (or NULL).
    fn ctl_on(c: &mut Candidate, epfd: RawFd, op: c_int, fd: RawFd, event: *mut epoll_event) -> Result<(), Errno> {
        // SAFETY: the tests pass NULL or a pointer to a live local event.
        unsafe { ctl(c, epfd, op, fd, event) }
    }

    fn event(events: c_int, data: u64) -> epoll_event {
        epoll_event { events: events as u32, u64: data }
    }

    /// What a zero-timeout wait on `ep` reports: (events, data).
    fn reported(ep: RawFd) -> Vec<(u32, u64)> {
        let mut out = [event(0, 0); 4];
        // SAFETY: a 4-event buffer on the stack.
        let n = unsafe { real::epoll_wait(ep, out.as_mut_ptr(), 4, 0) };
        out[..n.max(0) as usize].iter().map(|e| (e.events, e.u64)).collect()
    }

    fn is_socket(fd: RawFd) -> bool {
        let mut ty: c_int = 0;
        let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
        let rc =
            // SAFETY: an int-sized buffer and its length.
            unsafe { real::getsockopt(fd, libc::SOL_SOCKET, libc::SO_TYPE, (&mut ty as *mut c_int).cast(), &mut len) };
        rc == 0 && ty == libc::SOCK_STREAM
    }

    #[test]
    fn registrations_are_the_kernels_and_move_with_the_descriptor() {
        // SAFETY: plain integer arguments.
        let (ep, gone, fd) = unsafe {
            (libc::epoll_create1(libc::EPOLL_CLOEXEC), libc::epoll_create1(libc::EPOLL_CLOEXEC), libc::eventfd(0, 0))
        };
        assert!(ep >= 0 && gone >= 0 && fd >= 0);
        let mut c = candidate(fd);
        let mut ev = event(libc::EPOLLIN | libc::EPOLLET, 7);
        assert!(ctl_on(&mut c, ep, libc::EPOLL_CTL_ADD, fd, &mut ev).is_ok());
        assert!(is_socket(fd), "the placeholder in a set is a fresh socket");
        assert!(
            ctl_on(&mut c, ep, libc::EPOLL_CTL_ADD, fd, &mut ev) == Err(Errno(libc::EEXIST)),
            "the kernel's EEXIST"
        );
        let mut ev = event(libc::EPOLLOUT, 7);
        assert!(ctl_on(&mut c, ep, libc::EPOLL_CTL_MOD, fd, &mut ev).is_ok());
        assert!(ctl_on(&mut c, ep, libc::EPOLL_CTL_MOD, fd, std::ptr::null_mut()) == Err(Errno::EFAULT));
        let fresh = (libc::EPOLLOUT | libc::EPOLLHUP) as u32;
        assert_eq!(reported(ep), vec![(fresh, 7)], "what a fresh socket reports");
        assert!(ctl_on(&mut c, gone, libc::EPOLL_CTL_ADD, fd, &mut ev).is_ok());
        let out = Interest { epfd: ep, fd, events: libc::EPOLLOUT as u32, data: 7 };
        assert_eq!(c.epoll.interests, vec![out, Interest { epfd: gone, ..out }]);
        // SAFETY: closing the second instance made above.
        unsafe { libc::close(gone) };

        // Only what the kernel still has is carried, and it leaves the kernel.
        let carried = withdraw(&mut c);
        assert_eq!(carried, vec![out]);
        assert!(c.epoll.interests.is_empty());
        assert!(reported(ep).is_empty(), "withdrawn from the kernel's instance");
        register_kernel(&carried);
        assert_eq!(reported(ep), vec![(fresh, 7)], "re-added with the last MOD's event");

        restore(&mut c, carried);
        assert!(ctl_on(&mut c, ep, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()).is_ok());
        assert!(c.epoll.interests.is_empty() && reported(ep).is_empty(), "DEL removes the record and the registration");
        assert!(ctl_on(&mut c, ep, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) == Err(Errno(libc::ENOENT)));
        c.epoll.interests.push(out);
        forget_fd(&mut c, fd);
        assert!(c.epoll.interests.is_empty());

        // Becoming a session: the placeholder is an eventfd again.
        assert!(ctl_on(&mut c, ep, libc::EPOLL_CTL_ADD, fd, &mut ev).is_ok());
        assert_eq!(for_session(&mut c), vec![out]);
        assert!(!is_socket(fd) && reported(ep).is_empty(), "an eventfd placeholder, out of the set");
        // SAFETY: closing the descriptors made above.
        unsafe {
            libc::close(fd);
            libc::close(ep);
        }
    }
}
