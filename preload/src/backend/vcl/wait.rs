//! Readiness of sets that mix vcl sessions with kernel descriptors.
//!
//! # epoll
//! The program's epoll descriptor stays a real kernel epoll: kernel
//! descriptors are registered in it directly by the hooks. Its sessions live
//! in a vcl [`Poller`] (one per instance, [`EpollRef`] = its id here) whose
//! eventfd is registered in that kernel epoll under [`POLLER_TOKEN`], so the
//! instance polls readable, also from an enclosing epoll or `poll`, while a
//! session may be ready. `epoll_wait` takes the sessions' events from the
//! poller (level, `EPOLLET`, `EPOLLONESHOT` and `EPOLLRDHUP` are the
//! poller's, which follows `ep_poll_callback`), the kernel descriptors' from
//! a zero-timeout kernel `epoll_wait` (minus the poller's own entry), the two
//! in alternating order so neither starves the other, and when neither has
//! anything it sleeps in [`Vcl::wait_fd`] on the epoll descriptor: a real
//! `ppoll` with the caller's timeout and signal mask that also keeps the
//! daemon's events applied (which is what makes the poller's eventfd
//! readable). No spinning: the thread blocks in the kernel.
//!
//! `EPOLLEXCLUSIVE` is accepted on `ADD` with the kernel's checks (`EINVAL`
//! on `MOD`, or with `EPOLLONESHOT`/`EPOLLRDHUP`); the poller then wakes every
//! thread waiting on the instance, which a program must tolerate anyway
//! (`epoll_ctl(2)`: "one or more" of the waiters are woken).
//!
//! Nesting: an epoll instance with sessions added to another epoll instance
//! gives that one an instance too ([`epoll_nest`], with an empty poller), and
//! `poll`/`select` over an epoll descriptor with sessions come here as well,
//! so every wait that can depend on sessions applies the daemon's events.
//!
//! # poll / select
//! One pass evaluates sessions in user space ([`Socket::readiness`]) and the
//! kernel descriptors with a zero-timeout `ppoll`. If nothing is ready and
//! the caller may wait, the sessions go into a temporary poller and the
//! kernel descriptors, with the poller's eventfd, into a temporary kernel
//! epoll, and the thread sleeps on that in [`Vcl::wait_fd`]; every wake-up
//! evaluates again.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libc::c_int;
use sluice_vcl::{Interest, PollEvent, Poller, Readiness, SigSet};

use super::{current, vcl_errno, Handle};
use crate::backend::{EpollRef, SessionRef};
use crate::errno::{check, Errno};
use crate::fdtable::{Entry, FDS};
use crate::real;
use crate::spinlock::SpinLock;

/// The `epoll_event.data` of a poller's eventfd in the program's kernel
/// epoll. A program that registers a kernel descriptor with this exact data
/// word would see its events swallowed; the value is chosen to be one no
/// pointer or small integer is.
pub(super) const POLLER_TOKEN: u64 = 0x5a1c_e0e0_fd00_d00d;

struct Instance {
    poller: Poller,
    epoch: u64,
    refs: AtomicU32,
    /// Alternates which kind of descriptor is reported first.
    turn: AtomicU32,
}

static INSTANCES: SpinLock<Option<HashMap<u64, Arc<Instance>>>> = SpinLock::new(None);
static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(1);

fn instances<R>(f: impl FnOnce(&mut HashMap<u64, Arc<Instance>>) -> R) -> R {
    let mut guard = INSTANCES.lock();
    f(guard.get_or_insert_with(HashMap::new))
}

fn lookup(instance: EpollRef) -> Option<Arc<Instance>> {
    instances(|m| m.get(&instance.raw()).cloned())
}

/// The caller's signal mask as vcl's.
fn sigset(mask: &libc::sigset_t) -> SigSet {
    let mut set = SigSet::empty();
    for signo in 1..=64 {
        // SAFETY: sigismember reads the caller's valid mask.
        if unsafe { libc::sigismember(mask, signo) } == 1 {
            let _ = set.add(signo);
        }
    }
    set
}

fn interest_of(events: u32) -> Interest {
    let has = |bit: c_int| events & bit as u32 != 0;
    Interest {
        readable: has(libc::EPOLLIN) || has(libc::EPOLLRDNORM),
        writable: has(libc::EPOLLOUT) || has(libc::EPOLLWRNORM),
        rdhup: has(libc::EPOLLRDHUP),
        edge: has(libc::EPOLLET),
        oneshot: has(libc::EPOLLONESHOT),
    }
}

