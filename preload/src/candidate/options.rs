//! Socket options of a candidate: which ones are stored until the decision,
//! and the scratch kernel socket that validates and answers them.
//!
//! The kernel is the oracle for option semantics (validation, defaults,
//! `SO_RCVBUF` doubling and clamping, `TCP_CONGESTION` names), so rather than
//! modelling them, `setsockopt` on a candidate first applies the option to a
//! short-lived kernel TCP socket (its error, if any, is the answer) and then
//! stores the bytes; `getsockopt` replays the stored options on such a socket
//! and asks it. That costs a socket per call, paid only before the decision.
//!
//! Stored are the options whose value is self-contained (no pointers, no
//! descriptors) and small, that programs set before `bind`/`connect`/
//! `listen`; any other option converts the candidate to a kernel socket.

use std::os::fd::RawFd;

use libc::{c_int, c_void, socklen_t};

use crate::errno::{check, Errno};
use crate::real;

/// Largest stored option value (`TCP_CONGESTION` names are at most 16
/// bytes, `struct timeval` 16, `SO_BINDTODEVICE` names 16).
pub const VALUE_MAX: usize = 64;

/// One option set on a candidate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredOption {
    pub level: c_int,
    pub name: c_int,
    pub value: Vec<u8>,
}

/// `SO_RCVTIMEO`/`SO_SNDTIMEO` in both the old (`timeval` of the libc's time
/// size) and the 64-bit-time numbering.
const SO_RCVTIMEO_NEW: c_int = 66;
const SO_SNDTIMEO_NEW: c_int = 67;
const IP_LOCAL_PORT_RANGE: c_int = 51;

/// Options stored on a candidate and replayed at the decision.
pub fn storable(level: c_int, name: c_int) -> bool {
    match level {
        libc::SOL_SOCKET => matches!(
            name,
            libc::SO_REUSEADDR
                | libc::SO_REUSEPORT
                | libc::SO_KEEPALIVE
                | libc::SO_LINGER
                | libc::SO_RCVBUF
                | libc::SO_SNDBUF
                | libc::SO_RCVBUFFORCE
                | libc::SO_SNDBUFFORCE
                | libc::SO_RCVTIMEO
                | libc::SO_SNDTIMEO
                | SO_RCVTIMEO_NEW
                | SO_SNDTIMEO_NEW
                | libc::SO_RCVLOWAT
                | libc::SO_PRIORITY
                | libc::SO_MARK
                | libc::SO_OOBINLINE
                | libc::SO_BROADCAST
                | libc::SO_DONTROUTE
                | libc::SO_BINDTODEVICE
                | libc::SO_BUSY_POLL
                | libc::SO_INCOMING_CPU
                | libc::SO_ZEROCOPY
        ),
        libc::IPPROTO_TCP => matches!(
            name,
            libc::TCP_NODELAY
                | libc::TCP_MAXSEG
                | libc::TCP_CORK
                | libc::TCP_KEEPIDLE
                | libc::TCP_KEEPINTVL
                | libc::TCP_KEEPCNT
                | libc::TCP_SYNCNT
                | libc::TCP_LINGER2
                | libc::TCP_DEFER_ACCEPT
                | libc::TCP_WINDOW_CLAMP
                | libc::TCP_QUICKACK
                | libc::TCP_CONGESTION
                | libc::TCP_USER_TIMEOUT
                | libc::TCP_FASTOPEN
                | libc::TCP_FASTOPEN_CONNECT
                | libc::TCP_NOTSENT_LOWAT
        ),
        libc::IPPROTO_IP => matches!(
            name,
            libc::IP_TOS
                | libc::IP_TTL
                | libc::IP_RECVERR
                | libc::IP_BIND_ADDRESS_NO_PORT
                | libc::IP_FREEBIND
                | libc::IP_TRANSPARENT
                | libc::IP_MTU_DISCOVER
                | IP_LOCAL_PORT_RANGE
        ),
        _ => false,
    }
}

/// Options a scratch socket answers for a candidate: the stored ones and
/// those describing any fresh TCP socket.
pub fn answerable(level: c_int, name: c_int) -> bool {
    storable(level, name)
        || (level == libc::SOL_SOCKET
            && matches!(
                name,
                libc::SO_TYPE | libc::SO_ERROR | libc::SO_DOMAIN | libc::SO_PROTOCOL | libc::SO_ACCEPTCONN
            ))
}

