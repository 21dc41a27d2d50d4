//! Buffer memory: storage in proportion to the data held, released when a
//! connection goes idle or can no longer use it (TIME-WAIT, CLOSED).

use super::*;

/// One tiny out-of-order segment at the far end of the window used to make
/// the receive ring allocate the whole window (256 KiB for a 1-byte
/// segment). Linux charges only the skb; with 131072 connections that was
/// ~32 GiB from ~9 MB of attack traffic.
#[test]
fn one_byte_out_of_order_segment_does_not_allocate_the_whole_window() {
    let mut sim = Sim::established(TcpConfig::default(), TcpConfig::default());
    sim.run_idle(Duration::from_secs(1));
    // Open B's advertised window to the full buffer first.
    assert!(transfer(&mut sim, A, 300_000, Duration::from_secs(10)));
    sim.run_idle(Duration::from_secs(5));
    let before = sim.b().recv_buf.allocated();
    let wnd = sim.b().rcv.adv.distance_from(sim.b().rcv.nxt);
    assert!(wnd > 200_000, "window {wnd}");
    let mut seg = segment_from(sim.b(), TcpFlags::ACK);
    seg.seq = seg.seq + (wnd - 1);
    seg.payload_len = 1;
    sim.inject(B, seg, b"x");
    assert!(sim.b().recv_buf.has_out_of_order(), "the byte is kept for SACK");
    let after = sim.b().recv_buf.allocated();
    assert!(after <= before.max(8 * 1024), "window {wnd}: allocation went from {before} to {after} bytes for one byte");
}

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
