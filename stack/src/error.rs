//! Errors the engine returns to its caller (mapped to errno at the FFI edge).

use core::fmt;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Error {
    /// Nothing to read, no room to write, or nothing to accept yet (EAGAIN).
    WouldBlock,
    /// The handle is stale or was never valid (EBADF).
    InvalidHandle,
    /// Operation not valid in the socket's state, e.g. send before connect (ENOTCONN).
    NotConnected,
    /// Already connected or connecting (EISCONN / EALREADY).
    AlreadyConnected,
    /// The peer reset the connection (ECONNRESET).
    ConnectionReset,
    /// The peer refused the connection with RST to our SYN (ECONNREFUSED).
    ConnectionRefused,
    /// Retransmissions or keepalive probes ran out (ETIMEDOUT).
    TimedOut,
    /// Writing after shutdown or after the connection closed (EPIPE).
    BrokenPipe,
    /// Local address and port already bound (EADDRINUSE).
    AddrInUse,
    /// Not a local address, or no ephemeral port left (EADDRNOTAVAIL).
    AddrNotAvailable,
    /// No route to the destination (EHOSTUNREACH / ENETUNREACH).
    Unreachable,
    /// A configured limit was reached (ENOBUFS).
    NoBuffers,
    /// An argument is out of range (EINVAL).
    InvalidArgument,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::WouldBlock => "operation would block",
            Error::InvalidHandle => "invalid or stale handle",
            Error::NotConnected => "not connected",
            Error::AlreadyConnected => "already connected",
            Error::ConnectionReset => "connection reset by peer",
            Error::ConnectionRefused => "connection refused",
            Error::TimedOut => "connection timed out",
            Error::BrokenPipe => "broken pipe",
            Error::AddrInUse => "address in use",
            Error::AddrNotAvailable => "address not available",
            Error::Unreachable => "destination unreachable",
            Error::NoBuffers => "resource limit reached",
            Error::InvalidArgument => "invalid argument",
        })
    }
}

impl std::error::Error for Error {}

pub type Result<T> = core::result::Result<T, Error>;