/// Records `value` for `(level, name)`: a later setting replaces an earlier
/// one and moves to the end, so the replay order is the order of last
/// settings.
pub fn record(options: &mut Vec<StoredOption>, level: c_int, name: c_int, value: &[u8]) {
    options.retain(|o| !(o.level == level && o.name == name));
    options.push(StoredOption { level, name, value: value.to_vec() });
}

/// A kernel TCP/IPv4 socket for validating and answering options; closed on
/// drop.
pub struct Scratch(RawFd);

impl Scratch {
    /// A fresh socket with `options` applied in order.
    pub fn new(protocol: c_int, options: &[StoredOption]) -> Result<Scratch, Errno> {
        // SAFETY: plain integer arguments.
        let fd = check(unsafe { real::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, protocol) })?;
        let scratch = Scratch(fd);
        for option in options {
            // A stored option was accepted by the kernel once; if the kernel
            // changed its mind (privileges dropped since), the answer simply
            // lacks it, as the converted socket would.
            let _ = apply(fd, option);
        }
        Ok(scratch)
    }

    pub fn fd(&self) -> RawFd {
        self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // SAFETY: closing the descriptor this value owns.
        unsafe { real::close(self.0) };
    }
}

/// `setsockopt(fd, option)` on a kernel descriptor.
pub fn apply(fd: RawFd, option: &StoredOption) -> Result<(), Errno> {
    // SAFETY: the value pointer and length describe a live Vec.
    check(unsafe {
        real::setsockopt(
            fd,
            option.level,
            option.name,
            option.value.as_ptr().cast::<c_void>(),
            option.value.len() as socklen_t,
        )
    })
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int_option(level: c_int, name: c_int, value: c_int) -> StoredOption {
        StoredOption { level, name, value: value.to_ne_bytes().to_vec() }
    }

    fn get_int(fd: RawFd, level: c_int, name: c_int) -> c_int {
        let mut value: c_int = -1;
        let mut len = std::mem::size_of::<c_int>() as socklen_t;
        // SAFETY: `value` and `len` are live locals of the right size.
        let rc = unsafe { real::getsockopt(fd, level, name, (&mut value as *mut c_int).cast(), &mut len) };
        assert_eq!(rc, 0);
        value
    }

    #[test]
    fn later_settings_replace_earlier_ones_and_move_last() {
        let mut options = Vec::new();
        record(&mut options, libc::SOL_SOCKET, libc::SO_REUSEADDR, &1i32.to_ne_bytes());
        record(&mut options, libc::IPPROTO_TCP, libc::TCP_NODELAY, &1i32.to_ne_bytes());
        record(&mut options, libc::SOL_SOCKET, libc::SO_REUSEADDR, &0i32.to_ne_bytes());
        assert_eq!(options.len(), 2);
        assert_eq!(options[0].name, libc::TCP_NODELAY);
        assert_eq!(options[1].value, 0i32.to_ne_bytes());
    }

    #[test]
    fn scratch_sockets_carry_the_stored_options() {
        let options =
            [int_option(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 5), int_option(libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)];
        let scratch = Scratch::new(0, &options).unwrap();
        assert_eq!(get_int(scratch.fd(), libc::SOL_SOCKET, libc::SO_KEEPALIVE), 1, "normalised by the kernel");
        assert_eq!(get_int(scratch.fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY), 1);
        assert_eq!(get_int(scratch.fd(), libc::SOL_SOCKET, libc::SO_TYPE), libc::SOCK_STREAM);
    }

    #[test]
    fn the_stored_set() {
        assert!(storable(libc::IPPROTO_TCP, libc::TCP_CONGESTION));
        assert!(!storable(libc::SOL_SOCKET, libc::SO_ATTACH_FILTER), "holds a pointer");
        assert!(!storable(libc::SOL_SOCKET, libc::SO_TYPE), "read-only");
        assert!(answerable(libc::SOL_SOCKET, libc::SO_TYPE));
        assert!(!answerable(libc::IPPROTO_TCP, libc::TCP_INFO));
    }
}
