//! Closing: graceful close in both orders, simultaneous close, half-close,
//! shutdown_read, close with unread data, orphans under loss, TIME-WAIT.

use super::*;
use crate::error::Error;

fn config() -> TcpConfig {
    TcpConfig { time_wait: Duration::from_secs(5), ..TcpConfig::default() }
}

#[test]
fn graceful_close_active_side_goes_through_time_wait() {
    for first in [A, B] {
        let second = 1 - first;
        let mut sim = Sim::established(config(), config());
        let now = sim.now;
        sim.conn(first).close(now);
        assert_eq!(sim.state(first), Some(TcpState::FinWait1));
        assert!(sim.run_until(Duration::from_secs(1), |s| s.state(second) == Some(TcpState::CloseWait)));
        assert!(sim.events[second].contains(EventSet::PEER_CLOSED | EventSet::READABLE));
        assert_eq!(sim.conn(second).recv(&mut [0u8; 8]), Ok(0), "end of stream");
        assert!(sim.run_until(Duration::from_secs(1), |s| s.state(first) == Some(TcpState::FinWait2)));
        let now = sim.now;
        sim.conn(second).close(now);
        assert_eq!(sim.state(second), Some(TcpState::LastAck));
        assert!(sim.run_until(Duration::from_secs(1), |s| s.state(first) == Some(TcpState::TimeWait)));
        let entered = sim.now;
        assert!(sim.run_until(Duration::from_secs(1), |s| s.state(second) == Some(TcpState::Closed)));
        assert!(sim.conn(second).is_finished());
        assert!(sim.events[second].contains(EventSet::CLOSED));
        assert!(sim.run_until(Duration::from_secs(60), |s| s.state(first) == Some(TcpState::Closed)));
        assert_eq!(sim.now - entered, Duration::from_secs(5), "TIME-WAIT lasts the configured time");
        assert!(sim.conn(first).is_finished());
        assert_eq!(sim.conn(first).take_error(), None);
    }
}

#[test]
fn simultaneous_close_passes_through_closing() {
    let mut sim = Sim::established(config(), config());
    sim.a().shutdown_write();
    sim.b().shutdown_write();
    sim.transmit();
    // Both FINs cross: each side sees the other's FIN before the ACK of its own.
    sim.step();
    assert!(sim.both_in(TcpState::Closing), "{:?} {:?}", sim.state(A), sim.state(B));
    assert!(sim.run_until(Duration::from_secs(1), |s| s.both_in(TcpState::TimeWait)));
    assert!(sim.run_until(Duration::from_secs(10), |s| s.both_in(TcpState::Closed)));
    assert!(sim.events[A].contains(EventSet::PEER_CLOSED | EventSet::CLOSED));
}

#[test]
fn half_close_still_receives() {
    let mut sim = Sim::established(config(), config());
    sim.a().shutdown_write();
    assert_eq!(sim.a().send(b"late"), Err(Error::BrokenPipe));
    assert!(sim.run_until(Duration::from_secs(1), |s| s.state(A) == Some(TcpState::FinWait2)));
    assert!(transfer(&mut sim, B, 300_000, Duration::from_secs(30)));
    let now = sim.now;
    sim.b().close(now);
    assert!(sim.run_until(Duration::from_secs(1), |s| s.state(A) == Some(TcpState::TimeWait)));
    assert_eq!(sim.a().recv(&mut [0u8; 4]), Ok(0));
}

#[test]
fn shutdown_read_discards_but_acknowledges() {
    let mut sim = Sim::established(config(), config());
    sim.b().shutdown_read();
    assert!(sim.a().send(&pattern(0, 50_000, 0)).is_ok());
    sim.run_idle(Duration::from_secs(2));
    assert_eq!(sim.b().recv_queue_len(), 0);
    assert_eq!(sim.b().recv(&mut [0u8; 4]), Ok(0));
    assert_eq!(sim.a().info().bytes_acked, 50_000);
}

#[test]
fn close_with_unread_data_resets() {
    let mut sim = Sim::established(config(), config());
    assert!(sim.a().send(b"unread by B").is_ok());
    sim.run_idle(Duration::from_secs(1));
    assert_eq!(sim.b().recv_queue_len(), 11);
    let now = sim.now;
    let before = sim.log.len();
    sim.b().close(now);
    assert_eq!(sim.state(B), Some(TcpState::Closed));
    sim.run_idle(Duration::from_secs(1));
    let sent: Vec<&Sent> = sim.log[before..].iter().filter(|s| s.packet.from == B).collect();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].packet.has(TcpFlags::RST) && !sent[0].packet.has(TcpFlags::FIN));
    assert_eq!(sim.state(A), Some(TcpState::Closed));
    assert_eq!(sim.a().take_error(), Some(Error::ConnectionReset));
}

#[test]
fn linger_zero_close_resets() {
    let b = TcpConfig { linger_zero: true, ..config() };
    let mut sim = Sim::established(config(), b);
    let now = sim.now;
    sim.b().close(now);
    sim.run_idle(Duration::from_secs(1));
    assert!(sim.sent_by(B, |s| s.packet.has(TcpFlags::RST)).len() == 1);
    assert!(sim.events[A].contains(EventSet::RESET | EventSet::CLOSED));
}

