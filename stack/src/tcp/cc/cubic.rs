//! CUBIC (RFC 9438): W_cubic(t) = C*(t-K)^3 + W_max, with the Reno-friendly region.
//!
//! Implements RFC 9438 §4.2 (the window function and K, using cwnd_epoch),
//! §4.3 (Reno-friendly region via W_est, alpha_cubic = 3(1-beta)/(1+beta)
//! until W_est reaches cwnd_prior, then 1), §4.4–4.5 (concave and convex
//! regions: per ACK cwnd += (target - cwnd)/cwnd with target = W_cubic(t+RTT)
//! bounded to [cwnd, 1.5*cwnd]), §4.6 (multiplicative decrease with
//! beta_cubic = 0.7 on the flight size), §4.7 (fast convergence), §4.8 (after
//! a timeout: one-segment window, then the first congestion avoidance stage
//! uses K = 0 and W_max = cwnd_epoch) and §4.10 (standard slow start below
//! ssthresh).
//!
//! Windows are tracked in bytes as `f64` (the RFC works in segments; a
//! segment is `mss` bytes), so growth by fractions of a segment per ACK is not
//! lost. Every result is clamped to `[1 MSS, MAX_WINDOW]`; no input can make
//! the arithmetic panic or produce NaN.

use super::newreno::initial_window;
use super::{recovery_exit_window, slow_start_increase, MAX_WINDOW};
use crate::time::{Duration, Instant};

/// C, in segments per second^3 (RFC 9438 §5.1).
pub const C: f64 = 0.4;
/// beta_cubic, the multiplicative decrease factor (RFC 9438 §4.6).
pub const BETA: f64 = 0.7;
/// alpha_cubic = 3*(1 - beta)/(1 + beta) (RFC 9438 §4.3): makes W_est grow
/// like Reno's average window for the same loss rate.
pub const ALPHA: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);

#[derive(Clone, Debug)]
pub struct Cubic {
    mss: usize,
    initial_segments: u32,
    /// Congestion window, bytes.
    cwnd: f64,
    ssthresh: usize,
    /// Window just before the last reduction, after fast convergence (§4.7), bytes.
    w_max: f64,
    /// cwnd just before the last reduction (§4.6), bytes: where W_est switches
    /// to Reno's full additive increase (§4.3).
    cwnd_prior: f64,
    /// The current congestion avoidance stage; `None` until its first ACK.
    epoch: Option<Epoch>,
    /// The next congestion avoidance stage follows a timeout (§4.8).
    after_timeout: bool,
    /// A timeout fired and nothing new was acknowledged since: hold ssthresh on
    /// a repeated timeout (RFC 5681 §3.1).
    in_timeout: bool,
}

#[derive(Clone, Copy, Debug)]
struct Epoch {
    start: Instant,
    /// K in seconds (§4.2).
    k: f64,
    /// The plateau W_cubic returns to at t = K, bytes.
    plateau: f64,
    /// Reno-friendly estimate W_est, bytes (§4.3).
    w_est: f64,
}

impl Cubic {
    pub fn new(mss: usize, initial_segments: u32) -> Self {
        let mss = mss.max(1);
        let mut cubic = Cubic {
            mss,
            initial_segments,
            cwnd: 0.0,
            ssthresh: usize::MAX,
            w_max: 0.0,
            cwnd_prior: 0.0,
            epoch: None,
            after_timeout: false,
            in_timeout: false,
        };
        cubic.cwnd = cubic.clamp(initial_window(mss, initial_segments) as f64);
        cubic
    }
    pub fn mss(&self) -> usize {
        self.mss
    }
    pub fn cwnd(&self) -> usize {
        // Float-to-integer casts saturate; the value is already clamped.
        self.cwnd as usize
    }
    pub fn ssthresh(&self) -> usize {
        self.ssthresh
    }
    /// W_max in bytes (after fast convergence).
    pub fn w_max(&self) -> usize {
        self.w_max as usize
    }
    /// K of the current congestion avoidance stage, if one has started.
    pub fn k(&self) -> Option<Duration> {
        self.epoch.map(|e| Duration::from_secs_f64(e.k))
    }

    pub fn set_mss(&mut self, mss: usize) {
        let mss = mss.max(1);
        let ratio = mss as f64 / self.mss as f64;
        self.cwnd *= ratio;
        self.w_max *= ratio;
        self.cwnd_prior *= ratio;
        if self.ssthresh != usize::MAX {
            self.ssthresh = ((self.ssthresh as f64) * ratio).min(MAX_WINDOW as f64) as usize;
        }
        if let Some(e) = self.epoch.as_mut() {
            e.plateau *= ratio;
            e.w_est *= ratio;
        }
        self.mss = mss;
        self.cwnd = self.clamp(self.cwnd);
    }

