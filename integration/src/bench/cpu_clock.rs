//! CPU time consumed by the calling thread. The benchmark machine is shared,
//! so wall time also counts time spent descheduled; the figures per core use
//! this clock, which counts only the time the benchmark thread ran.

use std::time::{Duration, Instant};

/// A start point on both clocks.
#[derive(Clone, Copy, Debug)]
pub struct Stopwatch {
    wall: Instant,
    cpu: Duration,
}

/// Time elapsed since a [`Stopwatch`] started.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Elapsed {
    pub wall: Duration,
    pub cpu: Duration,
}

impl Stopwatch {
    pub fn start() -> Stopwatch {
        Stopwatch { wall: Instant::now(), cpu: thread_cpu_time() }
    }

    pub fn elapsed(&self) -> Elapsed {
        Elapsed { wall: self.wall.elapsed(), cpu: thread_cpu_time().saturating_sub(self.cpu) }
    }
}

/// The calling thread's CPU time (user + system).
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec that outlives the call, and CLOCK_THREAD_CPUTIME_ID is a clock every Linux kernel since 2.6.12 supports.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(u64::try_from(ts.tv_sec).unwrap_or(0), u32::try_from(ts.tv_nsec).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_loop_consumes_cpu_time() {
        let watch = Stopwatch::start();
        let mut x = 0u64;
        while watch.elapsed().cpu < Duration::from_millis(5) && watch.elapsed().wall < Duration::from_secs(5) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let e = watch.elapsed();
        assert!(e.cpu >= Duration::from_millis(5), "cpu clock did not advance: {e:?}");
        // One thread cannot run for longer than the wall time that passed.
        assert!(e.wall + Duration::from_millis(1) >= e.cpu, "{e:?}");
    }
}
