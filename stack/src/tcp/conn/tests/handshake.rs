//! Opening: active/passive handshake and option negotiation, simultaneous
//! open, SYN timeout, refused connections, SYN cookies.

use super::*;
use crate::error::Error;
use crate::tcp::conn::{receive_window_shift, CookieOptions};

#[test]
fn handshake_negotiates_mss_window_scale_sack_and_timestamps() {
    let config = TcpConfig { recv_buffer: 1 << 20, ..TcpConfig::default() };
    let mut sim = Sim::established(config, TcpConfig::default());
    assert!(sim.events[A].contains(EventSet::CONNECTED | EventSet::WRITABLE));
    assert!(sim.events[B].contains(EventSet::CONNECTED));

    let syn = &sim.log[0].packet.repr;
    assert!(syn.flags.syn() && !syn.flags.ack());
    assert_eq!(syn.seq, SeqNum(1_000));
    assert_eq!(syn.options.mss, Some(1460));
    assert_eq!(syn.options.window_scale, Some(receive_window_shift(1 << 20)));
    assert_eq!(receive_window_shift(1 << 20), 5);
    assert!(syn.options.sack_permitted);
    let (syn_tsval, syn_tsecr) = syn.options.timestamps.unwrap();
    assert_eq!(syn_tsecr, 0);
    // TSval clock = ms of `now` plus the connection's offset.
    assert_eq!(syn_tsval, (1_000_000u32).wrapping_add(7_000));

    let syn_ack = &sim.log[1].packet.repr;
    assert!(syn_ack.flags.syn() && syn_ack.flags.ack());
    assert_eq!(syn_ack.ack, SeqNum(1_001));
    assert_eq!(syn_ack.seq, SeqNum(5_000_000));
    assert_eq!(syn_ack.options.window_scale, Some(receive_window_shift(TcpConfig::default().recv_buffer)));
    assert_eq!(syn_ack.options.timestamps.unwrap().1, syn_tsval, "SYN-ACK echoes the SYN's TSval");

    let (ia, ib) = (sim.a().info(), sim.b().info());
    assert_eq!(ia.snd_mss, 1460 - 12, "MSS less the timestamp option");
    assert_eq!(ia.snd_wscale, receive_window_shift(TcpConfig::default().recv_buffer));
    assert_eq!(ia.rcv_wscale, 5);
    assert_eq!(ib.snd_wscale, 5);
    assert!(ia.sack_enabled && ib.sack_enabled && ia.timestamps_enabled && ib.timestamps_enabled);
    assert!(ia.srtt_us >= 20_000, "handshake RTT sampled: {}", ia.srtt_us);
}

#[test]
fn options_are_only_used_when_both_sides_agree() {
    let b_config = TcpConfig { sack: false, timestamps: false, window_scaling: false, ..TcpConfig::default() };
    let mut sim = Sim::new(TcpConfig::default(), b_config);
    sim.params[B].local_mss = 536;
    assert!(sim.run_until(Duration::from_secs(5), |s| s.both_in(TcpState::Established)));
    let syn_ack = &sim.log[1].packet.repr;
    assert_eq!(syn_ack.options.window_scale, None);
    assert!(!syn_ack.options.sack_permitted);
    assert_eq!(syn_ack.options.timestamps, None);
    for i in [A, B] {
        let info = sim.conn(i).info();
        assert!(!info.sack_enabled && !info.timestamps_enabled);
        assert_eq!((info.snd_wscale, info.rcv_wscale), (0, 0));
        assert_eq!(info.snd_mss, 536);
    }
    // Established segments carry no options at all.
    assert!(transfer(&mut sim, A, 50_000, Duration::from_secs(10)));
    assert!(sim.log.iter().skip(2).all(|s| s.packet.repr.options.timestamps.is_none()));
}

#[test]
fn simultaneous_open_reaches_established_on_both_sides() {
    let mut sim = Sim::new(TcpConfig::default(), TcpConfig::default());
    let b = TcpConn::connect(sim.now, sim.params[B]);
    sim.conns[B] = Some(b);
    assert!(sim.run_until(Duration::from_secs(5), |s| s.both_in(TcpState::Established)));
    assert!(sim.events[A].contains(EventSet::CONNECTED) && sim.events[B].contains(EventSet::CONNECTED));
    // Each side sent a SYN and then a SYN-ACK (RFC 9293 §3.5 Figure 7).
    for i in [A, B] {
        assert_eq!(sim.sent_by(i, |s| s.packet.has(TcpFlags::SYN) && !s.packet.has(TcpFlags::ACK)).len(), 1);
        assert_eq!(sim.sent_by(i, |s| s.packet.has(TcpFlags::SYN) && s.packet.has(TcpFlags::ACK)).len(), 1);
    }
    assert!(transfer_both(&mut sim, &[(A, 100_000), (B, 100_000)], Duration::from_secs(10)));
}

