//! Round-trip time estimation and the retransmission timeout (RFC 6298).
//!
//! Implements RFC 6298 §2 (SRTT/RTTVAR with alpha = 1/8, beta = 1/4, K = 4,
//! RTO = SRTT + max(G, K*RTTVAR), the lower and upper bounds of §2.4/§2.5) and
//! the exponential back-off of §5.5, which a new sample clears (§5.7).
//! Which samples to feed (Karn's algorithm, RFC 6298 §3; timestamp samples,
//! RFC 7323 §4) is the connection's decision.
//!
//! Arithmetic is integer microseconds, so it is exact and deterministic.

use crate::time::Duration;

/// Clock granularity G (RFC 6298 §2): our timestamps tick in milliseconds.
const CLOCK_GRANULARITY: Duration = Duration::from_millis(1);
/// K in RTO = SRTT + max(G, K*RTTVAR) (RFC 6298 §2).
const K: u64 = 4;

#[derive(Clone, Debug)]
pub struct RttEstimator {
    /// RTO before any sample (RFC 6298 §2.1).
    initial: Duration,
    min_rto: Duration,
    max_rto: Duration,
    /// SRTT and RTTVAR in microseconds, `None` until the first sample.
    smoothed: Option<Smoothed>,
    min_rtt: Option<Duration>,
    /// Consecutive timer expirations since the last sample (§5.5).
    backoff: u32,
}

#[derive(Clone, Copy, Debug)]
struct Smoothed {
    srtt_us: u64,
    rttvar_us: u64,
}

impl RttEstimator {
    /// Before the first sample the RTO is `initial` (RFC 6298 §2.1).
    pub fn new(initial: Duration, min_rto: Duration, max_rto: Duration) -> Self {
        // A misconfigured pair (min > max) must not make `rto` inconsistent:
        // the maximum wins.
        let min_rto = if min_rto > max_rto { max_rto } else { min_rto };
        RttEstimator { initial, min_rto, max_rto, smoothed: None, min_rtt: None, backoff: 0 }
    }

    /// A new RTT measurement (RFC 6298 §2.2–2.3). Clears any back-off (§5.7).
    pub fn on_sample(&mut self, rtt: Duration) {
        let r = rtt.total_micros();
        self.smoothed = Some(match self.smoothed {
            // §2.2: SRTT = R, RTTVAR = R/2.
            None => Smoothed { srtt_us: r, rttvar_us: r / 2 },
            // §2.3: RTTVAR = (1 - beta)*RTTVAR + beta*|SRTT - R'|, then
            // SRTT = (1 - alpha)*SRTT + alpha*R' (RTTVAR uses the old SRTT).
            Some(s) => {
                let err = s.srtt_us.abs_diff(r);
                let rttvar_us = s.rttvar_us - s.rttvar_us / 4 + err / 4;
                let srtt_us = s.srtt_us - s.srtt_us / 8 + r / 8;
                Smoothed { srtt_us, rttvar_us }
            }
        });
        self.min_rtt = Some(match self.min_rtt {
            Some(m) if m <= rtt => m,
            _ => rtt,
        });
        self.backoff = 0;
    }

    /// Current RTO including back-off, clamped to [min, max] (§2.4, §2.5).
    pub fn rto(&self) -> Duration {
        let base = match self.smoothed {
            None => self.initial,
            Some(s) => {
                let var_term = (s.rttvar_us.saturating_mul(K)).max(CLOCK_GRANULARITY.total_micros());
                Duration::from_micros(s.srtt_us.saturating_add(var_term))
            }
        };
        let base = self.clamp(base);
        // §5.5: RTO <- RTO * 2 per expiration; the shift saturates rather than wraps.
        let factor = 1u64.checked_shl(self.backoff).unwrap_or(u64::MAX);
        self.clamp(base.saturating_mul(factor))
    }

    /// The retransmission timer expired: double the RTO (§5.5).
    pub fn on_timeout(&mut self) {
        self.backoff = self.backoff.saturating_add(1);
    }

    /// Number of consecutive back-offs since the last sample.
    pub fn backoff_count(&self) -> u32 {
        self.backoff
    }

