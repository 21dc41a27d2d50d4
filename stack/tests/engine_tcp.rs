//! Two stacks talking TCP over a simulated link, through the public API only.

mod engine_common;

use core::net::{Ipv4Addr, SocketAddrV4};

use engine_common::*;
use sluice_stack::{ConnId, Duration, Error, EventSet, SocketId};

const PORT: u16 = 80;

fn server_addr() -> SocketAddrV4 {
    SocketAddrV4::new(IP_B, PORT)
}

#[test]
fn arp_resolution_then_handshake() {
    let mut net = Pair::default_pair();
    let listener = net.b.tcp_listen(APP, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT), 8, false).unwrap();
    let client = net.a.tcp_connect(net.now, APP, server_addr(), None, None).unwrap();
    let mut connected = false;
    let mut accepted: Option<(ConnId, SocketAddrV4)> = None;
    let done = net.run_until(Duration::from_secs(5), |net| {
        for (socket, kinds) in drain_events(&mut net.a, APP) {
            if socket == SocketId::Conn(client) && kinds.contains(EventSet::CONNECTED) {
                connected = true;
            }
        }
        for (socket, kinds) in drain_events(&mut net.b, APP) {
            if socket == SocketId::Listener(listener) && kinds.contains(EventSet::ACCEPTABLE) {
                accepted = net.b.tcp_accept(listener).ok();
            }
        }
        connected && accepted.is_some()
    });
    assert!(done, "handshake completes");
    let (server_conn, peer) = accepted.unwrap();
    let local = net.a.local_addr(client).unwrap();
    assert_eq!(peer, local);
    assert_eq!(*local.ip(), IP_A);
    assert!((32768..=60999).contains(&local.port()), "ephemeral port");
    assert_eq!(net.b.peer_addr(server_conn).unwrap(), local);
    assert_eq!(net.b.local_addr(server_conn).unwrap(), server_addr());
    assert_eq!(net.a.peer_addr(client).unwrap(), server_addr());
    assert!(net.a.stats().arp_requests_out >= 1);
    assert!(net.b.stats().arp_replies_out >= 1);
    assert_eq!(net.a.connection_count(), 1);
    assert_eq!(net.b.connection_count(), 1);
    assert_eq!(net.b.tcp_accept(listener), Err(Error::WouldBlock));
}

#[test]
fn echo_then_close_frees_everything_after_time_wait() {
    let mut net = Pair::default_pair();
    let mut server = EchoServer::new(&mut net.b, PORT, 8);
    let id = net.a.tcp_connect(net.now, APP, server_addr(), None, None).unwrap();
    assert!(net.a.wants_transmit(), "a SYN (and the ARP request before it) to send");
    let message = b"hello, sluice".to_vec();
    let mut client = Flow::new(id, message.clone());
    let mut client_closed = false;
    let done = net.run_until(Duration::from_secs(10), |net| {
        server.service(&mut net.b, net.now);
        client.pump(&mut net.a);
        if client.received.len() == message.len() && !client_closed {
            net.a.tcp_close(net.now, id).unwrap();
            client.closed = true;
            client_closed = true;
        }
        client_closed && server.flows.iter().all(|f| f.closed)
    });
    assert!(done);
    assert_eq!(client.received, message);
    assert_eq!(client.error, None);
    net.flush();
    assert!(!net.a.wants_transmit() && !net.b.wants_transmit(), "nothing left to send after a flush");
    // The handle is gone for the app at once.
    assert_eq!(net.a.tcp_send(id, b"x"), Err(Error::InvalidHandle));
    assert_eq!(net.a.local_addr(id), Err(Error::InvalidHandle));
    // TIME-WAIT (60 s) passes, then nothing is left on either side.
    net.run_idle(Duration::from_secs(300));
    assert_eq!(net.a.connection_count(), 0);
    assert_eq!(net.b.connection_count(), 0);
    assert_eq!(net.a.poll_timeout(), None, "no timers left: {:?}", net.a.stats());
}

#[test]
fn hundred_connections_move_64k_each_way() {
    const N: usize = 100;
    const LEN: usize = 64 * 1024;
    let mut net = Pair::default_pair();
    let mut server = EchoServer::new(&mut net.b, PORT, 128);
    let mut clients: Vec<Flow> = (0..N)
        .map(|n| Flow::new(net.a.tcp_connect(net.now, APP, server_addr(), None, None).unwrap(), pattern(n, LEN)))
        .collect();
    let done = net.run_until(Duration::from_secs(120), |net| {
        drain_events(&mut net.a, APP);
        server.service(&mut net.b, net.now);
        for c in clients.iter_mut() {
            c.pump(&mut net.a);
        }
        clients.iter().all(|c| c.received.len() >= LEN)
    });
    assert!(done, "all transfers finish; stats a {:?} b {:?}", net.a.stats(), net.b.stats());
    for (n, c) in clients.iter().enumerate() {
        assert_eq!(c.error, None, "client {n}");
        assert!(c.received == c.to_send, "client {n} got its bytes back intact");
    }
    assert_eq!(server.accepted, N);
    assert_eq!(net.b.stats().syn_cookies_sent, 0, "within the half-open limit");
}

