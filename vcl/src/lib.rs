//! Sluice's per-process session layer (design §4): the library an app links
//! to use TCP over the Sluice daemon, with the kernel's socket semantics.
//!
//! A process attaches once ([`Vcl::attach`], or lazily [`Vcl::global`]):
//! it gets two shared-memory segments and a few eventfds from the daemon
//! (`sluice_shm::control`, `sluice_shm::layout`). Each [`Socket`] is a
//! session whose bytes move through a pair of fifos in those segments;
//! requests (listen, connect, close, ...) go to the daemon on a request ring,
//! and the daemon answers with events on an event ring (`sluice_shm::protocol`).
//!
//! * Reads and writes take no lock but the session's own fifo token and
//!   make no system call unless the flow-control rules say the daemon must
//!   hear about it.
//! * Every call first applies waiting events, if no other thread is at it;
//!   a blocked call sleeps in `ppoll` and is woken by exactly the events it
//!   waits for, so signals interrupt it (`EINTR`) and timeouts work.
//! * [`Poller`] is an epoll-like readiness interface (level, edge, one-shot)
//!   whose readiness is also a kernel fd.
//!
//! Errors are [`Errno`] values, the ones the kernel would report.
//!
//! # API
//! * [`Vcl`]: [`attach`](Vcl::attach), [`global`](Vcl::global),
//!   [`socket`](Vcl::socket), [`listen`](Vcl::listen),
//!   [`connect`](Vcl::connect), [`poller`](Vcl::poller).
//! * [`Socket`]: `bind`, `listen`, `accept`, `connect` (blocking, or
//!   `EINPROGRESS` then writable and [`take_error`](Socket::take_error)),
//!   `read`/`readv`/`peek`/`recv`, `write`/`writev`/`send`, `shutdown`,
//!   `close` (or drop), `set_option`, `local_addr`/`peer_addr`,
//!   `set_nonblocking`, read/write timeouts, [`readiness`](Socket::readiness).
//!   Every method takes `&self`: share a socket between threads in an `Arc`.
//! * [`Poller`]: `add`/`modify`/`delete` with an [`Interest`], `wait`.
//!
//! Limits of this version: one daemon worker's ring is used for every
//! request. Fork support is in [`fork`]: a child re-attaches lazily and
//! re-creates inherited listeners; its parent's sessions are not usable
//! there (`ENOTCONN`).
//!
//! # Example: an echo server
//! ```no_run
//! use std::net::{Ipv4Addr, SocketAddrV4};
//! use sluice_vcl::Vcl;
//!
//! let vcl = Vcl::global()?;
//! let listener = vcl.listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7), 128)?;
//! loop {
//!     let (conn, peer) = listener.accept()?;
//!     std::thread::spawn(move || {
//!         let mut buf = [0u8; 16 * 1024];
//!         loop {
//!             match conn.read(&mut buf) {
//!                 Ok(0) | Err(_) => break,
//!                 Ok(n) => {
//!                     if conn.write(&buf[..n]).is_err() {
//!                         break;
//!                     }
//!                 }
//!             }
//!         }
//!         let _ = peer;
//!     });
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod attach;
mod chunked;
mod cork;
mod drain;
mod error;
pub mod fork;
mod io;
mod lifecycle;
mod link;
mod listener;
mod open;
mod poller;
mod readiness;
mod replies;
mod session;
mod slots;
mod socket;
mod table;
mod transfer;
mod wait;

use std::net::SocketAddrV4;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use sluice_shm::layout::{self, Geometry};
use sluice_shm::poll::{POLLERR, POLLHUP, POLLIN, POLLNVAL};
use sluice_shm::{unix_socket, EventConsumer, SleepFlag};

pub use attach::{default_control_path, ATTACH_TIMEOUT, CONTROL_SOCKET_ENV};
pub use error::{Errno, Error, Result};
pub use poller::{Interest, PollEvent, Poller};
pub use readiness::Readiness;
pub use sluice_shm::poll::SigSet;
pub use sluice_shm::protocol::{ShutdownHow, SockOption};
pub use socket::{MsgFlags, Socket, SocketKey};

use attach::Attachment;
use link::Link;
use replies::Replies;
use session::Session;
use slots::DaemonSlots;
use table::{Table, MAX_SLOTS};
use wait::WaitList;

/// This process's attachment to the daemon.
pub struct Vcl {
    att: Attachment,
    link: Link,
    /// The event consumer; its lock is the try-only drain token.
    events: Mutex<EventConsumer>,
    /// The app's sleep flag (only the leader sleeps on it).
    sleep_flag: SleepFlag,
    /// A thread sleeps with the wake fd in its `ppoll`.
    leader: AtomicBool,
    /// Waiting threads that are not the leader.
    followers: WaitList,
    table: Table<Session>,
    /// Slots whose life ended, made allocatable again only by the thread
    /// holding the drain token: so a session the drain looked up cannot be
    /// reused for a new life while the drain applies an event to it.
    released: Mutex<Vec<table::Key>>,
    slots: DaemonSlots,
    replies: Replies,
    /// The daemon hung up: every call that needs it fails with `ENETDOWN`.
    dead: AtomicBool,
    /// The process epoch of the attach ([`fork`]): in a fork child the
    /// attachment is stale and its segments are not mapped.
    epoch: u32,
    /// Its control socket's registration for fork children ([`fork`]).
    control_slot: Option<usize>,
}

