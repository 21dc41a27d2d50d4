//! Window-evolution tests for both controllers, driven by a simulated ACK clock.

use super::cubic::Cubic;
use super::*;
use proptest::prelude::*;

const MSS: usize = 1000;

fn reno() -> CongestionControl {
    CongestionControl::new(CongestionAlgorithm::NewReno, MSS, 10)
}
fn cubic() -> CongestionControl {
    CongestionControl::new(CongestionAlgorithm::Cubic, MSS, 10)
}

/// One round trip of a window-limited sender: every full segment of the
/// window at the start of the round is acknowledged individually, spread
/// evenly across the RTT. Returns the time at the end of the round.
fn one_rtt(cc: &mut CongestionControl, now: Instant, rtt: Duration) -> Instant {
    let segments = (cc.cwnd() / MSS).max(1) as u64;
    let in_flight = cc.cwnd();
    for i in 0..segments {
        let at = now + Duration::from_micros(rtt.total_micros() * i / segments);
        cc.on_ack(at, MSS, in_flight, Some(rtt));
    }
    now + rtt
}

/// Grows the window in slow start to exactly `segments` MSS.
fn grow_to(cc: &mut CongestionControl, segments: usize) {
    while cc.cwnd() < segments * MSS {
        cc.on_ack(Instant::ZERO, MSS, cc.cwnd(), None);
    }
    assert_eq!(cc.cwnd(), segments * MSS);
}

#[test]
fn initial_window_and_infinite_ssthresh() {
    for cc in [reno(), cubic()] {
        assert_eq!(cc.cwnd(), 10 * MSS);
        assert_eq!(cc.ssthresh(), usize::MAX);
        assert!(cc.in_slow_start());
    }
    assert_eq!(reno().algorithm(), CongestionAlgorithm::NewReno);
    assert_eq!(cubic().algorithm(), CongestionAlgorithm::Cubic);
}

#[test]
fn slow_start_doubles_every_rtt() {
    for mut cc in [reno(), cubic()] {
        let rtt = Duration::from_millis(50);
        let mut now = Instant::from_secs(1);
        for round in 1..=5 {
            now = one_rtt(&mut cc, now, rtt);
            assert_eq!(cc.cwnd(), (10 << round) * MSS, "{:?} round {round}", cc.algorithm());
        }
    }
}

#[test]
fn slow_start_counts_every_byte_of_a_stretch_ack() {
    for mut cc in [reno(), cubic()] {
        // One ACK for a whole 10-segment flight (a batching receiver) doubles the window.
        cc.on_ack(Instant::ZERO, 10 * MSS, 10 * MSS, None);
        assert_eq!(cc.cwnd(), 20 * MSS);
        cc.on_ack(Instant::ZERO, 500, 20 * MSS, None);
        assert_eq!(cc.cwnd(), 20 * MSS + 500);
        cc.on_ack(Instant::ZERO, 0, 20 * MSS, None);
        assert_eq!(cc.cwnd(), 20 * MSS + 500);
    }
}

#[test]
fn application_limited_acks_do_not_grow_the_window() {
    for mut cc in [reno(), cubic()] {
        cc.on_ack(Instant::ZERO, MSS, 4 * MSS, None);
        assert_eq!(cc.cwnd(), 10 * MSS, "{:?}: 4 of 10 segments in flight", cc.algorithm());
        cc.on_ack(Instant::ZERO, MSS, 5 * MSS, None);
        assert_eq!(cc.cwnd(), 11 * MSS, "{:?}: half the window in flight", cc.algorithm());
    }
}

#[test]
fn reno_loss_halves_flight_size_with_two_segment_floor() {
    let mut cc = reno();
    grow_to(&mut cc, 100);
    cc.on_congestion_event(Instant::ZERO, 80 * MSS);
    assert_eq!(cc.ssthresh(), 40 * MSS);
    assert_eq!(cc.cwnd(), 40 * MSS);
    cc.on_congestion_event(Instant::ZERO, MSS);
    assert_eq!(cc.ssthresh(), 2 * MSS);
    assert_eq!(cc.cwnd(), 2 * MSS);
}

#[test]
fn reno_congestion_avoidance_adds_one_segment_per_rtt() {
    let mut cc = reno();
    grow_to(&mut cc, 100);
    cc.on_congestion_event(Instant::ZERO, 100 * MSS);
    cc.on_recovery_exit(Instant::ZERO, 50 * MSS);
    assert_eq!(cc.cwnd(), 50 * MSS);
    assert!(!cc.in_slow_start());
    let rtt = Duration::from_millis(20);
    let mut now = Instant::ZERO;
    for round in 1..=10 {
        now = one_rtt(&mut cc, now, rtt);
        assert_eq!(cc.cwnd(), (50 + round) * MSS);
    }
}

