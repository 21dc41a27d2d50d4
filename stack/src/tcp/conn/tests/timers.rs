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
