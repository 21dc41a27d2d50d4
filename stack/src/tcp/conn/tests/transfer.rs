//! Data transfer: bulk both ways, window scaling extremes, tiny windows,
//! sequence wrap-around, zero window and persist probes, delayed ACKs, Nagle.

use super::*;
use crate::tcp::conn::receive_window_shift;

fn bulk(config: TcpConfig) -> Sim {
    let mut sim = Sim::established(config, config);
    sim.log_payloads = false;
    sim
}

#[test]
fn bulk_transfer_4_mib_each_way() {
    let mut sim = bulk(TcpConfig::default());
    let total = 4 << 20;
    assert!(transfer_both(&mut sim, &[(A, total), (B, total)], Duration::from_secs(60)));
    sim.run_idle(Duration::from_secs(1));
    for i in [A, B] {
        let info = sim.conn(i).info();
        assert_eq!(info.bytes_acked, total as u64);
        assert_eq!(info.bytes_received, total as u64);
        assert_eq!(info.retransmits, 0);
    }
    // Full-sized segments: payload + options never exceed the MSS.
    assert!(sim.log.iter().all(|s| s.packet.repr.payload_len <= 1448));
}

#[test]
fn window_scale_shift_zero_and_fourteen() {
    // Shift 0: scaling off; the window never exceeds 65535.
    let off = TcpConfig { window_scaling: false, ..TcpConfig::default() };
    let mut sim = bulk(off);
    assert_eq!((sim.a().info().snd_wscale, sim.a().info().rcv_wscale), (0, 0));
    assert!(transfer(&mut sim, A, 1 << 20, Duration::from_secs(30)));
    // B's 256 KiB buffer is more than an unscaled window can say: pinned at 65535.
    assert_eq!(sim.a().snd.max_wnd, u16::MAX as u32);

    // Shift 14: a 1 GiB buffer needs more than 14 and is clamped (RFC 7323 §2.3).
    let huge = TcpConfig { recv_buffer: 1 << 30, send_buffer: 1 << 20, ..TcpConfig::default() };
    assert_eq!(receive_window_shift(1 << 30), 14);
    let mut sim = bulk(huge);
    assert_eq!((sim.a().info().snd_wscale, sim.a().info().rcv_wscale), (14, 14));
    assert!(transfer_both(&mut sim, &[(A, 2 << 20), (B, 2 << 20)], Duration::from_secs(30)));
    // The peer's view of our window is the field shifted by 14.
    let field = sim.log.iter().rev().find(|s| s.packet.from == B).unwrap().packet.repr.window;
    assert_eq!(sim.a().snd.wnd, (field as u32) << 14);
}

#[test]
fn tiny_receive_window_still_transfers() {
    let a = TcpConfig { nodelay: true, ..TcpConfig::default() };
    let b = TcpConfig { recv_buffer: 100, ..TcpConfig::default() };
    let mut sim = Sim::established(a, b);
    assert!(transfer(&mut sim, A, 20_000, Duration::from_secs(60)));
    // Never more in flight than B's window.
    assert!(sim.sent_by(A, |_| true).iter().all(|s| s.packet.repr.payload_len <= 100));
    assert!(sim.sent_by(B, |_| true).iter().all(|s| s.packet.repr.window <= 100));
}

#[test]
fn sequence_numbers_wrap_around() {
    let config = TcpConfig::default();
    let mut sim = Sim::with_iss(config, config, u32::MAX - 3_000, u32::MAX - 100);
    sim.log_payloads = false;
    assert!(sim.run_until(Duration::from_secs(5), |s| s.both_in(TcpState::Established)));
    assert!(transfer_both(&mut sim, &[(A, 1 << 20), (B, 1 << 20)], Duration::from_secs(30)));
    assert!(sim.a().snd.una.0 < 2 << 20, "A's sequence space wrapped");
    assert_eq!(sim.a().info().retransmits, 0);
}

#[test]
fn sequence_wrap_around_with_loss() {
    let config = TcpConfig::default();
    let mut sim = Sim::with_iss(config, config, u32::MAX - 50_000, 77);
    sim.log_payloads = false;
    assert!(sim.run_until(Duration::from_secs(5), |s| s.both_in(TcpState::Established)));
    let mut n = 0;
    sim.filter = Box::new(move |_, p| {
        n += p.is_data() as u32;
        if p.is_data() && n % 37 == 0 { Verdict::Drop } else { Verdict::Deliver }
    });
    assert!(transfer(&mut sim, A, 1 << 20, Duration::from_secs(60)));
    assert!(sim.a().info().fast_retransmits > 0);
}

