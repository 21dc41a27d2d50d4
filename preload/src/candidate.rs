//! Candidate sockets: TCP/IPv4 sockets whose kernel-or-Sluice decision waits
//! for the first `bind`, `connect` or `listen` (design §5.2).
//!
//! `socket()` returns a placeholder eventfd with the socket's `O_NONBLOCK`
//! and `FD_CLOEXEC`, so descriptor numbers come from the kernel. Until the
//! decision, a candidate answers exactly as a fresh kernel TCP socket would:
//!
//! * `fcntl` `F_GETFL/F_SETFL/F_GETFD/F_SETFD/F_DUPFD*`, `ioctl(FIONBIO)`,
//!   `dup*` and `close` act on the placeholder, which has the same flag
//!   semantics (the placeholder's flags are replayed at the decision);
//! * `setsockopt` of the options in [`options::storable`] is checked by the
//!   kernel on a scratch socket and stored, `getsockopt` is answered by a
//!   scratch socket carrying the stored options (so defaults, rounding and
//!   errors are the kernel's);
//! * `getsockname` says `0.0.0.0:0`, `getpeername` `ENOTCONN`, `fstat`
//!   `S_IFSOCK`, `FIONREAD`/`SIOCOUTQ` 0.
//!
//! * `epoll_ctl` registers the placeholder and records the registration,
//!   which moves to the socket or session at the decision ([`epoll`]).
//!
//! Any other call (I/O, `shutdown`, `accept`, polling, options
//! outside the stored set, odd `fcntl`s, a `bind` or `connect` with an
//! address that is not IPv4) first **converts** the candidate into a kernel
//! socket ([`convert`]) and then runs the real call: the result is then the
//! kernel's by construction, at the price of committing that socket to the
//! kernel. Programs do not poll or read sockets before binding or connecting
//! them (they may add them to an epoll set: nginx does), so in practice the
//! decision is the policy's.
//!
//! The store is a slab behind a [`SpinLock`]; every operation on a candidate
//! takes the lock, re-reads the descriptor's fd-table entry and acts only if
//! it still names the candidate, so concurrent close/dup/convert on its
//! descriptors serialise. `fork` takes the lock in a `pthread_atfork` prepare
//! handler, so a child never inherits it held.
//!
//! Limits (documented, not hidden): a candidate's descriptors in a forked
//! child share the placeholder with the parent, and a decision converts only
//! the deciding process's copy. On the kernel both processes hold one socket
//! (the parent's copy of a socket its child connected keeps that connection
//! open); under the preload the other process's copy stays an undecided
//! fresh socket. Programs close their copy after `fork`, which behaves the
//! same either way. Sockets that are still candidates at `execve` and survive it are
//! converted to kernel sockets first (see `hooks::process`), except through
//! exec paths we cannot see (`system`, `popen`), where the new image finds a
//! plain eventfd.

pub mod convert;
pub mod epoll;
pub mod options;

use std::os::fd::RawFd;
use std::sync::Once;

use libc::c_int;

use crate::errno::Errno;
use crate::fdtable::{CandidateId, Entry, FDS};
use crate::spinlock::{SpinGuard, SpinLock};
use options::StoredOption;

/// One candidate socket.
#[derive(Debug)]
pub struct Candidate {
    /// The descriptors naming it in this process (the first from `socket`,
    /// the others from `dup*`), each a placeholder for the same eventfd.
    pub fds: Vec<RawFd>,
    /// `socket()`'s protocol argument (0 or `IPPROTO_TCP`).
    pub protocol: c_int,
    /// Options set so far, in the order to replay them.
    pub options: Vec<StoredOption>,
    /// Its descriptors' registrations in epoll instances, carried over at
    /// the decision ([`epoll`]).
    pub epoll: epoll::Registrations,
}

struct Slot {
    gen: u32,
    candidate: Option<Candidate>,
}

/// All candidates of the process.
pub struct Store {
    slots: Vec<Slot>,
    free: Vec<u32>,
}

