//! Sluice sockets across `execve` (design §4.5, issue 4: "sockets survive
//! `execve` or fail cleanly").
//!
//! A session lives in the process's attachment (segments, session table),
//! which an exec ends; the descriptor survives as its placeholder eventfd.
//! So the sockets are handed over as descriptions, and the new image
//! re-creates them as a forked child re-creates what it inherited
//! (`inherited.rs`):
//!
//! * **Before the exec** ([`describe`], [`announce`]), the hooks add
//!   `SLUICE_INHERITED` to the new image's environment: per socket that
//!   survives (not close-on-exec), its descriptors and what it is
//!   (`handover.rs`: listener with address, backlog, `SO_REUSEPORT`;
//!   connection; unconnected socket with its bound address), its
//!   `O_NONBLOCK` and the options the program set. If this process's own
//!   attachment holds a listener among them, the daemon is told first
//!   (`Vcl::report_exec`): when the old image's app worker goes (its control
//!   socket is close-on-exec), the process keeps holding its listen groups,
//!   so the port stays bound through the exec and connections arriving
//!   meanwhile wait in the group's queue for the new image, none refused. A
//!   process that only holds its listeners (a fork child that never used
//!   them) holds them by pid already, which an exec keeps.
//! * **At the new image's start** ([`adopt_at_start`], an `.init_array`
//!   constructor, so it runs before the program's first call), the variable
//!   is read and removed (the program's children that do not inherit the
//!   descriptors never see it); each listed descriptor that is still an
//!   untracked eventfd becomes a session entry of this image, with its
//!   record (references, `O_NONBLOCK`, options).
//! * **At first use** ([`handle`]), as after a fork: a listener is
//!   re-created with `LISTEN(inherit)` and joins its listen group (the
//!   daemon knows the process as its holder, or as the member its old image
//!   still is); an unconnected socket becomes a fresh session (bound again
//!   if it was); the new session takes over the record and every descriptor
//!   that named the old reference. A connection cannot cross: its calls
//!   give `ENOTCONN` (`poll` reports `POLLNVAL`), closing it is local. The
//!   daemon closes the old image's connections as it closes an exiting
//!   process's (the kernel keeps them open across exec: a documented
//!   difference). Closing a socket that was never used talks to nobody,
//!   and `O_NONBLOCK` is only recorded.
//!
//! If the exec fails nothing changed in this image. The daemon's note of
//! the announced exec only matters once the app worker goes while the
//! process lives, which the preload does only by exec.
//!
//! A new image that runs without the preload (`LD_PRELOAD` removed) finds
//! plain eventfds at those numbers, and the variable in its environment.

mod handover;

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use libc::c_int;
use sluice_vcl::fork::ExecForm;
use sluice_vcl::{SocketKey, Vcl};

use super::{current, inherited, records, to_key, to_ref, vcl_errno, Handle, EPOCH, EPOCH_MASK};
use crate::backend::SessionRef;
use crate::errno::Errno;
use crate::fdtable::{Entry, FDS};
use crate::spinlock::SpinLock;
pub use handover::VARIABLE;
use handover::{decode, encode, Handover};

/// The sockets this image was handed at its start, by reference.
static ADOPTED: SpinLock<Vec<(SessionRef, ExecForm)>> = SpinLock::new(Vec::new());
/// Whether any was: most images were handed nothing, and their calls need
/// not take the lock.
static ANY_ADOPTED: AtomicBool = AtomicBool::new(false);

/// The value of `SLUICE_INHERITED` for the new image: what each session
/// among `inherited` (descriptors that survive the exec) is; `None` if none
/// can be described.
pub(super) fn describe(inherited: &[(RawFd, SessionRef)]) -> Option<String> {
    let mut sockets: Vec<Handover> = Vec::new();
    let mut by_session: HashMap<u64, usize> = HashMap::new();
    for &(fd, s) in inherited {
        let s = inherited::resolve(s);
        if let Some(&i) = by_session.get(&s.raw()) {
            sockets[i].fds.push(fd);
            continue;
        }
        let form = match adopted_form(s) {
            Some(form) => form,
            None => match inherited::handle_as_is(s).and_then(|h| h.exec_form().map_err(vcl_errno)) {
                Ok(form) => form,
                Err(e) => {
                    log::warn!("socket {fd} reaches the exec'd program as a plain eventfd: {e}");
                    continue;
                }
            },
        };
        let mut options: Vec<(i32, i32, Vec<u8>)> =
            records::options(s).into_iter().map(|((level, name), value)| (level, name, value)).collect();
        options.sort();
        by_session.insert(s.raw(), sockets.len());
        sockets.push(Handover { fds: vec![fd], form, nonblocking: records::is_nonblocking(s), options });
    }
    (!sockets.is_empty()).then(|| encode(&sockets))
}

/// Tells the daemon this process execs if its own attachment has a
/// listener among `inherited` (see the module docs).
pub(super) fn announce(inherited: &[(RawFd, SessionRef)]) {
    let Some(a) = current().filter(|a| !a.is_inherited() && a.vcl.is_attached()) else { return };
    let holds_listener = inherited.iter().any(|&(_, s)| {
        let s = inherited::resolve(s);
        to_key(s).0 == a.epoch && records::is_listening(s)
    });
    if holds_listener {
        if let Err(e) = a.vcl.report_exec() {
            log::warn!("the Sluice daemon was not told of the exec: {e}; connections during it may be refused");
        }
    }
}

