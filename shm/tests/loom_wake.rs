//! Model check of the sleep/wake protocol (`wake.rs`): loom runs every
//! interleaving (and every weak-memory outcome it models) of a sleeper and
//! its wakers. The eventfd is modelled by a mutex-protected counter and a
//! condvar, so a lost wake-up leaves the sleeper blocked forever, which loom
//! reports as a deadlock.
//!
//! Run with: `RUSTFLAGS="--cfg loom" cargo test -p sluice-shm --test loom_wake --release`
//! (with the sleeper's fence removed, the first model fails with a deadlock
//! in a few milliseconds: the check has teeth).
#![cfg(loom)]

use loom::sync::atomic::{AtomicU32, Ordering};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use sluice_shm::{FlagWord, SleepFlag, Waker};

/// A flag word on loom's atomics.
#[derive(Clone)]
struct Word(Arc<AtomicU32>);

impl FlagWord for Word {
    fn load(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
    fn store(&self, value: u32) {
        self.0.store(value, Ordering::Relaxed)
    }
    fn claim(&self) -> bool {
        self.0
            .compare_exchange(
                sluice_shm::wake::SLEEPING,
                sluice_shm::wake::NOTIFIED,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok()
    }
}

/// The eventfd: a counter that `block` waits on and `drain` resets.
#[derive(Default)]
struct ModelEventFd {
    count: Mutex<u32>,
    readable: Condvar,
}

impl ModelEventFd {
    fn notify(&self) {
        *self.count.lock().unwrap() += 1;
        self.readable.notify_all();
    }
    fn block(&self) {
        let mut count = self.count.lock().unwrap();
        while *count == 0 {
            count = self.readable.wait(count).unwrap();
        }
    }
    fn drain(&self) {
        *self.count.lock().unwrap() = 0;
    }
}

/// The sleeper's loop: wait until `work` reaches `target`, sleeping on the
/// eventfd whenever it finds too little.
fn sleep_until(flag: &SleepFlag<Word>, efd: &ModelEventFd, work: &AtomicU32, target: u32) {
    while work.load(Ordering::Acquire) < target {
        if flag.sleep_unless(|| work.load(Ordering::Acquire) >= target, || efd.block()) {
            efd.drain();
        }
    }
}

#[test]
fn one_claiming_waker_never_strands_the_sleeper() {
    loom::model(|| {
        let word = Word(Arc::new(AtomicU32::new(0)));
        let flag = SleepFlag::new(word.clone());
        let efd = Arc::new(ModelEventFd::default());
        let work = Arc::new(AtomicU32::new(0));
        let waker = {
            let (efd, work, waker) = (efd.clone(), work.clone(), Waker::new(word));
            thread::spawn(move || {
                work.store(1, Ordering::Release);
                waker.wake(|| efd.notify());
            })
        };
        sleep_until(&flag, &efd, &work, 1);
        waker.join().unwrap();
    });
}

/// Three threads: the full state space does not finish in 15 minutes, so
/// the search is bounded to 3 preemptions (1.5 s; 4 takes about 10 s and
/// also passes). The one-waker model above is exhaustive.
#[test]
fn claiming_and_read_only_wakers_together_never_strand_the_sleeper() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(|| {
        let word = Word(Arc::new(AtomicU32::new(0)));
        let flag = SleepFlag::new(word.clone());
        let efd = Arc::new(ModelEventFd::default());
        let work = Arc::new(AtomicU32::new(0));
        let spawn = |read_only: bool| {
            let (efd, work, waker) = (efd.clone(), work.clone(), Waker::new(word.clone()));
            thread::spawn(move || {
                work.fetch_add(1, Ordering::Release);
                if read_only {
                    waker.wake_read_only(|| efd.notify());
                } else {
                    waker.wake(|| efd.notify());
                }
            })
        };
        let (a, b) = (spawn(false), spawn(true));
        sleep_until(&flag, &efd, &work, 2);
        a.join().unwrap();
        b.join().unwrap();
    });
}
