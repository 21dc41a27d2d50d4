//! NewReno window arithmetic: RFC 5681 §3.1 (slow start with RFC 3465 §2.1
//! appropriate byte counting, congestion avoidance, ssthresh = max(FlightSize/2,
//! 2*SMSS), the one-segment loss window after a timeout), RFC 5681 §4.1 (restart
//! window) and RFC 6582 §3.2 (window on leaving fast recovery; the inflation and
//! deflation themselves are applied by the connection through `set_cwnd`).

use super::{clamp_window, recovery_exit_window, rescale, slow_start_increase, MAX_WINDOW};

#[derive(Clone, Debug)]
pub struct NewReno {
    mss: usize,
    initial_segments: u32,
    cwnd: usize,
    ssthresh: usize,
    /// Bytes acknowledged in congestion avoidance since cwnd last grew
    /// (RFC 5681 §3.1's byte-counting variant of cwnd += SMSS*SMSS/cwnd).
    ca_bytes_acked: usize,
    /// A timeout fired and no new data has been acknowledged since: a further
    /// timeout must not lower ssthresh again (RFC 5681 §3.1, after eq. 4).
    in_timeout: bool,
}

impl NewReno {
    pub fn new(mss: usize, initial_segments: u32) -> Self {
        let mss = mss.max(1);
        NewReno {
            mss,
            initial_segments,
            cwnd: clamp_window(initial_window(mss, initial_segments), mss),
            ssthresh: usize::MAX,
            ca_bytes_acked: 0,
            in_timeout: false,
        }
    }
    pub fn mss(&self) -> usize {
        self.mss
    }
    pub fn cwnd(&self) -> usize {
        self.cwnd
    }
    pub fn ssthresh(&self) -> usize {
        self.ssthresh
    }
    pub fn set_mss(&mut self, mss: usize) {
        let mss = mss.max(1);
        self.cwnd = clamp_window(rescale(self.cwnd, self.mss, mss), mss);
        self.ssthresh = rescale(self.ssthresh, self.mss, mss);
        self.ca_bytes_acked = rescale(self.ca_bytes_acked, self.mss, mss);
        self.mss = mss;
    }
    pub fn on_ack(&mut self, acked: usize) {
        if acked == 0 {
            return;
        }
        self.in_timeout = false;
        if self.cwnd < self.ssthresh {
            self.cwnd = clamp_window(self.cwnd.saturating_add(slow_start_increase(acked, self.mss)), self.mss);
        } else {
            // Byte counting: one SMSS per cwnd's worth of acknowledged bytes,
            // i.e. one segment per RTT, independent of delayed ACKs.
            self.ca_bytes_acked = self.ca_bytes_acked.saturating_add(acked);
            if self.ca_bytes_acked >= self.cwnd {
                self.ca_bytes_acked -= self.cwnd;
                self.cwnd = clamp_window(self.cwnd.saturating_add(self.mss), self.mss);
            }
        }
    }
    /// RFC 5681 eq. (4) then cwnd = ssthresh (RFC 6675 §5 step 4.2; RFC 6582's
    /// "+3*SMSS" inflation is the connection's, via `set_cwnd`).
    pub fn on_congestion_event(&mut self, in_flight: usize) {
        self.ssthresh = loss_ssthresh(in_flight, self.mss);
        self.cwnd = clamp_window(self.ssthresh, self.mss);
        self.ca_bytes_acked = 0;
    }
    pub fn on_recovery_exit(&mut self, in_flight: usize) {
        self.cwnd = clamp_window(recovery_exit_window(self.ssthresh, in_flight, self.mss), self.mss);
        self.ca_bytes_acked = 0;
    }
    pub fn on_rto(&mut self, in_flight: usize) {
        if !self.in_timeout {
            self.ssthresh = loss_ssthresh(in_flight, self.mss);
        }
        self.in_timeout = true;
        self.cwnd = self.mss.min(MAX_WINDOW);
        self.ca_bytes_acked = 0;
    }
    /// RFC 5681 §4.1: RW = min(IW, cwnd).
    pub fn on_idle_restart(&mut self) {
        self.cwnd = clamp_window(self.cwnd.min(initial_window(self.mss, self.initial_segments)), self.mss);
        self.ca_bytes_acked = 0;
    }
    pub fn set_cwnd(&mut self, cwnd: usize) {
        self.cwnd = clamp_window(cwnd, self.mss);
    }
}

/// RFC 6928 initial window; at least one segment.
pub(super) fn initial_window(mss: usize, initial_segments: u32) -> usize {
    mss.saturating_mul(initial_segments.max(1) as usize)
}

/// RFC 5681 eq. (4): ssthresh = max(FlightSize / 2, 2*SMSS).
fn loss_ssthresh(in_flight: usize, mss: usize) -> usize {
    (in_flight / 2).max(mss.saturating_mul(2)).min(MAX_WINDOW)
}