/// `poll` bits (which equal epoll's for these) of a readiness, for an
/// interest given as poll/epoll event bits.
fn bits_of(r: Readiness, requested: u32) -> u32 {
    let mut out = 0u32;
    let mut set = |cond: bool, bit: c_int| {
        if cond && requested & bit as u32 != 0 {
            out |= bit as u32;
        }
    };
    set(r.readable, libc::EPOLLIN);
    set(r.readable, libc::EPOLLRDNORM);
    set(r.writable, libc::EPOLLOUT);
    set(r.writable, libc::EPOLLWRNORM);
    set(r.rdhup, libc::EPOLLRDHUP);
    // Errors and hang-ups are reported whatever was asked (poll(2)).
    if r.hup {
        out |= libc::EPOLLHUP as u32;
    }
    if r.error {
        out |= libc::EPOLLERR as u32;
    }
    out
}

pub(super) fn epoll_ctl(
    epfd: RawFd,
    instance: Option<EpollRef>,
    op: c_int,
    s: SessionRef,
    event: Option<libc::epoll_event>,
) -> Result<EpollRef, Errno> {
    let h = Handle::get(s)?;
    if h.inherited {
        // The parent's connection: no events of it ever reach this
        // process. EPERM is epoll_ctl(2)'s "fd does not support epoll".
        return Err(Errno(libc::EPERM));
    }
    let existing = instance.and_then(lookup).filter(|i| i.epoch == h.epoch);
    let (id, inst) = match (existing, instance) {
        (Some(inst), Some(id)) => (id, inst),
        _ => {
            if op != libc::EPOLL_CTL_ADD {
                // Not in this instance (the kernel's answer for MOD/DEL of
                // a descriptor never added); also checks that epfd is epoll.
                check_epoll(epfd)?;
                return Err(Errno(libc::ENOENT));
            }
            new_instance(epfd, h.vcl(), h.epoch)?
        }
    };
    match (op, event) {
        (libc::EPOLL_CTL_DEL, _) => inst.poller.delete(&h).map_err(vcl_errno)?,
        (libc::EPOLL_CTL_ADD | libc::EPOLL_CTL_MOD, Some(ev)) => {
            let exclusive = ev.events & libc::EPOLLEXCLUSIVE as u32 != 0;
            if exclusive {
                // fs/eventpoll.c: EPOLLEXCLUSIVE only on ADD, only with
                // EPOLLEXCLUSIVE_OK_BITS.
                let ok = (libc::EPOLLIN
                    | libc::EPOLLOUT
                    | libc::EPOLLERR
                    | libc::EPOLLHUP
                    | libc::EPOLLWAKEUP
                    | libc::EPOLLET
                    | libc::EPOLLEXCLUSIVE
                    | libc::EPOLLRDNORM
                    | libc::EPOLLWRNORM) as u32;
                if op == libc::EPOLL_CTL_MOD || ev.events & !ok != 0 {
                    return Err(Errno::EINVAL);
                }
            }
            let interest = interest_of(ev.events);
            if op == libc::EPOLL_CTL_ADD {
                inst.poller.add(&h, ev.u64, interest).map_err(vcl_errno)?;
            } else {
                inst.poller.modify(&h, ev.u64, interest).map_err(vcl_errno)?;
            }
        }
        (libc::EPOLL_CTL_ADD | libc::EPOLL_CTL_MOD, None) => return Err(Errno::EFAULT),
        _ => return Err(Errno::EINVAL),
    }
    Ok(id)
}

/// A new instance for the kernel epoll `epfd`: a poller of `vcl` whose
/// eventfd is registered in it.
fn new_instance(epfd: RawFd, vcl: &Arc<sluice_vcl::Vcl>, epoch: u64) -> Result<(EpollRef, Arc<Instance>), Errno> {
    let poller = vcl.poller().map_err(vcl_errno)?;
    let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: POLLER_TOKEN };
    // SAFETY: a local event; the kernel checks that epfd is an epoll.
    check(unsafe { real::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, poller.as_fd().as_raw_fd(), &mut ev) })?;
    let raw = NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed);
    let id = EpollRef::new(raw).ok_or(Errno::ENOMEM)?;
    let inst = Arc::new(Instance { poller, epoch, refs: AtomicU32::new(1), turn: AtomicU32::new(0) });
    instances(|m| m.insert(raw, Arc::clone(&inst)));
    Ok((id, inst))
}

/// An instance with sessions was added to `epfd`: `epfd` gets an instance
/// (with an empty poller) if it has none, so its waits keep the daemon's
/// events applied and the inner instance can become readable.
pub(super) fn epoll_nest(epfd: RawFd, instance: Option<EpollRef>) -> Result<EpollRef, Errno> {
    let a = current().ok_or(Errno::EBADF)?;
    if let Some(id) = instance.filter(|&i| lookup(i).is_some_and(|inst| inst.epoch == a.epoch)) {
        return Ok(id);
    }
    new_instance(epfd, &a.vcl, a.epoch).map(|(id, _)| id)
}

