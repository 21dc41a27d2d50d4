//! Fork support (design §4.5, seed 003 challenge 3): a forked child does not
//! share its parent's session objects; it re-attaches as a new app worker
//! and re-creates the listeners it inherited, which join the parent's listen
//! group in the daemon.
//!
//! # The three hooks
//! * [`prepare`], in the parent before `fork`: makes sure the child handler
//!   will need nothing it would have to allocate.
//! * [`child`], in the child: only atomics and `dup2` (async-signal-safe;
//!   nothing allocates, locks or blocks, so it cannot deadlock on a lock
//!   another parent thread held at the fork). It starts a new process
//!   *epoch*, which makes every attachment made before it stale in this
//!   process, and lets go of their control sockets (so the daemon still
//!   sees the parent's own hang-up when the parent dies).
//! * [`parent`], in the parent after `fork` with the child's pid: sends
//!   `FORKED{child_pid}` to the daemon, which records the child as a holder
//!   of the process's listen groups (watched through a pidfd). A process
//!   that is only a holder itself (nginx's master after `daemon()`) attaches
//!   to report its own forks. The parent never waits for the child.
//!
//! `pthread_atfork` cannot pass the child's pid to the parent handler, so
//! [`install_atfork`] registers `prepare` and `child` only; whoever forks
//! calls [`parent`] with the pid (the preload's `fork` hook does; native
//! apps can use [`fork`], which runs all three).
//!
//! # Inherited sessions in the child
//! The parent's segments are not mapped in the child (`MADV_DONTFORK`), so
//! nothing of a stale attachment touches them:
//! * an inherited **listener** is re-created with
//!   [`Socket::recreate_inherited`] (or [`Vcl::listen_inherited`]):
//!   `LISTEN` with the inherit flag on a fresh attachment; it joins the group
//!   and is given connections once the child waits on it;
//! * every other call on an inherited socket fails with `ENOTCONN`: an
//!   inherited **connection** stays the parent's;
//! * closing (or dropping) an inherited socket only forgets it locally: a
//!   child that only closes what it inherited (redis's BGSAVE child) never
//!   talks to the daemon, and the parent's sessions are untouched.
//!
//! # exec
//! Sessions do not cross an `execve` (the segments and the session table
//! go with the old image), but listeners can be handed over like after a
//! fork: [`Socket::exec_form`] says what a socket is, for the caller to
//! pass to its new image, which re-creates a listener with
//! [`Vcl::listen_inherited`]. [`Vcl::report_exec`] tells the daemon first,
//! so that the process holds its listen groups once the old image's app
//! worker goes (its control socket closes on exec): the port stays bound
//! and connections arriving during the exec wait for the new image.
//!
//! Limits: a lock of the session library held by another parent thread at
//! the fork (`Vcl::global`'s, a session's token) stays held in the child;
//! the child's first use of that object would block. Call `fork` from a
//! thread that is not inside the library.

use std::io;
use std::net::SocketAddrV4;
use std::os::fd::{IntoRawFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Once};

use sluice_shm::process;
pub use sluice_shm::process::Forked;
use sluice_shm::protocol::Request;

use crate::error::{Errno, Result};
use crate::replies::Purpose;
use crate::session::State;
use crate::socket::Socket;
use crate::wait::WaitOpts;
use crate::Vcl;

/// The process epoch: bumped in every fork child.
static EPOCH: AtomicU32 = AtomicU32::new(0);

/// Control sockets of this process's attachments, by registration slot.
const MAX_ATTACHMENTS: usize = 64;
static CONTROLS: [AtomicI32; MAX_ATTACHMENTS] = [const { AtomicI32::new(-1) }; MAX_ATTACHMENTS];
/// `/dev/null`, opened once: what a child puts in place of a control socket.
static DEV_NULL: AtomicI32 = AtomicI32::new(-1);
static DEV_NULL_ONCE: Once = Once::new();

/// Listeners this process made and has not closed.
static LIVE_LISTENERS: AtomicUsize = AtomicUsize::new(0);
/// Listeners this process inherited through `fork`.
static INHERITED_LISTENERS: AtomicUsize = AtomicUsize::new(0);

