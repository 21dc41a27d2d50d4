//! Round-trip time estimation and the retransmission timeout (RFC 6298).
//! Which samples to feed (Karn's algorithm, RFC 6298 §3; timestamp samples,
//! RFC 7323 §4) is the connection's decision.

use crate::time::Duration;

#[derive(Clone, Debug)]
pub struct RttEstimator {
    _todo: (),
}

impl RttEstimator {
    /// Before the first sample the RTO is `initial` (RFC 6298 §2.1).
    pub fn new(initial: Duration, min_rto: Duration, max_rto: Duration) -> Self {
        let _ = (initial, min_rto, max_rto);
        todo!()
    }
    /// A new RTT measurement (RFC 6298 §2.2–2.3). Clears any back-off (§5.7).
    pub fn on_sample(&mut self, rtt: Duration) {
        let _ = rtt;
        todo!()
    }
    /// Current RTO including back-off, clamped to [min, max] (§2.4, §2.5).
    pub fn rto(&self) -> Duration {
        todo!()
    }
    /// The retransmission timer expired: double the RTO (§5.5).
    pub fn on_timeout(&mut self) {
        todo!()
    }
    /// Number of consecutive back-offs since the last sample.
    pub fn backoff_count(&self) -> u32 {
        todo!()
    }
    pub fn srtt(&self) -> Option<Duration> {
        todo!()
    }
    pub fn rttvar(&self) -> Option<Duration> {
        todo!()
    }
    /// Smallest RTT seen (for CUBIC and for reporting).
    pub fn min_rtt(&self) -> Option<Duration> {
        todo!()
    }
}