impl Store {
    pub const fn new() -> Store {
        Store { slots: Vec::new(), free: Vec::new() }
    }

    pub fn insert(&mut self, candidate: Candidate) -> CandidateId {
        match self.free.pop() {
            Some(index) => {
                let slot = &mut self.slots[index as usize];
                slot.candidate = Some(candidate);
                CandidateId { index, gen: slot.gen }
            }
            None => {
                let index = self.slots.len() as u32;
                self.slots.push(Slot { gen: 0, candidate: Some(candidate) });
                CandidateId { index, gen: 0 }
            }
        }
    }

    pub fn get_mut(&mut self, id: CandidateId) -> Option<&mut Candidate> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.gen != id.gen {
            return None;
        }
        slot.candidate.as_mut()
    }

    pub fn remove(&mut self, id: CandidateId) -> Option<Candidate> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.gen != id.gen {
            return None;
        }
        let candidate = slot.candidate.take()?;
        slot.gen = slot.gen.wrapping_add(1);
        self.free.push(id.index);
        Some(candidate)
    }

    /// Number of live candidates.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for Store {
    fn default() -> Store {
        Store::new()
    }
}

static STORE: SpinLock<Store> = SpinLock::new(Store::new());
static ATFORK: Once = Once::new();

/// Locks the process's candidate store.
pub fn lock() -> SpinGuard<'static, Store> {
    ATFORK.call_once(|| {
        // SAFETY: the three handlers are plain functions that stay valid for the life of the process (a preload is never unloaded).
        let rc = unsafe { libc::pthread_atfork(Some(fork_prepare), Some(fork_release), Some(fork_release)) };
        if rc != 0 {
            log::warn!("pthread_atfork failed ({}); a fork racing a socket() may deadlock its child", Errno(rc));
        }
    });
    STORE.lock()
}

extern "C" fn fork_prepare() {
    STORE.acquire();
}

extern "C" fn fork_release() {
    // In the parent the lock is released after `fork`; the child (a copy of
    // this thread) releases its copy.
    // SAFETY: `fork_prepare` took the lock in this thread before `fork`.
    unsafe { STORE.release() };
}

/// Creates a candidate for `socket(AF_INET, SOCK_STREAM | type_flags,
/// protocol)`: its placeholder descriptor, registered in the fd table.
pub fn create(type_flags: c_int, protocol: c_int) -> Result<RawFd, Errno> {
    let mut store = lock();
    let fd = crate::hooks::socket::new_placeholder(type_flags)?;
    let id = store.insert(Candidate { fds: vec![fd], protocol, options: Vec::new(), epoll: Default::default() });
    if FDS.register(fd, Entry::Candidate(id)).is_err() {
        // Beyond the fd table: this socket cannot be tracked, so it is a
        // kernel socket from the start.
        store.remove(id);
        drop(store);
        return convert::untracked_to_kernel(fd, protocol).map(|()| fd);
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(fd: RawFd) -> Candidate {
        Candidate { fds: vec![fd], protocol: 0, options: Vec::new(), epoll: Default::default() }
    }

    #[test]
    fn slots_are_reused_with_a_new_generation() {
        let mut store = Store::new();
        let a = store.insert(candidate(3));
        let b = store.insert(candidate(4));
        assert_eq!(store.len(), 2);
        assert_eq!(store.remove(a).map(|c| c.fds), Some(vec![3]));
        assert!(store.get_mut(a).is_none(), "a stale id finds nothing");
        let c = store.insert(candidate(5));
        assert_eq!(c.index, a.index);
        assert_ne!(c.gen, a.gen);
        assert!(store.get_mut(a).is_none());
        assert!(store.remove(a).is_none());
        assert_eq!(store.get_mut(c).map(|c| c.fds[0]), Some(5));
        assert_eq!(store.get_mut(b).map(|c| c.fds[0]), Some(4));
    }
}