/// `EINVAL` unless `epfd` is an epoll descriptor (a MOD of -1 tells).
fn check_epoll(epfd: RawFd) -> Result<(), Errno> {
    let mut ev = libc::epoll_event { events: 0, u64: 0 };
    // SAFETY: a local event; fd -1 is never registered.
    match check(unsafe { real::epoll_ctl(epfd, libc::EPOLL_CTL_MOD, -1, &mut ev) }) {
        Err(e) if e == Errno::EBADF => Ok(()),
        Err(e) => Err(e),
        Ok(_) => Ok(()),
    }
}

/// Brings the eventfds of the process's other instances up to date, so an
/// instance nested in `except`'s kernel epoll reports readable exactly while
/// a wait on it would report something (as Linux re-checks nested ready
/// lists). Nothing to do with a single instance, the usual case.
fn refresh_others(except: EpollRef) {
    let others: Vec<Arc<Instance>> = instances(|m| {
        if m.len() < 2 {
            Vec::new()
        } else {
            m.iter().filter(|(&k, _)| k != except.raw()).map(|(_, i)| Arc::clone(i)).collect()
        }
    });
    for inst in others {
        inst.poller.refresh();
    }
}

/// Zero-timeout kernel `epoll_wait` into `out`, without the poller's entry.
fn kernel_events(epfd: RawFd, instance: EpollRef, out: &mut [libc::epoll_event]) -> Result<usize, Errno> {
    if out.is_empty() {
        return Ok(0);
    }
    refresh_others(instance);
    // One more than asked: the poller's own entry may take a place. The
    // buffer is the thread's, kept between calls (epoll_wait is hot).
    let mut buf = KERNEL_EVENTS.try_with(|b| b.take()).unwrap_or_default();
    buf.clear();
    buf.resize(out.len() + 1, libc::epoll_event { events: 0, u64: 0 });
    // SAFETY: a local array of the stated length; zero timeout, no mask.
    let n = check(unsafe {
        real::epoll_pwait2(
            epfd,
            buf.as_mut_ptr(),
            buf.len() as c_int,
            &libc::timespec { tv_sec: 0, tv_nsec: 0 },
            std::ptr::null(),
        )
    })? as usize;
    let mut k = 0;
    for ev in buf[..n].iter().filter(|e| e.u64 != POLLER_TOKEN) {
        if k == out.len() {
            break;
        }
        out[k] = *ev;
        k += 1;
    }
    let _ = KERNEL_EVENTS.try_with(|b| b.set(buf));
    Ok(k)
}

thread_local! {
    static KERNEL_EVENTS: std::cell::Cell<Vec<libc::epoll_event>> = const { std::cell::Cell::new(Vec::new()) };
}

fn session_events(inst: &Instance, out: &mut [libc::epoll_event], got: &mut Vec<PollEvent>) -> Result<usize, Errno> {
    if out.is_empty() {
        return Ok(0);
    }
    let n = inst.poller.wait_with(got, out.len(), Some(Duration::ZERO), None).map_err(vcl_errno)?;
    for (slot, ev) in out.iter_mut().zip(got.iter()).take(n) {
        // The poller filtered by interest already; epoll reports the plain
        // bits (an interest in EPOLLRDNORM/EPOLLWRNORM is watched as
        // EPOLLIN/EPOLLOUT and reported as those).
        let plain = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP) as u32;
        *slot = libc::epoll_event { events: bits_of(ev.readiness, plain), u64: ev.token };
    }
    Ok(n)
}

