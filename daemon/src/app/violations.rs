//! Counting an app's protocol violations (design §2.3, §3.6): an index
//! word out of range aborts the session it belongs to; more than
//! [`KILL_THRESHOLD`] within one second kill the whole app worker.

use sluice_stack::{Duration, Instant};

/// Violations tolerated within one window; one more kills the app.
pub(super) const KILL_THRESHOLD: u32 = 3;
const WINDOW: Duration = Duration::from_secs(1);

/// An app's violations: the total, and those of the current window.
#[derive(Debug, Default)]
pub(super) struct ViolationLog {
    total: u64,
    window_start: Option<Instant>,
    in_window: u32,
}

impl ViolationLog {
    /// Records one violation at `now`; returns whether the app has now
    /// earned being killed. The first violation of each window is logged.
    pub(super) fn record(&mut self, now: Instant, app: u32, what: &dyn std::fmt::Display) -> bool {
        self.total += 1;
        let fresh = self.window_start.map_or(true, |start| now.saturating_since(start) >= WINDOW);
        if fresh {
            self.window_start = Some(now);
            self.in_window = 0;
            log::warn!("app worker {app}: protocol violation: {what}");
        }
        self.in_window += 1;
        self.in_window > KILL_THRESHOLD
    }

    pub(super) fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_than_three_in_a_second_kill() {
        let mut log = ViolationLog::default();
        let t = Instant::from_secs(10);
        for i in 0..KILL_THRESHOLD {
            assert!(!log.record(t + Duration::from_millis(u64::from(i) * 100), 1, &"x"));
        }
        assert!(log.record(t + Duration::from_millis(900), 1, &"x"));
        assert_eq!(log.total(), 4);
    }

    #[test]
    fn spread_out_violations_do_not_kill() {
        let mut log = ViolationLog::default();
        for i in 0..20 {
            assert!(!log.record(Instant::from_secs(10 + i), 1, &"x"), "one a second is tolerated");
        }
        assert_eq!(log.total(), 20);
    }
}
