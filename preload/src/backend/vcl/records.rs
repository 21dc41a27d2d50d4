//! Per-session bookkeeping of the vcl backend: how many descriptors name a
//! session (it closes at the last), whether it listens, its `O_NONBLOCK`,
//! and the option values `getsockopt` reports back. Taken only by setup,
//! option and close calls, never by reads and writes.
//!
//! A forked child keeps its copy of the parent's records: they are what it
//! knows of the sessions it inherited (how many of its descriptors name
//! each, which are listeners, with which flags and options), and what an
//! inherited listener is re-created from (`inherited.rs`).

use std::collections::HashMap;

use crate::backend::SessionRef;
use crate::spinlock::SpinLock;

/// Options a program set, as `getsockopt` reports them: `(level, name)` →
/// the bytes given to `setsockopt`.
pub(super) type Stored = HashMap<(i32, i32), Vec<u8>>;

#[derive(Default)]
struct Record {
    refs: u32,
    listening: bool,
    /// The descriptor's `O_NONBLOCK` (vcl keeps its own copy; this one
    /// outlives a fork, vcl's is unreachable in the child).
    nonblocking: bool,
    options: Stored,
}

static RECORDS: SpinLock<Option<HashMap<u64, Record>>> = SpinLock::new(None);

fn with<R>(f: impl FnOnce(&mut HashMap<u64, Record>) -> R) -> R {
    let mut guard = RECORDS.lock();
    f(guard.get_or_insert_with(HashMap::new))
}

pub(super) fn create(s: SessionRef, nonblocking: bool) {
    with(|m| m.insert(s.raw(), Record { refs: 1, nonblocking, ..Record::default() }));
}

/// An accepted connection inherits the options a listener's socket passes
/// on in Linux (`sk_clone_lock` copies the socket, so `TCP_NODELAY`,
/// `SO_KEEPALIVE`, buffer sizes and the like carry over).
pub(super) fn create_accepted(s: SessionRef, listener: SessionRef, nonblocking: bool) {
    with(|m| {
        let options = m.get(&listener.raw()).map(|r| r.options.clone()).unwrap_or_default();
        m.insert(s.raw(), Record { refs: 1, listening: false, nonblocking, options });
    });
}

/// An inherited listener was re-created as `new`: the descriptors that
/// named `old` name `new` now, with its flags and options. Returns the
/// options to apply to the new session.
pub(super) fn transfer(old: SessionRef, new: SessionRef) -> Stored {
    with(|m| {
        // Only listeners were re-created before exec hand-overs (`exec.rs`),
        // which record what they are.
        let record = m.remove(&old.raw()).unwrap_or(Record { refs: 1, listening: true, ..Record::default() });
        let options = record.options.clone();
        m.insert(new.raw(), record);
        options
    })
}

pub(super) fn add_ref(s: SessionRef) {
    with(|m| {
        if let Some(r) = m.get_mut(&s.raw()) {
            r.refs += 1;
        }
    });
}

/// Drops one reference; true when it was the last (the session must close).
pub(super) fn release(s: SessionRef) -> bool {
    with(|m| match m.get_mut(&s.raw()) {
        Some(r) if r.refs > 1 => {
            r.refs -= 1;
            false
        }
        Some(_) => {
            m.remove(&s.raw());
            true
        }
        None => false,
    })
}

pub(super) fn set_listening(s: SessionRef) {
    with(|m| {
        if let Some(r) = m.get_mut(&s.raw()) {
            r.listening = true;
        }
    });
}

pub(super) fn is_listening(s: SessionRef) -> bool {
    with(|m| m.get(&s.raw()).is_some_and(|r| r.listening))
}

pub(super) fn set_nonblocking(s: SessionRef, on: bool) {
    with(|m| {
        if let Some(r) = m.get_mut(&s.raw()) {
            r.nonblocking = on;
        }
    });
}

pub(super) fn is_nonblocking(s: SessionRef) -> bool {
    with(|m| m.get(&s.raw()).is_some_and(|r| r.nonblocking))
}

pub(super) fn store_option(s: SessionRef, level: i32, name: i32, value: &[u8]) {
    with(|m| {
        if let Some(r) = m.get_mut(&s.raw()) {
            r.options.insert((level, name), value.to_vec());
        }
    });
}

pub(super) fn option(s: SessionRef, level: i32, name: i32) -> Option<Vec<u8>> {
    with(|m| m.get(&s.raw()).and_then(|r| r.options.get(&(level, name)).cloned()))
}

/// The options set on `s`, to hand them over across an exec.
pub(super) fn options(s: SessionRef) -> Stored {
    with(|m| m.get(&s.raw()).map(|r| r.options.clone()).unwrap_or_default())
}

pub(super) fn lock_for_fork() {
    RECORDS.acquire();
}

pub(super) fn unlock_after_fork() {
    // SAFETY: taken by `lock_for_fork` in the prepare step of this fork.
    unsafe { RECORDS.release() };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recreated_listener_takes_over_the_inherited_record() {
        // Refs far from any other test's (the records are process-wide).
        let old = SessionRef::new(0x3_0000_0001).unwrap();
        let new = SessionRef::new(0x3_0000_0002).unwrap();
        create(old, true);
        set_listening(old);
        add_ref(old);
        store_option(old, libc::SOL_SOCKET, libc::SO_KEEPALIVE, &1i32.to_ne_bytes());
        let options = transfer(old, new);
        assert_eq!(options.get(&(libc::SOL_SOCKET, libc::SO_KEEPALIVE)), Some(&1i32.to_ne_bytes().to_vec()));
        assert!(is_listening(new) && is_nonblocking(new));
        assert!(!is_listening(old) && option(old, libc::SOL_SOCKET, libc::SO_KEEPALIVE).is_none());
        // Two descriptors named the inherited listener: the second release
        // is the last.
        assert!(!release(new));
        assert!(release(new));
        assert!(!release(old));
    }
}
