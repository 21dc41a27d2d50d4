//! The session backend: where a socket goes when the policy sends it to
//! Sluice.
//!
//! The hooks own the fd space (placeholders, the fd table, dup/close/fork/exec
//! bookkeeping, candidates and their conversion to kernel sockets). Once a
//! socket is a *session*, every operation on it is one call of [`Backend`],
//! with the session's [`SessionRef`] and plain Rust arguments; errors are
//! [`Errno`] values and the hook layer alone writes the C `errno`.
//!
//! # Backends
//!
//! * [`vcl`] (the default, `SLUICE_BACKEND=vcl`): sessions of the Sluice
//!   daemon through `sluice-vcl`. When the daemon cannot be attached to, a
//!   Sluice verdict is "daemon unreachable" and `SLUICE_FALLBACK` decides
//!   (kernel socket, or `ENETUNREACH`).
//! * [`kernel_proxy`] (`SLUICE_BACKEND=kernel-proxy`): each session is a
//!   private kernel socket kept at a high descriptor number. It exists so the
//!   whole session path of the hooks (placeholders that are not sockets, fd
//!   table entries that live, epoll/poll over sessions, fork and exec of
//!   sessions) runs against the kernel as the oracle, and as a diagnostic
//!   mode: if a program misbehaves here, the bug is in the interposer, not in
//!   the daemon.
//!
//! The hooks route every session entry here; a backend never sees a kernel
//! descriptor of the program except as an argument (`sendfile`'s source,
//! the kernel descriptors of a mixed `poll`, the program's epoll instance).
//!
//! # Contract every method keeps
//!
//! * Results are what the kernel returns for a TCP socket in the same state,
//!   including the errno (the oracle tests hold backends to this).
//! * `O_NONBLOCK` is given by [`Backend::open_stream`], [`Backend::accept`] and
//!   [`Backend::set_nonblocking`]; `MSG_DONTWAIT` per call. Blocking calls end
//!   in a real kernel wait, so signals interrupt them with `EINTR` and
//!   `SO_RCVTIMEO`/`SO_SNDTIMEO` give `EAGAIN`.
//! * `send`/`sendfile` raise `SIGPIPE` themselves when they fail with `EPIPE`
//!   and `MSG_NOSIGNAL` is not set, as the kernel does.
//! * A backend never unwinds; the hooks catch panics anyway.

pub mod kernel_proxy;
pub mod vcl;

use std::io::{IoSlice, IoSliceMut};
use std::net::SocketAddrV4;
use std::os::fd::RawFd;
use std::time::Duration;

use libc::c_int;

use crate::errno::Errno;

/// Largest value a [`SessionRef`] or [`EpollRef`] may hold: the fd table
/// keeps two tag bits next to it in one word.
pub const REF_MAX: u64 = (1 << 62) - 1;

/// A backend's session, as the fd table records it for each descriptor that
/// names it. Opaque to the hooks; backends should make stale values
/// detectable (a generation), since a racing thread may present one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionRef(u64);

/// A backend's per-epoll-instance state, recorded for an epoll descriptor
/// once a session was added to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpollRef(u64);

macro_rules! opaque_ref {
    ($t:ident) => {
        impl $t {
            /// Wraps a backend value; `None` if it needs more than 62 bits.
            pub fn new(raw: u64) -> Option<$t> {
                (raw <= REF_MAX).then_some($t(raw))
            }

            pub(crate) fn from_raw(raw: u64) -> $t {
                $t(raw & REF_MAX)
            }

            pub fn raw(self) -> u64 {
                self.0
            }
        }
    };
}
opaque_ref!(SessionRef);
opaque_ref!(EpollRef);

/// Why the backend cannot take sessions right now (daemon down, no session
/// library): the policy's `SLUICE_FALLBACK` applies.
#[derive(Clone, Debug)]
pub struct Unreachable {
    /// What was tried, for the one stderr line: `"daemon at /run/sluice.sock"`.
    pub what: String,
    /// Why it failed: `"connection refused"`.
    pub why: String,
}

/// Failure to create a session.
#[derive(Clone, Debug)]
pub enum OpenError {
    Unreachable(Unreachable),
    Failed(Errno),
}

