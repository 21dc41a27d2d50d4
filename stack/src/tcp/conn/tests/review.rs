//! Regression tests from the review.

use super::*;

/// Linux (tcp_nagle_check + tcp_minshall_check) sends the sub-MSS tail of a
/// single write at once when no earlier *small* segment is unacknowledged.
/// Holding it for the ACK of the full segment before it stalls every
/// response of MSS < size < 2*MSS by the peer's delayed-ACK timer.
#[test]
fn review_nagle_does_not_hold_tail_of_one_write_behind_full_segment() {
    let mut sim = Sim::established(TcpConfig::default(), TcpConfig::default());
    // Warm up so B's advertised window is fully open (no window-update ACKs).
    assert!(transfer(&mut sim, A, 300_000, Duration::from_secs(10)));
    sim.run_idle(Duration::from_secs(1));
    let start = sim.now;
    let before = sim.log.len();
    assert_eq!(sim.a().send(&pattern(0, 2000, 0)), Ok(2000));
    sim.transmit();
    let first_poll: Vec<usize> =
        sim.log[before..].iter().filter(|s| s.packet.from == A && s.packet.is_data()).map(|s| s.packet.payload.len()).collect();
    assert!(sim.run_until(Duration::from_secs(1), |s| s.b().recv_queue_len() == 2000));
    let elapsed = sim.now - start;
    assert_eq!(first_poll.len(), 2, "one write of 2000 bytes: segments in the first poll {first_poll:?}, all delivered after {elapsed:?}");
    assert!(elapsed < Duration::from_millis(20), "delivered after {elapsed:?} on a 10 ms link");
}

/// One tiny out-of-order segment at the far end of the window makes the
/// receive ring allocate the whole window (256 KiB for a 1-byte segment).
/// Linux charges only the skb; with 131072 connections this is ~32 GiB
/// from ~9 MB of attack traffic.
#[test]
fn review_one_byte_out_of_order_segment_does_not_allocate_the_whole_window() {
    let mut sim = Sim::established(TcpConfig::default(), TcpConfig::default());
    sim.run_idle(Duration::from_secs(1));
    // Open B's advertised window to the full buffer first.
    assert!(transfer(&mut sim, A, 300_000, Duration::from_secs(10)));
    sim.run_idle(Duration::from_secs(1));
    let before = sim.b().recv_buf.allocated();
    let wnd = sim.b().rcv.adv.distance_from(sim.b().rcv.nxt);
    let mut seg = segment_from(sim.b(), TcpFlags::ACK);
    seg.seq = seg.seq + (wnd - 1);
    seg.payload_len = 1;
    sim.inject(B, seg, b"x");
    let after = sim.b().recv_buf.allocated();
    assert!(after <= before.max(64 * 1024), "window {wnd}: allocation went from {before} to {after} bytes for one byte");
}

/// `release_if_empty` exists but nothing calls it: an idle keep-alive
/// connection keeps its high-water send and receive rings forever
/// (Linux frees skbs as soon as they are acked / read).
#[test]
fn review_idle_connection_releases_its_buffers() {
    let mut sim = Sim::established(TcpConfig::default(), TcpConfig::default());
    assert!(transfer_both(&mut sim, &[(A, 200_000), (B, 200_000)], Duration::from_secs(10)));
    sim.run_idle(Duration::from_secs(5));
    for i in [A, B] {
        let c = sim.conn(i);
        assert_eq!(c.send_buf.len() + c.recv_buf.readable(), 0);
        assert_eq!(c.send_buf.allocated() + c.recv_buf.allocated(), 0, "side {i} holds idle buffers");
    }
}

/// write(header); write(body); read() from a Nagle client on a *fresh*
/// connection: the body waits for the ACK of the header. Linux's receiver
/// is in quick-ACK mode for the first data segments of a connection
/// (tcp_event_data_recv -> tcp_incr_quickack), so it ACKs the header at
/// once; here the ACK is delayed 40 ms, and so is every such request.
#[test]
fn review_first_request_split_in_two_writes_is_not_delayed_by_delayed_ack() {
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