/// The current process epoch; an attachment made in another epoch is stale.
pub fn epoch() -> u32 {
    EPOCH.load(Ordering::Acquire)
}

/// Listeners the process inherited from its parent (and its parent's parents).
pub fn inherited_listeners() -> usize {
    INHERITED_LISTENERS.load(Ordering::Relaxed)
}

fn open_dev_null() {
    DEV_NULL_ONCE.call_once(|| match process::open_dev_null() {
        // Kept for the life of the process.
        Ok(fd) => DEV_NULL.store(fd.into_raw_fd(), Ordering::Release),
        Err(e) => log::warn!("cannot open /dev/null for fork support: {e}"),
    });
}

/// Records an attachment's control socket; the slot to give back on drop.
pub(crate) fn register_control(fd: RawFd) -> Option<usize> {
    open_dev_null();
    for (i, slot) in CONTROLS.iter().enumerate() {
        if slot.compare_exchange(-1, fd, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            return Some(i);
        }
    }
    log::warn!("more than {MAX_ATTACHMENTS} attachments: a fork child keeps the newest one's control socket");
    None
}

pub(crate) fn unregister_control(slot: usize) {
    if let Some(s) = CONTROLS.get(slot) {
        s.store(-1, Ordering::Release);
    }
}

pub(crate) fn listener_opened() {
    LIVE_LISTENERS.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn listener_closed() {
    let _ = LIVE_LISTENERS.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
}

/// The parent's `pthread_atfork` prepare handler.
pub fn prepare() {
    open_dev_null();
}

/// The child's handler: async-signal-safe (atomics and `dup2` only).
pub fn child() {
    EPOCH.fetch_add(1, Ordering::AcqRel);
    let inherited = LIVE_LISTENERS.swap(0, Ordering::Relaxed);
    INHERITED_LISTENERS.fetch_add(inherited, Ordering::Relaxed);
    let null = DEV_NULL.load(Ordering::Acquire);
    if null < 0 {
        return;
    }
    for slot in &CONTROLS {
        let fd = slot.swap(-1, Ordering::AcqRel);
        if fd >= 0 {
            // The descriptor number stays valid (the stale attachment closes
            // it one day); the socket behind it is the parent's alone.
            let _ = process::replace_fd(fd, null);
        }
    }
}

/// The parent's handler after a successful `fork`: reports the child to
/// the daemon if this process holds listeners (its own or inherited ones).
pub fn parent(child_pid: i32) -> Result<()> {
    let Ok(pid) = u32::try_from(child_pid) else { return Err(Errno::EINVAL) };
    let vcl = match Vcl::current_global() {
        Some(vcl) if !vcl.is_dead() => vcl,
        // A holder only (its attachment, if any, is its parent's): it
        // attaches to report, so that its children may re-create what it
        // holds.
        _ if inherited_listeners() > 0 => Vcl::global().map_err(|e| e.errno())?,
        _ => return Ok(()),
    };
    vcl.report_fork(pid)
}

/// Registers [`prepare`] and [`child`] with `pthread_atfork` (once per
/// process). For apps that use the library without the preload; [`parent`]
/// still needs the child's pid from whoever forked.
pub fn install_atfork() -> io::Result<()> {
    static INSTALLED: Once = Once::new();
    let mut result = Ok(());
    INSTALLED.call_once(|| result = process::register_atfork(prepare_hook, parent_hook, child_hook));
    result
}

extern "C" fn prepare_hook() {
    prepare();
}

extern "C" fn parent_hook() {}

extern "C" fn child_hook() {
    child();
}

/// `fork(2)` with the three hooks run around it. The child must respect
/// `fork(2)`'s rules for multi-threaded parents (see
/// [`sluice_shm::process::fork`]).
pub fn fork() -> io::Result<Forked> {
    prepare();
    let forked = process::fork()?;
    match forked {
        Forked::Child => child(),
        Forked::Parent(pid) => {
            if let Err(e) = parent(pid) {
                log::warn!("the daemon was not told of child {pid}: {e}");
            }
        }
    }
    Ok(forked)
}

impl Vcl {
    /// Whether this attachment was made before a `fork` that created this
    /// process: its segments are not mapped here.
    pub(crate) fn is_stale(&self) -> bool {
        self.epoch != epoch()
    }

    /// Tells the daemon this process forked `child_pid` (see [`parent`]) and
    /// waits for its answer: the daemon checks the child's parent pid, which
    /// it could not once this process had exited. This waits for the daemon,
    /// never for the child.
    pub fn report_fork(&self, child_pid: u32) -> Result<()> {
        let req_id = self.replies.register(Purpose::Wait);
        if let Err(e) = self.send(self.link.home(), &Request::Forked { req_id, child_pid }) {
            self.replies.abandon(req_id);
            return Err(e);
        }
        if let Err(e) =
            self.wait_until(&[&self.replies.waiters], WaitOpts::uninterruptible(), || self.replies.is_done(req_id))
        {
            self.replies.abandon(req_id);
            return Err(e);
        }
        match self.replies.take(req_id) {
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(Errno(e)),
            None => Err(Errno::EIO),
        }
    }

    /// Tells the daemon this process is about to `execve`: if the app
    /// worker then goes while the process lives, the process holds the
    /// listen groups this app worker is a member of, for its new image to
    /// re-create its listeners in (see the module docs). Harmless if the
    /// exec fails: it only matters once the app worker goes.
    pub fn report_exec(&self) -> Result<()> {
        self.report_fork(std::process::id())
    }

    /// A listener re-created in a fork child on `addr` (what the inherited
    /// one was bound to): joins the parent's listen group.
    pub fn listen_inherited(self: &Arc<Self>, addr: SocketAddrV4, backlog: u32, reuse_port: bool) -> Result<Socket> {
        let s = self.socket()?;
        s.bind(addr)?;
        s.set_reuse_port(reuse_port)?;
        s.session()?.setup.lock().inherited = true;
        s.listen(backlog)?;
        Ok(s)
    }
}

/// What a socket is, for a new image to re-create it after an `execve`
/// (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecForm {
    /// Listening on `addr` (the address the daemon bound).
    Listener { addr: SocketAddrV4, backlog: u32, reuse_port: bool },
    /// A connection (or one being made): it cannot cross.
    Connection,
    /// Not listening nor connected; bound to `bound` if `bind` was called.
    Unconnected { bound: Option<SocketAddrV4>, reuse_port: bool },
}

