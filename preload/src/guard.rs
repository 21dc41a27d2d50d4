//! The per-thread re-entrancy flag (design §5.1).
//!
//! While a hook runs its own logic, anything it calls that comes back into a
//! hooked function on the same thread (an allocator reading `/proc`, the
//! unwinder opening files, `dlsym`) must reach the real function directly,
//! without touching our tables again. The flag is a const-initialised
//! `Cell<bool>` without a destructor: reading it never allocates or registers
//! a TLS destructor, so it works during thread start-up and teardown too.
//!
//! The guard is held only around the interposer's own, non-blocking work; a
//! hook that ends in a blocking kernel call makes that call after leaving the
//! guard (see `hook::Outcome::Real`), so a signal handler that runs during
//! the wait and calls `close` still updates the fd table.

use std::cell::Cell;

thread_local! {
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread is inside the interposer.
#[inline(always)]
pub fn inside() -> bool {
    INSIDE.with(Cell::get)
}

/// Holds the guard; leaving the scope (or unwinding through it) releases it.
pub struct Entered(());

impl Entered {
    /// Enters the guard. The caller checked [`inside`] first.
    pub fn enter() -> Entered {
        INSIDE.with(|flag| flag.set(true));
        Entered(())
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        INSIDE.with(|flag| flag.set(false));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entering_and_leaving() {
        assert!(!inside());
        {
            let _guard = Entered::enter();
            assert!(inside());
        }
        assert!(!inside());
    }

    #[test]
    fn unwinding_releases_the_guard() {
        let result = std::panic::catch_unwind(|| {
            let _guard = Entered::enter();
            panic!("inside the guard");
        });
        assert!(result.is_err());
        assert!(!inside());
    }
}
