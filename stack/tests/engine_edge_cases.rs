//! Engine edge cases a review found wrong: full rings and queues, TIME-WAIT
//! pressure, ARP and ICMP failures during connect (public API only).

mod engine_common;

use core::net::{Ipv4Addr, SocketAddrV4};

use engine_common::*;
use sluice_stack::{Duration, Error, EventSet, SocketId};

const PORT: u16 = 80;

/// Connections whose RESET or ERROR event `a` reported.
fn failed_conns(net: &mut Pair) -> Vec<SocketId> {
    drain_events(&mut net.a, APP)
        .into_iter()
        .filter(|(_, kinds)| kinds.intersects(EventSet::RESET | EventSet::ERROR))
        .map(|(socket, _)| socket)
        .collect()
}

/// Linux (tcp_abort_on_overflow = 0) never resets a client whose handshake
/// completes into a full accept queue: the final ACK is dropped and the
/// SYN-ACK retransmission makes the client ACK again, which completes it
/// once the application accepts. Here c3's handshake is stateful (c2 and c3
/// are half-open together, under the backlog) and completes when c1 and c2
/// fill the queue.
#[test]
fn full_accept_queue_drops_the_final_ack_of_a_stateful_handshake() {
    let mut net = Pair::default_pair();
    let listener = net.b.tcp_listen(APP, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT), 2, false).unwrap();
    let server = SocketAddrV4::new(IP_B, PORT);
    net.a.tcp_connect(net.now, APP, server, None, None).unwrap();
    net.run_idle(Duration::from_millis(100));
    net.a.tcp_connect(net.now, APP, server, None, None).unwrap();
    net.a.tcp_connect(net.now, APP, server, None, None).unwrap();
    let mut failed = Vec::new();
    net.run_until(Duration::from_secs(3), |net| {
        failed.extend(failed_conns(net));
        false
    });
    assert_eq!(net.b.stats().syn_cookies_sent, 0, "the handshakes must be stateful");
    assert!(net.b.stats().accept_queue_overflow > 0, "c3's final ACK found the queue full");
    let mut accepted = 0;
    net.run_until(Duration::from_secs(30), |net| {
        while net.b.tcp_accept(listener).is_ok() {
            accepted += 1;
        }
        failed.extend(failed_conns(net));
        accepted == 3
    });
    assert!(failed.is_empty(), "clients reset: {failed:?}; accepted {accepted}; stats {:?}", net.b.stats());
    assert_eq!(accepted, 3);
}

/// The same for a SYN-cookie handshake (c2 finds c1 half-open with backlog
/// 1): the cookie ACK is dropped, not reset, and the client's request
/// (retransmitted, carrying the cookie again) opens the connection once the
/// application accepts.
#[test]
fn full_accept_queue_drops_a_cookie_ack_without_reset() {
    let mut net = Pair::default_pair();
    let listener = net.b.tcp_listen(APP, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT), 1, false).unwrap();
    let server = SocketAddrV4::new(IP_B, PORT);
    let clients = [
        net.a.tcp_connect(net.now, APP, server, None, None).unwrap(),
        net.a.tcp_connect(net.now, APP, server, None, None).unwrap(),
    ];
    let mut sent = [false; 2];
    let mut failed = Vec::new();
    let send_requests = |net: &mut Pair, sent: &mut [bool; 2]| {
        for (c, sent) in clients.iter().zip(sent.iter_mut()) {
            if !*sent && net.a.tcp_send(*c, b"GET").is_ok_and(|n| n == 3) {
                *sent = true;
            }
        }
    };
    net.run_until(Duration::from_secs(3), |net| {
        send_requests(net, &mut sent);
        failed.extend(failed_conns(net));
        false
    });
    assert!(net.b.stats().syn_cookies_sent > 0, "c2 must get a cookie");
    assert!(net.b.stats().accept_queue_overflow > 0, "c2's cookie ACK found the queue full");
    let mut accepted = 0;
    net.run_until(Duration::from_secs(30), |net| {
        send_requests(net, &mut sent);
        while net.b.tcp_accept(listener).is_ok() {
            accepted += 1;
        }
        failed.extend(failed_conns(net));
        accepted == 2
    });
    assert!(failed.is_empty(), "clients reset: {failed:?}; accepted {accepted}; stats {:?}", net.b.stats());
    assert_eq!(accepted, 2);
}

