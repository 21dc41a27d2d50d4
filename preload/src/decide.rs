//! The lazy decision (design §5.2): at a candidate's first `bind`, `connect`
//! or `listen`, the policy picks kernel or Sluice for its address; a Sluice
//! verdict the backend cannot take follows `SLUICE_FALLBACK`.

use std::net::SocketAddrV4;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::backend::{Backend, OpenError, SessionRef, Unreachable};
use crate::candidate::{self, convert, Store};
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
pub fn decide(fd: RawFd, decision: Decision, addr: SocketAddrV4) -> Result<Route, Errno> {
    let policy = policy::get();
    let mut store = candidate::lock();
    let id = match FDS.get(fd) {
        Entry::Candidate(id) => id,
        // Another thread decided first.
        Entry::Session(s) => return Ok(Route::Session(s)),
        _ => return Ok(Route::Kernel),
    };
    match policy.verdict(decision, addr) {
        Verdict::Kernel => to_kernel(&mut store, fd),
        Verdict::Sluice => match policy.backend {
            Ok(backend) => match to_session(&mut store, fd, id, backend) {
                Ok(route) => Ok(route),
                Err(OpenError::Unreachable(why)) => fall_back(&mut store, fd, policy, &why),
                Err(OpenError::Failed(err)) => Err(err),
            },
            Err(ref why) => fall_back(&mut store, fd, policy, why),
        },
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

fn to_session(store: &mut Store, fd: RawFd, id: CandidateId, backend: &dyn Backend) -> Result<Route, OpenError> {
    // SAFETY: F_GETFL on the placeholder, no third argument.
    let status = check(unsafe { real::fcntl(fd, libc::F_GETFL, 0) }).map_err(OpenError::Failed)?;
    let session = backend.open_stream(status & libc::O_NONBLOCK != 0)?;
    let Some(candidate) = store.get_mut(id) else {
        backend.release(session);
        return Ok(Route::Kernel);
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
            return to_kernel(store, fd).map_err(OpenError::Failed);
        }
    }
    let fds = std::mem::take(&mut candidate.fds);
    store.remove(id);
    for (i, &named) in fds.iter().enumerate() {
        if i > 0 {
            backend.add_ref(session);
        }
        FDS.replace(named, Entry::Candidate(id), Entry::Session(session));
    }
    Ok(Route::Session(session))
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