#[test]
fn zero_window_is_probed_with_back_off_and_reopens() {
    let b = TcpConfig { recv_buffer: 10_000, ..TcpConfig::default() };
    let mut sim = Sim::established(TcpConfig::default(), b);
    let data = pattern(0, 30_000, 0);
    assert_eq!(sim.a().send(&data), Ok(30_000));
    // B does not read: its window closes, A probes with SND.UNA - 1.
    sim.run_until(Duration::from_secs(30), |_| false);
    assert_eq!(sim.b().recv_queue_len(), 10_000);
    let una = sim.a().snd.una;
    let probes = sim.sent_by(A, |s| s.packet.repr.seq == una - 1 && s.packet.payload.is_empty());
    assert!(probes.len() >= 3, "probes: {}", probes.len());
    let gaps: Vec<Duration> = probes.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(gaps.windows(2).all(|g| g[1] >= g[0]), "probe intervals back off: {gaps:?}");
    assert!(gaps.last().unwrap() > &gaps[0]);
    assert_eq!(sim.state(A), Some(TcpState::Established));
    // Each probe was answered with the (still zero) window.
    assert!(sim.sent_by(B, |s| s.at > probes[0].at).iter().all(|s| s.packet.repr.window == 0));

    // Reading reopens the window with an update; the rest flows.
    let mut buf = vec![0u8; 30_000];
    let mut got = 0;
    let done = sim.run_until(Duration::from_secs(30), |s| {
        while let Ok(n) = s.b().recv(&mut buf[got..]) {
            if n == 0 {
                break;
            }
            got += n;
        }
        got == 30_000
    });
    assert!(done);
    assert_eq!(buf, data);
}

#[test]
fn lost_window_update_is_recovered_by_probe() {
    let b = TcpConfig { recv_buffer: 4_000, ..TcpConfig::default() };
    let mut sim = Sim::established(TcpConfig::default(), b);
    assert!(sim.a().send(&pattern(0, 8_000, 0)).is_ok());
    sim.run_until(Duration::from_millis(500), |_| false);
    assert_eq!(sim.b().recv_queue_len(), 4_000);
    // Drop B's window update when it reads.
    let mut dropped = 0;
    sim.filter = Box::new(move |_, p| {
        if p.from == B && p.repr.window > 0 && dropped == 0 {
            dropped += 1;
            return Verdict::Drop;
        }
        Verdict::Deliver
    });
    let mut buf = vec![0u8; 8_000];
    assert_eq!(sim.b().recv(&mut buf), Ok(4_000));
    let done = sim.run_until(Duration::from_secs(30), |s| s.b().recv_queue_len() == 4_000);
    assert!(done, "the persist probe brought the open window back");
}

#[test]
fn delayed_ack_waits_for_timer_or_second_full_segment() {
    let mut sim = Sim::established(TcpConfig::default(), TcpConfig::default());
    sim.run_idle(Duration::from_secs(1));
    // A fresh connection acknowledges its first segments at once (quick-ACK mode).
    for _ in 0..super::super::state::QUICK_ACKS_AT_START {
        let start = sim.log.len();
        assert_eq!(sim.a().send(b"one small segment"), Ok(17));
        sim.run_idle(Duration::from_secs(1));
        let after: Vec<&Sent> = sim.log[start..].iter().collect();
        assert_eq!(after.len(), 2);
        assert_eq!(after[1].at - after[0].at, sim.latency, "quick ACK");
    }
    let start = sim.log.len();
    assert_eq!(sim.a().send(b"one small segment"), Ok(17));
    sim.run_idle(Duration::from_secs(1));
    let after: Vec<&Sent> = sim.log[start..].iter().collect();
    assert_eq!(after.len(), 2);
    let ack_delay = after[1].at - after[0].at;
    assert_eq!(ack_delay, sim.latency + TcpConfig::default().delayed_ack, "ACK held for the delayed-ACK timeout");

    // Two full-sized segments: the second is acknowledged at once.
    let start = sim.log.len();
    assert!(sim.a().send(&pattern(0, 2 * 1448, 0)).is_ok());
    sim.run_idle(Duration::from_secs(1));
    let acks = sim.log[start..].iter().filter(|s| s.packet.from == B).collect::<Vec<_>>();
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].at - sim.log[start].at, sim.latency);
}

