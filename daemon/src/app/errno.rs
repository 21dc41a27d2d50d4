//! Engine errors as the errno values the app's socket calls return.
//!
//! The kernel's choices are the reference (`connect(2)`, `listen(2)`,
//! `tcp(7)`): the interposer hands these values to unmodified programs.

use sluice_stack::Error;

/// The errno for an engine error, as a socket call would report it.
pub(super) fn errno(error: Error) -> i32 {
    match error {
        Error::WouldBlock => libc::EAGAIN,
        Error::InvalidHandle => libc::EBADF,
        Error::NotConnected => libc::ENOTCONN,
        Error::AlreadyConnected => libc::EISCONN,
        Error::ConnectionReset => libc::ECONNRESET,
        Error::ConnectionRefused => libc::ECONNREFUSED,
        Error::TimedOut => libc::ETIMEDOUT,
        Error::BrokenPipe => libc::EPIPE,
        Error::AddrInUse => libc::EADDRINUSE,
        Error::AddrNotAvailable => libc::EADDRNOTAVAIL,
        // A failed neighbour resolution: connect(2) reports EHOSTUNREACH.
        Error::Unreachable => libc::EHOSTUNREACH,
        Error::NoBuffers => libc::ENOBUFS,
        Error::InvalidArgument => libc::EINVAL,
    }
}

/// The errno of a `connect` the engine refused at once. Without a route
/// (no gateway for an off-link address) `connect(2)` fails with
/// ENETUNREACH; later failures (neighbour never answered) come as
/// EHOSTUNREACH through [`errno`].
pub(super) fn connect_errno(error: Error) -> i32 {
    match error {
        Error::Unreachable => libc::ENETUNREACH,
        other => errno(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_the_kernels_errno() {
        let all = [
            (Error::WouldBlock, libc::EAGAIN),
            (Error::InvalidHandle, libc::EBADF),
            (Error::NotConnected, libc::ENOTCONN),
            (Error::AlreadyConnected, libc::EISCONN),
            (Error::ConnectionReset, libc::ECONNRESET),
            (Error::ConnectionRefused, libc::ECONNREFUSED),
            (Error::TimedOut, libc::ETIMEDOUT),
            (Error::BrokenPipe, libc::EPIPE),
            (Error::AddrInUse, libc::EADDRINUSE),
            (Error::AddrNotAvailable, libc::EADDRNOTAVAIL),
            (Error::Unreachable, libc::EHOSTUNREACH),
            (Error::NoBuffers, libc::ENOBUFS),
            (Error::InvalidArgument, libc::EINVAL),
        ];
        for (error, expected) in all {
            assert_eq!(errno(error), expected, "{error:?}");
        }
        assert_eq!(connect_errno(Error::Unreachable), libc::ENETUNREACH);
        assert_eq!(connect_errno(Error::AddrInUse), libc::EADDRINUSE);
    }
}
