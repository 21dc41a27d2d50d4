//! Safe wrappers for the kernel waits the app side (`vcl`, which forbids
//! `unsafe`) blocks in, and the few process calls around them.
//!
//! * [`ppoll`]: wait on several descriptors with a timeout and an optional
//!   signal mask (`ppoll(2)`); a caught signal ends the wait with
//!   `ErrorKind::Interrupted`, which is how blocking socket calls return
//!   `EINTR` like the kernel's.
//! * [`SigSet`]: the mask `ppoll` installs for the wait (`sigsetops(3)`).
//! * [`install_noop_handler`], [`gettid`], [`tgkill`]: make a signal
//!   interrupt one thread's wait (tests of `EINTR`).
//! * [`effective_uid`]: chooses the default control socket path.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

/// Calls a libc function, turning its `-1` into the thread's `errno`. Each
/// use is an `unsafe` call covered by the call site's `// SAFETY:` comment.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        // SAFETY: see the call site; the macro adds nothing beyond the call.
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

/// Readable (`POLLIN`).
pub const POLLIN: i16 = libc::POLLIN;
/// Writable (`POLLOUT`).
pub const POLLOUT: i16 = libc::POLLOUT;
/// Error condition (always reported, `poll(2)`).
pub const POLLERR: i16 = libc::POLLERR;
/// Hang-up (always reported): the peer of a socket closed.
pub const POLLHUP: i16 = libc::POLLHUP;
/// The descriptor is not open (always reported).
pub const POLLNVAL: i16 = libc::POLLNVAL;

/// One descriptor of a [`ppoll`] set.
#[derive(Clone, Copy, Debug)]
pub struct PollFd<'fd> {
    pub fd: BorrowedFd<'fd>,
    /// What to wait for (`POLLIN`, `POLLOUT`).
    pub events: i16,
    /// What the kernel reported; set by [`ppoll`].
    pub revents: i16,
}

impl<'fd> PollFd<'fd> {
    /// Waits for `events` on `fd`.
    pub fn new(fd: BorrowedFd<'fd>, events: i16) -> PollFd<'fd> {
        PollFd { fd, events, revents: 0 }
    }
}

/// Most descriptors one [`ppoll`] call takes (vcl waits on at most three).
pub const MAX_POLL_FDS: usize = 8;

/// A set of signals (`sigset_t`).
#[derive(Clone, Copy)]
pub struct SigSet {
    set: libc::sigset_t,
}

impl std::fmt::Debug for SigSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let members: Vec<i32> = (1..=64).filter(|&s| self.contains(s)).collect();
        f.debug_struct("SigSet").field("signals", &members).finish()
    }
}

impl SigSet {
    /// The empty set: as a wait's mask, every signal may interrupt it.
    pub fn empty() -> SigSet {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises the whole set it is given; it cannot fail for a valid pointer.
        let set = unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            set.assume_init()
        };
        SigSet { set }
    }

    /// The calling thread's current signal mask.
    pub fn current_thread_mask() -> io::Result<SigSet> {
        let mut out = SigSet::empty();
        // SAFETY: a null new set only queries; `out.set` is a valid sigset_t to write.
        let err = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut out.set) };
        if err != 0 {
            return Err(io::Error::from_raw_os_error(err));
        }
        Ok(out)
    }

    /// Adds `signo`; `EINVAL` for a number that is not a signal.
    pub fn add(&mut self, signo: i32) -> io::Result<()> {
        // SAFETY: `self.set` is an initialised sigset_t.
        syscall!(sigaddset(&mut self.set, signo))?;
        Ok(())
    }

    /// Removes `signo`.
    pub fn remove(&mut self, signo: i32) -> io::Result<()> {
        // SAFETY: as in `add`.
        syscall!(sigdelset(&mut self.set, signo))?;
        Ok(())
    }

    /// Whether `signo` is in the set (false for a number that is not a signal).
    pub fn contains(&self, signo: i32) -> bool {
        // SAFETY: `self.set` is an initialised sigset_t; the call only reads it.
        unsafe { libc::sigismember(&self.set, signo) == 1 }
    }
}

fn timespec(timeout: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    }
}