#[test]
fn orphan_keeps_retransmitting_data_and_fin_under_loss() {
    let mut sim = Sim::established(config(), config());
    sim.log_payloads = false;
    let data = pattern(0, 200_000, 0);
    let mut queued = sim.a().send(&data).unwrap();
    sim.run_until(Duration::from_secs(5), |s| {
        if queued < data.len() {
            queued += s.a().send(&data[queued..]).unwrap_or(0);
        }
        queued == data.len()
    });
    // Heavy loss from here on, including the first three FINs.
    let mut n = 0u32;
    let mut fins_dropped = 0;
    sim.filter = Box::new(move |_, p| {
        if p.from == A && p.has(TcpFlags::FIN) && fins_dropped < 3 {
            fins_dropped += 1;
            return Verdict::Drop;
        }
        n += 1;
        if n % 4 == 3 { Verdict::Drop } else { Verdict::Deliver }
    });
    let now = sim.now;
    sim.a().close(now);
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    assert!(sim.run_until(Duration::from_secs(300), |s| {
        while let Ok(n) = s.b().recv(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        s.state(B) == Some(TcpState::CloseWait) && s.state(A) == Some(TcpState::FinWait2)
    }));
    assert_eq!(got, data);
    assert!(sim.sent_by(A, |s| s.packet.has(TcpFlags::FIN)).len() >= 4);
    let now = sim.now;
    sim.b().close(now);
    assert!(sim.run_until(Duration::from_secs(300), |s| s.conns.iter().flatten().all(|c| c.is_finished())));
    assert_eq!(sim.a().take_error(), None);
}

#[test]
fn orphan_gives_up_after_orphan_retries() {
    let config = TcpConfig { orphan_retries: 2, min_rto: Duration::from_secs(1), ..config() };
    let mut sim = Sim::established(config, config);
    sim.filter = Box::new(|_, p| if p.from == A { Verdict::Drop } else { Verdict::Deliver });
    assert!(sim.a().send(b"data").is_ok());
    let now = sim.now;
    sim.a().close(now);
    sim.run_idle(Duration::from_secs(100));
    assert_eq!(sim.state(A), Some(TcpState::Closed));
    assert_eq!(sim.sent_by(A, |s| s.packet.has(TcpFlags::FIN)).len(), 3, "original + 2 retries");
    assert_eq!(sim.a().poll_timeout(), None);
}

#[test]
fn orphan_fin_wait2_times_out() {
    let config = TcpConfig { fin_wait2_timeout: Duration::from_secs(3), ..config() };
    let mut sim = Sim::established(config, config);
    let now = sim.now;
    sim.a().close(now);
    assert!(sim.run_until(Duration::from_secs(1), |s| s.state(A) == Some(TcpState::FinWait2)));
    let entered = sim.now;
    assert!(sim.run_until(Duration::from_secs(10), |s| s.state(A) == Some(TcpState::Closed)));
    assert_eq!(sim.now - entered, Duration::from_secs(3));
    assert_eq!(sim.state(B), Some(TcpState::CloseWait), "B never closed");
}

#[test]
fn data_to_an_orphan_resets_it() {
    let mut sim = Sim::established(config(), config());
    let now = sim.now;
    sim.a().close(now);
    assert!(sim.run_until(Duration::from_secs(1), |s| s.state(A) == Some(TcpState::FinWait2)));
    assert!(sim.b().send(b"nobody reads this").is_ok());
    sim.run_idle(Duration::from_secs(1));
    assert_eq!(sim.state(A), Some(TcpState::Closed));
    assert!(sim.sent_by(A, |s| s.packet.has(TcpFlags::RST)).len() == 1);
    assert_eq!(sim.state(B), Some(TcpState::Closed));
}

#[test]
fn time_wait_reacks_retransmitted_fin_and_restarts() {
    let mut sim = Sim::established(config(), config());
    let now = sim.now;
    sim.a().close(now);
    assert!(sim.run_until(Duration::from_secs(1), |s| s.state(B) == Some(TcpState::CloseWait)));
    // B's FIN's ACK is lost once: B retransmits its FIN, A re-ACKs from TIME-WAIT.
    let mut dropped = false;
    sim.filter = Box::new(move |_, p| {
        if p.from == A && !dropped && p.repr.flags.ack() && !p.has(TcpFlags::FIN) {
            dropped = true;
            return Verdict::Drop;
        }
        Verdict::Deliver
    });
    let now = sim.now;
    sim.b().close(now);
    assert!(sim.run_until(Duration::from_secs(10), |s| s.state(B) == Some(TcpState::Closed)));
    assert_eq!(sim.sent_by(B, |s| s.packet.has(TcpFlags::FIN)).len(), 2);
    assert_eq!(sim.state(A), Some(TcpState::TimeWait));
}

#[test]
fn orphan_facing_a_window_that_never_opens_gives_up() {
    let a = TcpConfig { orphan_retries: 3, ..config() };
    let b = TcpConfig { recv_buffer: 2_000, ..config() };
    let mut sim = Sim::established(a, b);
    assert!(sim.a().send(&pattern(0, 10_000, 0)).is_ok());
    sim.run_until(Duration::from_secs(1), |_| false);
    let now = sim.now;
    sim.a().close(now);
    // B never reads: its window stays shut, though it answers every probe.
    sim.run_idle(Duration::from_secs(3600));
    assert_eq!(sim.state(A), Some(TcpState::Closed));
    assert!(sim.a().is_finished());
    let probes = sim.sent_by(A, |s| s.packet.payload.is_empty() && s.packet.repr.seq == sim.conns[A].as_ref().unwrap().snd.una - 1);
    assert_eq!(probes.len(), 3);
}