/// Like Linux (tcp_abort_on_overflow = 0): handshakes completing into a full
/// accept queue are dropped, never reset (see engine_edge_cases.rs for their
/// later acceptance).
#[test]
fn listener_backlog_overflow_holds_the_excess_back_without_reset() {
    let mut net = Pair::default_pair();
    let listener = net.b.tcp_listen(APP, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT), 2, false).unwrap();
    let clients: Vec<ConnId> = (0..6).map(|_| net.a.tcp_connect(net.now, APP, server_addr(), None, None).unwrap()).collect();
    let mut connected = 0;
    let mut failed = 0;
    net.run_until(Duration::from_secs(3), |net| {
        for (_, kinds) in drain_events(&mut net.a, APP) {
            if kinds.contains(EventSet::CONNECTED) {
                connected += 1;
            }
            if kinds.intersects(EventSet::RESET | EventSet::ERROR) {
                failed += 1;
            }
        }
        false
    });
    // The server never accepted: only `backlog` connections wait for it.
    let mut accepted = Vec::new();
    while let Ok((id, _)) = net.b.tcp_accept(listener) {
        accepted.push(id);
    }
    assert_eq!(accepted.len(), 2);
    let st = net.b.stats();
    assert!(st.accept_queue_overflow + st.syn_dropped_accept_queue_full > 0, "{st:?}");
    assert_eq!(failed, 0, "excess clients are not reset: {failed} failed, {connected} connected");
    // The accepted ones work.
    for &id in &accepted {
        assert_eq!(net.b.tcp_send(id, b"welcome"), Ok(7));
    }
    let mut got = 0;
    net.run_until(Duration::from_secs(5), |net| {
        let mut buf = [0u8; 64];
        for &c in &clients {
            if let Ok(n) = net.a.tcp_recv(c, &mut buf) {
                assert_eq!(&buf[..n], b"welcome");
                got += 1;
            }
        }
        got == 2
    });
    assert_eq!(got, 2);
    assert!(net.b.connection_count() <= 2 + 2, "no more than the backlog plus half-open");
}

#[test]
fn reuse_port_group_spreads_connections_over_accepting_members() {
    let mut net = Pair::default_pair();
    let any = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT);
    let l1 = net.b.tcp_listen(APP, any, 64, true).unwrap();
    let l2 = net.b.tcp_listen(APP, any, 64, true).unwrap();
    let idle = net.b.tcp_listen(APP, any, 64, true).unwrap();
    assert_eq!(net.b.tcp_listen(APP, any, 64, false), Err(Error::AddrInUse));
    net.b.tcp_listener_set_accepting(l1, true).unwrap();
    net.b.tcp_listener_set_accepting(l2, true).unwrap();
    for _ in 0..40 {
        net.a.tcp_connect(net.now, APP, server_addr(), None, None).unwrap();
    }
    net.run_until(Duration::from_secs(3), |_| false);
    let count = |net: &mut Pair, l| {
        let mut n = 0;
        while net.b.tcp_accept(l).is_ok() {
            n += 1;
        }
        n
    };
    let (n1, n2) = (count(&mut net, l1), count(&mut net, l2));
    assert_eq!(net.b.tcp_accept(idle), Err(Error::WouldBlock), "the non-accepting member gets nothing");
    assert_eq!(n1 + n2, 40);
    assert!(n1 > 5 && n2 > 5, "spread by hash: {n1} / {n2}");
}

#[test]
fn connect_to_closed_port_is_refused() {
    let mut net = Pair::default_pair();
    let id = net.a.tcp_connect(net.now, APP, SocketAddrV4::new(IP_B, 81), None, None).unwrap();
    let mut error = None;
    let done = net.run_until(Duration::from_secs(5), |net| {
        for (socket, kinds) in drain_events(&mut net.a, APP) {
            if socket == SocketId::Conn(id) && kinds.intersects(EventSet::ERROR | EventSet::RESET) {
                error = net.a.tcp_take_error(id).unwrap();
            }
        }
        error.is_some()
    });
    assert!(done);
    assert_eq!(error, Some(Error::ConnectionRefused));
    assert_eq!(net.b.stats().tcp_no_socket, 1);
    assert_eq!(net.b.stats().tcp_rst_out, 1);
    // Finished but still held by the app: kept, yet costing nothing.
    net.run_idle(Duration::from_secs(5));
    assert_eq!(net.a.connection_count(), 1);
    assert_eq!(net.a.poll_timeout(), None);
    assert_eq!(net.a.poll_transmit(net.now, &mut Vec::new()), 0);
    net.a.tcp_close(net.now, id).unwrap();
    net.run_idle(Duration::from_secs(5));
    assert_eq!(net.a.connection_count(), 0);
}