use sluice_stack::tcp::seq::SeqNum;
use sluice_stack::wire::{IpProtocol, SackBlocks, TcpFlags, TcpOptions, TcpPacket, TcpRepr};
use sluice_stack::{Instant, Stack};

fn segment_frame(src: SocketAddrV4, dst: SocketAddrV4, repr: TcpRepr, payload: &[u8]) -> Vec<u8> {
    let repr = TcpRepr { src_port: src.port(), dst_port: dst.port(), payload_len: payload.len(), ..repr };
    let mut segment = vec![0u8; repr.header_len() + payload.len()];
    segment[repr.header_len()..].copy_from_slice(payload);
    repr.emit(&mut TcpPacket::new_unchecked(&mut segment[..]), src.ip(), dst.ip());
    ipv4_frame(MAC_A, MAC_B, ip_repr(*src.ip(), *dst.ip(), IpProtocol::Tcp), None, &segment)
}

/// Random peers hammer a listener (handshakes, data, FIN, RST, SYN, junk
/// ACK numbers, options) while the app accepts, closes, aborts and
/// re-listens at random. Nothing may panic, and once everything has timed
/// out the engine must hold nothing and answer a new SYN statefully.
#[test]
fn random_peers_against_listener_keep_bookkeeping_sound() {
    for seed in 1..=40u64 {
        let mut rng = Rng::new(seed * 7919);
        let mut cfg = config(MAC_B, IP_B);
        cfg.max_half_open = 4;
        cfg.max_connections = 64;
        let mut now = Instant::from_secs(10);
        let mut b = Stack::new(cfg, now);
        // Teach B our MAC so replies are not held for ARP.
        b.handle_frame(now, &arp_request_from_a());
        let mut listener = b.tcp_listen(APP, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT), 3, false).unwrap();
        let server = SocketAddrV4::new(IP_B, PORT);
        // Per-peer view: (their ISN, our ISN as learned from SYN-ACKs).
        let mut peers: Vec<(SocketAddrV4, u32, u32)> =
            (0..6).map(|i| (SocketAddrV4::new(IP_A, 40000 + i), rng.next_u64() as u32, 0)).collect();
        let mut accepted = Vec::new();
        for _step in 0..3000 {
            let p = rng.below(peers.len() as u64) as usize;
            let (peer, isn, their) = peers[p];
            let r = rng.below(100);
            let mut repr = TcpRepr { window: (rng.below(65536)) as u16, ..TcpRepr::default() };
            let mut payload = Vec::new();
            if r < 20 {
                repr.flags = TcpFlags(TcpFlags::SYN);
                repr.seq = SeqNum(isn);
                repr.options = TcpOptions {
                    mss: Some(rng.below(2000) as u16),
                    window_scale: if rng.below(2) == 0 { Some(rng.below(20) as u8) } else { None },
                    sack_permitted: rng.below(2) == 0,
                    timestamps: if rng.below(2) == 0 { Some((rng.next_u64() as u32, 0)) } else { None },
                    sack: SackBlocks::default(),
                };
            } else {
                let flags = [
                    TcpFlags::ACK,
                    TcpFlags::ACK | TcpFlags::FIN,
                    TcpFlags::RST,
                    TcpFlags::RST | TcpFlags::ACK,
                    TcpFlags::ACK | TcpFlags::PSH,
                    TcpFlags::SYN | TcpFlags::ACK,
                ];
                repr.flags = TcpFlags(flags[rng.below(flags.len() as u64) as usize]);
                repr.seq = SeqNum(isn.wrapping_add(1).wrapping_add(if rng.below(4) == 0 {
                    rng.next_u64() as u32
                } else {
                    rng.below(3000) as u32
                }));
                repr.ack = SeqNum(their.wrapping_add(1).wrapping_add(if rng.below(5) == 0 {
                    rng.next_u64() as u32
                } else {
                    0
                }));
                if rng.below(2) == 0 {
                    payload = vec![0x42; rng.below(1400) as usize];
                }
                if rng.below(3) == 0 {
                    let mut s = SackBlocks::default();
                    let base = their.wrapping_add(rng.below(100_000) as u32);
                    s.push(SeqNum(base), SeqNum(base.wrapping_add(rng.below(5000) as u32)));
                    repr.options.sack = s;
                }
                if rng.below(2) == 0 {
                    repr.options.timestamps = Some((rng.next_u64() as u32, rng.next_u64() as u32));
                }
            }
            if rng.below(50) == 0 {
                peers[p].1 = rng.next_u64() as u32; // the peer restarts
            }
            b.handle_frame(now, &segment_frame(peer, server, repr, &payload));
            let mut out: Vec<Vec<u8>> = Vec::new();
            b.poll_transmit(now, &mut out);
            for f in &out {
                if let Some((_, t)) = parse_tcp(f) {
                    if t.flags.syn() && t.flags.ack() {
                        if let Some(q) = peers.iter_mut().find(|q| q.0.port() == t.dst_port) {
                            q.2 = t.seq.0;
                        }
                    }
                }
            }
            match rng.below(30) {
                0..=5 => {
                    while let Ok((id, _)) = b.tcp_accept(listener) {
                        accepted.push(id);
                    }
                }
                6 if !accepted.is_empty() => {
                    let id = accepted.swap_remove(rng.below(accepted.len() as u64) as usize);
                    let _ = b.tcp_close(now, id);
                }
                7 if !accepted.is_empty() => {
                    let id = accepted.swap_remove(rng.below(accepted.len() as u64) as usize);
                    let _ = b.tcp_abort(now, id);
                }
                8 if rng.below(10) == 0 => {
                    b.tcp_unlisten(now, listener).unwrap();
                    listener = b.tcp_listen(APP, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT), 3, false).unwrap();
                }
                9 => {
                    now += Duration::from_millis(rng.below(3000));
                    b.handle_timeout(now);
                }
                _ => {}
            }
            while b.poll_event(APP).is_some() {}
        }
        for id in accepted.drain(..) {
            let _ = b.tcp_abort(now, id);
        }
        b.tcp_unlisten(now, listener).unwrap();
        // Let everything time out.
        for _ in 0..100_000 {
            let mut out: Vec<Vec<u8>> = Vec::new();
            b.poll_transmit(now, &mut out);
            let Some(next) = b.poll_timeout() else { break };
            now = now.max(next);
            b.handle_timeout(now);
        }
        let mut out: Vec<Vec<u8>> = Vec::new();
        b.poll_transmit(now, &mut out);
        assert_eq!(b.connection_count(), 0, "seed {seed}: connections left");
        // Half-open bookkeeping: a fresh listener answers SYNs statefully.
        let listener = b.tcp_listen(APP, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT), 3, false).unwrap();
        let cookies_before = b.stats().syn_cookies_sent;
        for i in 0..3u16 {
            let syn = TcpRepr { flags: TcpFlags(TcpFlags::SYN), seq: SeqNum(1), window: 1000, ..TcpRepr::default() };
            b.handle_frame(now, &segment_frame(SocketAddrV4::new(IP_A, 50000 + i), server, syn, &[]));
        }
        assert_eq!(b.stats().syn_cookies_sent, cookies_before, "seed {seed}: half-open count leaked");
        let _ = listener;
    }
}

