//! Keepalive and timer bookkeeping.

use super::*;
use crate::config::KeepaliveConfig;
use crate::error::Error;

fn keepalive() -> TcpConfig {
    let ka = KeepaliveConfig { idle: Duration::from_secs(10), interval: Duration::from_secs(2), probes: 3 };
    TcpConfig { keepalive: Some(ka), ..TcpConfig::default() }
}

#[test]
fn keepalive_probes_then_times_out_when_peer_is_gone() {
    let mut sim = Sim::established(keepalive(), TcpConfig::default());
    let quiet_since = sim.now;
    sim.filter = Box::new(|_, _| Verdict::Drop);
    sim.run_idle(Duration::from_secs(100));
    // Idle 10 s after the last segment from B arrived, then every 2 s; after 3 unanswered probes, dead.
    let last_heard = sim.log.iter().filter(|s| s.packet.from == B).map(|s| s.at).max().unwrap() + sim.latency;
    let probes: Vec<u64> = sim.sent_by(A, |s| s.at > quiet_since).iter().map(|s| (s.at - last_heard).total_millis()).collect();
    assert_eq!(probes, vec![10_000, 12_000, 14_000]);
    assert_eq!(sim.now - last_heard, Duration::from_secs(16));
    let probe = &sim.sent_by(A, |s| s.at > quiet_since)[0].packet.repr;
    assert_eq!(probe.seq, sim.a().snd.una - 1, "keepalive probes carry SND.UNA - 1");
    assert_eq!(sim.state(A), Some(TcpState::Closed));
    assert_eq!(sim.a().take_error(), Some(Error::TimedOut));
    assert!(sim.events[A].contains(EventSet::ERROR | EventSet::CLOSED));
}

#[test]
fn answered_keepalives_keep_the_connection() {
    let mut sim = Sim::established(keepalive(), TcpConfig::default());
    sim.run_until(Duration::from_secs(120), |_| false);
    assert_eq!(sim.state(A), Some(TcpState::Established));
    let una = sim.a().snd.una;
    let probes = sim.sent_by(A, |s| s.packet.repr.seq == una - 1);
    assert!(probes.len() >= 10, "a probe every idle period: {}", probes.len());
    assert_eq!(sim.state(B), Some(TcpState::Established));
}

#[test]
fn no_keepalive_unless_configured() {
    let mut sim = Sim::established(TcpConfig::default(), TcpConfig::default());
    let count = sim.log.len();
    assert_eq!(sim.a().poll_timeout(), None);
    assert_eq!(sim.b().poll_timeout(), None);
    sim.run_idle(Duration::from_secs(10_000));
    assert_eq!(sim.log.len(), count);
}

#[test]
fn keepalive_can_be_switched_on_later() {
    let mut sim = Sim::established(TcpConfig::default(), TcpConfig::default());
    let now = sim.now;
    sim.a().set_config(now, keepalive());
    assert_eq!(sim.a().poll_timeout(), Some(now + Duration::from_secs(10)));
    let now = sim.now;
    sim.a().set_config(now, TcpConfig::default());
    assert_eq!(sim.a().poll_timeout(), None);
}

#[test]
fn idle_restart_shrinks_cwnd_to_the_restart_window() {
    let mut sim = Sim::established(TcpConfig::default(), TcpConfig::default());
    sim.log_payloads = false;
    assert!(transfer(&mut sim, A, 2 << 20, Duration::from_secs(30)));
    sim.run_idle(Duration::from_secs(1));
    let grown = sim.a().info().cwnd_bytes;
    let initial = 10 * sim.a().info().snd_mss;
    assert!(grown > initial, "cwnd grew during the transfer: {grown}");
    // Idle for much longer than the RTO (RFC 5681 §4.1), then send again.
    sim.now += Duration::from_secs(30);
    assert!(sim.a().send(&pattern(0, 100_000, 0)).is_ok());
    sim.transmit();
    assert!(sim.a().info().cwnd_bytes <= initial, "restart window: {}", sim.a().info().cwnd_bytes);
}

#[test]
fn synack_retries_then_half_open_connection_is_dropped() {
    let b = TcpConfig { synack_retries: 2, ..TcpConfig::default() };
    let mut sim = Sim::new(TcpConfig { syn_retries: 0, ..TcpConfig::default() }, b);
    sim.filter = Box::new(|_, p| if p.from == B { Verdict::Drop } else { Verdict::Deliver });
    sim.run_idle(Duration::from_secs(60));
    let synacks: Vec<Instant> = sim.sent_by(B, |s| s.packet.has(TcpFlags::SYN)).iter().map(|s| s.at).collect();
    assert_eq!(synacks.len(), 3, "original + 2 retries");
    assert_eq!(synacks[1] - synacks[0], Duration::from_secs(1));
    assert_eq!(synacks[2] - synacks[1], Duration::from_secs(2));
    assert!(sim.b().is_finished());
    assert_eq!(sim.b().poll_timeout(), None);
}

#[test]
fn writable_after_a_short_write_once_space_frees() {
    let a = TcpConfig { send_buffer: 16 * 1024, ..TcpConfig::default() };
    let mut sim = Sim::established(a, TcpConfig::default());
    sim.events[A] = EventSet::EMPTY;
    let taken = sim.a().send(&pattern(0, 40_000, 0)).unwrap();
    assert_eq!(taken, 16 * 1024);
    assert_eq!(sim.a().send(b"more"), Err(Error::WouldBlock));
    assert_eq!(sim.a().send_queue_free(), 0);
    assert!(sim.run_until(Duration::from_secs(2), |s| s.events[A].contains(EventSet::WRITABLE)));
    assert!(sim.a().send_queue_free() * 3 >= 16 * 1024);
    assert!(sim.events[B].contains(EventSet::READABLE));
    let mut buf = [0u8; 10];
    let queued = sim.b().recv_queue_len();
    assert_eq!(sim.b().peek(&mut buf), Ok(10));
    assert_eq!(sim.b().recv_queue_len(), queued, "peek does not consume");
    assert_eq!(&buf[..], &pattern(0, 10, 0)[..]);
}
