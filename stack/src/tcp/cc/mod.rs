//! Congestion control: NewReno (RFC 5681, RFC 6582) and CUBIC (RFC 9438),
//! chosen per connection. Loss *detection* and the recovery procedure (which
//! segments to retransmit) live in the connection; this module owns the
//! congestion window and slow-start threshold.
//!
//! Shared rules implemented here: the initial window (RFC 6928), slow start
//! with appropriate byte counting (RFC 5681 §3.1, RFC 3465 §2.1; no per-ACK
//! cap, see `slow_start_increase`), the restart window after idle (RFC 5681 §4.1), the window
//! on leaving fast recovery (RFC 6582 §3.2 step 3), and holding ssthresh
//! across repeated timeouts (RFC 5681 §3.1, after eq. 4), and growing cwnd
//! only while it is actually used (the idea of RFC 7661 §4.3; see
//! `is_window_limited`).
//!
//! Every window is kept within `[1 MSS, MAX_WINDOW]`, and all arithmetic
//! saturates or is guarded so that no input can panic.

pub mod cubic;
pub mod newreno;

use crate::config::CongestionAlgorithm;
use crate::time::{Duration, Instant};

/// Upper bound on cwnd: far above any real bandwidth-delay product, and keeps
/// byte counts well inside the 2^31 sequence space.
pub const MAX_WINDOW: usize = 1 << 30;

/// Slow-start increase for an ACK of `acked` bytes: appropriate byte counting
/// (RFC 3465 §2.1), without §2.2's per-ACK cap of L = 2*SMSS. The cap assumes
/// one ACK per one or two segments; receivers that batch (Linux's GRO, this
/// stack's own batch polling) send stretch ACKs as the norm, and with the cap
/// slow start turns linear. Linux counts every acknowledged segment the same
/// way (`tcp_slow_start`).
fn slow_start_increase(acked: usize, _mss: usize) -> usize {
    acked
}

/// Keeps a window within `[mss, MAX_WINDOW]`.
fn clamp_window(window: usize, mss: usize) -> usize {
    window.clamp(mss.min(MAX_WINDOW), MAX_WINDOW)
}

/// RFC 6582 §3.2 step 3, option (1): cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS),
/// which avoids a burst when little data is outstanding at the end of recovery.
fn recovery_exit_window(ssthresh: usize, in_flight: usize, mss: usize) -> usize {
    ssthresh.min(in_flight.max(mss).saturating_add(mss))
}

/// Whether an ACK may grow cwnd: at least half the window was in flight.
/// An application-limited sender has not shown the network can take a larger
/// window, so growing it would license an unvalidated burst later (RFC 7661
/// §4.3 holds cwnd in this case; the half-window threshold is the one Linux
/// applies in slow start, where a window-limited sender is always above it).
fn is_window_limited(in_flight: usize, cwnd: usize) -> bool {
    in_flight.saturating_mul(2) >= cwnd
}

/// Rescales a byte count kept as a number of segments of `old_mss` to `new_mss`.
fn rescale(bytes: usize, old_mss: usize, new_mss: usize) -> usize {
    if bytes == usize::MAX || old_mss == 0 {
        return bytes;
    }
    let scaled = (bytes as u128).saturating_mul(new_mss as u128) / old_mss as u128;
    usize::try_from(scaled).unwrap_or(usize::MAX)
}

/// One connection's congestion controller (enum dispatch: no allocation, no vtable).
#[derive(Clone, Debug)]
pub enum CongestionControl {
    NewReno(newreno::NewReno),
    Cubic(cubic::Cubic),
}

