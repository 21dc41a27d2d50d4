//! TCP_CORK (tcp(7)): full segments only while corked, the partial tail on
//! uncork, with a FIN, or when the probe timer fires (the 200 ms ceiling).

use super::*;

fn corked(nodelay: bool) -> TcpConfig {
    TcpConfig { cork: true, nodelay, ..TcpConfig::default() }
}

/// Payload sizes of A's data segments logged since `from`.
fn data_from_a(sim: &Sim, from: usize) -> Vec<usize> {
    sim.log[from..].iter().filter(|s| s.packet.from == A && s.packet.is_data()).map(|s| s.packet.payload.len()).collect()
}

/// An established pair with B's window fully open and nothing in flight.
fn quiet(config_a: TcpConfig) -> Sim {
    let mut sim = Sim::established(config_a, TcpConfig::default());
    sim.run_idle(Duration::from_secs(1));
    sim
}

fn set_cork(sim: &mut Sim, cork: bool) {
    let now = sim.now;
    let config = TcpConfig { cork, ..*sim.a().config() };
    sim.a().set_config(now, config);
}

#[test]
fn corked_small_writes_leave_as_full_segments_and_uncork_flushes_the_tail() {
    for nodelay in [false, true] {
        let mut sim = quiet(corked(nodelay));
        let mss = sim.a().info().snd_mss as usize;
        let before = sim.log.len();
        for i in 0..100 {
            assert_eq!(sim.a().send(&pattern(i * 100, 100, 0)), Ok(100));
            sim.transmit();
        }
        let full = 10_000 / mss;
        assert_eq!(data_from_a(&sim, before), vec![mss; full], "nodelay {nodelay}: only full segments while corked");
        // Full segments are acknowledged; the tail stays held.
        let limit = sim.now + Duration::from_millis(100);
        sim.run_until(Duration::from_millis(100), |s| s.now >= limit);
        assert_eq!(sim.b().recv_queue_len(), full * mss);
        // Uncorking sends the tail in the same instant (`__tcp_sock_set_cork`).
        let (at, mark) = (sim.now, sim.log.len());
        set_cork(&mut sim, false);
        sim.transmit();
        let tail = sim.sent_by(A, |s| s.at == at && s.packet.is_data());
        assert_eq!(data_from_a(&sim, mark), vec![10_000 - full * mss], "nodelay {nodelay}");
        assert!(tail[0].packet.has(TcpFlags::PSH));
        assert!(sim.run_until(Duration::from_secs(1), |s| s.b().recv_queue_len() == 10_000));
        let mut buf = vec![0u8; 10_000];
        assert_eq!(sim.b().recv(&mut buf), Ok(10_000));
        assert_eq!(buf, pattern(0, 10_000, 0));
    }
}

#[test]
fn cork_wins_over_nodelay_for_a_partial_segment() {
    let mut sim = quiet(corked(true));
    let before = sim.log.len();
    for _ in 0..10 {
        assert_eq!(sim.a().send(&[7u8; 10]), Ok(10));
        sim.transmit();
    }
    assert_eq!(data_from_a(&sim, before), Vec::<usize>::new());
    set_cork(&mut sim, false);
    sim.transmit();
    assert_eq!(data_from_a(&sim, before), vec![100]);
}

/// Linux's ceiling on corking is the probe timer: with nothing in flight the
/// corked tail leaves max(RTO, 200 ms) after it was queued.
#[test]
fn a_corked_partial_segment_leaves_when_the_probe_timer_fires() {
    let mut sim = quiet(corked(false));
    let rto = Duration::from_micros(sim.a().info().rto_us as u64);
    assert!(rto >= Duration::from_millis(200), "RTO floor {rto:?}");
    let (start, before) = (sim.now, sim.log.len());
    assert_eq!(sim.a().send(&pattern(0, 300, 0)), Ok(300));
    sim.transmit();
    assert_eq!(sim.a().poll_timeout(), Some(start + rto), "probe timer armed for the held tail");
    assert!(sim.run_until(Duration::from_secs(2), |s| s.b().recv_queue_len() == 300));
    let sent = sim.sent_by(A, |s| s.at >= start && s.packet.is_data());
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].at - start, rto);
    assert_eq!(data_from_a(&sim, before), vec![300]);
    // The ceiling is not a zero-window probe: nothing counted, still corked.
    assert_eq!(sim.a().rec.probes, 0);
    let before = sim.log.len();
    assert_eq!(sim.a().send(&pattern(300, 50, 0)), Ok(50));
    sim.transmit();
    assert_eq!(data_from_a(&sim, before), Vec::<usize>::new(), "a later partial write is held again");
}

#[test]
fn fin_is_not_held_by_cork() {
    let mut sim = quiet(corked(false));
    let (start, before) = (sim.now, sim.log.len());
    assert_eq!(sim.a().send(&pattern(0, 300, 0)), Ok(300));
    sim.transmit();
    assert_eq!(data_from_a(&sim, before), Vec::<usize>::new());
    sim.a().shutdown_write();
    sim.transmit();
    let sent = sim.sent_by(A, |s| s.at == start && s.packet.is_data());
    assert_eq!(sent.len(), 1, "close flushes the corked tail with the FIN (tcp_send_fin pushes with TCP_NAGLE_OFF)");
    assert_eq!(sent[0].packet.payload.len(), 300);
    assert!(sent[0].packet.has(TcpFlags::FIN));
}

#[test]
fn cork_holds_only_the_partial_tail_of_a_large_write() {
    let mut sim = quiet(corked(false));
    let mss = sim.a().info().snd_mss as usize;
    let before = sim.log.len();
    assert_eq!(sim.a().send(&pattern(0, 2 * mss + 100, 0)), Ok(2 * mss + 100));
    sim.transmit();
    assert_eq!(data_from_a(&sim, before), vec![mss, mss]);
    // More bytes complete the held tail into a full segment, which leaves at once.
    assert_eq!(sim.a().send(&pattern(2 * mss + 100, mss, 0)), Ok(mss));
    sim.transmit();
    assert_eq!(data_from_a(&sim, before), vec![mss, mss, mss]);
}