fn arp_request_from_a() -> Vec<u8> {
    arp_request(MAC_A, IP_A, IP_B)
}

fn arp_request(from_mac: sluice_stack::wire::EthernetAddress, from_ip: Ipv4Addr, to_ip: Ipv4Addr) -> Vec<u8> {
    use sluice_stack::wire::{
        ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr,
    };
    let mut frame = vec![0u8; 14 + ArpRepr::BUFFER_LEN];
    EthernetRepr { src: from_mac, dst: EthernetAddress::BROADCAST, ethertype: EthernetProtocol::Arp }
        .emit(&mut EthernetFrame::new_unchecked(&mut frame[..]));
    ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: from_mac,
        source_protocol_addr: from_ip,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: to_ip,
    }
    .emit(&mut ArpPacket::new_unchecked(&mut frame[14..]));
    frame
}

/// An adaptive driver (the documented use of `wants_transmit`): sleep until
/// `poll_timeout`, `handle_timeout`, and poll only if `wants_transmit`. A
/// due ARP retry request is only acted on inside `poll_transmit`, and
/// `wants_transmit` does not report it, so the deadline never moves: the
/// driver spins at 100% CPU. One spoofed SYN from an unused on-link address
/// to a closed port (answered by RST, which needs ARP) is enough.
#[test]
fn due_arp_request_is_reported_by_wants_transmit() {
    let mut now = Instant::from_secs(1);
    let mut b = Stack::new(config(MAC_B, IP_B), now);
    let ghost = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 77), 40000);
    let syn = TcpRepr { flags: TcpFlags(TcpFlags::SYN), seq: SeqNum(1), window: 1000, ..TcpRepr::default() };
    b.handle_frame(now, &segment_frame(ghost, SocketAddrV4::new(IP_B, 9), syn, &[]));
    let mut out: Vec<Vec<u8>> = Vec::new();
    assert!(b.wants_transmit());
    b.poll_transmit(now, &mut out); // ARP request #1, RST held
    let mut wakeups = 0;
    while let Some(deadline) = b.poll_timeout() {
        now = now.max(deadline);
        b.handle_timeout(now);
        if b.wants_transmit() {
            b.poll_transmit(now, &mut out);
        }
        wakeups += 1;
        assert!(wakeups < 1000, "driver woke {wakeups} times at {now:?} without progress (deadline {deadline:?})");
    }
}

