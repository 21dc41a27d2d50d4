//! The `hook!` macro: how every interposed C function is built (design §5.1).
//!
//! ```text
//! hook! {
//!     fn read(fd: c_int, buf: *mut c_void, count: size_t) -> ssize_t;
//!     kernel_if untracked(fd);
//!     on_fd(fd, |backend, session| ...)
//! }
//! ```
//!
//! generates `#[no_mangle] pub unsafe extern "C" fn read(..)` that:
//!
//! 1. tail-calls the real function when the `kernel_if` expression says the
//!    call involves no tracked descriptor and tracing is off (the fast path:
//!    one bounds check and one load of the fd table, one load of the trace
//!    state; no TLS access), or when this thread is already inside the
//!    interposer ([`guard`](crate::guard));
//! 2. otherwise runs the body (an expression of type
//!    `Result<Outcome<R>, Errno>`) inside the guard and `catch_unwind`: a
//!    panic becomes `EIO` (or `abort` with `SLUICE_PANIC=abort`) and one log
//!    line, never an unwind into C;
//! 3. turns the result into the C convention at this single edge: `Done(v)`
//!    returns `v` and leaves `errno` as the caller had it, `Err(e)` sets
//!    `errno` and returns -1, `Real` makes the real call with the original
//!    arguments *after* leaving the guard (so a blocking kernel wait is
//!    interruptible by signal handlers that use hooked functions);
//! 4. writes the trace line when `SLUICE_TRACE` is set.

use std::panic::{self, AssertUnwindSafe};

use libc::{c_int, ssize_t};

use crate::errno::Errno;
use crate::guard::Entered;
use crate::trace::{self, Arg};

/// What a hook body decided.
pub enum Outcome<R> {
    /// The call is complete with this (successful) return value.
    Done(R),
    /// The descriptors involved are plain kernel ones (now): make the real
    /// call with the original arguments.
    Real,
}

/// A C return type whose failure value is -1.
pub trait CRet: Copy {
    const FAILED: Self;
    fn is_failure(self) -> bool;
    fn trace_arg(self) -> Arg;
}

impl CRet for c_int {
    const FAILED: c_int = -1;
    fn is_failure(self) -> bool {
        self == -1
    }
    fn trace_arg(self) -> Arg {
        Arg::from(self)
    }
}

impl CRet for ssize_t {
    const FAILED: ssize_t = -1;
    fn is_failure(self) -> bool {
        self == -1
    }
    fn trace_arg(self) -> Arg {
        Arg::from(self)
    }
}

/// Runs a hook's slow path; see the module docs.
#[inline(never)]
pub fn run<R: CRet>(
    name: &'static str,
    args: &[Arg],
    kernel: bool,
    body: impl FnOnce() -> Result<Outcome<R>, Errno>,
    real: impl FnOnce() -> R,
) -> R {
    let saved = Errno::last();
    let outcome = if kernel { Ok(Outcome::Real) } else { run_guarded(name, body) };
    let (value, errno) = match outcome {
        Ok(Outcome::Done(value)) => {
            saved.set();
            (value, None)
        }
        Ok(Outcome::Real) => {
            let value = real();
            (value, value.is_failure().then(Errno::last))
        }
        Err(err) => {
            err.set();
            (R::FAILED, Some(err))
        }
    };
    if trace::enabled() {
        trace::call(name, args, &trace::Outcome { value: value.trace_arg(), errno });
    }
    value
}

/// Runs `body` inside the guard, catching panics.
pub fn run_guarded<T>(name: &'static str, body: impl FnOnce() -> Result<T, Errno>) -> Result<T, Errno> {
    install_panic_hook();
    let _inside = Entered::enter();
    match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(result) => result,
        Err(_) => {
            if crate::policy::get().panic_abort {
                std::process::abort();
            }
            log::error!("{name} failed with EIO after the panic above");
            Err(Errno::EIO)
        }
    }
}

/// Replaces the default panic message (which would write through `std`'s
/// buffered stderr) with one log line. The `std` in this shared object is
/// the preload's own copy, so a Rust host program's panic hook is untouched.
fn install_panic_hook() {
    // The test harness keeps its own hook, which captures panic output per
    // test.
    #[cfg(not(test))]
    {
        static PANIC_HOOK: std::sync::Once = std::sync::Once::new();
        PANIC_HOOK.call_once(|| {
            panic::set_hook(Box::new(|info| log::error!("interposer panic: {info}")));
        });
    }
}

/// Builds one interposed C function; see the module docs.
#[macro_export]
macro_rules! hook {
    (
        $(#[$attr:meta])*
        fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty;
        kernel_if $kernel:expr;
        $body:expr
    ) => {
        $(#[$attr])*
        ///
        /// # Safety
        /// As the C function of the same name: the caller upholds its contract.
        #[no_mangle]
        #[allow(non_snake_case)]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            /// Everything but the fast path, kept out of line so the fast
            /// path needs no stack frame of its own.
            #[cold]
            #[inline(never)]
            #[allow(non_snake_case)]
            unsafe fn slow($($arg: $ty,)* kernel: bool) -> $ret {
                $crate::hook::run(
                    stringify!($name),
                    &[$($crate::trace::Arg::from($arg)),*],
                    kernel,
                    || $body,
                    // SAFETY: the caller's arguments, forwarded unchanged; run by `hook::run` only for `Outcome::Real`.
                    || unsafe { $crate::real::$name($($arg),*) },
                )
            }
            // The `kernel_if` expressions only load atomics and read the
            // caller's arguments, so they are safe to evaluate inside the
            // guard too; testing them first keeps the TLS access off the
            // path of kernel descriptors.
            let kernel: bool = $kernel;
            if (kernel && !$crate::trace::enabled()) || $crate::guard::inside() {
                // SAFETY: the caller's arguments, forwarded unchanged.
                return unsafe { $crate::real::$name($($arg),*) };
            }
            // SAFETY: the caller's arguments, under the caller's contract.
            unsafe { slow($($arg,)* kernel) }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_keeps_the_callers_errno() {
        Errno::EAGAIN.set();
        let value: c_int = run("t", &[], false, || Ok(Outcome::Done(5)), || unreachable!("not a real call"));
        assert_eq!(value, 5);
        assert_eq!(Errno::last(), Errno::EAGAIN);
    }

    #[test]
    fn errors_set_errno_at_the_edge() {
        Errno(0).set();
        let value: ssize_t = run("t", &[], false, || Err(Errno::ENOTCONN), || unreachable!("not a real call"));
        assert_eq!(value, -1);
        assert_eq!(Errno::last(), Errno::ENOTCONN);
    }

    #[test]
    fn real_runs_after_the_body_outside_the_guard() {
        let value: c_int = run(
            "t",
            &[],
            false,
            || {
                assert!(crate::guard::inside(), "the body runs inside the guard");
                Ok(Outcome::Real)
            },
            || {
                assert!(!crate::guard::inside(), "the real call runs outside it");
                7
            },
        );
        assert_eq!(value, 7);
        let value: c_int = run("t", &[], true, || unreachable!("kernel calls skip the body"), || 8);
        assert_eq!(value, 8);
    }

    #[test]
    fn a_panic_is_eio_and_releases_the_guard() {
        let result: Result<(), Errno> = run_guarded("t", || panic!("deliberate"));
        assert_eq!(result, Err(Errno::EIO));
        assert!(!crate::guard::inside());
    }
}
