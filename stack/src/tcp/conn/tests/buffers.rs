//! Buffer memory: released when a connection goes idle or can no longer
//! use it (TIME-WAIT, CLOSED).

use super::*;

/// `release_if_empty` existed but nothing called it: an idle keep-alive
/// connection kept its high-water send and receive rings forever (Linux
/// frees skbs as soon as they are acked / read). They are kept through the
/// transfer itself, so a busy connection does not allocate per packet.
#[test]
fn idle_connection_releases_its_buffers() {
    let mut sim = Sim::established(TcpConfig::default(), TcpConfig::default());
    assert!(transfer_both(&mut sim, &[(A, 200_000), (B, 200_000)], Duration::from_secs(10)));
    for i in [A, B] {
        let c = sim.conn(i);
        assert!(c.send_buf.allocated() + c.recv_buf.allocated() > 0, "side {i} kept its buffers while busy");
    }
    sim.run_idle(Duration::from_secs(5));
    for i in [A, B] {
        let c = sim.conn(i);
        assert_eq!(c.send_buf.len() + c.recv_buf.readable(), 0);
        assert_eq!(c.send_buf.allocated() + c.recv_buf.allocated(), 0, "side {i} holds idle buffers");
        assert_eq!(c.poll_timeout(), None, "an idle connection with nothing to free sets no timer");
    }
    // The next exchange allocates again and works.
    assert!(transfer_both(&mut sim, &[(A, 10_000), (B, 10_000)], Duration::from_secs(10)));
}

/// TIME-WAIT and CLOSED connections can never use their buffers again: they
/// are freed on entry, except received bytes the application has not read,
/// which are freed as soon as it reads them.
#[test]
fn finished_connections_release_their_buffers() {
    let mut sim = Sim::established(TcpConfig::default(), TcpConfig::default());
    assert!(transfer_both(&mut sim, &[(A, 50_000), (B, 50_000)], Duration::from_secs(10)));
    // B sends more that A does not read before the connection closes.
    assert_eq!(sim.b().send(&pattern(0, 3000, 9)), Ok(3000));
    assert!(sim.run_until(Duration::from_secs(1), |s| s.a().recv_queue_len() == 3000));
    sim.a().shutdown_write();
    assert!(sim.run_until(Duration::from_secs(1), |s| s.state(B) == Some(TcpState::CloseWait)));
    sim.b().shutdown_write();
    assert!(sim.run_until(Duration::from_secs(1), |s| s.state(A) == Some(TcpState::TimeWait)));
    assert!(sim.run_until(Duration::from_secs(1), |s| s.state(B) == Some(TcpState::Closed)));
    assert!(sim.now < Instant::from_secs(1_000) + Duration::from_secs(30));
    let b = sim.b();
    assert_eq!(b.send_buf.allocated() + b.recv_buf.allocated(), 0, "CLOSED holds buffers");
    let a = sim.a();
    assert_eq!(a.send_buf.allocated(), 0);
    assert!(a.recv_buf.allocated() > 0, "unread data stays readable in TIME-WAIT");
    let mut buf = [0u8; 4000];
    assert_eq!(a.recv(&mut buf), Ok(3000));
    assert_eq!(&buf[..3000], &pattern(0, 3000, 9)[..]);
    assert_eq!(a.recv_buf.allocated(), 0, "TIME-WAIT holds a read-out receive buffer");
    assert_eq!(a.recv(&mut buf), Ok(0));
}

/// An orphan (closed by the application) entering TIME-WAIT keeps nothing.
#[test]
fn orphan_in_time_wait_holds_no_buffers() {
    let mut sim = Sim::established(TcpConfig::default(), TcpConfig::default());
    assert!(transfer_both(&mut sim, &[(A, 50_000), (B, 50_000)], Duration::from_secs(10)));
    let now = sim.now;
    sim.a().close(now);
    assert!(sim.run_until(Duration::from_secs(1), |s| s.state(B) == Some(TcpState::CloseWait)));
    sim.b().shutdown_write();
    assert!(sim.run_until(Duration::from_secs(1), |s| s.state(A) == Some(TcpState::TimeWait)));
    let a = sim.a();
    assert_eq!(a.send_buf.allocated() + a.recv_buf.allocated(), 0);
}