#[test]
fn connect_to_own_address_or_off_link_without_gateway_is_unreachable() {
    let mut net = Pair::default_pair();
    let own = net.a.tcp_connect(net.now, APP, SocketAddrV4::new(IP_A, 80), None, None);
    assert_eq!(own, Err(Error::Unreachable));
    let far = net.a.tcp_connect(net.now, APP, SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 80), None, None);
    assert_eq!(far, Err(Error::Unreachable));
}

#[test]
fn events_for_released_sockets_are_dropped_not_delivered() {
    let mut net = Pair::default_pair();
    let mut server = EchoServer::new(&mut net.b, PORT, 8);
    let id = net.a.tcp_connect(net.now, APP, server_addr(), None, None).unwrap();
    // Let events pile up without reading them, then close.
    net.run_until(Duration::from_secs(2), |net| {
        server.service(&mut net.b, net.now);
        false
    });
    assert!(net.a.pending_events(APP) > 0);
    net.a.tcp_close(net.now, id).unwrap();
    assert!(net.a.poll_event(APP).is_none(), "the closed socket's event is not returned");
    assert!(net.a.stats().events_stale > 0);
}

#[test]
fn syn_cookie_handshake_negotiates_options_and_moves_data() {
    const LEN: usize = 512 * 1024;
    let mut server_cfg = config(MAC_B, IP_B);
    server_cfg.max_half_open = 0;
    let mut net = Pair::new(config(MAC_A, IP_A), server_cfg);
    let mut server = EchoServer::new(&mut net.b, PORT, 8);
    let id = net.a.tcp_connect(net.now, APP, server_addr(), None, None).unwrap();
    let mut client = Flow::new(id, pattern(1, LEN));
    let done = net.run_until(Duration::from_secs(60), |net| {
        server.service(&mut net.b, net.now);
        client.pump(&mut net.a);
        client.received.len() == LEN
    });
    assert!(done, "{:?}", net.b.stats());
    assert!(client.received == client.to_send);
    let st = net.b.stats();
    assert_eq!((st.syn_cookies_sent, st.syn_cookies_accepted), (1, 1));
    assert_eq!(st.connections_opened, 1);
    let info = net.b.tcp_info(server.flows[0].id).unwrap();
    assert!(info.timestamps_enabled && info.sack_enabled, "{info:?}");
    assert!(info.snd_wscale > 0 && info.rcv_wscale > 0, "window scaling survived the cookie: {info:?}");
    let client_info = net.a.tcp_info(id).unwrap();
    assert_eq!(client_info.snd_wscale, info.rcv_wscale, "both sides agree on the scale");
}

#[test]
fn a_full_transmit_ring_pauses_and_resumes_without_losing_data() {
    const LEN: usize = 256 * 1024;
    let mut net = Pair::default_pair();
    net.ring_size = Some(3);
    let mut server = EchoServer::new(&mut net.b, PORT, 8);
    let mut clients: Vec<Flow> = (0..4)
        .map(|n| Flow::new(net.a.tcp_connect(net.now, APP, server_addr(), None, None).unwrap(), pattern(n + 10, LEN)))
        .collect();
    let done = net.run_until(Duration::from_secs(120), |net| {
        server.service(&mut net.b, net.now);
        for c in clients.iter_mut() {
            c.pump(&mut net.a);
        }
        clients.iter().all(|c| c.received.len() == LEN)
    });
    assert!(done, "{:?}", net.a.stats());
    for c in &clients {
        assert!(c.received == c.to_send);
    }
}

#[test]
fn unlisten_resets_connections_waiting_to_be_accepted() {
    let mut net = Pair::default_pair();
    let listener = net.b.tcp_listen(APP, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT), 8, false).unwrap();
    let clients: Vec<ConnId> = (0..3).map(|_| net.a.tcp_connect(net.now, APP, server_addr(), None, None).unwrap()).collect();
    let mut connected = 0;
    net.run_until(Duration::from_secs(3), |net| {
        connected += drain_events(&mut net.a, APP).iter().filter(|(_, k)| k.contains(EventSet::CONNECTED)).count();
        connected == 3
    });
    assert_eq!(connected, 3);
    net.b.tcp_unlisten(net.now, listener).unwrap();
    assert_eq!(net.b.tcp_accept(listener), Err(Error::InvalidHandle));
    let mut reset = 0;
    net.run_until(Duration::from_secs(3), |net| {
        for (socket, kinds) in drain_events(&mut net.a, APP) {
            if kinds.intersects(EventSet::RESET | EventSet::ERROR) {
                assert!(matches!(socket, SocketId::Conn(c) if clients.contains(&c)));
                reset += 1;
            }
        }
        reset == 3
    });
    assert_eq!(reset, 3);
    net.run_idle(Duration::from_secs(5));
    assert_eq!(net.b.connection_count(), 0);
    // The port is free again.
    net.b.tcp_listen(APP, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT), 8, false).unwrap();
}