#[test]
fn recovery_exit_avoids_a_burst_when_little_is_in_flight() {
    for mut cc in [reno(), cubic()] {
        grow_to(&mut cc, 100);
        cc.on_congestion_event(Instant::ZERO, 100 * MSS);
        let ssthresh = cc.ssthresh();
        cc.set_cwnd(ssthresh + 20 * MSS); // inflated during recovery
        cc.on_recovery_exit(Instant::ZERO, 3 * MSS);
        assert_eq!(cc.cwnd(), 4 * MSS);
        cc.set_cwnd(ssthresh + 20 * MSS);
        cc.on_recovery_exit(Instant::ZERO, 0);
        assert_eq!(cc.cwnd(), 2 * MSS, "max(FlightSize, SMSS) + SMSS");
        cc.set_cwnd(ssthresh + 20 * MSS);
        cc.on_recovery_exit(Instant::ZERO, ssthresh);
        assert_eq!(cc.cwnd(), ssthresh);
    }
}

#[test]
fn rto_collapses_to_one_segment_and_holds_ssthresh_on_repeat() {
    for (mut cc, factor) in [(reno(), 0.5), (cubic(), 0.7)] {
        grow_to(&mut cc, 100);
        cc.on_rto(Instant::ZERO, 100 * MSS);
        assert_eq!(cc.cwnd(), MSS);
        let expected = (100.0 * factor) as usize * MSS;
        assert_eq!(cc.ssthresh(), expected);
        // The retransmission is lost too: ssthresh stays (RFC 5681 §3.1).
        cc.on_rto(Instant::ZERO, MSS);
        assert_eq!(cc.ssthresh(), expected);
        assert_eq!(cc.cwnd(), MSS);
        // Slow start again from one segment.
        let now = one_rtt(&mut cc, Instant::ZERO, Duration::from_millis(10));
        assert_eq!(cc.cwnd(), 2 * MSS);
        one_rtt(&mut cc, now, Duration::from_millis(10));
        assert_eq!(cc.cwnd(), 4 * MSS);
        // After progress, a new timeout computes ssthresh afresh.
        cc.on_rto(Instant::ZERO, 4 * MSS);
        assert_eq!(cc.ssthresh(), ((4.0 * factor * MSS as f64) as usize).max(2 * MSS));
    }
}

#[test]
fn idle_restart_uses_min_of_initial_and_current_window() {
    for mut cc in [reno(), cubic()] {
        grow_to(&mut cc, 40);
        cc.on_idle_restart(Instant::ZERO);
        assert_eq!(cc.cwnd(), 10 * MSS);
        cc.set_cwnd(3 * MSS);
        cc.on_idle_restart(Instant::ZERO);
        assert_eq!(cc.cwnd(), 3 * MSS);
    }
}

#[test]
fn set_mss_keeps_segment_counts() {
    for mut cc in [reno(), cubic()] {
        grow_to(&mut cc, 40);
        cc.on_congestion_event(Instant::ZERO, 40 * MSS);
        let (cwnd, ssthresh) = (cc.cwnd(), cc.ssthresh());
        cc.set_mss(500);
        assert_eq!(cc.cwnd(), cwnd / 2);
        assert_eq!(cc.ssthresh(), ssthresh / 2);
    }
    let mut cc = reno();
    cc.set_mss(1460);
    assert_eq!(cc.cwnd(), 14_600);
    assert_eq!(cc.ssthresh(), usize::MAX);
}

#[test]
fn set_cwnd_is_clamped_to_one_segment_and_the_maximum() {
    for mut cc in [reno(), cubic()] {
        cc.set_cwnd(0);
        assert_eq!(cc.cwnd(), MSS);
        cc.set_cwnd(usize::MAX);
        assert_eq!(cc.cwnd(), MAX_WINDOW);
        cc.set_cwnd(7 * MSS + 3);
        assert_eq!(cc.cwnd(), 7 * MSS + 3);
    }
}

