//! Sleeping without lost wake-ups (design §2.6).
//!
//! A side that runs out of work sleeps in the kernel (on an eventfd); the
//! other side must write that eventfd after publishing work, but only when
//! someone actually sleeps, to keep syscalls off the busy path. The rule is
//! Dekker's:
//!
//! ```text
//! sleeper: flag = SLEEPING; fence(SeqCst); if work published: flag = AWAKE, don't sleep
//!          else block on the eventfd; flag = AWAKE; drain the eventfd
//! waker:   publish work (Release); fence(SeqCst); if flag == SLEEPING: notify
//! ```
//!
//! Both fences are in the single total order of SeqCst operations. If the
//! sleeper's fence comes first, the waker's later load sees `SLEEPING`; if
//! the waker's comes first, the sleeper's re-check sees the work. Either way
//! no work is left behind a sleeping thread.
//!
//! Duplicate notifications during one sleep are avoided by *claiming* the
//! flag: a waker that may write the flag word moves it `SLEEPING → NOTIFIED`
//! with a compare-exchange and notifies only when that succeeds, so several
//! daemon workers publishing to one sleeping app write its eventfd once. A
//! waker that may not write the word (the app reading the daemon's flag in
//! the read-only down segment) notifies whenever it sees `SLEEPING`; the
//! sleeper drains the eventfd on waking, so extra writes cost only syscalls.
//!
//! This replaces the draft's separate sleeper count + epoch words with one
//! word: a single sleeper per flag (the vcl leader thread, or one daemon
//! worker) is all the design uses, and one word makes the de-duplication
//! exact, without an epoch that can wrap back to a stale value.
//!
//! A peer that writes garbage into a flag only changes whether *it* gets
//! woken: any value other than `SLEEPING` reads as awake.

use std::sync::atomic::Ordering;

// Under `--cfg loom` the fences are loom's, so the model checker in
// `tests/loom_wake.rs` explores every interleaving of this very code.
#[cfg(loom)]
use loom::sync::atomic::fence;
#[cfg(not(loom))]
use std::sync::atomic::fence;

use crate::region::SharedU32;

/// Flag value: the owner is running (or has been woken and not slept again).
pub const AWAKE: u32 = 0;
/// Flag value: the owner sleeps or is about to; wake it after publishing.
pub const SLEEPING: u32 = 1;
/// Flag value: a waker has notified this sleep already.
pub const NOTIFIED: u32 = 2;

/// The operations the protocol performs on a flag word: a [`SharedU32`] in
/// a segment, or an atomic of a model checker.
pub trait FlagWord {
    /// Relaxed load.
    fn load(&self) -> u32;
    /// Relaxed store.
    fn store(&self, value: u32);
    /// `SLEEPING → NOTIFIED` (relaxed compare-exchange); whether it happened.
    fn claim(&self) -> bool;
}

// Relaxed is enough everywhere: the SeqCst fences around these accesses
// give the ordering (see the module comment).
impl FlagWord for SharedU32 {
    fn load(&self) -> u32 {
        std::ops::Deref::deref(self).load(Ordering::Relaxed)
    }
    fn store(&self, value: u32) {
        std::ops::Deref::deref(self).store(value, Ordering::Relaxed)
    }
    fn claim(&self) -> bool {
        self.compare_exchange(SLEEPING, NOTIFIED, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

/// The sleeping side's flag word. One thread sleeps on a flag at a time.
#[derive(Clone, Debug)]
pub struct SleepFlag<W: FlagWord = SharedU32> {
    word: W,
}

impl<W: FlagWord> SleepFlag<W> {
    /// The flag in `word`, set to [`AWAKE`].
    pub fn new(word: W) -> SleepFlag<W> {
        word.store(AWAKE);
        SleepFlag { word }
    }

    /// Sleeps unless there is work: announces the sleep, re-checks
    /// `has_work`, and only if it still finds none calls `block` (which waits
    /// on the eventfd in the kernel; it may return early, on a signal or a
    /// timeout, and the caller loops). Returns whether `block` was called.
    /// The caller drains the eventfd after a block.
    pub fn sleep_unless(&self, has_work: impl FnOnce() -> bool, block: impl FnOnce()) -> bool {
        self.word.store(SLEEPING);
        fence(Ordering::SeqCst);
        let slept = !has_work();
        if slept {
            block();
        }
        self.word.store(AWAKE);
        slept
    }
}

/// The waking side's view of another side's flag word.
#[derive(Clone, Debug)]
pub struct Waker<W: FlagWord = SharedU32> {
    word: W,
}

impl<W: FlagWord> Waker<W> {
    /// A waker for the flag in `word`.
    pub fn new(word: W) -> Waker<W> {
        Waker { word }
    }

    /// After publishing work: calls `notify` if the owner sleeps and no
    /// other waker has notified this sleep yet. Needs write access to the
    /// flag word. Returns whether it notified.
    pub fn wake(&self, notify: impl FnOnce()) -> bool {
        fence(Ordering::SeqCst);
        if self.word.load() != SLEEPING {
            return false;
        }
        let claimed = self.word.claim();
        if claimed {
            notify();
        }
        claimed
    }

    /// After publishing work: calls `notify` if the owner sleeps, without
    /// writing the flag (for a flag in memory this side may only read).
    pub fn wake_read_only(&self, notify: impl FnOnce()) -> bool {
        fence(Ordering::SeqCst);
        let sleeping = self.word.load() == SLEEPING;
        if sleeping {
            notify();
        }
        sleeping
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::Region;
    use std::cell::Cell;

    fn pair() -> (SleepFlag, Waker) {
        let region = Region::heap(64);
        let word = region.shared_u32(0).unwrap();
        (SleepFlag::new(word.clone()), Waker::new(word))
    }

    #[test]
    fn no_sleep_when_the_recheck_finds_work() {
        let (flag, _) = pair();
        let blocked = Cell::new(false);
        assert!(!flag.sleep_unless(|| true, || blocked.set(true)));
        assert!(!blocked.get());
    }

    #[test]
    fn waker_notifies_once_per_sleep_and_not_when_awake() {
        let (flag, waker) = pair();
        let notified = Cell::new(0);
        assert!(
            !waker.wake(|| notified.set(notified.get() + 1)),
            "awake owner: no syscall"
        );
        flag.sleep_unless(
            || false,
            || {
                // Two workers publish while the owner sleeps: one notification.
                assert!(waker.wake(|| notified.set(notified.get() + 1)));
                assert!(!waker.wake(|| notified.set(notified.get() + 1)));
            },
        );
        assert_eq!(notified.get(), 1);
        assert!(
            !waker.wake(|| notified.set(notified.get() + 1)),
            "flag is awake after the sleep"
        );
    }

    #[test]
    fn read_only_waker_notifies_while_sleeping() {
        let (flag, waker) = pair();
        let count = Cell::new(0);
        flag.sleep_unless(
            || false,
            || {
                assert!(waker.wake_read_only(|| count.set(count.get() + 1)));
                assert!(waker.wake_read_only(|| count.set(count.get() + 1)));
            },
        );
        assert_eq!(count.get(), 2);
    }

    #[test]
    fn garbage_flag_reads_as_awake() {
        let (_flag, waker) = pair();
        for garbage in [3u32, u32::MAX, NOTIFIED] {
            waker.word.store(garbage);
            assert!(!waker.wake(|| panic!("notified a garbage flag")));
            assert!(!waker.wake_read_only(|| panic!("notified a garbage flag")));
        }
    }
}
