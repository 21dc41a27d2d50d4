//! Sessions a forked child inherited from its parent (and its parent's
//! parents), vcl's fork support (`sluice_vcl::fork`) seen from the preload.
//!
//! The fd table and the records of a child are copies of the parent's, so
//! its descriptors still name the parent's sessions: references of an
//! attachment made before the fork that created this process. Such an
//! attachment is *inherited*: its segments are not mapped here, but its
//! session table is (ordinary heap memory), and vcl reads an inherited
//! listener's address, backlog and `SO_REUSEPORT` from it.
//!
//! * An inherited **listener** is re-created on this process's attachment
//!   at its first use ([`Socket::recreate_inherited`]: `LISTEN` with the
//!   inherit flag, which joins the parent's listen group in the daemon, so
//!   connections are shared between the processes as with `SO_REUSEPORT`).
//!   The new session takes over the record (descriptor count, `O_NONBLOCK`,
//!   the options set, which are applied to it again) and every descriptor
//!   naming the old reference is re-pointed at the new one, keeping its
//!   number. The old → new mapping is kept too ([`resolve`]), for a thread
//!   that read a descriptor's entry before the re-pointing.
//! * An inherited **connection** stays the parent's: calls on it fail as vcl
//!   says (`ENOTCONN`); `poll` reports `POLLNVAL`, `epoll_ctl` `EPERM`.
//! * **Closing** any inherited descriptor is local: the parent's session is
//!   untouched (redis's BGSAVE child closes its listeners), and a listener
//!   that was never used is never re-created.
//!
//! Limits: an epoll instance made before the fork is shared with the parent
//! in the kernel, and its sessions were watched by the parent's poller: in
//! the child it reports kernel descriptors only (one warning says so);
//! programs that fork workers make theirs in the child (nginx does). An
//! inherited connection cannot be served by the child (`ForkingMixIn`-style
//! servers that accept in the parent and serve in a child).
//!
//! Sockets handed over across an `execve` (`exec.rs`) are inherited the
//! same way: a listener or an unconnected socket is re-created at its first
//! use ([`recreate_with`]), a connection gives `ENOTCONN`.
//!
//! Closing needs no re-creation, and nor does `O_NONBLOCK` (recorded, and
//! given to the new session); every other call on a listener re-creates it,
//! so a process that only holds its listeners for its children (nginx's
//! master) keeps them as they are.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::Arc;

use libc::c_int;
use sluice_vcl::Socket;

use super::{adopt_locked, exec, options, records, to_key, to_ref, vcl_errno, Attachment, Handle, ATTACHING, EPOCH_MASK};
use crate::backend::SessionRef;
use crate::errno::Errno;
use crate::fdtable::{Entry, FDS};
use crate::spinlock::SpinLock;

/// Every attachment this process lineage made, by epoch (`EPOCH_MASK + 1`
/// of them): leaked boxes, never freed. A forked child finds its parent's
/// here.
static BY_EPOCH: [AtomicPtr<Attachment>; (EPOCH_MASK + 1) as usize] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; (EPOCH_MASK + 1) as usize];

static ANY: AtomicBool = AtomicBool::new(false);

/// Inherited listeners re-created in this process: old reference → new.
static RECREATED: SpinLock<Option<HashMap<u64, SessionRef>>> = SpinLock::new(None);

/// Records a new attachment (a leaked box) under its epoch.
pub(super) fn register(a: &'static Attachment) {
    let slot = &BY_EPOCH[(a.epoch & EPOCH_MASK) as usize];
    slot.store(a as *const Attachment as *mut Attachment, Ordering::Release);
    ANY.store(true, Ordering::Release);
}

/// Whether this process (or one of its ancestors, before forking it) ever
/// attached to the daemon.
pub(super) fn any_attachment() -> bool {
    ANY.load(Ordering::Acquire)
}

fn by_epoch(epoch: u64) -> Option<&'static Attachment> {
    let p = BY_EPOCH[(epoch & EPOCH_MASK) as usize].load(Ordering::Acquire);
    // SAFETY: non-null values are leaked boxes, never freed.
    unsafe { p.as_ref() }.filter(|a| a.epoch == epoch)
}