/// Server-side close (nginx closing keep-alive connections, HTTP/1.0) puts
/// the server's end in TIME-WAIT for 60 s, and TIME-WAIT holds a full
/// connection slot counted in `max_connections`. Once they fill the table,
/// every new client is answered with a cookie and then reset. Linux keeps
/// TIME-WAIT in a separate, cheap table and, when that overflows, drops
/// TIME-WAIT state instead of refusing new connections.
#[test]
fn time_wait_does_not_lock_out_new_connections() {
    let mut a_cfg = config(MAC_A, IP_A);
    a_cfg.max_connections = 64;
    let mut b_cfg = config(MAC_B, IP_B);
    b_cfg.max_connections = 4;
    let mut net = Pair::new(a_cfg, b_cfg);
    let listener = net.b.tcp_listen(APP, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT), 16, false).unwrap();
    let server = SocketAddrV4::new(IP_B, PORT);
    for round in 0..6 {
        let c = net.a.tcp_connect(net.now, APP, server, None, None).unwrap();
        let mut served = false;
        let mut outcome = None;
        net.run_until(Duration::from_secs(5), |net| {
            if let Ok((s, _)) = net.b.tcp_accept(listener) {
                net.b.tcp_send(s, b"bye").unwrap();
                net.b.tcp_close(net.now, s).unwrap(); // server closes first
                served = true;
            }
            let mut buf = [0u8; 16];
            match net.a.tcp_recv(c, &mut buf) {
                Ok(0) => {
                    net.a.tcp_close(net.now, c).unwrap();
                    outcome = Some(Ok(()));
                    return true;
                }
                Err(e) if e != Error::WouldBlock => {
                    outcome = Some(Err(e));
                    return true;
                }
                _ => {}
            }
            false
        });
        net.flush();
        assert_eq!(
            outcome,
            Some(Ok(())),
            "round {round}: served {served}, server holds {} connections",
            net.b.connection_count()
        );
    }
    assert!(net.b.stats().time_wait_recycled > 0, "the table filled with TIME-WAIT: {:?}", net.b.stats());
}