/// A client whose first request is written in two parts (header, body) on a
/// fresh connection: Nagle holds the body until the header is acknowledged,
/// so a delayed ACK would hold the whole request for the delayed-ACK timeout.
/// Linux's receiver is in quick-ACK mode for the first data segments of a
/// connection (tcp_event_data_recv -> tcp_incr_quickack) and ACKs at once.
#[test]
fn first_request_split_in_two_writes_is_not_delayed_by_delayed_ack() {
    let mut sim = Sim::established(TcpConfig::default(), TcpConfig::default());
    sim.run_idle(Duration::from_secs(1));
    let start = sim.now;
    assert_eq!(sim.a().send(&pattern(0, 100, 0)), Ok(100));
    sim.transmit();
    assert_eq!(sim.a().send(&pattern(100, 100, 0)), Ok(100));
    assert!(sim.run_until(Duration::from_secs(1), |s| s.b().recv_queue_len() == 200));
    let elapsed = sim.now - start;
    assert!(elapsed < Duration::from_millis(40), "200 bytes took {elapsed:?} on a 10 ms link");
}

#[test]
fn nagle_coalesces_small_writes_and_nodelay_does_not() {
    for nodelay in [false, true] {
        let config = TcpConfig { nodelay, ..TcpConfig::default() };
        let mut sim = Sim::established(config, TcpConfig::default());
        sim.run_idle(Duration::from_secs(1));
        let start = sim.log.len();
        for _ in 0..10 {
            assert_eq!(sim.a().send(&[7u8; 10]), Ok(10));
            sim.transmit();
        }
        sim.run_idle(Duration::from_secs(1));
        let data: Vec<usize> =
            sim.log[start..].iter().filter(|s| s.packet.from == A && s.packet.is_data()).map(|s| s.packet.payload.len()).collect();
        if nodelay {
            assert_eq!(data, vec![10; 10]);
        } else {
            // The first goes out; the rest wait for its ACK and leave together.
            assert_eq!(data, vec![10, 90]);
        }
        assert_eq!(sim.b().recv_queue_len(), 100);
    }
}

/// Linux (`tcp_nagle_check` + `tcp_minshall_check`) sends the sub-MSS tail
/// of a single write at once when no earlier *small* segment is
/// unacknowledged. Holding it for the ACK of the full segment before it
/// would stall every response of MSS < size < 2*MSS by the peer's
/// delayed-ACK timer. A further small write still waits for the tail's ACK.
#[test]
fn nagle_sends_the_tail_of_one_write_but_holds_a_second_small_segment() {
    let mut sim = Sim::established(TcpConfig::default(), TcpConfig::default());
    // Warm up so B's advertised window is fully open (no window-update ACKs).
    assert!(transfer(&mut sim, A, 300_000, Duration::from_secs(10)));
    sim.run_idle(Duration::from_secs(1));
    let start = sim.now;
    let before = sim.log.len();
    let data_from_a = |sim: &Sim| -> Vec<usize> {
        sim.log[before..].iter().filter(|s| s.packet.from == A && s.packet.is_data()).map(|s| s.packet.payload.len()).collect()
    };
    assert_eq!(sim.a().send(&pattern(0, 2000, 0)), Ok(2000));
    sim.transmit();
    let first_poll = data_from_a(&sim);
    assert_eq!(first_poll.len(), 2, "one write of 2000 bytes: segments in the first poll {first_poll:?}");
    // The tail is small and unacknowledged: Nagle holds the next small write.
    assert_eq!(sim.a().send(&pattern(2000, 10, 0)), Ok(10));
    sim.transmit();
    assert_eq!(data_from_a(&sim), first_poll);
    assert!(sim.run_until(Duration::from_secs(1), |s| s.b().recv_queue_len() >= 2000));
    let elapsed = sim.now - start;
    assert!(elapsed < Duration::from_millis(20), "the write was delivered after {elapsed:?} on a 10 ms link");
    assert!(sim.run_until(Duration::from_secs(1), |s| s.b().recv_queue_len() == 2010));
    let all = data_from_a(&sim);
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(all[2], 10);
}

