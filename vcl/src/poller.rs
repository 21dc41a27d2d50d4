//! An epoll-like readiness interface over vcl sockets (design §4.4).
//!
//! A poller keeps an interest list and a ready list. Every change to a
//! watched session (an event, a local shutdown, a close) puts the session on
//! the ready list of each poller watching it; `wait` evaluates the listed
//! sessions' current [`Readiness`] and reports those that match:
//!
//! * level-triggered: reported, and kept listed, while ready;
//! * edge-triggered: reported when the session changed since the last
//!   report (its change counter moved: every `READABLE`/`WRITABLE` event
//!   bumps it, so new data re-fires as on Linux, `ep_poll_callback`) and is
//!   ready now;
//! * one-shot: disabled after a report until [`Poller::modify`].
//!
//! Errors and hang-ups are always reported, as `EPOLLERR`/`EPOLLHUP`. A
//! closed socket leaves every poller by itself, like a closed fd leaves epoll
//! sets. The poller's readiness is also a kernel fd ([`Poller::as_fd`]): an
//! eventfd readable while the ready list is not empty, so a kernel epoll or
//! `poll` can wait on a mix of vcl and kernel descriptors.

use std::collections::{HashMap, HashSet, VecDeque};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sluice_shm::os::EventFd;
use sluice_shm::poll::SigSet;

use crate::error::{Errno, Result};
use crate::readiness::Readiness;
use crate::session::{Session, State};
use crate::socket::Socket;
use crate::table::Key;
use crate::wait::{WaitList, WaitOpts};
use crate::Vcl;

/// What a poller watches a socket for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Interest {
    /// `EPOLLIN`.
    pub readable: bool,
    /// `EPOLLOUT`.
    pub writable: bool,
    /// `EPOLLRDHUP`.
    pub rdhup: bool,
    /// `EPOLLET`.
    pub edge: bool,
    /// `EPOLLONESHOT`.
    pub oneshot: bool,
}

impl Interest {
    /// Readable, level-triggered.
    pub const READABLE: Interest =
        Interest { readable: true, writable: false, rdhup: false, edge: false, oneshot: false };
    /// Writable, level-triggered.
    pub const WRITABLE: Interest =
        Interest { readable: false, writable: true, rdhup: false, edge: false, oneshot: false };
    /// Readable and writable, level-triggered.
    pub const BOTH: Interest = Interest { readable: true, writable: true, rdhup: false, edge: false, oneshot: false };

    /// The same interest, edge-triggered.
    pub fn edge(self) -> Interest {
        Interest { edge: true, ..self }
    }

    /// The same interest, one-shot.
    pub fn oneshot(self) -> Interest {
        Interest { oneshot: true, ..self }
    }

    /// The same interest, with `rdhup`.
    pub fn rdhup(self) -> Interest {
        Interest { rdhup: true, ..self }
    }
}

/// One reported socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollEvent {
    /// The token given to [`Poller::add`].
    pub token: u64,
    pub readiness: Readiness,
}

struct Item {
    token: u64,
    interest: Interest,
    /// Session change counter at the last report (edge-triggered).
    last_seq: u32,
    /// A one-shot item that has fired.
    disabled: bool,
}

#[derive(Default)]
struct ReadyList {
    queue: VecDeque<Key>,
    listed: HashSet<u64>,
    /// The eventfd has been made readable and not drained since.
    efd_readable: bool,
}

/// The part sessions reach (weakly) to list themselves as ready.
pub(crate) struct PollerShared {
    items: Mutex<HashMap<u64, Item>>,
    ready: Mutex<ReadyList>,
    efd: EventFd,
    waiters: WaitList,
}

impl PollerShared {
    /// Lists `key` as possibly ready and wakes the poller's waiters.
    pub(crate) fn mark_ready(&self, key: Key) {
        {
            let mut r = self.ready.lock();
            if r.listed.insert(key.pack()) {
                r.queue.push_back(key);
            }
            if !r.efd_readable {
                r.efd_readable = true;
                let _ = self.efd.notify();
            }
        }
        self.waiters.notify_all();
    }

    fn has_candidates(&self) -> bool {
        !self.ready.lock().queue.is_empty()
    }
}

/// An epoll-like set of watched sockets.
pub struct Poller {
    vcl: Arc<Vcl>,
    shared: Arc<PollerShared>,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller").field("items", &self.shared.items.lock().len()).finish()
    }
}