/// A full device ring at the moment an abort's RST is polled loses the RST
/// for good (`pending_rst.take()` before the sink refuses it), and the slot
/// is freed at the next poll: the peer keeps a dead connection open.
#[test]
fn rst_survives_a_full_transmit_ring() {
    let mut net = Pair::default_pair();
    let listener = net.b.tcp_listen(APP, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT), 8, false).unwrap();
    let c = net.a.tcp_connect(net.now, APP, SocketAddrV4::new(IP_B, PORT), None, None).unwrap();
    let mut s = None;
    assert!(net.run_until(Duration::from_secs(5), |net| {
        if s.is_none() {
            s = net.b.tcp_accept(listener).ok().map(|x| x.0);
        }
        s.is_some()
    }));
    let s = s.unwrap();
    net.b.tcp_abort(net.now, s).unwrap();
    // The device ring is full for one poll.
    let mut full = Ring { frames: Vec::new(), room: 0 };
    net.b.poll_transmit(net.now, &mut full);
    let mut out: Vec<Vec<u8>> = Vec::new();
    net.b.poll_transmit(net.now, &mut out);
    let rst = out.iter().filter_map(|f| parse_tcp(f)).any(|(_, t)| t.flags.rst());
    assert!(rst, "the RST was never sent; client still {:?}", net.a.tcp_info(c).map(|i| i.state));
}

/// ICMP destination unreachable (RFC 792) from B quoting `sent` (an IPv4
/// packet A sent) with the sequence number replaced by `seq`.
fn icmp_unreachable_quoting(code: u8, sent: &[u8], seq: Option<u32>) -> Vec<u8> {
    use sluice_stack::wire::{IcmpPacket, IcmpRepr};
    let mut quoted = sent[..20 + 8].to_vec();
    if let Some(seq) = seq {
        quoted[24..28].copy_from_slice(&seq.to_be_bytes());
    }
    let repr = IcmpRepr::DestinationUnreachable { code, next_hop_mtu: 0 };
    let mut icmp = vec![0u8; 8 + quoted.len()];
    repr.emit(&mut IcmpPacket::new_unchecked(&mut icmp[..]), &quoted);
    ipv4_frame(MAC_B, MAC_A, ip_repr(IP_B, IP_A, IpProtocol::Icmp), None, &icmp)
}

/// A SYN-SENT connection learns of an ICMP port unreachable at once
/// (ECONNREFUSED, Linux's tcp_v4_err) instead of retrying its SYN for
/// minutes; one quoting a different sequence number (an off-path guess) is
/// ignored (RFC 5927 §4.1).
#[test]
fn icmp_unreachable_fails_a_connect_in_syn_sent() {
    let now = Instant::from_secs(1);
    let mut a = Stack::new(config(MAC_A, IP_A), now);
    a.handle_frame(now, &arp_request(MAC_B, IP_B, IP_A));
    while a.poll_event(APP).is_some() {}
    let c = a.tcp_connect(now, APP, SocketAddrV4::new(IP_B, PORT), None, None).unwrap();
    let mut out: Vec<Vec<u8>> = Vec::new();
    a.poll_transmit(now, &mut out);
    let syn = out.iter().find(|f| parse_tcp(f).is_some_and(|(_, t)| t.flags.syn())).expect("SYN sent");
    let (_, syn_repr) = parse_tcp(syn).unwrap();
    let sent_ip = &syn[14..];

    a.handle_frame(now, &icmp_unreachable_quoting(3, sent_ip, Some(syn_repr.seq.0.wrapping_add(12345))));
    assert_eq!(
        a.tcp_info(c).unwrap().state,
        Some(sluice_stack::tcp::conn::TcpState::SynSent),
        "a wrong sequence number is ignored"
    );
    assert!(drain_events(&mut a, APP).is_empty());

    a.handle_frame(now, &icmp_unreachable_quoting(3, sent_ip, None));
    let events = drain_events(&mut a, APP);
    assert!(events.iter().any(|&(s, k)| s == SocketId::Conn(c) && k.contains(EventSet::ERROR)), "{events:?}");
    assert_eq!(a.tcp_take_error(c), Ok(Some(Error::ConnectionRefused)));
    assert_eq!(a.stats().tcp_connect_unreachable, 1);
    a.poll_transmit(now, &mut out);
    assert!(out.iter().all(|f| parse_tcp(f).is_none_or(|(_, t)| !t.flags.rst())), "no RST in SYN-SENT");
}