#[test]
fn cubic_loss_multiplies_by_beta_and_fast_convergence_lowers_w_max() {
    let mut c = Cubic::new(MSS, 10);
    while c.cwnd() < 100 * MSS {
        c.on_ack(Instant::ZERO, MSS, c.cwnd(), None);
    }
    c.on_congestion_event(Instant::ZERO, 100 * MSS);
    assert_eq!(c.cwnd(), 70 * MSS);
    assert_eq!(c.ssthresh(), 70 * MSS);
    assert_eq!(c.w_max(), 100 * MSS);
    // A second loss before regaining W_max: W_max = cwnd * (1 + beta) / 2.
    c.on_congestion_event(Instant::ZERO, 70 * MSS);
    assert_eq!(c.w_max(), 59_500);
    assert_eq!(c.cwnd(), 49 * MSS);
}

/// W_cubic(t) in segments, written out from RFC 9438 eq. 1 and 2.
fn rfc_w_cubic(t: f64, w_max: f64, cwnd_epoch: f64) -> f64 {
    let k = ((w_max - cwnd_epoch) / 0.4).cbrt();
    0.4 * (t - k).powi(3) + w_max
}

/// After a loss at 100 segments, simulates round trips and returns
/// (seconds since the congestion avoidance stage began, cwnd in segments)
/// at the end of each.
fn cubic_trajectory(rtt: Duration, rounds: usize) -> Vec<(f64, f64)> {
    let mut cc = cubic();
    grow_to(&mut cc, 100);
    cc.on_congestion_event(Instant::ZERO, 100 * MSS);
    cc.on_recovery_exit(Instant::ZERO, 70 * MSS);
    assert_eq!(cc.cwnd(), 70 * MSS);
    let start = Instant::from_secs(10);
    let mut now = start;
    let mut out = Vec::new();
    for _ in 0..rounds {
        now = one_rtt(&mut cc, now, rtt);
        out.push(((now - start).as_secs_f64(), cc.cwnd() as f64 / MSS as f64));
    }
    out
}

#[test]
fn cubic_follows_the_rfc_curve_back_to_w_max_at_k() {
    let rtt = Duration::from_millis(100);
    let trajectory = cubic_trajectory(rtt, 80);
    let k = (100.0f64 * 0.3 / 0.4).cbrt();
    // RFC 9438 §4.3 W_est, per round: alpha_cubic segments until it reaches
    // cwnd_prior (100), then one segment.
    let alpha = 3.0 * (1.0 - 0.7) / (1.0 + 0.7);
    let mut w_est = 70.0;
    for &(t, w) in &trajectory {
        w_est += if w_est >= 100.0 { 1.0 } else { alpha };
        let expected = rfc_w_cubic(t, 100.0, 70.0).max(w_est);
        assert!((w - expected).abs() <= 3.0, "t={t:.1}s cwnd={w:.2} expected={expected:.2}");
    }
    // The cubic curve, not W_est, is what brings the window back up before K.
    assert!(trajectory.iter().any(|&(t, w)| t < k && w > 70.0 + alpha * t * 10.0 + 10.0));
    // At t = K the window is back at W_max.
    let at_k = trajectory.iter().min_by(|a, b| (a.0 - k).abs().total_cmp(&(b.0 - k).abs())).unwrap();
    assert!((at_k.1 - 100.0).abs() <= 1.5, "cwnd at K = {:.2}", at_k.1);

    // Concave before K (growth per second shrinks), convex after (it grows).
    let w_at = |t: f64| trajectory.iter().min_by(|a, b| (a.0 - t).abs().total_cmp(&(b.0 - t).abs())).unwrap().1;
    let growth = |from: f64| w_at(from + 1.0) - w_at(from);
    assert!(growth(0.5) > growth(1.5) && growth(1.5) > growth(2.5));
    assert!(growth(k) < growth(k + 1.0) && growth(k + 1.0) < growth(k + 2.0));
    assert!(w_at(k + 3.0) > 110.0);
}

#[test]
fn cubic_reno_friendly_region_dominates_on_tiny_rtts() {
    let rtt = Duration::from_millis(1);
    let trajectory = cubic_trajectory(rtt, 50);
    let alpha = 3.0 * (1.0 - 0.7) / (1.0 + 0.7);
    let (t, w) = *trajectory.last().unwrap();
    let cubic_curve = rfc_w_cubic(t, 100.0, 70.0);
    let reno_estimate = 70.0 + alpha * 50.0;
    assert!(cubic_curve < 71.5, "the cubic curve barely moves in 50 ms");
    assert!((w - reno_estimate).abs() <= 2.0, "cwnd={w:.2} W_est={reno_estimate:.2}");

    // Once W_est passes cwnd_prior (100 segments), alpha becomes 1.
    let trajectory = cubic_trajectory(rtt, 120);
    let w_90 = trajectory[89].1;
    let w_120 = trajectory[119].1;
    assert!(w_90 > 100.0);
    assert!((w_120 - w_90 - 30.0).abs() <= 2.0, "{w_90:.2} -> {w_120:.2}");
}

