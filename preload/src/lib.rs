//! `libsluice_preload.so`: loaded with `LD_PRELOAD`, it makes the TCP/IPv4
//! sockets of an unmodified program Sluice sessions or kernel sockets, per the
//! process's policy, and leaves every other descriptor to the kernel
//! untouched (design §5, issue 4).
//!
//! How a call flows: the program calls `read(fd, ..)`; our `read` (built by
//! [`hook!`]) finds `fd` untracked in the [`fdtable`] and tail-calls libc's
//! `read` ([`real`](mod@real)): for kernel descriptors that is the whole cost. A TCP/IPv4
//! `socket()` instead returns a placeholder eventfd registered as a
//! [`candidate`]; its first `bind`/`connect`/`listen` asks the [`policy`]
//! ([`decide`]), and the socket either becomes a kernel socket at the same
//! number ([`candidate::convert`]) or a session of the [`backend`], which
//! every later call on it is routed to.
//!
//! Modules, one job each:
//! * [`hook`](mod@hook): the `hook!` macro (guard, `catch_unwind`, errno at the edge,
//!   trace) every interposed function is built with;
//! * [`hooks`]: the interposed functions, by topic (`socket`, `io`, `opts`,
//!   `fd`, `epoll`, `poll`, `splice`, `stat`, `process`, `exec_varargs`);
//! * [`real`](mod@real): the next definition of each hooked symbol (`dlsym(RTLD_NEXT)`,
//!   cached, raw-syscall fallback during resolution);
//! * [`guard`]: the per-thread re-entrancy flag;
//! * [`fdtable`]: descriptor → kernel / candidate / session / epoll instance;
//! * [`candidate`]: undecided sockets, their stored options
//!   ([`candidate::options`]) and conversion to kernel sockets;
//! * [`decide`]: the lazy kernel-or-Sluice decision and the fallback;
//! * [`policy`]: the `SLUICE_*` variables ([`policy::rules`]: `SLUICE_RULES`);
//! * [`backend`]: the session interface the hooks call
//!   ([`backend::vcl`], the default: sessions of the Sluice daemon;
//!   [`backend::kernel_proxy`]: sessions on private kernel sockets);
//! * [`addr`]: IPv4 `struct sockaddr` in and out with the kernel's rules;
//! * [`trace`], [`logger`], [`output`], [`linebuf`]: `SLUICE_TRACE` lines,
//!   `SLUICE_LOG` messages, and writing them without allocating;
//! * [`spinlock`]: the fork-safe lock of the candidate store;
//! * [`errno`]: the `Errno` every internal function returns.
//!
//! What an interposer cannot see, and so does not handle: calls libc makes
//! internally (stdio on a descriptor from `fdopen`, `system`/`popen`'s exec,
//! `getaddrinfo`'s own sockets, which are UDP/Unix and the kernel's anyway),
//! raw `syscall(2)`s, and exec by runtimes that bypass libc. For kernel
//! sockets this changes nothing; for backend sessions it means such paths
//! see the placeholder.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod addr;
pub mod backend;
pub mod candidate;
pub mod decide;
pub mod errno;
pub mod fdtable;
pub mod guard;
pub mod hook;
pub mod hooks;
pub mod linebuf;
pub mod logger;
pub mod output;
pub mod policy;
pub mod real;
pub mod spinlock;
pub mod trace;