/// A connect to an on-link address nobody answers ARP for fails with
/// EHOSTUNREACH when ARP gives up (twice: 3 requests at 0-2 s, then again
/// after the SYN retransmission at 7 s), not with ETIMEDOUT after every SYN
/// retransmission (6 retries: 127 s).
#[test]
fn arp_failure_fails_a_connect_with_unreachable() {
    let mut now = Instant::from_secs(1);
    let mut a = Stack::new(config(MAC_A, IP_A), now);
    let c = a.tcp_connect(now, APP, SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 77), PORT), None, None).unwrap();
    let start = now;
    let mut failed_at = None;
    let mut out: Vec<Vec<u8>> = Vec::new();
    for _ in 0..10_000 {
        a.poll_transmit(now, &mut out);
        if drain_events(&mut a, APP).iter().any(|&(s, k)| s == SocketId::Conn(c) && k.contains(EventSet::ERROR)) {
            failed_at = Some(now);
            break;
        }
        let Some(next) = a.poll_timeout() else { break };
        now = now.max(next);
        a.handle_timeout(now);
    }
    let failed_at = failed_at.expect("the connect failed");
    assert_eq!(a.tcp_take_error(c), Ok(Some(Error::Unreachable)));
    assert!(
        failed_at.saturating_since(start) <= Duration::from_secs(15),
        "failed after {:?}",
        failed_at.saturating_since(start)
    );
    assert_eq!(a.stats().arp_failed, 2);
}

/// Entries of sockets the application released while unread must not take
/// room in the consumer's queue: with a capacity equal to the socket limit,
/// churn between two polls would otherwise make a live connection's
/// CONNECTED event overflow and be lost (the application never wakes).
#[test]
fn released_sockets_events_cannot_crowd_out_a_live_one() {
    let mut a_cfg = config(MAC_A, IP_A);
    a_cfg.max_connections = 2;
    a_cfg.event_queue_capacity = 2;
    let mut net = Pair::new(a_cfg, config(MAC_B, IP_B));
    let listener = net.b.tcp_listen(APP, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT), 16, false).unwrap();
    let server = SocketAddrV4::new(IP_B, PORT);
    let connect = |net: &mut Pair| {
        let c = net.a.tcp_connect(net.now, APP, server, None, None).unwrap();
        assert!(net.run_until(Duration::from_secs(5), |net| {
            while net.b.tcp_accept(listener).is_ok() {}
            net.a.tcp_info(c).is_ok_and(|i| i.state == Some(sluice_stack::tcp::conn::TcpState::Established))
        }));
        c
    };
    // Connections opened and aborted without the application polling events.
    for _ in 0..3 {
        let c = connect(&mut net);
        net.a.tcp_abort(net.now, c).unwrap();
        net.flush();
    }
    let live = connect(&mut net);
    let events = drain_events(&mut net.a, APP);
    assert!(
        events.iter().any(|&(s, k)| s == SocketId::Conn(live) && k.contains(EventSet::CONNECTED)),
        "the live connection's CONNECTED was lost: {events:?}, stats {:?}",
        net.a.stats()
    );
    assert_eq!(net.a.stats().events_dropped_queue_full, 0);
}

/// SYN+FIN is no valid opening (RFC 9293 §3.10.7.2 processes the SYN and
/// leaves FIN to later, but no stack accepts it; Linux drops it): a
/// listener drops and counts it, creating nothing and answering nothing.
#[test]
fn syn_fin_to_a_listener_is_dropped_and_counted() {
    let now = Instant::from_secs(1);
    let mut b = Stack::new(config(MAC_B, IP_B), now);
    b.handle_frame(now, &arp_request_from_a());
    b.tcp_listen(APP, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT), 8, false).unwrap();
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.poll_transmit(now, &mut out);
    out.clear();
    let dropped_before = b.stats().tcp_listen_dropped;
    let syn_fin =
        TcpRepr { flags: TcpFlags(TcpFlags::SYN | TcpFlags::FIN), seq: SeqNum(1), window: 1000, ..TcpRepr::default() };
    b.handle_frame(now, &segment_frame(SocketAddrV4::new(IP_A, 40000), SocketAddrV4::new(IP_B, PORT), syn_fin, &[]));
    b.poll_transmit(now, &mut out);
    assert!(out.iter().all(|f| parse_tcp(f).is_none()), "nothing answered");
    assert_eq!(b.connection_count(), 0);
    assert_eq!(b.stats().tcp_listen_dropped, dropped_before + 1);
}

