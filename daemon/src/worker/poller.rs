//! Adaptive polling (design §3.3), as a pure state machine: after each
//! iteration the worker reports how much work it did and the engine's next
//! deadline, and the poller says whether to poll again at once or to sleep,
//! and for how long.
//!
//! * **Busy** (the last iteration found work): poll again.
//! * **Spinning** (idle for less than `idle_spin`): poll again, so a request
//!   or frame arriving within microseconds costs no wake-up.
//! * **Sleeping**: block in `epoll_wait` until a descriptor fires or the
//!   engine's next timer is due (rounded up to whole milliseconds, so a
//!   deadline 300 µs away is not a 0 ms busy loop), at most [`MAX_SLEEP_MS`].
//!
//! `PollMode::Busy` never sleeps; `PollMode::Sleep` sleeps as soon as an
//! iteration finds no work.

use sluice_stack::{Duration, Instant};

use crate::config::PollMode;

/// Longest sleep, even with no timer pending: a bound on the cost of any
/// wake-up that might ever be missed.
pub const MAX_SLEEP_MS: i32 = 1000;

/// How long to sleep when the engine still has frames the device could not
/// take (its TX ring was full): the device's descriptor reports only RX, so
/// the worker retries on a short timer instead of spinning.
pub const TX_RETRY_MS: i32 = 1;

/// What the worker does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Run another iteration now.
    Poll,
    /// Sleep (epoll_wait) for at most this many milliseconds (> 0).
    Sleep { timeout_ms: i32 },
}

/// The adaptive-polling state of one worker.
#[derive(Clone, Debug)]
pub struct Poller {
    mode: PollMode,
    idle_spin: Duration,
    /// Start of the current run of idle iterations.
    idle_since: Option<Instant>,
}

impl Poller {
    pub fn new(mode: PollMode, idle_spin_us: u32) -> Poller {
        Poller { mode, idle_spin: Duration::from_micros(idle_spin_us.into()), idle_since: None }
    }

    /// Decides the next step after an iteration that did `work` units of
    /// work at `now`. `deadline` is the engine's `poll_timeout()`;
    /// `tx_backlog` says the engine still has frames to send
    /// (`wants_transmit()` after `poll_transmit`).
    pub fn after_iteration(&mut self, work: usize, now: Instant, deadline: Option<Instant>, tx_backlog: bool) -> Step {
        if self.mode == PollMode::Busy {
            return Step::Poll;
        }
        if work > 0 {
            self.idle_since = None;
            return Step::Poll;
        }
        if self.mode == PollMode::Adaptive {
            let since = *self.idle_since.get_or_insert(now);
            if now.saturating_since(since) < self.idle_spin {
                return Step::Poll;
            }
        }
        let mut timeout_ms = sleep_timeout_ms(now, deadline);
        if tx_backlog {
            timeout_ms = timeout_ms.min(TX_RETRY_MS);
        }
        if timeout_ms == 0 {
            // A timer is due: the next iteration handles it.
            return Step::Poll;
        }
        Step::Sleep { timeout_ms }
    }

    /// The worker slept (or tried to): the next idle run starts afresh.
    pub fn woke(&mut self) {
        self.idle_since = None;
    }
}

/// Milliseconds from `now` until `deadline`, rounded up, capped at
/// [`MAX_SLEEP_MS`]; 0 when the deadline has passed.
pub fn sleep_timeout_ms(now: Instant, deadline: Option<Instant>) -> i32 {
    let Some(deadline) = deadline else {
        return MAX_SLEEP_MS;
    };
    let us = deadline.saturating_since(now).total_micros();
    let ms = us.div_ceil(1000);
    i32::try_from(ms).unwrap_or(MAX_SLEEP_MS).min(MAX_SLEEP_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(us: u64) -> Instant {
        Instant::from_micros(us)
    }

    #[test]
    fn timeouts_round_up_to_milliseconds_and_are_capped() {
        assert_eq!(sleep_timeout_ms(at(1000), None), MAX_SLEEP_MS);
        assert_eq!(sleep_timeout_ms(at(1000), Some(at(1000))), 0);
        assert_eq!(sleep_timeout_ms(at(1000), Some(at(500))), 0, "a past deadline");
        assert_eq!(sleep_timeout_ms(at(1000), Some(at(1001))), 1);
        assert_eq!(sleep_timeout_ms(at(1000), Some(at(1300))), 1);
        assert_eq!(sleep_timeout_ms(at(0), Some(at(2000))), 2);
        assert_eq!(sleep_timeout_ms(at(0), Some(at(2001))), 3);
        assert_eq!(sleep_timeout_ms(at(0), Some(at(5_000_000))), MAX_SLEEP_MS);
        assert_eq!(sleep_timeout_ms(at(0), Some(Instant::from_micros(u64::MAX))), MAX_SLEEP_MS);
    }

    #[test]
    fn adaptive_spins_for_idle_spin_then_sleeps_until_the_deadline() {
        let mut p = Poller::new(PollMode::Adaptive, 50);
        assert_eq!(p.after_iteration(3, at(0), None, false), Step::Poll);
        // Idle from t=10: spin while less than 50 µs have passed.
        assert_eq!(p.after_iteration(0, at(10), Some(at(10_000)), false), Step::Poll);
        assert_eq!(p.after_iteration(0, at(59), Some(at(10_000)), false), Step::Poll);
        assert_eq!(p.after_iteration(0, at(60), Some(at(10_000)), false), Step::Sleep { timeout_ms: 10 });
        p.woke();
        // After waking the spin starts over.
        assert_eq!(p.after_iteration(0, at(20_000), None, false), Step::Poll);
        assert_eq!(p.after_iteration(0, at(20_050), None, false), Step::Sleep { timeout_ms: MAX_SLEEP_MS });
    }

    #[test]
    fn work_restarts_the_spin() {
        let mut p = Poller::new(PollMode::Adaptive, 50);
        assert_eq!(p.after_iteration(0, at(0), None, false), Step::Poll);
        assert_eq!(p.after_iteration(1, at(40), None, false), Step::Poll);
        assert_eq!(p.after_iteration(0, at(60), None, false), Step::Poll, "idle since 60, not 0");
        assert_eq!(p.after_iteration(0, at(110), None, false), Step::Sleep { timeout_ms: MAX_SLEEP_MS });
    }

    #[test]
    fn a_due_timer_is_polled_not_slept_on() {
        let mut p = Poller::new(PollMode::Sleep, 50);
        assert_eq!(p.after_iteration(0, at(5000), Some(at(5000)), false), Step::Poll);
        assert_eq!(p.after_iteration(0, at(5000), Some(at(5001)), false), Step::Sleep { timeout_ms: 1 });
    }

    #[test]
    fn a_tx_backlog_sleeps_only_briefly() {
        let mut p = Poller::new(PollMode::Sleep, 0);
        assert_eq!(p.after_iteration(0, at(0), None, true), Step::Sleep { timeout_ms: TX_RETRY_MS });
    }

    #[test]
    fn busy_mode_never_sleeps_and_sleep_mode_never_spins() {
        let mut busy = Poller::new(PollMode::Busy, 50);
        for t in [0, 1_000_000, 10_000_000] {
            assert_eq!(busy.after_iteration(0, at(t), None, false), Step::Poll);
        }
        let mut sleepy = Poller::new(PollMode::Sleep, 1_000_000);
        assert_eq!(sleepy.after_iteration(0, at(0), None, false), Step::Sleep { timeout_ms: MAX_SLEEP_MS });
        assert_eq!(sleepy.after_iteration(2, at(0), None, false), Step::Poll);
    }
}