    pub fn on_ack(&mut self, now: Instant, acked: usize, _in_flight: usize, rtt: Option<Duration>) {
        if acked == 0 {
            return;
        }
        self.in_timeout = false;
        if (self.cwnd as usize) < self.ssthresh {
            // §4.10: standard slow start below ssthresh.
            self.cwnd = self.clamp(self.cwnd + slow_start_increase(acked, self.mss) as f64);
            return;
        }
        let epoch = self.epoch_at(now);
        let acked = acked as f64;
        let mss = self.mss as f64;

        // §4.3: W_est grows by alpha_cubic segments per window acknowledged.
        let alpha = if epoch.w_est >= self.cwnd_prior { 1.0 } else { ALPHA };
        let w_est = epoch.w_est + alpha * mss * acked / self.cwnd;
        if let Some(e) = self.epoch.as_mut() {
            e.w_est = w_est.min(MAX_WINDOW as f64);
        }

        let t = now.saturating_since(epoch.start).as_secs_f64();
        if self.w_cubic(&epoch, t) < w_est {
            // Reno-friendly region: cwnd follows W_est.
            self.cwnd = self.clamp(w_est.max(self.cwnd));
        } else {
            // §4.4/§4.5: aim for where the curve will be one RTT from now,
            // but never more than 1.5x the current window.
            let rtt = rtt.map_or(0.0, Duration::as_secs_f64);
            let target = self.w_cubic(&epoch, t + rtt).clamp(self.cwnd, 1.5 * self.cwnd);
            // (target - cwnd)/cwnd segments per segment acknowledged, i.e.
            // (target - cwnd) * acked/cwnd bytes; a stretch ACK may not
            // overshoot the target.
            let grown = self.cwnd + (target - self.cwnd) * acked / self.cwnd;
            self.cwnd = self.clamp(grown.min(target));
        }
    }

    /// §4.6 multiplicative decrease with §4.7 fast convergence; cwnd = ssthresh.
    pub fn on_congestion_event(&mut self, _now: Instant, in_flight: usize) {
        self.reduce(in_flight);
        self.cwnd = self.clamp(self.ssthresh as f64);
    }

    pub fn on_recovery_exit(&mut self, _now: Instant, in_flight: usize) {
        let window = recovery_exit_window(self.ssthresh, in_flight, self.mss);
        self.cwnd = self.clamp(window as f64);
        self.epoch = None;
    }

    /// §4.8: ssthresh from beta_cubic, cwnd = 1 MSS, and the next congestion
    /// avoidance stage starts from K = 0.
    pub fn on_rto(&mut self, _now: Instant, in_flight: usize) {
        if !self.in_timeout {
            self.reduce(in_flight);
        }
        self.in_timeout = true;
        self.after_timeout = true;
        self.cwnd = self.clamp(self.mss as f64);
    }

    /// RFC 5681 §4.1: RW = min(IW, cwnd); a new congestion avoidance stage follows.
    pub fn on_idle_restart(&mut self, _now: Instant) {
        let iw = initial_window(self.mss, self.initial_segments) as f64;
        self.cwnd = self.clamp(self.cwnd.min(iw));
        self.epoch = None;
    }

    pub fn set_cwnd(&mut self, cwnd: usize) {
        self.cwnd = self.clamp(cwnd as f64);
    }

    /// Lowers ssthresh and records W_max/cwnd_prior for a congestion event.
    fn reduce(&mut self, in_flight: usize) {
        // §4.7 fast convergence: a flow whose window stopped short of the last
        // W_max releases bandwidth by remembering a lower plateau.
        self.w_max = if self.cwnd < self.w_max { self.cwnd * (1.0 + BETA) / 2.0 } else { self.cwnd };
        self.cwnd_prior = self.cwnd;
        let ssthresh = (in_flight as f64 * BETA).max(2.0 * self.mss as f64);
        self.ssthresh = ssthresh.min(MAX_WINDOW as f64) as usize;
        self.epoch = None;
    }

    /// The current congestion avoidance stage, starting it at `now` if needed.
    fn epoch_at(&mut self, now: Instant) -> Epoch {
        if let Some(e) = self.epoch {
            return e;
        }
        let cwnd_epoch = self.cwnd;
        let (k, plateau) = if self.after_timeout || self.w_max <= cwnd_epoch {
            // §4.8 after a timeout, or a window already past W_max (e.g. leaving
            // slow start without loss): grow from here, convex from t = 0.
            (0.0, cwnd_epoch)
        } else {
            // §4.2: K = cbrt((W_max - cwnd_epoch) / C), in segments.
            let deficit_segments = (self.w_max - cwnd_epoch) / self.mss as f64;
            ((deficit_segments / C).cbrt(), self.w_max)
        };
        self.after_timeout = false;
        let e = Epoch { start: now, k, plateau, w_est: cwnd_epoch };
        self.epoch = Some(e);
        e
    }

    /// W_cubic(t) in bytes (§4.2 eq. 1).
    fn w_cubic(&self, e: &Epoch, t: f64) -> f64 {
        let d = t - e.k;
        C * d * d * d * self.mss as f64 + e.plateau
    }

    fn clamp(&self, w: f64) -> f64 {
        let lo = self.mss.min(MAX_WINDOW) as f64;
        if w.is_nan() {
            lo
        } else {
            w.clamp(lo, MAX_WINDOW as f64)
        }
    }
}