/// A SYN that could reopen a TIME-WAIT connection (RFC 6191) while nobody
/// listens on the port must not destroy TIME-WAIT and draw a RST: like
/// Linux (TCP_TW_SYN without a listener), it gets TIME-WAIT's ACK.
#[test]
fn syn_to_time_wait_without_listener_keeps_time_wait() {
    let mut net = Pair::default_pair();
    let listener = net.b.tcp_listen(APP, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT), 8, false).unwrap();
    let server = SocketAddrV4::new(IP_B, PORT);
    let c = net.a.tcp_connect(net.now, APP, server, None, None).unwrap();
    let client = net.a.local_addr(c).unwrap();
    let mut closed = false;
    assert!(net.run_until(Duration::from_secs(5), |net| {
        if let Ok((s, _)) = net.b.tcp_accept(listener) {
            net.b.tcp_close(net.now, s).unwrap(); // the server closes first: TIME-WAIT is its
        }
        let mut buf = [0u8; 16];
        if !closed && net.a.tcp_recv(c, &mut buf) == Ok(0) {
            net.a.tcp_close(net.now, c).unwrap();
            closed = true;
        }
        closed && net.a.connection_count() == 0
    }));
    net.flush();
    assert_eq!(net.b.connection_count(), 1, "the server holds TIME-WAIT");
    net.b.tcp_unlisten(net.now, listener).unwrap();
    // One of two sequence numbers half the space apart is above RCV.NXT.
    for seq in [7u32, 7 + (1 << 31)] {
        let syn = TcpRepr { flags: TcpFlags(TcpFlags::SYN), seq: SeqNum(seq), window: 1000, ..TcpRepr::default() };
        net.b.handle_frame(net.now, &segment_frame(client, server, syn, &[]));
        let mut out: Vec<Vec<u8>> = Vec::new();
        net.b.poll_transmit(net.now, &mut out);
        let answers: Vec<TcpRepr> = out.iter().filter_map(|f| parse_tcp(f)).map(|(_, t)| t).collect();
        assert!(answers.iter().all(|t| !t.flags.rst()), "seq {seq}: RST sent: {answers:?}");
        assert!(answers.iter().any(|t| t.flags.ack() && !t.flags.syn()), "seq {seq}: no ACK: {answers:?}");
        assert_eq!(net.b.connection_count(), 1, "seq {seq}: TIME-WAIT kept");
    }
}

/// More SYNs to a new neighbour than its ARP queue holds: the excess waits
/// for the resolution instead of being dropped, so every connection
/// completes within a few round trips, not after the 1 s initial RTO.
#[test]
fn syns_beyond_the_arp_queue_go_out_when_the_neighbour_resolves() {
    let mut a_cfg = config(MAC_A, IP_A);
    a_cfg.arp.pending_per_neighbor = 2;
    let mut net = Pair::new(a_cfg, config(MAC_B, IP_B));
    let listener = net.b.tcp_listen(APP, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT), 16, false).unwrap();
    let server = SocketAddrV4::new(IP_B, PORT);
    let start = net.now;
    let clients: Vec<_> = (0..5).map(|_| net.a.tcp_connect(net.now, APP, server, None, None).unwrap()).collect();
    let established = |net: &Pair, c| {
        net.a.tcp_info(c).is_ok_and(|i| i.state == Some(sluice_stack::tcp::conn::TcpState::Established))
    };
    assert!(net.run_until(Duration::from_secs(5), |net| {
        while net.b.tcp_accept(listener).is_ok() {}
        clients.iter().all(|&c| established(net, c))
    }));
    let took = net.now.saturating_since(start);
    assert!(took < Duration::from_millis(500), "took {took:?}; stats {:?}", net.a.stats());
    assert_eq!(net.a.stats().tcp_timeouts, 0, "no SYN waited for its retransmission timer");
    assert!(net.a.stats().arp_syn_waits > 0);
}
