//! Loss: fast retransmit and recovery (SACK and NewReno, CUBIC and NewReno
//! congestion control), the retransmission timeout and its back-off, the
//! fast-retransmit budget, and what abort leaves behind.

use super::*;
use crate::config::CongestionAlgorithm;
use crate::error::Error;

/// Drop every `n`th data segment sent by A (retransmissions included).
fn drop_every(n: u32) -> Filter {
    let mut count = 0u32;
    Box::new(move |_, p| {
        if p.from == A && p.is_data() {
            count += 1;
            if count % n == n - 1 {
                return Verdict::Drop;
            }
        }
        Verdict::Deliver
    })
}

fn lossy_transfer(sack: bool, congestion: CongestionAlgorithm) {
    let config = TcpConfig { sack, congestion, ..TcpConfig::default() };
    let mut sim = Sim::established(config, config);
    sim.log_payloads = false;
    sim.filter = drop_every(20);
    assert!(transfer(&mut sim, A, 2 << 20, Duration::from_secs(120)), "sack={sack} {congestion:?}");
    let info = sim.a().info();
    assert_eq!(info.sack_enabled, sack);
    assert!(info.fast_retransmits > 0, "losses were repaired by fast retransmit");
    let dropped = sim.sent_by(A, |s| s.verdict == Verdict::Drop && s.packet.repr.payload_len > 0).len() as u64;
    assert!(info.retransmits >= dropped, "each lost segment was sent again: {} < {dropped}", info.retransmits);
    assert!(info.retransmits <= dropped * 3 / 2 + 5, "few spurious retransmissions: {} for {dropped} losses", info.retransmits);
    // Most repairs are fast retransmits, not timeouts.
    assert!(info.timeouts * 10 < info.fast_retransmits.max(10), "timeouts {} fast {}", info.timeouts, info.fast_retransmits);
    if sack {
        // SACK blocks were reported by the receiver.
        assert!(sim.sent_by(B, |s| !s.packet.repr.options.sack.is_empty()).len() > 10);
    } else {
        assert!(sim.sent_by(B, |s| !s.packet.repr.options.sack.is_empty()).is_empty());
    }
}

#[test]
fn every_20th_segment_dropped_sack_cubic() {
    lossy_transfer(true, CongestionAlgorithm::Cubic);
}
#[test]
fn every_20th_segment_dropped_sack_newreno() {
    lossy_transfer(true, CongestionAlgorithm::NewReno);
}
#[test]
fn every_20th_segment_dropped_no_sack_cubic() {
    lossy_transfer(false, CongestionAlgorithm::Cubic);
}
#[test]
fn every_20th_segment_dropped_no_sack_newreno() {
    lossy_transfer(false, CongestionAlgorithm::NewReno);
}

#[test]
fn heavy_random_loss_both_directions_still_delivers() {
    let config = TcpConfig::default();
    let mut sim = Sim::established(config, config);
    sim.log_payloads = false;
    let mut seed = 12345u64;
    sim.filter = Box::new(move |_, _| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        match (seed >> 33) % 100 {
            0..=9 => Verdict::Drop,
            10..=12 => Verdict::Delay(Duration::from_millis(7)),
            13 => Verdict::Duplicate,
            _ => Verdict::Deliver,
        }
    });
    assert!(transfer_both(&mut sim, &[(A, 512 * 1024), (B, 512 * 1024)], Duration::from_secs(600)));
}

#[test]
fn rto_backs_off_exponentially_then_times_out() {
    let config = TcpConfig { min_rto: Duration::from_secs(1), data_retries: 4, ..TcpConfig::default() };
    let mut sim = Sim::established(config, config);
    sim.filter = Box::new(|_, p| if p.from == A { Verdict::Drop } else { Verdict::Deliver });
    let start = sim.now;
    assert_eq!(sim.a().send(b"lost forever"), Ok(12));
    sim.run_idle(Duration::from_secs(600));
    let times: Vec<u64> = sim.sent_by(A, |s| s.packet.is_data()).iter().map(|s| (s.at - start).total_millis()).collect();
    assert_eq!(times, vec![0, 1_000, 3_000, 7_000, 15_000]);
    assert_eq!(sim.now - start, Duration::from_secs(31));
    assert_eq!(sim.state(A), Some(TcpState::Closed));
    assert!(sim.events[A].contains(EventSet::ERROR | EventSet::CLOSED));
    assert_eq!(sim.a().take_error(), Some(Error::TimedOut));
    assert_eq!(sim.a().info().timeouts, 4);
    assert_eq!(sim.a().poll_timeout(), None);
}