/// Integer-valued `ioctl`s a session answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntIoctl {
    /// `FIONREAD`/`SIOCINQ`: bytes ready to read (`EINVAL` on a listener).
    BytesReadable,
    /// `SIOCOUTQ`: bytes written but not yet acknowledged.
    BytesUnacked,
    /// `SIOCOUTQNSD`: bytes written but not yet sent.
    BytesUnsent,
    /// `SIOCATMARK`: at the urgent mark (always 0 without urgent data).
    AtMark,
}

/// The operations the hooks need from a session implementation.
pub trait Backend: Send + Sync {
    /// For messages: `"kernel-proxy"`, `"vcl"`.
    fn name(&self) -> &'static str;

    /// Creates an unbound TCP/IPv4 session (the policy said Sluice for a
    /// candidate). The hooks then replay the candidate's stored options with
    /// [`Backend::setsockopt`] and perform the deciding bind/connect/listen.
    fn open_stream(&self, nonblocking: bool) -> Result<SessionRef, OpenError>;

    /// Another descriptor now names `s` (dup, `F_DUPFD`, an inherited copy).
    fn add_ref(&self, s: SessionRef);

    /// A descriptor naming `s` was closed; at the last one the session
    /// closes as the kernel closes a socket (FIN, or RST with `SO_LINGER` 0).
    fn release(&self, s: SessionRef);

    /// `fcntl(F_SETFL)`/`FIONBIO` changed the descriptor's `O_NONBLOCK`.
    fn set_nonblocking(&self, s: SessionRef, on: bool) -> Result<(), Errno>;

    fn bind(&self, s: SessionRef, addr: SocketAddrV4) -> Result<(), Errno>;
    fn listen(&self, s: SessionRef, backlog: c_int) -> Result<(), Errno>;

    /// Takes one connection; the new session's `O_NONBLOCK` is `nonblocking`.
    fn accept(&self, s: SessionRef, nonblocking: bool) -> Result<(SessionRef, SocketAddrV4), Errno>;

    /// `EINPROGRESS` when non-blocking, as the kernel.
    fn connect(&self, s: SessionRef, addr: SocketAddrV4) -> Result<(), Errno>;