#[test]
fn syn_retries_back_off_then_time_out() {
    let config = TcpConfig { syn_retries: 3, ..TcpConfig::default() };
    let mut sim = Sim::new(config, TcpConfig::default());
    sim.filter = Box::new(|_, _| Verdict::Drop);
    let start = sim.now;
    sim.run_idle(Duration::from_secs(100));
    let syns: Vec<u64> = sim.sent_by(A, |_| true).iter().map(|s| (s.at - start).total_millis()).collect();
    assert_eq!(syns, vec![0, 1_000, 3_000, 7_000]);
    assert_eq!(sim.state(A), Some(TcpState::Closed));
    assert_eq!(sim.now - start, Duration::from_secs(15));
    assert!(sim.events[A].contains(EventSet::ERROR | EventSet::CLOSED));
    assert_eq!(sim.a().take_error(), Some(Error::TimedOut));
    assert!(sim.a().is_finished());
}

#[test]
fn rst_answering_syn_is_connection_refused() {
    let mut sim = Sim::new(TcpConfig::default(), TcpConfig::default());
    sim.transmit();
    let mut rst = TcpRepr { src_port: 80, dst_port: 40000, flags: TcpFlags(TcpFlags::RST), ..TcpRepr::default() };
    // Without ACK an RST in SYN-SENT is not believed (RFC 5961 §3 / RFC 9293).
    sim.inject(A, rst, &[]);
    assert_eq!(sim.state(A), Some(TcpState::SynSent));
    // An ACK that does not cover our SYN is rejected with an RST at its ack number.
    rst.flags = TcpFlags(TcpFlags::ACK);
    rst.ack = SeqNum(77);
    sim.inject(A, rst, &[]);
    sim.transmit();
    let last = sim.log.last().unwrap().packet.repr;
    assert!(last.flags.rst() && last.seq == SeqNum(77));
    rst.flags = TcpFlags(TcpFlags::RST | TcpFlags::ACK);
    rst.ack = SeqNum(1_001);
    sim.inject(A, rst, &[]);
    assert_eq!(sim.state(A), Some(TcpState::Closed));
    assert!(sim.events[A].contains(EventSet::ERROR | EventSet::CLOSED));
    assert_eq!(sim.a().take_error(), Some(Error::ConnectionRefused));
    assert_eq!(sim.a().send(b"x"), Err(Error::BrokenPipe));
}

#[test]
fn lost_syn_ack_is_retransmitted_and_connection_completes() {
    let mut sim = Sim::new(TcpConfig::default(), TcpConfig::default());
    let mut dropped = false;
    sim.filter = Box::new(move |_, p| {
        if p.from == B && p.has(TcpFlags::SYN) && !dropped {
            dropped = true;
            return Verdict::Drop;
        }
        Verdict::Deliver
    });
    assert!(sim.run_until(Duration::from_secs(10), |s| s.both_in(TcpState::Established)));
    assert_eq!(sim.sent_by(B, |s| s.packet.has(TcpFlags::SYN)).len(), 2);
}

#[test]
fn syn_cookie_ack_establishes_with_the_cookie_options() {
    let mut sim = Sim::new(TcpConfig::default(), TcpConfig::default());
    sim.transmit();
    let syn = sim.log[0].packet.repr;
    // Pretend B answered statelessly with ISS 9000; A's ACK (with data) comes back.
    let (tsval, _) = syn.options.timestamps.unwrap();
    let ack = TcpRepr {
        src_port: 40000,
        dst_port: 80,
        seq: syn.seq + 1,
        ack: SeqNum(9_001),
        flags: TcpFlags(TcpFlags::ACK | TcpFlags::PSH),
        window: 512,
        options: crate::wire::TcpOptions { timestamps: Some((tsval + 5, 1234)), ..Default::default() },
        payload_len: 5,
        ..TcpRepr::default()
    };
    let opts = CookieOptions { mss: 1460, window_scale: Some(7), sack_permitted: true, timestamps: true };
    let mut params = sim.params[B];
    params.iss = SeqNum(9_000);
    let mut b = TcpConn::accept_cookie(sim.now, params, opts, &ack, b"hello");
    assert_eq!(b.state(), TcpState::Established);
    assert!(b.take_events().contains(EventSet::CONNECTED | EventSet::READABLE));
    let mut buf = [0u8; 16];
    assert_eq!(b.recv(&mut buf), Ok(5));
    assert_eq!(&buf[..5], b"hello");
    let info = b.info();
    assert_eq!(info.snd_wscale, 7);
    assert!(info.sack_enabled && info.timestamps_enabled);
    assert_eq!(b.snd.wnd, 512 << 7);
}