pub(super) fn epoll_wait(
    epfd: RawFd,
    instance: EpollRef,
    events: &mut [libc::epoll_event],
    timeout: Option<Duration>,
    sigmask: Option<&libc::sigset_t>,
) -> Result<usize, Errno> {
    let Some(inst) = lookup(instance) else {
        // The instance's sessions are gone (a forked child forgot its
        // parent's): what is left in the kernel epoll is all there is.
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            log::warn!(
                "epoll descriptor {epfd} was made before a fork: its Sluice sockets are not watched in this \
                 process (create the epoll instance in the child, as nginx does)"
            )
        });
        return kernel_wait(epfd, events, timeout, sigmask);
    };
    let a = current().filter(|a| a.epoch == inst.epoch);
    let deadline = timeout.map(|t| Instant::now() + t);
    let mask = sigmask.map(sigset);
    let mut got = Vec::new();
    loop {
        let sessions_first = inst.turn.fetch_add(1, Ordering::Relaxed) % 2 == 0;
        let n = if sessions_first {
            let n = session_events(&inst, events, &mut got)?;
            n + kernel_events(epfd, instance, &mut events[n..])?
        } else {
            let n = kernel_events(epfd, instance, events)?;
            n + session_events(&inst, &mut events[n..], &mut got)?
        };
        if n > 0 {
            return Ok(n);
        }
        let left = match deadline {
            None => None,
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return Ok(0),
            },
        };
        let Some(a) = a else {
            // The sessions' attachment is gone (a forked child): only the
            // kernel's descriptors can become ready.
            return kernel_wait(epfd, events, left, sigmask);
        };
        // SAFETY: epfd is the caller's open descriptor for this call.
        let fd = unsafe { BorrowedFd::borrow_raw(epfd) };
        if !a.vcl.wait_fd(fd, libc::POLLIN, left, mask.as_ref()).map_err(vcl_errno)? {
            return Ok(0);
        }
    }
}

fn kernel_wait(
    epfd: RawFd,
    events: &mut [libc::epoll_event],
    timeout: Option<Duration>,
    sigmask: Option<&libc::sigset_t>,
) -> Result<usize, Errno> {
    let ts = timeout.map(crate::hooks::poll::timespec);
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    let mask_ptr = sigmask.map_or(std::ptr::null(), |m| m as *const libc::sigset_t);
    // SAFETY: the caller's array; timeout and mask NULL or valid.
    let n = check(unsafe { real::epoll_pwait2(epfd, events.as_mut_ptr(), events.len() as c_int, ts_ptr, mask_ptr) })?;
    // The orphaned poller's entry is not the program's.
    let mut k = 0;
    for i in 0..n as usize {
        if events[i].u64 != POLLER_TOKEN {
            events[k] = events[i];
            k += 1;
        }
    }
    Ok(k)
}

pub(super) fn epoll_add_ref(instance: EpollRef) {
    if let Some(inst) = lookup(instance) {
        inst.refs.fetch_add(1, Ordering::AcqRel);
    }
}

pub(super) fn epoll_release(instance: EpollRef) {
    let Some(inst) = lookup(instance) else { return };
    if inst.refs.fetch_sub(1, Ordering::AcqRel) == 1 {
        // The last descriptor of the epoll instance closed: its poller goes
        // (dropping it closes its eventfd, which leaves the kernel epoll).
        instances(|m| m.remove(&instance.raw()));
    }
}

pub(super) fn lock_for_fork() {
    INSTANCES.acquire();
}

pub(super) fn unlock_after_fork() {
    // SAFETY: taken by `lock_for_fork` in the prepare step of this fork.
    unsafe { INSTANCES.release() };
}

/// In a forked child: the parent's pollers live in memory that is not mapped
/// here; leak them (dropping one would touch that memory).
pub(super) fn forget_all() {
    instances(|m| {
        for (_, inst) in m.drain() {
            std::mem::forget(inst);
        }
    });
}

// ---- poll / select --------------------------------------------------------

/// A plain `ppoll` of the whole set (no attachment to keep up).
fn kernel_poll(
    fds: &mut [libc::pollfd],
    timeout: Option<Duration>,
    sigmask: Option<&libc::sigset_t>,
) -> Result<usize, Errno> {
    let ts = timeout.map(crate::hooks::poll::timespec);
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    let mask_ptr = sigmask.map_or(std::ptr::null(), |m| m as *const libc::sigset_t);
    // SAFETY: the caller's set of the stated length; timeout and mask NULL or valid.
    let n = check(unsafe { real::ppoll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ts_ptr, mask_ptr) })?;
    Ok(n as usize)
}

/// Readiness of one pass; fills every `revents`, returns how many are set.
fn evaluate(fds: &mut [libc::pollfd], handles: &[Option<Handle>]) -> Result<usize, Errno> {
    let mut kernel: Vec<libc::pollfd> = Vec::new();
    for (p, h) in fds.iter_mut().zip(handles) {
        p.revents = 0;
        match h {
            Some(h) => match h.readiness() {
                Ok(r) => p.revents = bits_of(r, p.events as u16 as u32) as i16,
                Err(_) => p.revents = libc::POLLNVAL,
            },
            None => {
                if let Entry::Epoll(e) = FDS.get(p.fd) {
                    // An epoll descriptor polls readable while its poller is
                    // listed: list only what a wait would report.
                    if let Some(inst) = lookup(e) {
                        inst.poller.refresh();
                    }
                }
                kernel.push(libc::pollfd { fd: p.fd, events: p.events, revents: 0 })
            }
        }
    }
    if !kernel.is_empty() {
        // SAFETY: a local array of the stated length; zero timeout.
        check(unsafe {
            real::ppoll(
                kernel.as_mut_ptr(),
                kernel.len() as libc::nfds_t,
                &libc::timespec { tv_sec: 0, tv_nsec: 0 },
                std::ptr::null(),
            )
        })?;
        let mut k = kernel.iter();
        for (p, h) in fds.iter_mut().zip(handles) {
            if h.is_none() {
                p.revents = k.next().map_or(0, |q| q.revents);
            }
        }
    }
    Ok(fds.iter().filter(|p| p.revents != 0).count())
}