/// `ppoll(2)`: blocks until one of `fds` is ready, `timeout` passes (`None`:
/// no timeout) or a signal is caught. With `sigmask`, that mask replaces the
/// thread's for the wait only (atomically, so a signal unblocked by it cannot
/// slip in between a check and the wait). Sets each entry's `revents` and
/// returns how many entries have a non-zero one (0: timeout). A caught
/// signal is `ErrorKind::Interrupted` (`EINTR`), whatever its `SA_RESTART`
/// flag: `ppoll` is never restarted (`signal(7)`).
pub fn ppoll(fds: &mut [PollFd<'_>], timeout: Option<Duration>, sigmask: Option<&SigSet>) -> io::Result<usize> {
    if fds.len() > MAX_POLL_FDS {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "too many descriptors for one ppoll"));
    }
    let mut raw = [libc::pollfd { fd: -1, events: 0, revents: 0 }; MAX_POLL_FDS];
    for (r, f) in raw.iter_mut().zip(fds.iter()) {
        *r = libc::pollfd { fd: f.fd.as_raw_fd(), events: f.events, revents: 0 };
    }
    let ts = timeout.map(timespec);
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    let mask_ptr = sigmask.map_or(std::ptr::null(), |m| &m.set as *const libc::sigset_t);
    // SAFETY: `raw` holds `fds.len()` initialised pollfds and lives for the
    // call; the timespec and sigset pointers are null or point at live locals.
    let n = syscall!(ppoll(raw.as_mut_ptr(), fds.len() as libc::nfds_t, ts_ptr, mask_ptr))?;
    for (f, r) in fds.iter_mut().zip(raw.iter()) {
        f.revents = r.revents;
    }
    Ok(n as usize)
}

extern "C" fn noop_handler(_signo: libc::c_int) {}

/// Installs a handler for `signo` that does nothing, without `SA_RESTART`:
/// the signal then only interrupts blocking calls of the thread it is
/// delivered to (`EINTR`), as an app's own handler would.
pub fn install_noop_handler(signo: i32) -> io::Result<()> {
    // SAFETY: sigaction is plain data; all-zero is a valid value (empty mask, no flags) that the fields below complete.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = noop_handler as extern "C" fn(libc::c_int) as libc::sighandler_t;
    action.sa_flags = 0;
    // SAFETY: `action` is a valid sigaction for the call's duration; the
    // handler is async-signal-safe (it does nothing); a null old action is allowed.
    syscall!(sigaction(signo, &action, std::ptr::null_mut()))?;
    Ok(())
}

/// The calling thread's kernel id (`gettid(2)`).
pub fn gettid() -> i32 {
    // SAFETY: no arguments; gettid cannot fail.
    unsafe { libc::gettid() }
}

/// Sends `signo` to thread `tid` of this process (`tgkill(2)`).
pub fn tgkill(tid: i32, signo: i32) -> io::Result<()> {
    // SAFETY: integer arguments only; getpid cannot fail.
    let pid = unsafe { libc::getpid() };
    // Variadic arguments are passed as the `long`s the kernel reads.
    let (pid, tid, signo) = (libc::c_long::from(pid), libc::c_long::from(tid), libc::c_long::from(signo));
    // SAFETY: integer arguments only.
    let res = unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, signo) };
    if res == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The process's effective user id (`geteuid(2)`).
pub fn effective_uid() -> u32 {
    // SAFETY: no arguments; geteuid cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::EventFd;
    use std::os::fd::AsFd;
    use std::sync::mpsc;
    use std::time::Instant;

    #[test]
    fn ppoll_reports_the_ready_descriptor_and_times_out() {
        let a = EventFd::new().unwrap();
        let b = EventFd::new().unwrap();
        let mut fds = [PollFd::new(a.as_fd(), POLLIN), PollFd::new(b.as_fd(), POLLIN)];
        assert_eq!(ppoll(&mut fds, Some(Duration::from_millis(1)), None).unwrap(), 0);
        b.notify().unwrap();
        assert_eq!(ppoll(&mut fds, None, None).unwrap(), 1);
        assert_eq!(fds[0].revents, 0);
        assert_eq!(fds[1].revents & POLLIN, POLLIN);
    }

    #[test]
    fn sigset_membership() {
        let mut s = SigSet::empty();
        assert!(!s.contains(libc::SIGUSR2));
        s.add(libc::SIGUSR2).unwrap();
        assert!(s.contains(libc::SIGUSR2));
        s.remove(libc::SIGUSR2).unwrap();
        assert!(!s.contains(libc::SIGUSR2));
        assert!(s.add(100_000).is_err());
    }

    #[test]
    fn a_signal_interrupts_ppoll() {
        install_noop_handler(libc::SIGUSR2).unwrap();
        let (tid_tx, tid_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let efd = EventFd::new().unwrap();
            tid_tx.send(gettid()).unwrap();
            let mut fds = [PollFd::new(efd.as_fd(), POLLIN)];
            let res = ppoll(&mut fds, Some(Duration::from_secs(20)), Some(&SigSet::empty()));
            done_tx.send(res.map_err(|e| e.kind())).unwrap();
        });
        let tid = tid_rx.recv().unwrap();
        // The signal may land before the thread blocks: repeat until it ends.
        let deadline = Instant::now() + Duration::from_secs(10);
        let res = loop {
            tgkill(tid, libc::SIGUSR2).unwrap();
            if let Ok(res) = done_rx.recv_timeout(Duration::from_millis(20)) {
                break res;
            }
            assert!(Instant::now() < deadline, "ppoll was never interrupted");
        };
        assert_eq!(res, Err(io::ErrorKind::Interrupted));
        waiter.join().unwrap();
    }
}