#[test]
fn cubic_after_timeout_restarts_the_curve_with_k_zero() {
    let mut c = Cubic::new(MSS, 10);
    while c.cwnd() < 100 * MSS {
        c.on_ack(Instant::ZERO, MSS, c.cwnd(), None);
    }
    c.on_rto(Instant::ZERO, 100 * MSS);
    assert_eq!(c.cwnd(), MSS);
    assert_eq!(c.ssthresh(), 70 * MSS);
    while c.cwnd() < c.ssthresh() {
        c.on_ack(Instant::ZERO, MSS, c.cwnd(), None);
    }
    let cwnd_epoch = c.cwnd();
    c.on_ack(Instant::from_secs(1), MSS, cwnd_epoch, Some(Duration::from_millis(100)));
    assert_eq!(c.k(), Some(Duration::ZERO));
    // Convex growth from cwnd_epoch: after 2 s the curve is at cwnd_epoch + 0.4*8 segments.
    let mut now = Instant::from_secs(1);
    while now < Instant::from_secs(3) {
        let n = c.cwnd() / MSS;
        for _ in 0..n {
            c.on_ack(now, MSS, c.cwnd(), Some(Duration::from_millis(100)));
        }
        now += Duration::from_millis(100);
    }
    let expected = cwnd_epoch as f64 / MSS as f64 + 0.4 * 8.0;
    let got = c.cwnd() as f64 / MSS as f64;
    assert!(got >= expected - 1.0, "got {got:.2}, expected about {expected:.2}");
}

#[derive(Clone, Debug)]
enum Op {
    Ack(u64, usize, usize, Option<u64>),
    Loss(u64, usize),
    Exit(u64, usize),
    Rto(u64, usize),
    Idle(u64),
    Mss(usize),
    Set(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<u64>(), any::<usize>(), any::<usize>(), proptest::option::of(any::<u64>()))
            .prop_map(|(t, a, f, r)| Op::Ack(t, a, f, r)),
        4 => (0u64..10_000_000, 0usize..200_000, 0usize..200_000, proptest::option::of(0u64..1_000_000))
            .prop_map(|(t, a, f, r)| Op::Ack(t, a, f, r)),
        1 => (any::<u64>(), any::<usize>()).prop_map(|(t, f)| Op::Loss(t, f)),
        1 => (any::<u64>(), any::<usize>()).prop_map(|(t, f)| Op::Exit(t, f)),
        1 => (any::<u64>(), any::<usize>()).prop_map(|(t, f)| Op::Rto(t, f)),
        1 => any::<u64>().prop_map(Op::Idle),
        1 => (0usize..70_000).prop_map(Op::Mss),
        1 => any::<usize>().prop_map(Op::Set),
    ]
}

proptest! {
    #[test]
    fn windows_stay_in_bounds_for_any_input(reno_first in any::<bool>(), ops in proptest::collection::vec(op(), 0..200)) {
        let mut cc = if reno_first { reno() } else { cubic() };
        let mut mss = MSS;
        for op in ops {
            match op {
                Op::Ack(t, a, f, r) => cc.on_ack(Instant::from_micros(t), a, f, r.map(Duration::from_micros)),
                Op::Loss(t, f) => cc.on_congestion_event(Instant::from_micros(t), f),
                Op::Exit(t, f) => cc.on_recovery_exit(Instant::from_micros(t), f),
                Op::Rto(t, f) => cc.on_rto(Instant::from_micros(t), f),
                Op::Idle(t) => cc.on_idle_restart(Instant::from_micros(t)),
                Op::Mss(m) => { cc.set_mss(m); mss = m.max(1); }
                Op::Set(w) => cc.set_cwnd(w),
            }
            prop_assert!(cc.cwnd() >= mss && cc.cwnd() <= MAX_WINDOW, "cwnd {} mss {}", cc.cwnd(), mss);
            prop_assert!(cc.ssthresh() >= mss.min(MAX_WINDOW), "ssthresh {} mss {}", cc.ssthresh(), mss);
        }
    }
}
