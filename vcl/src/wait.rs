//! Blocking in the kernel without lost wake-ups (design §4.3).
//!
//! A thread that must wait for a condition (a session readable, a reply
//! arrived, a poller's ready list non-empty) registers its [`Parker`], a
//! per-thread eventfd, in the [`WaitList`] of each thing whose change can
//! make the condition true, checks the condition, and only then sleeps.
//! Whoever changes such a thing (the thread draining events, a local close)
//! changes it first and then notifies the list, so either the check sees the
//! change or the notification finds the parker (the list's mutex orders the
//! two), and an eventfd keeps a notification that lands before the sleep.
//!
//! Someone must also drain the event ring while everyone sleeps. At most one
//! waiting thread, the **leader**, adds the daemon's wake eventfd (and the
//! control socket, to notice the daemon's death) to its `ppoll`, following
//! the sleep-flag protocol of `sluice_shm::wake`: announce the sleep, re-check
//! for events, block. The others, **followers**, sleep on their parker only;
//! they are listed so that a leader that leaves hands the role over by waking
//! one of them. Every exit from a wait does that hand-off check, so a
//! follower woken for the hand-off that leaves at once passes it on.
//!
//! Every sleep is a real `ppoll`, so a signal ends it: blocking calls return
//! `EINTR` like the kernel's (except waits the kernel never interrupts, such
//! as `listen`'s, which sleep again), and timeouts (`SO_RCVTIMEO`) are its
//! timeout.

use std::cell::RefCell;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sluice_shm::os::EventFd;
use sluice_shm::poll::{ppoll, PollFd, SigSet, POLLIN};

use crate::error::{Errno, Result};
use crate::Vcl;

/// A thread's own wake-up eventfd.
#[derive(Debug)]
pub(crate) struct Parker {
    efd: EventFd,
}

thread_local! {
    static PARKER: RefCell<Option<Arc<Parker>>> = const { RefCell::new(None) };
}

impl Parker {
    /// The calling thread's parker, created on first use.
    pub(crate) fn current() -> Result<Arc<Parker>> {
        PARKER.with(|cell| {
            let mut cell = cell.borrow_mut();
            if let Some(p) = cell.as_ref() {
                return Ok(Arc::clone(p));
            }
            let p = Arc::new(Parker { efd: EventFd::new().map_err(|e| Errno::from_io(&e))? });
            *cell = Some(Arc::clone(&p));
            Ok(p)
        })
    }

    fn is_current(self: &Arc<Self>) -> bool {
        PARKER
            .try_with(|cell| cell.try_borrow().ok().and_then(|c| c.as_ref().map(|p| Arc::ptr_eq(p, self))))
            .ok()
            .flatten()
            .unwrap_or(false)
    }

    fn unpark(&self) {
        if let Err(e) = self.efd.notify() {
            log::error!("waking a parked thread failed: {e}");
        }
    }

    /// Clears notifications (after a sleep, before the caller re-checks).
    fn reset(&self) {
        let _ = self.efd.drain();
    }
}

/// The parkers of threads waiting for something.
#[derive(Debug, Default)]
pub(crate) struct WaitList {
    parked: Mutex<Vec<Arc<Parker>>>,
}

impl WaitList {
    pub(crate) fn register(&self, p: &Arc<Parker>) {
        self.parked.lock().push(Arc::clone(p));
    }

    pub(crate) fn unregister(&self, p: &Arc<Parker>) {
        let mut parked = self.parked.lock();
        if let Some(i) = parked.iter().position(|q| Arc::ptr_eq(q, p)) {
            parked.swap_remove(i);
        }
    }

    /// Wakes every registered thread but the caller (which re-checks on its
    /// own after the change it made).
    pub(crate) fn notify_all(&self) {
        let parked = self.parked.lock();
        for p in parked.iter() {
            if !p.is_current() {
                p.unpark();
            }
        }
    }

    /// Wakes one registered thread; whether there was one.
    fn notify_one(&self) -> bool {
        match self.parked.lock().first() {
            Some(p) => {
                p.unpark();
                true
            }
            None => false,
        }
    }
}

/// Unregisters a parker from its lists however the wait ends.
struct Registration<'a> {
    lists: &'a [&'a WaitList],
    parker: &'a Arc<Parker>,
}

impl<'a> Registration<'a> {
    fn new(lists: &'a [&'a WaitList], parker: &'a Arc<Parker>) -> Registration<'a> {
        for l in lists {
            l.register(parker);
        }
        Registration { lists, parker }
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        for l in self.lists {
            l.unregister(self.parker);
        }
    }
}

/// How a wait may end besides its condition.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WaitOpts<'a> {
    /// Give up (`Ok(false)`) at this instant.
    pub deadline: Option<Instant>,
    /// A signal ends the wait with `EINTR`; otherwise the wait goes on.
    pub interruptible: bool,
    /// Signal mask for the sleeps (`ppoll`'s); `None` keeps the thread's.
    pub sigmask: Option<&'a SigSet>,
    /// A kernel descriptor (and its poll events) every sleep also waits on,
    /// leader's and followers' alike ([`Vcl::wait_fd`]).
    pub extra: Option<(BorrowedFd<'a>, i16)>,
}

impl WaitOpts<'_> {
    /// A wait a signal interrupts, until `deadline`.
    pub(crate) fn interruptible(deadline: Option<Instant>) -> WaitOpts<'static> {
        WaitOpts { deadline, interruptible: true, sigmask: None, extra: None }
    }

    /// A wait only the condition (or the daemon's death) ends.
    pub(crate) fn uninterruptible() -> WaitOpts<'static> {
        WaitOpts { deadline: None, interruptible: false, sigmask: None, extra: None }
    }
}

