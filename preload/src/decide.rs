//! The lazy decision (design §5.2): at a candidate's first `bind`, `connect`
//! or `listen`, the policy picks kernel or Sluice for its address; a Sluice
//! verdict the backend cannot take follows `SLUICE_FALLBACK`.

use std::net::SocketAddrV4;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::backend::{Backend, OpenError, SessionRef, Unreachable};
use crate::candidate::epoll::Interest;
use crate::candidate::{self, convert, Store};
use crate::hooks;
use crate::errno::{check, Errno};
use crate::fdtable::{CandidateId, Entry, FDS};
use crate::policy::{self, Decision, Fallback, Policy, Verdict};
use crate::real;

/// Where the deciding call goes next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// The descriptor is a kernel socket now: make the real call.
    Kernel,
    /// The descriptor is this session now: make the backend call.
    Session(SessionRef),
}

/// Decides the candidate `fd` names, for a call whose deciding address
/// (local for bind/listen, remote for connect) is `addr`.
///
/// The candidate store's lock is not held while the backend creates the
/// session (attaching to the daemon may take up to its connect timeout);
/// afterwards the candidate is looked up again, so a close, dup, option or
/// competing decision made meanwhile by another thread is honoured.
pub fn decide(fd: RawFd, decision: Decision, addr: SocketAddrV4) -> Result<Route, Errno> {
    let policy = policy::get();
    let (id, backend) = {
        let mut store = candidate::lock();
        let id = match current(fd) {
            Ok(id) => id,
            Err(route) => return Ok(route),
        };
        match (policy.verdict(decision, addr), &policy.backend) {
            (Verdict::Kernel, _) => return to_kernel(&mut store, fd),
            (Verdict::Sluice, Err(why)) => return fall_back(&mut store, fd, policy, why),
            (Verdict::Sluice, Ok(backend)) => (id, *backend),
        }
    };
    // SAFETY: F_GETFL on the placeholder, no third argument.
    let status = check(unsafe { real::fcntl(fd, libc::F_GETFL, 0) })?;
    let opened = backend.open_stream(status & libc::O_NONBLOCK != 0);
    let mut store = candidate::lock();
    match opened {
        Ok(session) => {
            if current(fd) != Ok(id) {
                backend.release(session);
                return Ok(current(fd).err().unwrap_or(Route::Kernel));
            }
            let (route, interests) = install(&mut store, fd, id, backend, session)?;
            drop(store);
            // The candidate's epoll registrations, now the session's (outside
            // the store lock: the backend takes its own locks).
            if let Route::Session(session) = route {
                for interest in interests {
                    let added = hooks::epoll::session_ctl(
                        interest.epfd,
                        libc::EPOLL_CTL_ADD,
                        interest.fd,
                        session,
                        Some(interest.event()),
                    );
                    if let Err(err) = added {
                        log::warn!("socket {}: adding it to epoll {} at its decision: {err}", interest.fd, interest.epfd);
                    }
                }
            }
            Ok(route)
        }
        Err(OpenError::Unreachable(why)) => match current(fd) {
            Ok(_) => fall_back(&mut store, fd, policy, &why),
            Err(route) => Ok(route),
        },
        Err(OpenError::Failed(err)) => Err(err),
    }
}

/// The candidate `fd` names, or where the call goes if it no longer names
/// one (another thread decided, or closed it).
fn current(fd: RawFd) -> Result<CandidateId, Route> {
    match FDS.get(fd) {
        Entry::Candidate(id) => Ok(id),
        Entry::Session(s) => Err(Route::Session(s)),
        _ => Err(Route::Kernel),
    }
}

/// Converts the candidate `fd` names to a kernel socket, whatever the
/// policy: for calls a candidate cannot answer itself.
pub fn commit_to_kernel(fd: RawFd) -> Result<(), Errno> {
    let mut store = candidate::lock();
    convert::to_kernel(&mut store, fd)
}

fn to_kernel(store: &mut Store, fd: RawFd) -> Result<Route, Errno> {
    convert::to_kernel(store, fd).map(|()| Route::Kernel)
}

/// Makes the candidate `id` (named by `fd`) the new `session`: replays its
/// options into the session and points all its descriptors at it. The
/// caller holds the store lock, and adds the session to the epoll instances
/// returned (the candidate's, its placeholder already taken out of them).
fn install(
    store: &mut Store,
    fd: RawFd,
    id: CandidateId,
    backend: &dyn Backend,
    session: SessionRef,
) -> Result<(Route, Vec<Interest>), Errno> {
    let Some(candidate) = store.get_mut(id) else {
        backend.release(session);
        return Ok((Route::Kernel, Vec::new()));
    };
    for option in &candidate.options {
        if let Err(err) = backend.setsockopt(session, option.level, option.name, &option.value) {
            // The program relies on an option the backend cannot carry: the
            // kernel keeps its semantics.
            log::info!(
                "socket {fd}: option {}/{} is not supported by {} ({err}); the socket goes to the kernel",
                option.level,
                option.name,
                backend.name()
            );
            backend.release(session);
            return to_kernel(store, fd).map(|route| (route, Vec::new()));
        }
    }
    let interests = candidate::epoll::for_session(candidate);
    let fds = std::mem::take(&mut candidate.fds);
    store.remove(id);
    for (i, &named) in fds.iter().enumerate() {
        if i > 0 {
            backend.add_ref(session);
        }
        FDS.replace(named, Entry::Candidate(id), Entry::Session(session));
    }
    Ok((Route::Session(session), interests))
}

static REPORTED: AtomicBool = AtomicBool::new(false);

fn fall_back(store: &mut Store, fd: RawFd, policy: &Policy, why: &Unreachable) -> Result<Route, Errno> {
    let first = !REPORTED.swap(true, Ordering::Relaxed);
    match policy.fallback {
        Fallback::Kernel => {
            if first {
                log::warn!(
                    "{} is unreachable ({}); SLUICE_FALLBACK=kernel: sockets meant for Sluice use the kernel",
                    why.what,
                    why.why
                );
            }
            to_kernel(store, fd)
        }
        Fallback::Fail => {
            if first {
                log::error!(
                    "{} is unreachable ({}); SLUICE_FALLBACK=fail: bind/connect/listen of sockets meant for \
                     Sluice fail with ENETUNREACH",
                    why.what,
                    why.why
                );
            }
            Err(Errno::ENETUNREACH)
        }
    }
}