impl Socket {
    /// What this socket is (of this process's attachment or an inherited
    /// one, whose session table is still readable).
    pub fn exec_form(&self) -> Result<ExecForm> {
        let s = self.vcl.table.get(self.key).ok_or(Errno::EBADF)?;
        let (bound, reuse_port) = {
            let setup = s.setup.lock();
            (setup.bound, setup.reuse_port)
        };
        Ok(match s.state() {
            State::Listening => {
                let addr = bound.ok_or(Errno::EINVAL)?;
                ExecForm::Listener { addr, backlog: s.accept.lock().backlog, reuse_port }
            }
            State::Connecting | State::Connected => ExecForm::Connection,
            State::Candidate | State::ListenPending | State::Failed => ExecForm::Unconnected { bound, reuse_port },
        })
    }

    /// In a fork child: this inherited listener, re-created on the process's
    /// fresh attachment ([`Vcl::global`]) with `LISTEN(inherit)`. `EINVAL`
    /// when the socket is not an inherited listener.
    pub fn recreate_inherited(&self) -> Result<Socket> {
        if !self.vcl.is_stale() {
            return Err(Errno::EINVAL);
        }
        let s = self.vcl.table.get(self.key).ok_or(Errno::EBADF)?;
        if s.state() != State::Listening {
            return Err(Errno::EINVAL);
        }
        let (addr, reuse_port) = {
            let setup = s.setup.lock();
            (setup.bound.ok_or(Errno::EINVAL)?, setup.reuse_port)
        };
        let backlog = s.accept.lock().backlog;
        let fresh = Vcl::global().map_err(|e| e.errno())?;
        fresh.listen_inherited(addr, backlog, reuse_port)
    }
}
