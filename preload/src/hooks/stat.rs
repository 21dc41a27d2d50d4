//! `fstat` and friends: a placeholder reports itself as a socket
//! (`S_IFSOCK`, mode 0777, owned by the caller), as a kernel socket's inode
//! does, so `S_ISSOCK` checks (systemd-style socket activation, `isatty`
//! shortcuts) see a socket (design §5.2). The other fields are the
//! placeholder's.

use libc::{c_char, c_int};

use super::untracked;
use crate::errno::{check, Errno};
use crate::fdtable::{Entry, FDS};
use crate::hook::Outcome;
use crate::real;

/// Whether `fd` is a placeholder (a candidate or a session).
fn is_placeholder(fd: c_int) -> bool {
    matches!(FDS.get(fd), Entry::Candidate(_) | Entry::Session(_))
}

/// The fields a socket's inode has (net/socket.c `sock_alloc`: mode
/// `S_IFSOCK | S_IRWXUGO`, the caller's fsuid/fsgid).
macro_rules! patch_socket {
    ($st:expr) => {{
        let st = $st;
        st.st_mode = libc::S_IFSOCK | 0o777;
        // SAFETY: geteuid/getegid take no arguments and cannot fail.
        unsafe {
            st.st_uid = libc::geteuid();
            st.st_gid = libc::getegid();
        }
    }};
}

/// Runs a real stat call that filled `buf`, then patches it for a
/// placeholder.
fn stat_tracked<T>(
    fd: c_int,
    buf: *mut T,
    call: impl FnOnce() -> c_int,
    patch: impl FnOnce(&mut T),
) -> Result<Outcome<c_int>, Errno> {
    let placeholder = is_placeholder(fd);
    let rc = check(call())?;
    if placeholder {
        // SAFETY: the call succeeded, so `buf` is a valid, filled stat buffer of the caller's.
        patch(unsafe { &mut *buf });
    }
    Ok(Outcome::Done(rc))
}

crate::hook! {
    fn fstat(fd: c_int, buf: *mut libc::stat) -> c_int;
    kernel_if untracked(fd);
    // SAFETY: the caller's buffer, as asked.
    stat_tracked(fd, buf, || unsafe { real::fstat(fd, buf) }, |st| patch_socket!(st))
}

crate::hook! {
    fn fstat64(fd: c_int, buf: *mut libc::stat64) -> c_int;
    kernel_if untracked(fd);
    // SAFETY: the caller's buffer, as asked.
    stat_tracked(fd, buf, || unsafe { real::fstat64(fd, buf) }, |st| patch_socket!(st))
}

crate::hook! {
    /// The pre-2.33 glibc entry point older binaries still call.
    fn __fxstat(ver: c_int, fd: c_int, buf: *mut libc::stat) -> c_int;
    kernel_if untracked(fd);
    // SAFETY: the caller's buffer, as asked.
    stat_tracked(fd, buf, || unsafe { real::__fxstat(ver, fd, buf) }, |st| patch_socket!(st))
}

crate::hook! {
    fn __fxstat64(ver: c_int, fd: c_int, buf: *mut libc::stat64) -> c_int;
    kernel_if untracked(fd);
    // SAFETY: the caller's buffer, as asked.
    stat_tracked(fd, buf, || unsafe { real::__fxstat64(ver, fd, buf) }, |st| patch_socket!(st))
}

/// `fstatat(fd, "", buf, AT_EMPTY_PATH)` is `fstat(fd)`.
///
/// # Safety
/// `path` is NULL or a C string.
unsafe fn is_fd_itself(dirfd: c_int, path: *const c_char, flags: c_int) -> bool {
    // SAFETY: a non-NULL path is a C string (contract); only its first byte is read.
    flags & libc::AT_EMPTY_PATH != 0 && !path.is_null() && unsafe { *path } == 0 && !untracked(dirfd)
}

crate::hook! {
    fn fstatat(dirfd: c_int, path: *const c_char, buf: *mut libc::stat, flags: c_int) -> c_int;
    // SAFETY: the caller's path.
    kernel_if !unsafe { is_fd_itself(dirfd, path, flags) };
    // SAFETY: the caller's arguments, as asked.
    stat_tracked(dirfd, buf, || unsafe { real::fstatat(dirfd, path, buf, flags) }, |st| patch_socket!(st))
}

crate::hook! {
    fn fstatat64(dirfd: c_int, path: *const c_char, buf: *mut libc::stat64, flags: c_int) -> c_int;
    // SAFETY: the caller's path.
    kernel_if !unsafe { is_fd_itself(dirfd, path, flags) };
    // SAFETY: the caller's arguments, as asked.
    stat_tracked(dirfd, buf, || unsafe { real::fstatat64(dirfd, path, buf, flags) }, |st| patch_socket!(st))
}
