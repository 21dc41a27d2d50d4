//! `SLUICE_TRACE`: one line per intercepted call (design §5.1).
//!
//! `SLUICE_TRACE=1` (or `stderr`) writes to stderr, any other non-empty value
//! other than `0`/`off` is a file path the lines are appended to. A line is
//! `sluice[PID] name(arg, ...) = result` with `ERRNO` after a failed result
//! (`[PID/TID]` in threads other than the main one). Integers print in
//! decimal, pointers in hex.
//!
//! The setting is read on the first hooked call, with `getenv` and a static
//! buffer: no allocation, because that first call may come from inside an
//! allocator. Lines are formatted on the stack ([`LineBuf`]) and written with
//! the real `write`.

use std::cell::UnsafeCell;
use std::ffi::CStr;
use std::fmt::{self, Write};
use std::sync::atomic::{AtomicU8, Ordering};

use crate::errno::Errno;
use crate::linebuf::LineBuf;
use crate::output::{self, Sink};

const UNREAD: u8 = 0;
const READING: u8 = 1;
const OFF: u8 = 2;
const STDERR: u8 = 3;
const FILE: u8 = 4;

static STATE: AtomicU8 = AtomicU8::new(UNREAD);

/// Longest trace file path accepted (`PATH_MAX`, with its NUL).
const PATH_CAP: usize = libc::PATH_MAX as usize;

/// The trace file path, written once by the thread that moves `STATE` from
/// `UNREAD` to `READING`, read only after `STATE` is `FILE` (Release/Acquire).
struct PathSlot(UnsafeCell<[u8; PATH_CAP]>);

// SAFETY: the slot is written by exactly one thread before `STATE` publishes it with a Release store, and only read after an Acquire load of `FILE`.
unsafe impl Sync for PathSlot {}

static PATH: PathSlot = PathSlot(UnsafeCell::new([0; PATH_CAP]));

/// Whether tracing is on; reads `SLUICE_TRACE` on the first call.
#[inline(always)]
pub fn enabled() -> bool {
    match STATE.load(Ordering::Relaxed) {
        OFF => false,
        UNREAD => read_setting() >= STDERR,
        state => state >= STDERR,
    }
}

#[cold]
fn read_setting() -> u8 {
    if STATE.compare_exchange(UNREAD, READING, Ordering::Acquire, Ordering::Acquire).is_err() {
        // Another thread is reading it; this call is not traced.
        return STATE.load(Ordering::Acquire);
    }
    crate::logger::init();
    // SAFETY: the name is NUL-terminated; getenv returns NULL or a C string.
    let value = unsafe { libc::getenv(c"SLUICE_TRACE".as_ptr()) };
    let state = if value.is_null() {
        OFF
    } else {
        // SAFETY: getenv returned a valid NUL-terminated string.
        let value = unsafe { CStr::from_ptr(value) };
        match value.to_bytes() {
            b"" | b"0" | b"off" => OFF,
            b"1" | b"on" | b"stderr" => STDERR,
            path if path.len() < PATH_CAP => {
                // Why this is sound: this thread won the UNREAD -> READING transition,
                // so it is the only writer, and no reader looks before the
                // Release store below.
                // SAFETY: this thread alone won UNREAD -> READING; no reader looks before the Release store.
                let slot = unsafe { &mut *PATH.0.get() };
                slot[..path.len()].copy_from_slice(path);
                slot[path.len()] = 0;
                FILE
            }
            _ => {
                log::error!("SLUICE_TRACE: path longer than {} bytes; tracing is off", PATH_CAP - 1);
                OFF
            }
        }
    };
    STATE.store(state, Ordering::Release);
    state
}

fn sink() -> Option<Sink> {
    match STATE.load(Ordering::Acquire) {
        STDERR => Some(Sink::Stderr),
        FILE => {
            // SAFETY: STATE is FILE, so the path was fully written before the Release store we synchronised with, and is never written again.
            let slot: &'static [u8; PATH_CAP] = unsafe { &*PATH.0.get() };
            let path = CStr::from_bytes_until_nul(slot).ok()?;
            Some(Sink::File(path))
        }
        _ => None,
    }
}

/// One argument of a traced call.
#[derive(Clone, Copy)]
pub enum Arg {
    Int(i64),
    Uint(u64),
    Ptr(usize),
}

macro_rules! arg_from {
    ($variant:ident as $wide:ty: $($t:ty),*) => {
        $(impl From<$t> for Arg {
            fn from(value: $t) -> Arg {
                Arg::$variant(value as $wide)
            }
        })*
    };
}
arg_from!(Int as i64: i32, i64, isize);
arg_from!(Uint as u64: u32, u64, usize);

impl<T> From<*const T> for Arg {
    fn from(value: *const T) -> Arg {
        Arg::Ptr(value as usize)
    }
}

impl<T> From<*mut T> for Arg {
    fn from(value: *mut T) -> Arg {
        Arg::Ptr(value as usize)
    }
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Arg::Int(v) => write!(f, "{v}"),
            Arg::Uint(v) => write!(f, "{v}"),
            Arg::Ptr(0) => f.write_str("NULL"),
            Arg::Ptr(v) => write!(f, "{v:#x}"),
        }
    }
}

/// A traced call's result: the value returned, and `errno` if it failed.
pub struct Outcome {
    pub value: Arg,
    pub errno: Option<Errno>,
}

/// Writes the trace line of one call. Does nothing if tracing is off.
pub fn call(name: &str, args: &[Arg], outcome: &Outcome) {
    let Some(sink) = sink() else { return };
    let mut line = LineBuf::new();
    let _ = format_call(&mut line, name, args, outcome);
    output::emit(sink, line.finish());
}

fn format_call(line: &mut LineBuf, name: &str, args: &[Arg], outcome: &Outcome) -> fmt::Result {
    // SAFETY: getpid and gettid take no arguments and cannot fail.
    let (pid, tid) = unsafe { (libc::getpid(), libc::gettid()) };
    if pid == tid {
        write!(line, "sluice[{pid}] {name}(")?;
    } else {
        write!(line, "sluice[{pid}/{tid}] {name}(")?;
    }
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            line.write_str(", ")?;
        }
        write!(line, "{arg}")?;
    }
    write!(line, ") = {}", outcome.value)?;
    if let Some(errno) = outcome.errno {
        write!(line, " {errno}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_args_result_and_errno() {
        let mut line = LineBuf::new();
        let args = [Arg::from(3i32), Arg::from(std::ptr::null::<u8>()), Arg::from(16u32)];
        let outcome = Outcome { value: Arg::from(-1i32), errno: Some(Errno(libc::EINPROGRESS)) };
        format_call(&mut line, "connect", &args, &outcome).unwrap();
        let text = String::from_utf8(line.finish().to_vec()).unwrap();
        assert!(text.starts_with("sluice["), "{text}");
        assert!(text.ends_with("connect(3, NULL, 16) = -1 EINPROGRESS\n"), "{text}");
    }

    #[test]
    fn pointers_print_in_hex() {
        assert_eq!(Arg::from(0x1000 as *const u8).to_string(), "0x1000");
        assert_eq!(Arg::from(-5isize).to_string(), "-5");
    }
}
