//! Congestion control: NewReno (RFC 5681, RFC 6582) and CUBIC (RFC 9438),
//! chosen per connection. Loss *detection* and the recovery procedure (which
//! segments to retransmit) live in the connection; this module owns the
//! congestion window and slow-start threshold.

pub mod cubic;
pub mod newreno;

use crate::config::CongestionAlgorithm;
use crate::time::{Duration, Instant};

/// One connection's congestion controller (enum dispatch: no allocation, no vtable).
#[derive(Clone, Debug)]
pub enum CongestionControl {
    NewReno(newreno::NewReno),
    Cubic(cubic::Cubic),
}

impl CongestionControl {
    /// Initial window `initial_segments * mss` (RFC 6928), ssthresh "arbitrarily high" (RFC 5681 §3.1).
    pub fn new(algorithm: CongestionAlgorithm, mss: usize, initial_segments: u32) -> Self {
        let _ = (algorithm, mss, initial_segments);
        todo!()
    }
    pub fn algorithm(&self) -> CongestionAlgorithm {
        todo!()
    }
    /// Congestion window in bytes.
    pub fn cwnd(&self) -> usize {
        todo!()
    }
    pub fn ssthresh(&self) -> usize {
        todo!()
    }
    /// The MSS changed (after option negotiation or PMTU); windows keep their segment counts.
    pub fn set_mss(&mut self, mss: usize) {
        let _ = mss;
        todo!()
    }
    /// `acked` new bytes were cumulatively acknowledged outside loss recovery:
    /// slow start or congestion avoidance (RFC 5681 §3.1, RFC 9438 §4).
    /// `in_flight` is the data outstanding before this ACK; `rtt` the smoothed RTT.
    pub fn on_ack(&mut self, now: Instant, acked: usize, in_flight: usize, rtt: Option<Duration>) {
        let _ = (now, acked, in_flight, rtt);
        todo!()
    }
    /// Loss detected by duplicate ACKs/SACK: entering fast recovery. Sets ssthresh
    /// (RFC 5681 eq. 4 / RFC 9438 §4.6) and cwnd = ssthresh (RFC 6675 §5 step 4.2).
    pub fn on_congestion_event(&mut self, now: Instant, in_flight: usize) {
        let _ = (now, in_flight);
        todo!()
    }
    /// Fast recovery ended (RFC 6582 §3.2 step 3: cwnd = ssthresh, or the
    /// flight size + MSS if smaller).
    pub fn on_recovery_exit(&mut self, now: Instant, in_flight: usize) {
        let _ = (now, in_flight);
        todo!()
    }
    /// Retransmission timeout (RFC 5681 §3.1 eq. 4 then cwnd = 1 MSS, the loss window).
    pub fn on_rto(&mut self, now: Instant, in_flight: usize) {
        let _ = (now, in_flight);
        todo!()
    }
    /// The connection was idle for more than an RTO (RFC 5681 §4.1 restart window).
    pub fn on_idle_restart(&mut self, now: Instant) {
        let _ = now;
        todo!()
    }
    /// Direct window adjustment for NewReno's non-SACK recovery (RFC 6582 §3.2:
    /// inflation by one MSS per duplicate ACK, deflation on partial ACKs).
    pub fn set_cwnd(&mut self, cwnd: usize) {
        let _ = cwnd;
        todo!()
    }
}
