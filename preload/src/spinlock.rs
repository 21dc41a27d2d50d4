//! A small spin lock for the interposer's rarely-taken bookkeeping (the
//! candidate store), which `fork` can take and release from
//! `pthread_atfork` handlers (a `std::sync::Mutex` cannot be held across
//! them: its guard borrows the lock).
//!
//! Critical sections are a few non-blocking system calls at most, so waiters
//! spin briefly, then yield.

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};

pub struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the value is only reached through a `SpinGuard`, and the lock hands out at most one at a time, so sharing the lock shares `T` like a Mutex does.
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: moving the lock moves the `T` it owns.
unsafe impl<T: Send> Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub const fn new(value: T) -> SpinLock<T> {
        SpinLock { locked: AtomicBool::new(false), value: UnsafeCell::new(value) }
    }

    pub fn lock(&self) -> SpinGuard<'_, T> {
        self.acquire();
        SpinGuard { lock: self }
    }

    /// Takes the lock without a guard, for `pthread_atfork`'s prepare
    /// handler; [`SpinLock::release`] gives it back.
    pub fn acquire(&self) {
        let mut spins = 0u32;
        while self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            spins += 1;
            if spins < 100 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Releases a lock taken with [`SpinLock::acquire`]. In a child of
    /// `fork` this is also how the lock the parent's prepare handler held is
    /// freed (the child has only the forking thread).
    ///
    /// # Safety
    /// The caller (or, in a forked child, the forking thread before `fork`)
    /// holds the lock through `acquire` and no guard exists.
    pub unsafe fn release(&self) {
        self.locked.store(false, Ordering::Release);
    }
}

pub struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: this guard is the lock's only holder.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this guard is the lock's only holder.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn threads_do_not_lose_updates() {
        let lock = Arc::new(SpinLock::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = Arc::clone(&lock);
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        *lock.lock() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*lock.lock(), 40_000);
    }

    #[test]
    fn acquire_and_release_pair_with_guards() {
        let lock = SpinLock::new(1);
        lock.acquire();
        assert!(lock.locked.load(Ordering::Relaxed));
        // SAFETY: taken by `acquire` just above, no guard exists.
        unsafe { lock.release() };
        assert_eq!(*lock.lock(), 1);
    }
}
