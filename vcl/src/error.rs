//! Errors as the kernel reports them: every socket call fails with an
//! [`Errno`], the value `errno(3)` would hold, so the preload can hand it to
//! C callers unchanged. Attaching, which has more to say, fails with an
//! [`Error`]: an errno plus a sentence for the operator.

use std::fmt;
use std::io;

/// An `errno` value (`EAGAIN`, `ECONNRESET`, ...).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

impl Errno {
    pub const EAGAIN: Errno = Errno(libc::EAGAIN);
    pub const EBADF: Errno = Errno(libc::EBADF);
    pub const EINTR: Errno = Errno(libc::EINTR);
    pub const EINVAL: Errno = Errno(libc::EINVAL);
    pub const EIO: Errno = Errno(libc::EIO);
    pub const ENOTCONN: Errno = Errno(libc::ENOTCONN);
    pub const EISCONN: Errno = Errno(libc::EISCONN);
    pub const EALREADY: Errno = Errno(libc::EALREADY);
    pub const EINPROGRESS: Errno = Errno(libc::EINPROGRESS);
    pub const EPIPE: Errno = Errno(libc::EPIPE);
    pub const ECONNRESET: Errno = Errno(libc::ECONNRESET);
    pub const ECONNREFUSED: Errno = Errno(libc::ECONNREFUSED);
    pub const ENETDOWN: Errno = Errno(libc::ENETDOWN);
    pub const EEXIST: Errno = Errno(libc::EEXIST);
    pub const ENOENT: Errno = Errno(libc::ENOENT);
    pub const EMFILE: Errno = Errno(libc::EMFILE);
    pub const EPROTO: Errno = Errno(libc::EPROTO);
    pub const ETIMEDOUT: Errno = Errno(libc::ETIMEDOUT);

    /// The raw value.
    pub fn raw(self) -> i32 {
        self.0
    }

    /// The errno of an I/O error (`EIO` when it has none).
    pub fn from_io(e: &io::Error) -> Errno {
        Errno(e.raw_os_error().unwrap_or(libc::EIO))
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Errno({}: {})", self.0, io::Error::from_raw_os_error(self.0))
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&io::Error::from_raw_os_error(self.0), f)
    }
}

impl std::error::Error for Errno {}

impl From<Errno> for io::Error {
    fn from(e: Errno) -> io::Error {
        io::Error::from_raw_os_error(e.0)
    }
}

/// Result of a socket call.
pub type Result<T, E = Errno> = std::result::Result<T, E>;

/// Why attaching to the daemon failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    errno: Errno,
    message: String,
}

impl Error {
    pub(crate) fn new(errno: Errno, message: impl Into<String>) -> Error {
        Error { errno, message: message.into() }
    }

    /// The errno a socket call would report for this failure.
    pub fn errno(&self) -> Errno {
        self.errno
    }

    /// What went wrong, for a log line or the terminal.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.errno)
    }
}

impl std::error::Error for Error {}

impl From<Error> for Errno {
    fn from(e: Error) -> Errno {
        e.errno
    }
}
