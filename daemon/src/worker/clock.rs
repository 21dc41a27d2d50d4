//! The engine's time source: `CLOCK_MONOTONIC`, read once per worker
//! iteration (design §3.3), so everything one iteration does happens at one
//! `now` and the engine's timers never see time run backwards.

use sluice_stack::Instant;

/// Monotonic microseconds since the clock was made. `std::time::Instant`
/// is `CLOCK_MONOTONIC` on Linux (read through the vDSO, no syscall).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: std::time::Instant,
}

impl Clock {
    pub fn new() -> Clock {
        Clock { origin: std::time::Instant::now() }
    }

    /// The current time. The engine's epoch is the clock's creation, so
    /// `Instant::ZERO` is never in the future.
    pub fn now(&self) -> Instant {
        let us = self.origin.elapsed().as_micros();
        Instant::from_micros(u64::try_from(us).unwrap_or(u64::MAX))
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_moves_forward_in_microseconds() {
        let clock = Clock::new();
        let a = clock.now();
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(2);
        while std::time::Instant::now() < deadline {
            std::hint::spin_loop();
        }
        let b = clock.now();
        assert!(b.saturating_since(a).total_micros() >= 2000, "{a:?} -> {b:?}");
    }
}