#[test]
fn reading_opens_the_window_with_an_update() {
    let b = TcpConfig { recv_buffer: 64 * 1024, ..TcpConfig::default() };
    let mut sim = Sim::established(TcpConfig::default(), b);
    assert!(sim.a().send(&pattern(0, 64 * 1024, 0)).is_ok());
    sim.run_idle(Duration::from_secs(2));
    assert_eq!(sim.b().recv_queue_len(), 64 * 1024);
    let start = sim.log.len();
    // A small read does not move the window (receiver SWS avoidance)...
    let mut buf = vec![0u8; 32 * 1024];
    assert_eq!(sim.b().recv(&mut buf[..100]), Ok(100));
    sim.transmit();
    assert_eq!(sim.log.len(), start);
    // ...a large one sends a window update at once.
    assert!(sim.b().recv(&mut buf).is_ok());
    sim.transmit();
    let update = &sim.log[start..];
    assert_eq!(update.len(), 1);
    assert!(update[0].packet.repr.window > 0 && update[0].packet.payload.is_empty());
}

#[test]
fn out_of_order_segments_are_acked_at_once_with_sack_blocks() {
    let mut sim = Sim::established(TcpConfig::default(), TcpConfig::default());
    // Hold back A's first data segment so the next ones arrive out of order.
    let mut held = false;
    sim.filter = Box::new(move |_, p| {
        if p.from == A && p.is_data() && !held {
            held = true;
            return Verdict::Delay(Duration::from_millis(5));
        }
        Verdict::Deliver
    });
    let start = sim.log.len();
    assert!(sim.a().send(&pattern(0, 4 * 1448, 0)).is_ok());
    sim.run_idle(Duration::from_secs(1));
    let acks: Vec<Sent> = sim.log[start..].iter().filter(|s| s.packet.from == B).cloned().collect();
    // Three out-of-order segments: three immediate duplicate ACKs with a SACK block,
    // then the gap-filling segment is acknowledged at once. (Three duplicate ACKs
    // also made A retransmit the late segment: a fifth ACK answers that.)
    assert_eq!(acks.len(), 5, "{acks:?}");
    assert_eq!(sim.a().info().fast_retransmits, 1);
    assert_eq!(acks[4].packet.repr.ack, acks[3].packet.repr.ack);
    let first = sim.log[start].packet.repr.seq;
    for (i, ack) in acks[..3].iter().enumerate() {
        assert_eq!(ack.packet.repr.ack, first);
        let sack = ack.packet.repr.options.sack;
        assert_eq!(sack.len(), 1);
        assert_eq!(sack.as_slice()[0].0, first + 1448);
        assert!(sack.as_slice()[0].1 >= first + 1448 * 2, "block {i}: {sack:?}");
    }
    assert_eq!(acks[3].packet.repr.ack, first + 4 * 1448);
    assert!(acks[3].packet.repr.options.sack.is_empty());
    assert!(acks[..4].iter().all(|a| a.at - sim.log[start].at <= sim.latency + Duration::from_millis(5)));
    assert_eq!(sim.b().recv_queue_len(), 4 * 1448);
}

#[test]
fn fin_ahead_of_missing_data_is_held_until_the_gap_fills() {
    let mut sim = Sim::established(TcpConfig::default(), TcpConfig::default());
    let mut held = false;
    sim.filter = Box::new(move |_, p| {
        if p.from == A && p.is_data() && !held {
            held = true;
            return Verdict::Delay(Duration::from_millis(5));
        }
        Verdict::Deliver
    });
    assert!(sim.a().send(&pattern(0, 3000, 0)).is_ok());
    sim.a().shutdown_write();
    sim.transmit();
    sim.step();
    assert_eq!(sim.state(B), Some(TcpState::Established), "FIN arrived before the first segment");
    assert!(sim.run_until(Duration::from_secs(1), |s| s.state(B) == Some(TcpState::CloseWait)));
    let mut buf = vec![0u8; 4000];
    assert_eq!(sim.b().recv(&mut buf), Ok(3000));
    assert_eq!(sim.b().recv(&mut buf), Ok(0));
}