#[test]
fn fast_retransmit_budget_postpones_and_resumes() {
    let config = TcpConfig { sack: true, ..TcpConfig::default() };
    let mut sim = Sim::established(config, config);
    let mut first = true;
    sim.filter = Box::new(move |_, p| {
        if p.from == A && p.is_data() && first {
            first = false;
            return Verdict::Drop;
        }
        Verdict::Deliver
    });
    sim.budget = 0;
    assert!(sim.a().send(&pattern(0, 10 * 1448, 0)).is_ok());
    let reached = sim.run_until(Duration::from_secs(1), |s| s.a().wants_fast_retransmit());
    assert!(reached, "three duplicate ACKs put A into recovery");
    sim.transmit();
    assert!(sim.reports[A].fast_retransmit_postponed);
    let head = sim.a().snd.una;
    assert!(sim.sent_by(A, |s| s.packet.repr.seq == head && s.packet.is_data()).len() == 1, "only the original, lost");
    assert_eq!(sim.a().info().fast_retransmits, 0);
    assert!(sim.a().wants_fast_retransmit());

    sim.budget = 1;
    sim.transmit();
    assert!(!sim.reports[A].fast_retransmit_postponed);
    assert_eq!(sim.budget, 0, "one unit consumed");
    assert_eq!(sim.sent_by(A, |s| s.packet.repr.seq == head && s.packet.is_data()).len(), 2);
    assert_eq!(sim.a().info().fast_retransmits, 1);
    sim.budget = usize::MAX;
    sim.run_idle(Duration::from_secs(2));
    assert_eq!(sim.b().recv_queue_len(), 10 * 1448);
    assert_eq!(sim.a().info().timeouts, 0);
}

#[test]
fn newreno_budget_zero_emits_no_recovery_retransmission() {
    let config = TcpConfig { sack: false, ..TcpConfig::default() };
    let mut sim = Sim::established(config, config);
    let mut first = true;
    sim.filter = Box::new(move |_, p| {
        if p.from == A && p.is_data() && first {
            first = false;
            return Verdict::Drop;
        }
        Verdict::Deliver
    });
    sim.budget = 0;
    assert!(sim.a().send(&pattern(0, 10 * 1448, 0)).is_ok());
    let reached = sim.run_until(Duration::from_secs(1), |s| s.a().wants_fast_retransmit());
    assert!(reached);
    // Polling repeatedly without budget never sends the retransmission (nor new data ahead of it).
    let sent_before = sim.log.len();
    for _ in 0..3 {
        sim.transmit();
        assert!(sim.reports[A].fast_retransmit_postponed);
    }
    assert!(sim.log[sent_before..].iter().all(|s| s.packet.from != A || !s.packet.is_data()));
    sim.budget = 5;
    sim.transmit();
    assert_eq!(sim.budget, 4);
    assert_eq!(sim.a().info().fast_retransmits, 1);
}

#[test]
fn abort_during_recovery_silences_the_connection() {
    let config = TcpConfig::default();
    let mut sim = Sim::established(config, config);
    sim.filter = drop_every(3);
    sim.budget = 0;
    assert!(sim.a().send(&pattern(0, 100_000, 0)).is_ok());
    assert!(sim.run_until(Duration::from_secs(2), |s| s.a().wants_fast_retransmit()));
    let now = sim.now;
    sim.a().abort(now);
    assert!(!sim.a().wants_fast_retransmit());
    assert_eq!(sim.a().poll_timeout(), None);
    assert!(!sim.a().is_finished(), "the RST is still to go out");
    sim.budget = usize::MAX;
    let before = sim.log.len();
    sim.transmit();
    let out: Vec<Sent> = sim.log[before..].iter().filter(|s| s.packet.from == A).cloned().collect();
    assert_eq!(out.len(), 1);
    assert!(out[0].packet.has(TcpFlags::RST));
    assert!(sim.a().is_finished());
    // Nothing more, ever, whatever arrives.
    sim.run_idle(Duration::from_secs(300));
    assert!(sim.log[before + 1..].iter().all(|s| s.packet.from != A));
    // B is missing data, so the RST (at A's highest sequence number) is not
    // exactly at its RCV.NXT: RFC 5961 §3.2 answers with a challenge ACK,
    // which the engine (not the dead connection) answers with an exact RST.
    let rst_at = out[0].at;
    let latency = sim.latency;
    let challenge = sim.sent_by(B, |s| s.at == rst_at + latency && s.packet.repr.ack < out[0].packet.repr.seq);
    assert_eq!(challenge.len(), 1);
    let exact = TcpRepr { seq: challenge[0].packet.repr.ack, ..out[0].packet.repr };
    sim.inject(B, exact, &[]);
    assert_eq!(sim.state(B), Some(TcpState::Closed), "B was reset");
    assert!(sim.events[B].contains(EventSet::RESET));
    assert_eq!(sim.b().take_error(), Some(Error::ConnectionReset));
}

