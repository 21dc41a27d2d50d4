//! The "real" functions: the definitions our hooks shadow, found with
//! `dlsym(RTLD_NEXT, name)` on first use and cached in an `AtomicPtr`
//! (design §5.1).
//!
//! `real!(read)` names the typed function [`read`] of this module, which calls
//! the next definition of `read` in the lookup order (normally libc's).
//!
//! Resolution can recurse: `dlsym` may itself call functions we hook (it
//! allocates and may read files). While a thread is inside `dlsym`, any
//! further resolution on that thread is refused; `read`, `write`, `close` and
//! `fcntl` then fall back to the raw system call, everything else fails with
//! `ENOSYS` (the loader never needs them there).

use std::cell::Cell;
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use libc::{c_char, c_int, c_long, c_uint, c_ulong, size_t, ssize_t};

use crate::errno::Errno;

/// `real!(name)`: the next definition of the hooked C function `name`.
#[macro_export]
macro_rules! real {
    ($name:ident) => {
        $crate::real::$name
    };
}

thread_local! {
    /// Set while this thread runs `dlsym`. Const-initialised without a
    /// destructor, so it is usable during thread start-up and teardown.
    static RESOLVING: Cell<bool> = const { Cell::new(false) };
}

/// One symbol's cached address.
pub struct Real {
    /// The symbol name, NUL-terminated.
    name: &'static [u8],
    addr: AtomicPtr<c_void>,
}

impl Real {
    pub const fn new(name: &'static [u8]) -> Real {
        Real { name, addr: AtomicPtr::new(ptr::null_mut()) }
    }

    /// The next definition's address; `None` while this thread is already
    /// inside `dlsym`, or when no later object defines the symbol.
    #[inline(always)]
    pub fn get(&self) -> Option<*mut c_void> {
        let cached = self.addr.load(Ordering::Acquire);
        if !cached.is_null() {
            return Some(cached);
        }
        self.resolve()
    }

    #[cold]
    #[inline(never)]
    fn resolve(&self) -> Option<*mut c_void> {
        if RESOLVING.with(Cell::get) {
            return None;
        }
        RESOLVING.with(|r| r.set(true));
        // `name` is built by `real_functions!` with `concat!(.., "\0")`.
        // SAFETY: a NUL-terminated name; RTLD_NEXT is valid in a shared object.
        let found = unsafe { libc::dlsym(libc::RTLD_NEXT, self.name.as_ptr().cast()) };
        RESOLVING.with(|r| r.set(false));
        if found.is_null() {
            return None;
        }
        // Two threads may both resolve; they store the same address.
        self.addr.store(found, Ordering::Release);
        Some(found)
    }
}

/// Declares a typed caller for each real function: an `unsafe fn` with the C
/// signature that calls the next definition, or the fallback expression when
/// the symbol cannot be resolved right now.
macro_rules! real_functions {
    ($(
        $name:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty $(, fallback $fallback:expr)? ;
    )*) => {
        /// The cached addresses, one per real function.
        pub mod sym {
            use super::Real;
            $(
                #[allow(non_upper_case_globals)]
                pub static $name: Real = Real::new(concat!(stringify!($name), "\0").as_bytes());
            )*
        }
        $(
            /// Calls the next definition of this C function.
            ///
            /// # Safety
            /// The caller upholds the C function's contract for these arguments.
            #[allow(clippy::too_many_arguments, non_snake_case)]
            pub unsafe fn $name($($arg: $ty),*) -> $ret {
                match sym::$name.get() {
                    Some(addr) => {
                        // SAFETY: `addr` is the address dlsym returned for this symbol, whose C prototype is the one declared here.
                        let f: unsafe extern "C" fn($($ty),*) -> $ret = unsafe { std::mem::transmute(addr) };
                        // SAFETY: forwarded under the caller's contract.
                        unsafe { f($($arg),*) }
                    }
                    None => real_functions!(@fallback $($fallback)?),
                }
            }
        )*
    };
    (@fallback $fallback:expr) => { $fallback };
    (@fallback) => {{
        Errno::ENOSYS.set();
        (-1i8).into()
    }};
}

/// `syscall(2)` with up to three integer arguments, used only as the
/// resolution-time fallback.
fn raw_syscall(number: c_long, a: c_long, b: c_long, c: c_long) -> c_long {
    // SAFETY: callers pass the documented arguments of `number`; the raw call has the same contract as the libc wrapper it replaces.
    unsafe { libc::syscall(number, a, b, c) }
}