impl Poller {
    pub(crate) fn new(vcl: Arc<Vcl>) -> Result<Poller> {
        let efd = EventFd::new().map_err(|e| Errno::from_io(&e))?;
        let shared = Arc::new(PollerShared {
            items: Mutex::new(HashMap::new()),
            ready: Mutex::new(ReadyList::default()),
            efd,
            waiters: WaitList::default(),
        });
        Ok(Poller { vcl, shared })
    }

    fn session_of<'a>(&'a self, socket: &Socket) -> Result<&'a Session> {
        if !Arc::ptr_eq(socket.vcl(), &self.vcl) {
            return Err(Errno::EINVAL);
        }
        self.vcl.table.get(socket.key()).ok_or(Errno::EBADF)
    }

    /// Watches `socket` (`EPOLL_CTL_ADD`); `EEXIST` if it is watched already.
    /// Watching a listener for readability counts as waiting on it: the
    /// daemon starts handing it connections.
    pub fn add(&self, socket: &Socket, token: u64, interest: Interest) -> Result<()> {
        self.vcl.drain();
        let key = socket.key();
        let s = self.session_of(socket)?;
        {
            let mut items = self.shared.items.lock();
            if items.contains_key(&key.pack()) {
                return Err(Errno::EEXIST);
            }
            let last_seq = s.seq.load(Ordering::Acquire).wrapping_sub(1);
            items.insert(key.pack(), Item { token, interest, last_seq, disabled: false });
        }
        {
            let mut watchers = s.watchers.lock();
            watchers.retain(|w| w.strong_count() > 0);
            watchers.push(Arc::downgrade(&self.shared));
        }
        if !self.vcl.table.is_live(key) {
            self.shared.items.lock().remove(&key.pack());
            return Err(Errno::EBADF);
        }
        if interest.readable && s.state() == State::Listening {
            self.vcl.ensure_accepting(s)?;
        }
        self.shared.mark_ready(key);
        Ok(())
    }

    /// Changes a watched socket's token and interest (`EPOLL_CTL_MOD`),
    /// re-enabling a fired one-shot; `ENOENT` if not watched. The socket is
    /// evaluated again, so a ready one is reported even edge-triggered.
    pub fn modify(&self, socket: &Socket, token: u64, interest: Interest) -> Result<()> {
        self.vcl.drain();
        let key = socket.key();
        let s = self.session_of(socket)?;
        {
            let mut items = self.shared.items.lock();
            let item = items.get_mut(&key.pack()).ok_or(Errno::ENOENT)?;
            *item = Item { token, interest, last_seq: s.seq.load(Ordering::Acquire).wrapping_sub(1), disabled: false };
        }
        if interest.readable && s.state() == State::Listening {
            self.vcl.ensure_accepting(s)?;
        }
        self.shared.mark_ready(key);
        Ok(())
    }

    /// Stops watching `socket` (`EPOLL_CTL_DEL`); `ENOENT` if not watched.
    pub fn delete(&self, socket: &Socket) -> Result<()> {
        let key = socket.key();
        if self.shared.items.lock().remove(&key.pack()).is_none() {
            return Err(Errno::ENOENT);
        }
        if let Ok(s) = self.session_of(socket) {
            s.watchers.lock().retain(|w| !std::ptr::eq(w.as_ptr(), Arc::as_ptr(&self.shared)));
        }
        Ok(())
    }

    /// Waits up to `timeout` (`None`: forever, zero: just look) for watched
    /// sockets to be ready; fills `events` (cleared first) and returns how
    /// many. A signal ends the wait with `EINTR`.
    pub fn wait(&self, events: &mut Vec<PollEvent>, timeout: Option<Duration>) -> Result<usize> {
        self.wait_with(events, usize::MAX, timeout, None)
    }

    /// [`wait`](Self::wait) reporting at most `max_events`, with `sigmask`
    /// as the signal mask while asleep (`epoll_pwait`).
    pub fn wait_with(
        &self,
        events: &mut Vec<PollEvent>,
        max_events: usize,
        timeout: Option<Duration>,
        sigmask: Option<&SigSet>,
    ) -> Result<usize> {
        events.clear();
        if max_events == 0 {
            return Err(Errno::EINVAL);
        }
        if self.vcl.is_stale() {
            // Inherited through fork: its sessions and wake-ups are the parent's.
            return Err(Errno::ENOTCONN);
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            self.vcl.drain();
            let n = self.collect(events, max_events);
            if n > 0 || timeout == Some(Duration::ZERO) {
                return Ok(n);
            }
            let opts = WaitOpts { deadline, interruptible: true, sigmask, extra: None };
            if !self.vcl.wait_until(&[&self.shared.waiters], opts, || self.shared.has_candidates())? {
                return Ok(self.collect(events, max_events));
            }
        }
    }

    /// What `item` would report for `s` now, and `s`'s change counter. Asks
    /// the daemon for a WRITABLE event where writability is wanted and
    /// missing (protocol: TX space).
    fn pending(&self, s: &Session, item: &Item) -> (u32, Option<Readiness>) {
        let vcl = &self.vcl;
        let seq = s.seq.load(Ordering::Acquire);
        let mut r = vcl.readiness_of(s);
        if item.interest.writable && !r.writable && s.state() == State::Connected {
            // WRITABLE events come only when asked for; ask, then look again
            // in case room appeared.
            if let Some(w) = s.daemon().and_then(|h| vcl.slots.words(h.index)) {
                w.want_tx_space.store(1, Ordering::Relaxed);
                fence(Ordering::SeqCst);
                r = vcl.readiness_of(s);
            }
        }
        let got = Readiness {
            readable: r.readable && item.interest.readable,
            writable: r.writable && item.interest.writable,
            rdhup: r.rdhup && item.interest.rdhup,
            hup: r.hup,
            error: r.error,
        };
        if item.disabled || got.is_empty() || (item.interest.edge && seq == item.last_seq) {
            return (seq, None);
        }
        (seq, Some(got))
    }

    /// Evaluates the listed sessions; reports up to `max` of them.
    fn collect(&self, events: &mut Vec<PollEvent>, max: usize) -> usize {
        let vcl = &self.vcl;
        let mut items = self.shared.items.lock();
        let candidates = {
            let mut r = self.shared.ready.lock();
            r.listed.clear();
            std::mem::take(&mut r.queue)
        };
        let mut relist = Vec::new();
        let mut n = 0;
        for key in candidates {
            if n >= max {
                relist.push(key);
                continue;
            }
            let Some(item) = items.get_mut(&key.pack()) else { continue };
            let Some(s) = vcl.table.get(key) else {
                items.remove(&key.pack());
                continue;
            };
            let (seq, Some(got)) = self.pending(s, item) else { continue };
            item.last_seq = seq;
            events.push(PollEvent { token: item.token, readiness: got });
            n += 1;
            if item.interest.oneshot {
                item.disabled = true;
            } else if !item.interest.edge {
                relist.push(key);
            }
        }
        self.relist(relist);
        n
    }

    /// Evaluates the listed sessions without reporting them: keeps listed
    /// only those a [`wait`](Self::wait) would report now, so the eventfd
    /// is readable exactly while a wait would report something. This is
    /// what `poll` on an epoll descriptor does (Linux re-checks each item
    /// of the ready list, `ep_read_events_proc`); edge and one-shot state
    /// are left alone.
    pub fn refresh(&self) {
        self.vcl.drain();
        let vcl = &self.vcl;
        let mut items = self.shared.items.lock();
        let candidates = {
            let mut r = self.shared.ready.lock();
            r.listed.clear();
            std::mem::take(&mut r.queue)
        };
        let mut keep = Vec::new();
        for key in candidates {
            let Some(item) = items.get(&key.pack()) else { continue };
            let Some(s) = vcl.table.get(key) else {
                items.remove(&key.pack());
                continue;
            };
            if self.pending(s, item).1.is_some() {
                keep.push(key);
            }
        }
        self.relist(keep);
    }

    /// Lists `keys` again and makes the eventfd say whether anything is listed.
    fn relist(&self, keys: Vec<Key>) {
        let mut r = self.shared.ready.lock();
        for key in keys {
            if r.listed.insert(key.pack()) {
                r.queue.push_back(key);
            }
        }
        if r.queue.is_empty() && r.efd_readable {
            r.efd_readable = false;
            let _ = self.shared.efd.drain();
        } else if !r.queue.is_empty() && !r.efd_readable {
            r.efd_readable = true;
            let _ = self.shared.efd.notify();
        }
    }
}

impl Drop for Poller {
    /// Leaves the watcher lists of the sessions still watched.
    fn drop(&mut self) {
        if self.vcl.is_stale() {
            return;
        }
        let items = std::mem::take(&mut *self.shared.items.lock());
        for packed in items.keys() {
            if let Some(s) = Key::unpack(*packed).and_then(|k| self.vcl.table.get(k)) {
                s.watchers.lock().retain(|w| !std::ptr::eq(w.as_ptr(), Arc::as_ptr(&self.shared)));
            }
        }
    }
}

impl AsFd for Poller {
    /// An eventfd readable while sockets are listed as possibly ready.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.shared.efd.as_fd()
    }
}