/// A forked child must find the table's lock free.
pub(super) fn lock_for_fork() {
    ADOPTED.acquire();
}

pub(super) fn unlock_after_fork() {
    // SAFETY: taken by `lock_for_fork` in the prepare step of this fork.
    unsafe { ADOPTED.release() };
}

fn adopted_form(s: SessionRef) -> Option<ExecForm> {
    if !ANY_ADOPTED.load(Ordering::Acquire) {
        return None;
    }
    ADOPTED.lock().iter().find(|(r, _)| *r == s).map(|&(_, form)| form)
}

/// Whether `s` was handed to this image and not re-created yet.
pub(super) fn is_adopted(s: SessionRef) -> bool {
    adopted_form(s).is_some()
}

/// The last descriptor naming `s` was closed; true if it was handed to
/// this image (and never re-created).
pub(super) fn forget(s: SessionRef) -> bool {
    if !ANY_ADOPTED.load(Ordering::Acquire) {
        return false;
    }
    let mut adopted = ADOPTED.lock();
    let before = adopted.len();
    adopted.retain(|(r, _)| *r != s);
    adopted.len() != before
}

/// The handle for a call on `s` if it was handed to this image: a
/// re-creation, or `ENOTCONN` for a connection. `None` otherwise.
pub(super) fn handle(s: SessionRef) -> Option<Result<Handle, Errno>> {
    let form = adopted_form(s)?;
    let made = match form {
        ExecForm::Connection => return Some(Err(Errno(libc::ENOTCONN))),
        ExecForm::Listener { addr, backlog, reuse_port } => inherited::recreate_with(s, || {
            fresh_vcl()?.listen_inherited(addr, backlog, reuse_port).map_err(vcl_errno)
        }),
        ExecForm::Unconnected { bound, reuse_port } => inherited::recreate_with(s, || {
            let socket = fresh_vcl()?.socket().map_err(vcl_errno)?;
            socket.set_reuse_port(reuse_port).map_err(vcl_errno)?;
            if let Some(addr) = bound {
                socket.bind(addr).map_err(vcl_errno)?;
            }
            Ok(socket)
        }),
    };
    Some(made.and_then(|fresh| {
        ADOPTED.lock().retain(|(r, _)| *r != s);
        Handle::get(fresh)
    }))
}

fn fresh_vcl() -> Result<std::sync::Arc<Vcl>, Errno> {
    Vcl::global().map_err(|e| vcl_errno(e.errno()))
}

/// Run by the dynamic loader when the preload is loaded, before `main`.
#[used]
#[link_section = ".init_array"]
static ADOPT_AT_START: extern "C" fn() = adopt_at_start;

/// Adopts what the previous image handed over; never unwinds into the
/// loader.
extern "C" fn adopt_at_start() {
    let _ = std::panic::catch_unwind(adopt_from_environment);
}

fn adopt_from_environment() {
    let Some(text) = std::env::var_os(VARIABLE) else { return };
    // Read once: the program's own children must not see it (they may not
    // inherit the descriptors). Single-threaded here, before `main`.
    std::env::remove_var(VARIABLE);
    let backend = std::env::var("SLUICE_BACKEND").unwrap_or_default();
    if !matches!(backend.as_str(), "" | "vcl") {
        return;
    }
    let Some(text) = text.to_str() else { return };
    let sockets = decode(text);
    if sockets.is_empty() {
        return;
    }
    // An epoch no attachment of this image will have (they take the next
    // ones), so these references reach no session of the daemon.
    let epoch = EPOCH.fetch_add(1, Ordering::AcqRel) & EPOCH_MASK;
    let mut adopted = ADOPTED.lock();
    for socket in sockets {
        let fds: Vec<RawFd> = socket.fds.iter().copied().filter(|&fd| is_untracked_eventfd(fd)).collect();
        if fds.is_empty() {
            continue;
        }
        let slot = adopted.len() as u64 + 1;
        let s = to_ref(epoch, SocketKey(1 << 32 | slot));
        records::create(s, socket.nonblocking);
        if matches!(socket.form, ExecForm::Listener { .. }) {
            records::set_listening(s);
        }
        for (level, name, value) in &socket.options {
            records::store_option(s, *level, *name, value);
        }
        let mut named = 0;
        for fd in fds {
            if FDS.register(fd, Entry::Session(s)).is_ok() {
                if named > 0 {
                    records::add_ref(s);
                }
                named += 1;
            }
        }
        if named == 0 {
            records::release(s);
            continue;
        }
        adopted.push((s, socket.form));
        ANY_ADOPTED.store(true, Ordering::Release);
    }
}

/// Whether `fd` is an open eventfd the fd table does not know: what a
/// handed-over placeholder is (anything else means the variable is stale).
fn is_untracked_eventfd(fd: c_int) -> bool {
    if FDS.get(fd) != Entry::Kernel {
        return false;
    }
    let path = format!("/proc/self/fd/{fd}\0");
    let mut target = [0u8; 64];
    // SAFETY: a NUL-terminated path and a buffer of the length given.
    let n = unsafe { libc::readlink(path.as_ptr().cast(), target.as_mut_ptr().cast(), target.len()) };
    n > 0 && &target[..n as usize] == b"anon_inode:[eventfd]"
}