pub(super) fn poll(
    fds: &mut [libc::pollfd],
    sessions: &[Option<SessionRef>],
    timeout: Option<Duration>,
    sigmask: Option<&libc::sigset_t>,
) -> Result<usize, Errno> {
    let handles: Vec<Option<Handle>> = sessions.iter().map(|s| s.and_then(|s| Handle::get(s).ok())).collect();
    // A session of another attachment is a closed descriptor to this one.
    let n = evaluate(fds, &handles)?;
    if n > 0 || timeout == Some(Duration::ZERO) {
        return Ok(n);
    }
    // Without sessions of its own the set holds an epoll instance that has
    // some: the wait must keep the daemon's events applied all the same.
    let vcl = match handles.iter().flatten().next() {
        Some(h) => Arc::clone(h.vcl()),
        None => match current() {
            Some(a) => Arc::clone(&a.vcl),
            None => return kernel_poll(fds, timeout, sigmask),
        },
    };
    let deadline = timeout.map(|t| Instant::now() + t);
    let mask = sigmask.map(sigset);
    // The sleep: a temporary poller for the sessions and a temporary kernel
    // epoll for the kernel descriptors and that poller.
    let poller = vcl.poller().map_err(vcl_errno)?;
    let mut wanted: HashMap<u64, u32> = HashMap::new();
    for (p, s) in fds.iter().zip(sessions) {
        if let Some(s) = s {
            *wanted.entry(s.raw()).or_default() |= p.events as u16 as u32;
        }
    }
    for (h, s) in handles.iter().zip(sessions) {
        if let (Some(h), Some(s)) = (h, s) {
            // Once per session, with every entry's events (a session listed
            // twice, as select's read and write sets do).
            if let Some(events) = wanted.remove(&s.raw()) {
                poller.add(h, s.raw(), interest_of(events)).map_err(vcl_errno)?;
            }
        }
    }
    // SAFETY: plain flags.
    let ep = check(unsafe { real::epoll_create1(libc::EPOLL_CLOEXEC) })?;

    // SAFETY: a descriptor just created and owned here.
    let ep = unsafe { OwnedFd::from_raw_fd(ep) };
    let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: POLLER_TOKEN };
    // SAFETY: a local event on our own epoll.
    check(unsafe { real::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, poller.as_fd().as_raw_fd(), &mut ev) })?;
    for (p, h) in fds.iter().zip(&handles) {
        if h.is_some() || p.fd < 0 {
            continue;
        }
        let mut ev = libc::epoll_event { events: p.events as u16 as u32, u64: p.fd as u64 };
        // SAFETY: a local event on our own epoll.
        let added = unsafe { real::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, p.fd, &mut ev) };
        if added < 0 && Errno::last() == Errno(libc::EEXIST) {
            let mut merged = ev;
            // The same descriptor twice: watch the union.
            for q in fds.iter().filter(|q| q.fd == p.fd) {
                merged.events |= q.events as u16 as u32;
            }
            // SAFETY: as above.
            unsafe { real::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_MOD, p.fd, &mut merged) };
        }
        // Other failures (EPERM: a regular file, always ready and so already
        // reported by the first pass) leave nothing to wait for.
    }
    let mut got = Vec::new();
    loop {
        let left = match deadline {
            None => None,
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return Ok(0),
            },
        };
        let woke = vcl.wait_fd(ep.as_fd(), libc::POLLIN, left, mask.as_ref()).map_err(vcl_errno)?;
        // Clears the poller's ready list (and asks the daemon for WRITABLE
        // events where POLLOUT is wanted) so its eventfd sleeps again.
        poller.wait_with(&mut got, usize::MAX, Some(Duration::ZERO), None).map_err(vcl_errno)?;
        let n = evaluate(fds, &handles)?;
        if n > 0 {
            return Ok(n);
        }
        if !woke {
            return Ok(0);
        }
    }
}
