//! The engine under hostile conditions: a SYN flood next to a live flow, and
//! seed 003's crash scenario (postponed fast retransmits outliving closed
//! connections on a lossy link).

mod engine_common;

use core::net::{Ipv4Addr, SocketAddrV4};

use engine_common::*;
use sluice_stack::wire::{EthernetAddress, TcpFlags, TcpOptions};
use sluice_stack::{Duration, Error, EventSet, SocketId};

const PORT: u16 = 80;
const MAC_H: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x99]);
const IP_H: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 9);

#[test]
fn syn_flood_uses_cookies_keeps_memory_bounded_and_the_live_flow_completes() {
    const FLOOD: usize = 10_000;
    const PER_STEP: usize = 250;
    const FLOW: usize = 2 * 1024 * 1024;
    const MAX_HALF_OPEN: usize = 64;

    let mut server_cfg = config(MAC_B, IP_B);
    server_cfg.max_half_open = MAX_HALF_OPEN;
    let mut net = Pair::new(config(MAC_A, IP_A), server_cfg);
    let mut server = EchoServer::new(&mut net.b, PORT, 1024);

    // A live connection first.
    let id = net.a.tcp_connect(net.now, APP, SocketAddrV4::new(IP_B, PORT), None, None).unwrap();
    let mut client = Flow::new(id, pattern(7, FLOW));
    assert!(net.run_until(Duration::from_secs(5), |net| {
        server.service(&mut net.b, net.now);
        drain_events(&mut net.a, APP).iter().any(|(_, k)| k.contains(EventSet::CONNECTED))
    }));

    // The attacker is a real neighbour (the server answers it) that never
    // completes a handshake: SYNs from 10,000 ports.
    let mut sent = 0;
    let mut received_at_flood_start = None;
    let mut received_at_flood_end = None;
    let mut max_connections = 0;
    let done = net.run_until(Duration::from_secs(120), |net| {
        if sent < FLOOD {
            received_at_flood_start.get_or_insert(client.received.len());
            for _ in 0..PER_STEP.min(FLOOD - sent) {
                let src = SocketAddrV4::new(IP_H, 1024 + sent as u16);
                let options = TcpOptions {
                    mss: Some(1460),
                    timestamps: Some((sent as u32, 0)),
                    window_scale: Some(7),
                    sack_permitted: true,
                    ..TcpOptions::default()
                };
                let syn = tcp_frame(MAC_H, MAC_B, src, SocketAddrV4::new(IP_B, PORT), 1_000_000 + sent as u32, 0, TcpFlags::SYN, options);
                net.b.handle_frame(net.now, &syn);
                sent += 1;
            }
            if sent == FLOOD {
                received_at_flood_end = Some(client.received.len());
            }
        }
        max_connections = max_connections.max(net.b.connection_count());
        server.service(&mut net.b, net.now);
        client.pump(&mut net.a);
        client.received.len() == FLOW && sent == FLOOD
    });
    let st = net.b.stats().clone();
    assert!(done, "the live flow completes during the flood: {st:?}");
    assert!(client.received == client.to_send, "bytes intact");
    assert!(st.syn_cookies_sent > 0, "{st:?}");
    // Every flood SYN either opened one of the bounded half-open connections or got a cookie.
    let half_open_created = st.connections_opened - 1;
    assert!(half_open_created >= MAX_HALF_OPEN as u64);
    assert_eq!(st.syn_cookies_sent + half_open_created, FLOOD as u64, "{st:?}");
    assert!(max_connections <= MAX_HALF_OPEN + 1, "memory bounded: {max_connections} connections at most");
    let (start, end) = (received_at_flood_start.unwrap(), received_at_flood_end.unwrap());
    assert!(end > start, "the live flow kept moving during the flood ({start} -> {end})");
    assert_eq!(server.accepted, 1, "no flood SYN became a connection");
}