real_functions! {
    socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int;
    bind(fd: c_int, addr: *const libc::sockaddr, len: libc::socklen_t) -> c_int;
    listen(fd: c_int, backlog: c_int) -> c_int;
    accept(fd: c_int, addr: *mut libc::sockaddr, len: *mut libc::socklen_t) -> c_int;
    accept4(fd: c_int, addr: *mut libc::sockaddr, len: *mut libc::socklen_t, flags: c_int) -> c_int;
    connect(fd: c_int, addr: *const libc::sockaddr, len: libc::socklen_t) -> c_int;
    read(fd: c_int, buf: *mut c_void, count: size_t) -> ssize_t,
        fallback raw_syscall(libc::SYS_read, fd as c_long, buf as c_long, count as c_long) as ssize_t;
    write(fd: c_int, buf: *const c_void, count: size_t) -> ssize_t,
        fallback raw_syscall(libc::SYS_write, fd as c_long, buf as c_long, count as c_long) as ssize_t;
    readv(fd: c_int, iov: *const libc::iovec, iovcnt: c_int) -> ssize_t;
    writev(fd: c_int, iov: *const libc::iovec, iovcnt: c_int) -> ssize_t;
    recv(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t;
    send(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> ssize_t;
    recvfrom(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int, addr: *mut libc::sockaddr,
        addrlen: *mut libc::socklen_t) -> ssize_t;
    sendto(fd: c_int, buf: *const c_void, len: size_t, flags: c_int, addr: *const libc::sockaddr,
        addrlen: libc::socklen_t) -> ssize_t;
    recvmsg(fd: c_int, msg: *mut libc::msghdr, flags: c_int) -> ssize_t;
    sendmsg(fd: c_int, msg: *const libc::msghdr, flags: c_int) -> ssize_t;
    recvmmsg(fd: c_int, msgs: *mut libc::mmsghdr, vlen: c_uint, flags: c_int, timeout: *mut libc::timespec) -> c_int;
    sendmmsg(fd: c_int, msgs: *mut libc::mmsghdr, vlen: c_uint, flags: c_int) -> c_int;
    sendfile(out_fd: c_int, in_fd: c_int, offset: *mut libc::off_t, count: size_t) -> ssize_t;
    sendfile64(out_fd: c_int, in_fd: c_int, offset: *mut libc::off64_t, count: size_t) -> ssize_t;
    splice(fd_in: c_int, off_in: *mut libc::loff_t, fd_out: c_int, off_out: *mut libc::loff_t, len: size_t,
        flags: c_uint) -> ssize_t;
    close(fd: c_int) -> c_int,
        fallback raw_syscall(libc::SYS_close, fd as c_long, 0, 0) as c_int;
    close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int;
    fclose(stream: *mut libc::FILE) -> c_int;
    shutdown(fd: c_int, how: c_int) -> c_int;
    getsockopt(fd: c_int, level: c_int, name: c_int, value: *mut c_void, len: *mut libc::socklen_t) -> c_int;
    setsockopt(fd: c_int, level: c_int, name: c_int, value: *const c_void, len: libc::socklen_t) -> c_int;
    getsockname(fd: c_int, addr: *mut libc::sockaddr, len: *mut libc::socklen_t) -> c_int;
    getpeername(fd: c_int, addr: *mut libc::sockaddr, len: *mut libc::socklen_t) -> c_int;
    dup(fd: c_int) -> c_int;
    dup2(old: c_int, new: c_int) -> c_int;
    dup3(old: c_int, new: c_int, flags: c_int) -> c_int;
    epoll_create(size: c_int) -> c_int;
    epoll_create1(flags: c_int) -> c_int;
    epoll_ctl(epfd: c_int, op: c_int, fd: c_int, event: *mut libc::epoll_event) -> c_int;
    epoll_wait(epfd: c_int, events: *mut libc::epoll_event, maxevents: c_int, timeout: c_int) -> c_int;
    epoll_pwait(epfd: c_int, events: *mut libc::epoll_event, maxevents: c_int, timeout: c_int,
        sigmask: *const libc::sigset_t) -> c_int;
    epoll_pwait2(epfd: c_int, events: *mut libc::epoll_event, maxevents: c_int, timeout: *const libc::timespec,
        sigmask: *const libc::sigset_t) -> c_int;
    poll(fds: *mut libc::pollfd, nfds: libc::nfds_t, timeout: c_int) -> c_int;
    ppoll(fds: *mut libc::pollfd, nfds: libc::nfds_t, timeout: *const libc::timespec,
        sigmask: *const libc::sigset_t) -> c_int;
    select(nfds: c_int, readfds: *mut libc::fd_set, writefds: *mut libc::fd_set, exceptfds: *mut libc::fd_set,
        timeout: *mut libc::timeval) -> c_int;
    pselect(nfds: c_int, readfds: *mut libc::fd_set, writefds: *mut libc::fd_set, exceptfds: *mut libc::fd_set,
        timeout: *const libc::timespec, sigmask: *const libc::sigset_t) -> c_int;
    fork() -> libc::pid_t;
    _Fork() -> libc::pid_t;
    daemon(nochdir: c_int, noclose: c_int) -> c_int;
    execve(path: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> c_int;
    execv(path: *const c_char, argv: *const *const c_char) -> c_int;
    execvp(file: *const c_char, argv: *const *const c_char) -> c_int;
    execvpe(file: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> c_int;
    execveat(dirfd: c_int, path: *const c_char, argv: *const *const c_char, envp: *const *const c_char,
        flags: c_int) -> c_int;
    fexecve(fd: c_int, argv: *const *const c_char, envp: *const *const c_char) -> c_int;
    posix_spawn(pid: *mut libc::pid_t, path: *const c_char, actions: *const libc::posix_spawn_file_actions_t,
        attr: *const libc::posix_spawnattr_t, argv: *const *mut c_char, envp: *const *mut c_char) -> c_int;
    posix_spawnp(pid: *mut libc::pid_t, file: *const c_char, actions: *const libc::posix_spawn_file_actions_t,
        attr: *const libc::posix_spawnattr_t, argv: *const *mut c_char, envp: *const *mut c_char) -> c_int;
    fstat(fd: c_int, buf: *mut libc::stat) -> c_int;
    fstat64(fd: c_int, buf: *mut libc::stat64) -> c_int;
    __fxstat(ver: c_int, fd: c_int, buf: *mut libc::stat) -> c_int;
    __fxstat64(ver: c_int, fd: c_int, buf: *mut libc::stat64) -> c_int;
    fstatat(dirfd: c_int, path: *const c_char, buf: *mut libc::stat, flags: c_int) -> c_int;
    fstatat64(dirfd: c_int, path: *const c_char, buf: *mut libc::stat64, flags: c_int) -> c_int;
}

/// The real variadic `fcntl`. Every command's third argument is an `int` or a
/// pointer, both passed in an integer register, so one pointer-sized value
/// carries it.
///
/// # Safety
/// As `fcntl(2)` for `cmd` and `arg`.
pub unsafe fn fcntl(fd: c_int, cmd: c_int, arg: c_long) -> c_int {
    static SYM: Real = Real::new(b"fcntl\0");
    match SYM.get() {
        Some(addr) => {
            // SAFETY: dlsym's address of `int fcntl(int, int, ...)`.
            let f: unsafe extern "C" fn(c_int, c_int, ...) -> c_int = unsafe { std::mem::transmute(addr) };
            // SAFETY: forwarded under the caller's contract.
            unsafe { f(fd, cmd, arg) }
        }
        None => raw_syscall(libc::SYS_fcntl, fd as c_long, cmd as c_long, arg) as c_int,
    }
}

/// The real variadic `ioctl`, with its optional argument as a pointer-sized
/// value (see [`fcntl`]).
///
/// # Safety
/// As `ioctl(2)` for `request` and `arg`.
pub unsafe fn ioctl(fd: c_int, request: c_ulong, arg: c_long) -> c_int {
    static SYM: Real = Real::new(b"ioctl\0");
    match SYM.get() {
        Some(addr) => {
            // SAFETY: dlsym's address of `int ioctl(int, unsigned long, ...)`.
            let f: unsafe extern "C" fn(c_int, c_ulong, ...) -> c_int = unsafe { std::mem::transmute(addr) };
            // SAFETY: forwarded under the caller's contract.
            unsafe { f(fd, request, arg) }
        }
        None => raw_syscall(libc::SYS_ioctl, fd as c_long, request as c_long, arg) as c_int,
    }
}

/// The real `closefrom(3)`, which returns nothing.
///
/// # Safety
/// Closes descriptors other code may own, as `closefrom` does.
pub unsafe fn closefrom(lowfd: c_int) {
    static SYM: Real = Real::new(b"closefrom\0");
    match SYM.get() {
        Some(addr) => {
            // SAFETY: dlsym's address of `void closefrom(int)`.
            let f: unsafe extern "C" fn(c_int) = unsafe { std::mem::transmute(addr) };
            // SAFETY: forwarded under the caller's contract.
            unsafe { f(lowfd) }
        }
        None => {
            raw_syscall(libc::SYS_close_range, lowfd as c_long, c_uint::MAX as c_long, 0);
        }
    }
}

/// glibc's fortify failure report (`*** buffer overflow detected ***`), which
/// never returns.
pub fn chk_fail() -> ! {
    static SYM: Real = Real::new(b"__chk_fail\0");
    if let Some(addr) = SYM.get() {
        // SAFETY: dlsym's address of `void __chk_fail(void)`, which takes no arguments and does not return.
        let f: unsafe extern "C" fn() -> ! = unsafe { std::mem::transmute(addr) };
        // SAFETY: no arguments; it terminates the process.
        unsafe { f() }
    }
    std::process::abort()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_and_calls_the_next_definition() {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: valid buffer and pipe descriptors.
        assert_eq!(unsafe { write(fds[1], b"ab".as_ptr().cast(), 2) }, 2);
        let mut buf = [0u8; 4];
        // SAFETY: as above.
        assert_eq!(unsafe { read(fds[0], buf.as_mut_ptr().cast(), 4) }, 2);
        assert_eq!(&buf[..2], b"ab");
        // SAFETY: F_GETFD takes no argument.
        assert_eq!(unsafe { fcntl(fds[0], libc::F_GETFD, 0) }, 0);

        // SAFETY: closing descriptors this test opened.
        unsafe {
            assert_eq!(close(fds[0]), 0);
            assert_eq!(close(fds[1]), 0);
        }
        assert!(sym::read.get().is_some());
    }

    #[test]
    fn a_missing_symbol_resolves_to_none() {
        static MISSING: Real = Real::new(b"sluice_no_such_symbol\0");
        assert!(MISSING.get().is_none());
    }
}