impl CongestionControl {
    /// Initial window `initial_segments * mss` (RFC 6928), ssthresh "arbitrarily high" (RFC 5681 §3.1).
    pub fn new(algorithm: CongestionAlgorithm, mss: usize, initial_segments: u32) -> Self {
        match algorithm {
            CongestionAlgorithm::NewReno => {
                CongestionControl::NewReno(newreno::NewReno::new(mss, initial_segments))
            }
            CongestionAlgorithm::Cubic => CongestionControl::Cubic(cubic::Cubic::new(mss, initial_segments)),
        }
    }
    pub fn algorithm(&self) -> CongestionAlgorithm {
        match self {
            CongestionControl::NewReno(_) => CongestionAlgorithm::NewReno,
            CongestionControl::Cubic(_) => CongestionAlgorithm::Cubic,
        }
    }
    /// Congestion window in bytes.
    pub fn cwnd(&self) -> usize {
        match self {
            CongestionControl::NewReno(c) => c.cwnd(),
            CongestionControl::Cubic(c) => c.cwnd(),
        }
    }
    pub fn ssthresh(&self) -> usize {
        match self {
            CongestionControl::NewReno(c) => c.ssthresh(),
            CongestionControl::Cubic(c) => c.ssthresh(),
        }
    }
    /// True while cwnd is below ssthresh (RFC 5681 §3.1).
    pub fn in_slow_start(&self) -> bool {
        self.cwnd() < self.ssthresh()
    }
    /// The MSS changed (after option negotiation or PMTU); windows keep their segment counts.
    pub fn set_mss(&mut self, mss: usize) {
        match self {
            CongestionControl::NewReno(c) => c.set_mss(mss),
            CongestionControl::Cubic(c) => c.set_mss(mss),
        }
    }
    /// `acked` new bytes were cumulatively acknowledged outside loss recovery:
    /// slow start or congestion avoidance (RFC 5681 §3.1, RFC 9438 §4).
    /// `in_flight` is the data outstanding before this ACK; `rtt` the smoothed RTT.
    /// The window does not grow while less than half of it is in flight
    /// (application-limited).
    pub fn on_ack(&mut self, now: Instant, acked: usize, in_flight: usize, rtt: Option<Duration>) {
        if !is_window_limited(in_flight, self.cwnd()) {
            return;
        }
        match self {
            CongestionControl::NewReno(c) => c.on_ack(acked),
            CongestionControl::Cubic(c) => c.on_ack(now, acked, in_flight, rtt),
        }
    }
    /// Loss detected by duplicate ACKs/SACK: entering fast recovery. Sets ssthresh
    /// (RFC 5681 eq. 4 / RFC 9438 §4.6) and cwnd = ssthresh (RFC 6675 §5 step 4.2).
    pub fn on_congestion_event(&mut self, now: Instant, in_flight: usize) {
        match self {
            CongestionControl::NewReno(c) => c.on_congestion_event(in_flight),
            CongestionControl::Cubic(c) => c.on_congestion_event(now, in_flight),
        }
    }
    /// Fast recovery ended (RFC 6582 §3.2 step 3: cwnd = ssthresh, or the
    /// flight size + MSS if smaller).
    pub fn on_recovery_exit(&mut self, now: Instant, in_flight: usize) {
        match self {
            CongestionControl::NewReno(c) => c.on_recovery_exit(in_flight),
            CongestionControl::Cubic(c) => c.on_recovery_exit(now, in_flight),
        }
    }
    /// Retransmission timeout (RFC 5681 §3.1 eq. 4 then cwnd = 1 MSS, the loss window).
    pub fn on_rto(&mut self, now: Instant, in_flight: usize) {
        match self {
            CongestionControl::NewReno(c) => c.on_rto(in_flight),
            CongestionControl::Cubic(c) => c.on_rto(now, in_flight),
        }
    }
    /// The connection was idle for more than an RTO (RFC 5681 §4.1 restart window).
    pub fn on_idle_restart(&mut self, now: Instant) {
        match self {
            CongestionControl::NewReno(c) => c.on_idle_restart(),
            CongestionControl::Cubic(c) => c.on_idle_restart(now),
        }
    }
    /// Direct window adjustment for NewReno's non-SACK recovery (RFC 6582 §3.2:
    /// inflation by one MSS per duplicate ACK, deflation on partial ACKs).
    pub fn set_cwnd(&mut self, cwnd: usize) {
        match self {
            CongestionControl::NewReno(c) => c.set_cwnd(cwnd),
            CongestionControl::Cubic(c) => c.set_cwnd(cwnd),
        }
    }
}

#[cfg(test)]
mod tests;