impl Vcl {
    /// Blocks until `ready()` holds. `lists` are the wait lists notified when
    /// what `ready` looks at changes. Returns `Ok(true)` when ready,
    /// `Ok(false)` at the deadline, `Err(EINTR)` on a signal (if
    /// interruptible), `Err(ENETDOWN)` when the daemon is gone.
    pub(crate) fn wait_until(
        &self,
        lists: &[&WaitList],
        opts: WaitOpts<'_>,
        mut ready: impl FnMut() -> bool,
    ) -> Result<bool> {
        let parker = Parker::current()?;
        let _registration = Registration::new(lists, &parker);
        let mut leading = false;
        let result = loop {
            self.drain();
            if ready() {
                break Ok(true);
            }
            if self.is_dead() {
                break Err(Errno::ENETDOWN);
            }
            let timeout = match opts.deadline {
                None => None,
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => break Ok(false),
                },
            };
            if !leading {
                leading = self.try_lead();
            }
            let slept = if leading {
                self.lead_sleep(&parker, timeout, opts.sigmask, opts.extra, &mut ready)
            } else {
                self.follow_sleep(&parker, timeout, opts.sigmask, opts.extra, &mut leading)
            };
            match slept {
                Err(Errno::EINTR) if !opts.interruptible => {}
                Err(e) => break Err(e),
                Ok(()) => {}
            }
        };
        if leading {
            self.leader.store(false, Ordering::SeqCst);
        }
        self.hand_off();
        result
    }

    fn try_lead(&self) -> bool {
        self.leader.compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst).is_ok()
    }

    /// After leaving a wait: if nobody leads while followers sleep, wake one
    /// to take the role.
    fn hand_off(&self) {
        if !self.leader.load(Ordering::SeqCst) {
            self.followers.notify_one();
        }
    }

    /// Wakes every follower (the daemon died: they must see it).
    pub(crate) fn wake_all_followers(&self) {
        self.followers.notify_all();
    }

    /// The leader's sleep: the sleep-flag protocol on the daemon's wake fd,
    /// plus the own parker and the control socket.
    fn lead_sleep(
        &self,
        parker: &Arc<Parker>,
        timeout: Option<std::time::Duration>,
        sigmask: Option<&SigSet>,
        extra: Option<(BorrowedFd<'_>, i16)>,
        ready: &mut impl FnMut() -> bool,
    ) -> Result<()> {
        let mut res = Ok(());
        let mut control_revents = 0;
        let slept = self.sleep_flag.sleep_unless(
            || self.events_pending() || ready(),
            || {
                let mut fds = [
                    PollFd::new(self.att.wake.as_fd(), POLLIN),
                    PollFd::new(parker.efd.as_fd(), POLLIN),
                    PollFd::new(self.att.control.as_fd(), POLLIN),
                    PollFd::new(parker.efd.as_fd(), POLLIN),
                ];
                let used = match extra {
                    Some((fd, events)) => {
                        fds[3] = PollFd::new(fd, events);
                        4
                    }
                    None => 3,
                };
                res = ppoll(&mut fds[..used], timeout, sigmask).map(|_| ()).map_err(|e| Errno::from_io(&e));
                control_revents = fds[2].revents;
            },
        );
        if slept {
            let _ = self.att.wake.drain();
            parker.reset();
            if control_revents != 0 {
                self.on_control_readable(control_revents);
            }
        }
        res
    }

    /// A follower's sleep, on its parker only. Takes the lead instead if the
    /// leader left after this thread listed itself.
    fn follow_sleep(
        &self,
        parker: &Arc<Parker>,
        timeout: Option<std::time::Duration>,
        sigmask: Option<&SigSet>,
        extra: Option<(BorrowedFd<'_>, i16)>,
        leading: &mut bool,
    ) -> Result<()> {
        self.followers.register(parker);
        if self.try_lead() {
            self.followers.unregister(parker);
            *leading = true;
            return Ok(());
        }
        let mut fds = [PollFd::new(parker.efd.as_fd(), POLLIN), PollFd::new(parker.efd.as_fd(), POLLIN)];
        let used = match extra {
            Some((fd, events)) => {
                fds[1] = PollFd::new(fd, events);
                2
            }
            None => 1,
        };
        let res = ppoll(&mut fds[..used], timeout, sigmask);
        self.followers.unregister(parker);
        parker.reset();
        res.map(|_| ()).map_err(|e| Errno::from_io(&e))
    }
}

impl Vcl {
    /// Blocks until the kernel descriptor `fd` polls ready for `events`
    /// (`Ok(true)`), `timeout` passes (`Ok(false)`; `None` waits forever) or
    /// a signal arrives (`EINTR`), while keeping the daemon's events applied:
    /// so a [`Poller`](crate::Poller)'s eventfd, or a kernel epoll holding
    /// it, becomes readable when a watched socket changes. This is how a
    /// caller waits on vcl sockets and kernel descriptors together (the
    /// preload's `poll` and `epoll_wait` over mixed sets). `sigmask` is the
    /// signal mask while asleep, as `ppoll`'s.
    pub fn wait_fd(
        &self,
        fd: BorrowedFd<'_>,
        events: i16,
        timeout: Option<Duration>,
        sigmask: Option<&SigSet>,
    ) -> Result<bool> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let opts = WaitOpts { deadline, interruptible: true, sigmask, extra: Some((fd, events)) };
        self.wait_until(&[], opts, || {
            let mut fds = [PollFd::new(fd, events)];
            matches!(ppoll(&mut fds, Some(Duration::ZERO), None), Ok(n) if n > 0)
        })
    }
}
