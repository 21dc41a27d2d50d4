//! Connections that have sent more than 2^31 bytes: sequence numbers are
//! compared modulo 2^32 (RFC 1982 serial arithmetic), so any sequence number
//! kept from the start of the connection (the ISS, a RecoveryPoint, HighRxt)
//! looks *ahead* of SND.UNA once SND.UNA is 2^31 past it.
//!
//! Moving 2 GiB through the simulated link would take minutes in a debug
//! build, so `skip_sequence_space` compresses it: hops of 1 GiB, each
//! followed by a real transfer, so that everything the connection refreshes
//! per ACK is refreshed, and whatever it never refreshes goes stale exactly
//! as on a real long-lived connection.

use super::*;
use crate::config::CongestionAlgorithm;

/// One hop: at most this many bytes, well below 2^31 so that every marker
/// the connection keeps up to date stays comparable across the hop.
const HOP: usize = 1 << 30;

/// Pretend `from` has sent (and had acknowledged) `bytes` more bytes: both
/// ends' views of that direction move forward together, in hops of `HOP`
/// with a 64 KiB transfer after each. Only the variables that by definition
/// describe the present (SND.UNA/NXT/max, RCV.NXT, the last ACK sent and the
/// right edge advertised) are moved; everything else, SND.WL1/WL2 included,
/// keeps its value and is refreshed by the transfer or not at all.
fn skip_sequence_space(sim: &mut Sim, from: usize, bytes: usize) {
    let to = 1 - from;
    let mut left = bytes;
    while left > 0 {
        let hop = left.min(HOP);
        left -= hop;
        sim.run_idle(Duration::from_secs(1));
        let sender = sim.conn(from);
        assert_eq!(sender.snd.una, sender.snd.max, "nothing in flight before a hop");
        assert!(sender.send_buf.is_empty());
        sender.snd.una = sender.snd.una + hop;
        sender.snd.nxt = sender.snd.nxt + hop;
        sender.snd.max = sender.snd.max + hop;
        let receiver = sim.conn(to);
        assert_eq!(receiver.recv_queue_len(), 0, "everything read before a hop");
        receiver.rcv.nxt = receiver.rcv.nxt + hop;
        receiver.rcv.adv = receiver.rcv.adv + hop;
        receiver.rcv.last_ack_sent = receiver.rcv.last_ack_sent + hop;
        assert!(transfer(sim, from, 64 * 1024, Duration::from_secs(10)), "transfer after a hop");
    }
    sim.run_idle(Duration::from_secs(1));
}

/// Distance travelled in `from`'s send space since its ISS.
fn distance_from_iss(sim: &mut Sim, from: usize) -> u32 {
    let conn = sim.conn(from);
    conn.snd.una.0.wrapping_sub(conn.snd.iss.0)
}

#[test]
fn transfer_continues_past_2_31_bytes() {
    let config = TcpConfig::default();
    let mut sim = Sim::established(config, config);
    sim.log_payloads = false;
    skip_sequence_space(&mut sim, A, 3 * HOP);
    assert!(distance_from_iss(&mut sim, A) > 1 << 31);
    let acked = sim.a().info().bytes_acked;
    assert!(transfer(&mut sim, A, 2 << 20, Duration::from_secs(30)), "the transfer stalled");
    sim.run_idle(Duration::from_secs(1));
    assert_eq!(sim.a().info().bytes_acked - acked, 2 << 20);
    assert_eq!(sim.a().info().retransmits, 0);
    assert_eq!(sim.a().poll_timeout(), None, "nothing outstanding, no timer");
}

#[test]
fn transfer_through_snd_una_equal_to_iss() {
    // Stop 512 KiB short of a full 2^32 lap, so that the next transfer
    // moves SND.UNA through the ISS itself.
    let config = TcpConfig::default();
    let mut sim = Sim::established(config, config);
    sim.log_payloads = false;
    let lap_left = (1usize << 32) - distance_from_iss(&mut sim, A) as usize;
    // Each hop is followed by 64 KiB of real data.
    let hops = lap_left.div_ceil(HOP);
    skip_sequence_space(&mut sim, A, lap_left - hops * 64 * 1024 - 512 * 1024);
    let to_go = (1u64 << 32) - distance_from_iss(&mut sim, A) as u64;
    assert!((256 * 1024..1 << 20).contains(&to_go), "{to_go} bytes short of the ISS");
    assert!(transfer(&mut sim, A, 2 << 20, Duration::from_secs(30)));
    assert!(distance_from_iss(&mut sim, A) < 2 << 20, "SND.UNA went past the ISS");
    assert_eq!(sim.a().info().retransmits, 0);
}

/// Fast recovery still starts after 2^31 bytes without a single loss (the
/// RecoveryPoint guard must not remember the ISS), and HighRxt still counts.
fn recovery_past_2_31_bytes(sack: bool, congestion: CongestionAlgorithm) {
    let config = TcpConfig { sack, congestion, ..TcpConfig::default() };
    let mut sim = Sim::established(config, config);
    sim.log_payloads = false;
    skip_sequence_space(&mut sim, A, 3 * HOP);
    assert_eq!(sim.a().info().retransmits, 0, "no loss so far");
    let mut count = 0u32;
    sim.filter = Box::new(move |_, p| {
        if p.from == A && p.is_data() {
            count += 1;
            if count % 20 == 19 {
                return Verdict::Drop;
            }
        }
        Verdict::Deliver
    });
    assert!(transfer(&mut sim, A, 2 << 20, Duration::from_secs(60)), "sack={sack}");
    let info = sim.a().info();
    assert!(info.fast_retransmits > 0, "losses were repaired by fast retransmit: {info:?}");
    assert_eq!(info.timeouts, 0, "every loss repaired by fast retransmit: {info:?}");
}

#[test]
fn fast_recovery_past_2_31_bytes_sack() {
    recovery_past_2_31_bytes(true, CongestionAlgorithm::Cubic);
}

#[test]
fn fast_recovery_past_2_31_bytes_newreno() {
    recovery_past_2_31_bytes(false, CongestionAlgorithm::NewReno);
}

/// A window update that acknowledges nothing new is still taken after 2^31
/// bytes (SND.WL1/WL2 are refreshed as the connection goes).
#[test]
fn window_updates_are_taken_past_2_31_bytes() {
    let b = TcpConfig { recv_buffer: 64 * 1024, ..TcpConfig::default() };
    let mut sim = Sim::established(TcpConfig::default(), b);
    sim.log_payloads = false;
    skip_sequence_space(&mut sim, A, 3 * HOP);
    // Fill B's window without reading: A ends up window-limited, then B's
    // reader drains it and the window update (no new ACK) reopens it.
    let data = pattern(0, 200 * 1024, 0);
    let taken = sim.a().send(&data).unwrap();
    sim.run_idle(Duration::from_secs(2));
    assert_eq!(sim.a().snd.wnd, 0, "A sees B's window closed");
    let mut buf = vec![0u8; 256 * 1024];
    let mut read = sim.b().recv(&mut buf).unwrap();
    assert!(read > 0);
    assert!(sim.run_until(Duration::from_secs(60), |s| {
        while let Ok(n) = s.b().recv(&mut buf) {
            if n == 0 {
                break;
            }
            read += n;
        }
        read == taken
    }));
}