#[test]
fn rtt_is_sampled_from_timestamps_for_retransmitted_data() {
    let config = TcpConfig::default();
    // The 100 ms path from the first segment on, so every sample is of it.
    let mut sim = Sim::new(config, config);
    sim.latency = Duration::from_millis(50);
    assert!(sim.run_until(Duration::from_secs(5), |s| s.both_in(TcpState::Established)));
    sim.filter = drop_every(4);
    assert!(transfer(&mut sim, A, 200_000, Duration::from_secs(60)));
    let srtt = sim.a().info().srtt_us;
    assert!((90_000..=130_000).contains(&srtt), "srtt {srtt}");
}

/// Many seeds and configurations: random loss, reordering and duplication
/// both ways, data both ways, then both sides close; every byte arrives and
/// both connections finish.
#[test]
fn randomized_lossy_sessions_deliver_everything_and_finish() {
    for seed in 1..=40u64 {
        let mut rng = seed.wrapping_mul(0x9E3779B97F4A7C15);
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let pick = next();
        let config = TcpConfig {
            sack: pick & 1 != 0,
            timestamps: pick & 2 != 0,
            window_scaling: pick & 4 != 0,
            nodelay: pick & 8 != 0,
            congestion: if pick & 16 != 0 { CongestionAlgorithm::Cubic } else { CongestionAlgorithm::NewReno },
            recv_buffer: [4_000, 32 * 1024, 256 * 1024, 1 << 20][(pick >> 5) as usize % 4],
            send_buffer: [8_000, 64 * 1024, 256 * 1024][(pick >> 7) as usize % 3],
            // Long enough to outlast the peer's FIN retransmissions (what 2*MSL is for).
            time_wait: Duration::from_secs(60),
            ..TcpConfig::default()
        };
        let mut sim = Sim::with_iss(config, config, next() as u32, next() as u32);
        sim.log_payloads = false;
        sim.latency = Duration::from_millis(1 + next() % 40);
        let loss = 1 + next() % 12;
        sim.filter = Box::new(move |_, _| {
            let r = next() % 100;
            if r < loss {
                Verdict::Drop
            } else if r < loss + 3 {
                Verdict::Delay(Duration::from_millis(1 + r))
            } else if r < loss + 4 {
                Verdict::Duplicate
            } else {
                Verdict::Deliver
            }
        });
        assert!(sim.run_until(Duration::from_secs(120), |s| s.both_in(TcpState::Established)), "seed {seed}");
        let sizes = (100_000 + (pick >> 10) as usize % 200_000, 50_000 + (pick >> 30) as usize % 100_000);
        assert!(transfer_both(&mut sim, &[(A, sizes.0), (B, sizes.1)], Duration::from_secs(3600)), "seed {seed} {config:?}");
        let now = sim.now;
        sim.a().close(now);
        sim.b().close(now);
        let done = sim.run_until(Duration::from_secs(3600), |s| s.conns.iter().flatten().all(|c| c.is_finished()));
        assert!(done, "seed {seed}: {:?} {:?}", sim.state(A), sim.state(B));
        for i in [A, B] {
            assert_eq!(sim.conn(i).take_error(), None, "seed {seed} side {i}");
        }
    }
}

#[test]
fn per_poll_budget_of_one_postpones_but_completes() {
    for sack in [true, false] {
        let config = TcpConfig { sack, ..TcpConfig::default() };
        let mut sim = Sim::established(config, config);
        sim.log_payloads = false;
        sim.budget_per_poll = Some(1);
        // Bursts of five losses: several holes are due for retransmission at once.
        let mut count = 0u32;
        sim.filter = Box::new(move |_, p| {
            if p.from == A && p.is_data() {
                count += 1;
                if (10..15).contains(&(count % 60)) {
                    return Verdict::Drop;
                }
            }
            Verdict::Deliver
        });
        assert!(transfer(&mut sim, A, 1 << 20, Duration::from_secs(600)), "sack={sack}");
        if sack {
            // NewReno repairs one hole per partial ACK, so only SACK recovery
            // ever has more than one retransmission due in a poll.
            assert!(sim.postponed_polls[A] > 0, "the budget postponed some retransmissions");
        }
        let now = sim.now;
        sim.a().close(now);
        sim.b().close(now);
        assert!(sim.run_until(Duration::from_secs(600), |s| s.conns.iter().flatten().all(|c| c.is_finished())));
        assert_eq!(sim.a().take_error(), None);
    }
}