    pub fn srtt(&self) -> Option<Duration> {
        self.smoothed.map(|s| Duration::from_micros(s.srtt_us))
    }

    pub fn rttvar(&self) -> Option<Duration> {
        self.smoothed.map(|s| Duration::from_micros(s.rttvar_us))
    }

    /// Smallest RTT seen (for CUBIC and for reporting).
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt
    }

    fn clamp(&self, d: Duration) -> Duration {
        if d < self.min_rto {
            self.min_rto
        } else if d > self.max_rto {
            self.max_rto
        } else {
            d
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn estimator() -> RttEstimator {
        RttEstimator::new(ms(1000), ms(200), ms(60_000))
    }

    #[test]
    fn initial_rto_before_any_sample() {
        let e = estimator();
        assert_eq!(e.rto(), ms(1000));
        assert_eq!(e.srtt(), None);
        assert_eq!(e.rttvar(), None);
        assert_eq!(e.min_rtt(), None);
    }

    #[test]
    fn first_sample_sets_srtt_and_half_rttvar() {
        let mut e = estimator();
        e.on_sample(ms(100));
        assert_eq!(e.srtt(), Some(ms(100)));
        assert_eq!(e.rttvar(), Some(ms(50)));
        // 100 + 4*50 = 300 ms.
        assert_eq!(e.rto(), ms(300));
    }

    #[test]
    fn subsequent_samples_follow_the_ewma() {
        let mut e = estimator();
        e.on_sample(ms(100));
        e.on_sample(ms(200));
        // RTTVAR = 3/4*50 + 1/4*|100-200| = 37.5 + 25 = 62.5 ms
        // SRTT = 7/8*100 + 1/8*200 = 112.5 ms
        assert_eq!(e.rttvar(), Some(Duration::from_micros(62_500)));
        assert_eq!(e.srtt(), Some(Duration::from_micros(112_500)));
        assert_eq!(e.rto(), Duration::from_micros(112_500 + 4 * 62_500));
        assert_eq!(e.min_rtt(), Some(ms(100)));
        e.on_sample(ms(40));
        assert_eq!(e.min_rtt(), Some(ms(40)));
    }

    #[test]
    fn granularity_floor_applies_when_rttvar_is_tiny() {
        let mut e = RttEstimator::new(ms(1000), Duration::ZERO, ms(60_000));
        for _ in 0..200 {
            e.on_sample(Duration::from_micros(500));
        }
        // RTTVAR has decayed to ~0, so the variance term is G = 1 ms.
        assert!(e.rttvar().unwrap() < Duration::from_micros(10));
        assert_eq!(e.rto(), e.srtt().unwrap() + ms(1));
    }

    #[test]
    fn rto_clamped_to_min_and_max() {
        let mut e = estimator();
        e.on_sample(ms(10));
        assert_eq!(e.rto(), ms(200));
        e.on_sample(ms(100_000));
        assert_eq!(e.rto(), ms(60_000));
    }

    #[test]
    fn backoff_doubles_saturates_and_clears_on_sample() {
        let mut e = estimator();
        e.on_sample(ms(100));
        assert_eq!(e.rto(), ms(300));
        e.on_timeout();
        assert_eq!(e.backoff_count(), 1);
        assert_eq!(e.rto(), ms(600));
        e.on_timeout();
        assert_eq!(e.rto(), ms(1200));
        for _ in 0..200 {
            e.on_timeout();
        }
        assert_eq!(e.backoff_count(), 202);
        assert_eq!(e.rto(), ms(60_000));
        e.on_sample(ms(100));
        assert_eq!(e.backoff_count(), 0);
        assert!(e.rto() < ms(1000));
    }

    #[test]
    fn backoff_applies_to_initial_rto() {
        let mut e = estimator();
        e.on_timeout();
        assert_eq!(e.rto(), ms(2000));
    }

    #[test]
    fn inverted_bounds_do_not_panic() {
        let mut e = RttEstimator::new(ms(1000), ms(500), ms(100));
        e.on_sample(ms(1));
        assert_eq!(e.rto(), ms(100));
    }
}