    /// Reads into `bufs` in order. `flags`: `MSG_PEEK`, `MSG_DONTWAIT`,
    /// `MSG_WAITALL`, `MSG_TRUNC`; `MSG_OOB` gives `EOPNOTSUPP`... as the kernel.
    fn recv(&self, s: SessionRef, bufs: &mut [IoSliceMut<'_>], flags: c_int) -> Result<usize, Errno>;

    /// Writes `bufs` in order. `flags`: `MSG_DONTWAIT`, `MSG_NOSIGNAL`, `MSG_MORE`.
    fn send(&self, s: SessionRef, bufs: &[IoSlice<'_>], flags: c_int) -> Result<usize, Errno>;

    /// `sendfile(2)` from the kernel descriptor `in_fd` into `s`; with
    /// `offset`, reads at and advances `*offset` instead of the file position.
    fn sendfile(&self, s: SessionRef, in_fd: RawFd, offset: Option<&mut i64>, count: usize) -> Result<usize, Errno>;

    fn shutdown(&self, s: SessionRef, how: c_int) -> Result<(), Errno>;

    /// Fills `value` (its length is the caller's `optlen`) and returns the
    /// length the kernel would store back into `optlen`.
    fn getsockopt(&self, s: SessionRef, level: c_int, name: c_int, value: &mut [u8]) -> Result<usize, Errno>;
    fn setsockopt(&self, s: SessionRef, level: c_int, name: c_int, value: &[u8]) -> Result<(), Errno>;

    fn local_addr(&self, s: SessionRef) -> Result<SocketAddrV4, Errno>;
    fn peer_addr(&self, s: SessionRef) -> Result<SocketAddrV4, Errno>;

    fn ioctl_int(&self, s: SessionRef, request: IntIoctl) -> Result<c_int, Errno>;

    /// `ppoll` over a mixed set: `sessions[i]` is `Some` where `fds[i].fd`
    /// names a session, `None` for kernel descriptors (which the backend polls
    /// in the kernel). Fills every `revents` and returns how many are
    /// non-zero. `timeout` `None` waits forever; `sigmask` as `ppoll`.
    fn poll(
        &self,
        fds: &mut [libc::pollfd],
        sessions: &[Option<SessionRef>],
        timeout: Option<Duration>,
        sigmask: Option<&libc::sigset_t>,
    ) -> Result<usize, Errno>;

    /// `epoll_ctl` of session `s` (named by descriptor `fd`) in the kernel
    /// epoll instance `epfd`, whose backend state is `instance` if a session
    /// was added before. Returns the instance's (possibly new) state, which
    /// the fd table then records for `epfd`. `event` is `None` for DEL.
    /// `EINVAL` if `epfd` is not an epoll descriptor, as the kernel.
    fn epoll_ctl(
        &self,
        epfd: RawFd,
        instance: Option<EpollRef>,
        op: c_int,
        fd: RawFd,
        s: SessionRef,
        event: Option<libc::epoll_event>,
    ) -> Result<EpollRef, Errno>;

    /// An epoll instance that holds sessions was added to the kernel epoll
    /// instance `epfd` (whose backend state is `instance`, if any): returns
    /// the state the fd table then records for `epfd`, so waits on it go
    /// through [`Backend::epoll_wait`] too (a backend whose sessions change
    /// only while it is called needs that for nested instances to work).
    fn epoll_nest(&self, epfd: RawFd, instance: Option<EpollRef>) -> Result<EpollRef, Errno>;

    /// `epoll_pwait2` on an instance that has sessions: events of sessions
    /// and of the kernel descriptors registered directly in `epfd`, exactly
    /// as one kernel epoll would report them.
    fn epoll_wait(
        &self,
        epfd: RawFd,
        instance: EpollRef,
        events: &mut [libc::epoll_event],
        timeout: Option<Duration>,
        sigmask: Option<&libc::sigset_t>,
    ) -> Result<usize, Errno>;

    /// Another descriptor names the epoll instance (dup of the epoll fd).
    fn epoll_add_ref(&self, instance: EpollRef);
    /// A descriptor naming the epoll instance was closed.
    fn epoll_release(&self, instance: EpollRef);

    /// Called in the parent right before `fork`, with no interposer lock held.
    fn before_fork(&self);
    /// Called in the parent after `fork` (`child` is -1 if it failed).
    fn after_fork_parent(&self, child: libc::pid_t);
    /// Called first thing in the child after `fork`.
    fn after_fork_child(&self);

    /// Called before `execve` with the session descriptors that survive it
    /// (not close-on-exec). Returns those it turned into plain kernel
    /// descriptors at the same number (the hooks then forget them); the
    /// others reach the new image as placeholders, which a backend must hand
    /// over itself ([`Backend::handover`]; design §4.5, `SLUICE_INHERITED`)
    /// or they are plain eventfds there.
    fn prepare_exec(&self, inherited: &[(RawFd, SessionRef)]) -> Vec<RawFd>;
    /// What the new image needs to take over the sessions among
    /// `inherited` (after [`Backend::prepare_exec`], which kept them): an
    /// environment variable and its value, which the hooks add to the
    /// exec'd environment. `exec_self`: this process execs (`execve`),
    /// rather than a `posix_spawn` child. `None`: nothing to hand over.
    fn handover(&self, _inherited: &[(RawFd, SessionRef)], _exec_self: bool) -> Option<(&'static str, String)> {
        None
    }

    /// `execve` returned: the process goes on in this image.
    fn exec_failed(&self);

    /// `posix_spawn` made `child`, which inherited this process's
    /// descriptors (as a fork child, then exec).
    fn spawned(&self, _child: libc::pid_t) {}
}

/// The backend `SLUICE_BACKEND` names, or why there is none.
pub fn select(name: &str) -> Result<&'static dyn Backend, Unreachable> {
    match name {
        "kernel-proxy" => Ok(&kernel_proxy::KernelProxy),
        "" | "vcl" => Ok(&vcl::VclBackend),
        _ => Err(Unreachable {
            what: format!("the session backend \"{name}\""),
            why: "no such backend (expected vcl or kernel-proxy)".to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_hold_62_bits() {
        assert_eq!(SessionRef::new(REF_MAX).map(SessionRef::raw), Some(REF_MAX));
        assert!(SessionRef::new(REF_MAX + 1).is_none());
        assert!(EpollRef::new(u64::MAX).is_none());
    }

    #[test]
    fn unknown_backends_are_unreachable() {
        assert!(select("kernel-proxy").is_ok());
        assert_eq!(select("").map(|b| b.name()).ok(), Some("vcl"));
        assert!(select("dpdk").is_err());
    }
}