/// The session `s` stands for now: itself, or what an inherited listener it
/// named was re-created as (repeatedly, across generations of forks).
pub(super) fn resolve(s: SessionRef) -> SessionRef {
    let map = RECREATED.lock();
    let Some(map) = map.as_ref() else { return s };
    let mut now = s;
    // Each step goes to a newer attachment, so this ends; the bound is for
    // a corrupted map, never expected to be reached.
    for _ in 0..=EPOCH_MASK {
        match map.get(&now.raw()) {
            Some(&next) => now = next,
            None => break,
        }
    }
    now
}

/// A handle for `s`, which is not of the current attachment: an inherited
/// listener re-created now, an inherited connection as the parent's (whose
/// calls fail), anything else `EBADF` (an attachment to a daemon that is
/// gone, whose sessions went with it).
pub(super) fn handle(s: SessionRef) -> Result<Handle, Errno> {
    let s = resolve(s);
    let (epoch, key) = to_key(s);
    if let Some(a) = super::current().filter(|a| a.epoch == epoch) {
        return Ok(Handle::new(&a.vcl, s, epoch, key, false));
    }
    if let Some(adopted) = exec::handle(s) {
        return adopted;
    }
    let a = by_epoch(epoch).filter(|a| a.is_inherited()).ok_or(Errno::EBADF)?;
    if records::is_listening(s) {
        let fresh = recreate(s, a)?;
        let (epoch, key) = to_key(fresh);
        let a = by_epoch(epoch).ok_or(Errno::EBADF)?;
        return Ok(Handle::new(&a.vcl, fresh, epoch, key, false));
    }
    Ok(Handle::new(&a.vcl, s, epoch, key, true))
}

/// A handle that never re-creates: for `s` inherited, the parent's socket
/// (calls on it fail; closing it is local).
pub(super) fn handle_as_is(s: SessionRef) -> Result<Handle, Errno> {
    let s = resolve(s);
    let (epoch, key) = to_key(s);
    let a = by_epoch(epoch).ok_or(Errno::EBADF)?;
    let inherited = a.is_inherited();
    if !inherited && super::current().is_none_or(|c| c.epoch != epoch) {
        return Err(Errno::EBADF);
    }
    Ok(Handle::new(&a.vcl, s, epoch, key, inherited))
}

/// Re-creates the inherited listener `old` of attachment `a` on this
/// process's attachment; see the module docs.
fn recreate(old: SessionRef, a: &'static Attachment) -> Result<SessionRef, Errno> {
    recreate_with(old, || {
        let parents = Socket::from_key(Arc::clone(&a.vcl), to_key(old).1);
        let recreated = parents.recreate_inherited();
        // Dropping the parent's handle would close it, locally; it stays as
        // the parent left it.
        let _ = parents.into_key();
        recreated.map_err(vcl_errno)
    })
}

/// Replaces the inherited session `old` with the one `make` creates on this
/// process's attachment (an inherited listener re-created after a fork, a
/// socket handed over across an exec, `exec.rs`): it takes over `old`'s
/// record and options, and every descriptor naming `old` names it now.
pub(super) fn recreate_with(
    old: SessionRef,
    make: impl FnOnce() -> Result<Socket, Errno>,
) -> Result<SessionRef, Errno> {
    // Serialised with attaching (a re-creation may attach) and with fork.
    let _serial = ATTACHING.lock();
    let now = resolve(old);
    if now != old {
        // Another thread was first.
        return Ok(now);
    }
    let socket = make()?;
    socket.set_nonblocking(records::is_nonblocking(old)).map_err(vcl_errno)?;
    let fresh = adopt_locked(Arc::clone(socket.vcl()));
    let new = to_ref(fresh.epoch, socket.into_key());
    let stored = records::transfer(old, new);
    RECREATED.lock().get_or_insert_with(HashMap::new).insert(old.raw(), new);
    let h = Handle::new(&fresh.vcl, new, fresh.epoch, to_key(new).1, false);
    for ((level, name), value) in stored {
        // Address reuse was the parent's setup, already carried over.
        if (level, name) == (libc::SOL_SOCKET, libc::SO_REUSEPORT) {
            continue;
        }
        if let Err(e) = options::set(&h, new, level as c_int, name as c_int, &value) {
            log::warn!("option {level}/{name} of a re-created inherited listener: {e}");
        }
    }
    let mut repointed = 0;
    FDS.for_each_tracked(0..=c_int::MAX, |fd, entry| {
        if entry == Entry::Session(old) && FDS.replace(fd, entry, Entry::Session(new)) {
            repointed += 1;
        }
    });
    log::debug!("inherited socket re-created ({repointed} descriptor(s) re-pointed)");
    Ok(new)
}