/// Seed 003: the server writes 1 MiB on each of many connections and closes
/// at once; the link drops 20% of frames and only 2 fast retransmits may go
/// out per poll, so fast retransmits are postponed while their connections
/// are orphaned, finish and are freed.
#[test]
fn seed_003_postponed_retransmits_never_touch_freed_connections() {
    const CONNS: usize = 50;
    const LEN: usize = 1024 * 1024;

    let mut server_cfg = config(MAC_B, IP_B);
    server_cfg.fast_retransmit_budget = 2;
    server_cfg.tcp.send_buffer = 2 * LEN;
    // The loss hits every frame, ARP and SYNs included: give resolution,
    // the handshake and the orphans enough attempts that no side gives up.
    server_cfg.arp.max_requests = 20;
    // Consecutive timeouts on a 20%-lossy path (both directions) are common
    // enough that Linux's default 8 orphan retries would kill a stream now and then.
    server_cfg.tcp.orphan_retries = 15;
    // Likewise a client whose ACKs all get lost would sit ESTABLISHED forever
    // (it has nothing to send) after the server gave up on the handshake.
    server_cfg.tcp.synack_retries = 15;
    let mut client_cfg = config(MAC_A, IP_A);
    client_cfg.arp.max_requests = 20;
    client_cfg.tcp.syn_retries = 15;
    let mut net = Pair::new(client_cfg, server_cfg);
    net.loss_percent = 20;
    // SEED003=<n> replays the scenario with another loss pattern.
    net.rng = Rng::new(std::env::var("SEED003").ok().and_then(|v| v.parse().ok()).unwrap_or(3));
    let start = net.now;

    let listener = net.b.tcp_listen(APP, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT), 128, false).unwrap();
    let mut clients: Vec<Flow> = (0..CONNS)
        .map(|_| Flow::new(net.a.tcp_connect(net.now, APP, SocketAddrV4::new(IP_B, PORT), None, None).unwrap(), Vec::new()))
        .collect();
    let mut served = 0;
    let mut closed_clients = 0;
    // At 20% loss each way seed 3 finishes in about 2 minutes of virtual
    // time, the slowest of seeds 1-11 in 6 (lost retransmissions are repaired
    // without waiting for RTOs; the RTOs left come from small flights or all
    // of their ACKs being lost). The bound leaves a 2.5x margin over that: a
    // livelock, or repairs waiting on RTOs backed off towards `max_rto`
    // (120 s), fails the test instead of passing after hours.
    let done = net.run_until(Duration::from_secs(15 * 60), |net| {
        drain_events(&mut net.b, APP);
        while let Ok((id, _)) = net.b.tcp_accept(listener) {
            // Write everything, close immediately: the connection is orphaned
            // with (nearly) all of its data still to be (re)transmitted.
            let data = pattern(served, LEN);
            assert_eq!(net.b.tcp_send(id, &data), Ok(LEN));
            net.b.tcp_close(net.now, id).unwrap();
            assert_eq!(net.b.tcp_send(id, b"x"), Err(Error::InvalidHandle));
            served += 1;
        }
        drain_events(&mut net.a, APP);
        for c in clients.iter_mut() {
            c.pump(&mut net.a);
            if c.eof && !c.closed {
                net.a.tcp_close(net.now, c.id).unwrap();
                c.closed = true;
                closed_clients += 1;
            }
        }
        closed_clients == CONNS
    });
    let st = net.b.stats().clone();
    println!(
        "seed-003: every stream done after {:?} of virtual time; server tcp_timeouts {}, client tcp_timeouts {}",
        net.now - start,
        st.tcp_timeouts,
        net.a.stats().tcp_timeouts
    );
    assert!(done, "every client reads to EOF: server {st:?}, client {:?}", net.a.stats());
    assert_eq!(served, CONNS);
    // Which server connection a client got depends on accept order; match by content.
    let expected: Vec<Vec<u8>> = (0..CONNS).map(|n| pattern(n, LEN)).collect();
    for (n, c) in clients.iter().enumerate() {
        assert_eq!(c.error, None, "client {n}");
        assert!(expected.contains(&c.received), "client {n} got exactly 1 MiB of one server stream ({} bytes)", c.received.len());
    }
    assert!(st.tcp_fast_retransmits > 0, "{st:?}");
    assert!(st.tcp_fast_retransmits_postponed > 0, "the budget postponed fast retransmits: {st:?}");

    // TIME-WAIT and every orphan finish; nothing is left.
    net.loss_percent = 0;
    net.run_idle(Duration::from_secs(600));
    assert_eq!(net.b.connection_count(), 0, "{:?}", net.b.stats());
    assert_eq!(net.a.connection_count(), 0);
    let st = net.b.stats();
    assert_eq!(st.connections_closed, st.connections_opened);
    // Stale entries may have been met; they are counted, and were never applied
    // (applying one to a reused slot would have corrupted another stream above).
    let _ = (st.tcp_postponed_stale, st.tcp_timer_stale);
    assert!(matches!(net.b.poll_event(APP).map(|e| e.key), None | Some(SocketId::Listener(_))));
}