impl Drop for Vcl {
    fn drop(&mut self) {
        if let Some(slot) = self.control_slot.filter(|_| !self.is_stale()) {
            fork::unregister_control(slot);
        }
    }
}

impl std::fmt::Debug for Vcl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vcl")
            .field("app_worker_id", &self.att.app_worker_id)
            .field("geometry", &self.att.geometry)
            .field("dead", &self.is_dead())
            .finish()
    }
}

static GLOBAL: Mutex<Option<Arc<Vcl>>> = Mutex::new(None);

impl Vcl {
    /// Attaches to the daemon listening on `control_socket`. Fails at once
    /// when no daemon is there, and within [`ATTACH_TIMEOUT`] when one does
    /// not answer.
    pub fn attach(control_socket: &Path) -> std::result::Result<Arc<Vcl>, Error> {
        let att = attach::attach(control_socket)?;
        let broken = |what: String| {
            Error::new(Errno::EPROTO, format!("daemon at {} sent unusable segments: {what}", control_socket.display()))
        };
        let link = Link::new(&att).map_err(broken)?;
        let events = EventConsumer::new(layout::event_ring(&att.down, &att.up))
            .map_err(|e| broken(format!("event ring: {e}")))?;
        let sleep_flag = SleepFlag::new(att.up.app_sleep_flag());
        let slots = DaemonSlots::new(att.down.clone(), att.up.clone());
        log::debug!("attached to {} as app worker {}", control_socket.display(), att.app_worker_id);
        let control_slot = fork::register_control(att.control.as_raw_fd());
        Ok(Arc::new(Vcl {
            epoch: fork::epoch(),
            control_slot,
            att,
            link,
            events: Mutex::new(events),
            sleep_flag,
            leader: AtomicBool::new(false),
            followers: WaitList::default(),
            table: Table::new(MAX_SLOTS),
            released: Mutex::new(Vec::new()),
            slots,
            replies: Replies::default(),
            dead: AtomicBool::new(false),
        }))
    }

    /// The process's attachment, made on first use with
    /// [`default_control_path`]. After the daemon died, the next call
    /// attaches again (sockets of the old attachment stay dead). The path is
    /// the one of the first call, also in fork children: a program may clear
    /// its environment before it forks (nginx's workers keep only `TZ`).
    pub fn global() -> std::result::Result<Arc<Vcl>, Error> {
        static PATH: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
        let mut global = GLOBAL.lock();
        if let Some(vcl) = global.as_ref().filter(|v| !v.is_dead()) {
            return Ok(Arc::clone(vcl));
        }
        let vcl = Vcl::attach(PATH.get_or_init(default_control_path))?;
        *global = Some(Arc::clone(&vcl));
        Ok(vcl)
    }

    /// A new, unconnected socket (the daemon hears of it at `listen` or
    /// `connect`). `EMFILE` when the process has too many.
    pub fn socket(self: &Arc<Self>) -> Result<Socket> {
        self.drain();
        let (key, s) = self.table.alloc().ok_or(Errno::EMFILE)?;
        s.begin_life(key.gen);
        Ok(Socket::new(Arc::clone(self), key))
    }

    /// A listener on `addr` (`socket`, `bind`, `listen`).
    pub fn listen(self: &Arc<Self>, addr: SocketAddrV4, backlog: u32) -> Result<Socket> {
        let s = self.socket()?;
        s.bind(addr)?;
        s.listen(backlog)?;
        Ok(s)
    }

    /// A connection to `addr` (`socket`, blocking `connect`).
    pub fn connect(self: &Arc<Self>, addr: SocketAddrV4) -> Result<Socket> {
        let s = self.socket()?;
        s.connect(addr)?;
        Ok(s)
    }

    /// A new, empty poller.
    pub fn poller(self: &Arc<Self>) -> Result<Poller> {
        Poller::new(Arc::clone(self))
    }

    /// The id the daemon gave this attachment.
    pub fn app_worker_id(&self) -> u32 {
        self.att.app_worker_id
    }

    /// The segments' geometry (fifo sizes, limits).
    pub fn geometry(&self) -> Geometry {
        self.att.geometry
    }

    /// Whether the daemon is still there (as far as this process has seen).
    pub fn is_attached(&self) -> bool {
        !self.is_dead()
    }

    /// The daemon hung up, or this is a fork child's stale copy.
    pub(crate) fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire) || self.is_stale()
    }

    /// The global attachment as it is, without attaching.
    pub(crate) fn current_global() -> Option<Arc<Vcl>> {
        GLOBAL.lock().clone()
    }

    /// The control socket polled readable: the daemon hung up (or, against
    /// the protocol, said something after the attach, which is logged).
    pub(crate) fn on_control_readable(&self, revents: i16) {
        let gone = if revents & (POLLHUP | POLLERR | POLLNVAL) != 0 {
            true
        } else if revents & POLLIN != 0 {
            let mut buf = [0u8; 256];
            match unix_socket::recv(self.att.control.as_fd(), &mut buf, libc::MSG_DONTWAIT) {
                Ok((0, _)) => true,
                Ok((n, _)) => {
                    log::warn!("unexpected {n}-byte message on the control socket ignored");
                    false
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
                Err(e) => {
                    log::error!("control socket failed: {e}");
                    true
                }
            }
        } else {
            false
        };
        if gone && !self.dead.swap(true, Ordering::AcqRel) {
            log::error!("the Sluice daemon hung up: sockets of this attachment are dead (ENETDOWN)");
            self.wake_all_followers();
        }
    }
}
