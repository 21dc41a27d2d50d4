//! Data through the app layer: accept and echo, connect, flow control in
//! both directions with tiny fifos, close and FIN ordering.

mod app_common;

use app_common::*;
use sluice_shm::layout::desc;
use sluice_shm::protocol::{ready, AppEvent};
use sluice_stack::{Duration, EventSet, SocketId};
use std::sync::atomic::Ordering;

#[test]
fn listen_accept_and_echo() {
    let mut world = World::new();
    let mut app = TestApp::attach(&mut world, 1, geometry(64, 4096));
    let listener = app.listen(&mut world, 7000, 16).unwrap();
    let peer = world.peer_connect(7000);
    assert!(world.run_until(Duration::from_secs(5), |_| {
        app.poll_events(usize::MAX);
        !app.accepted.is_empty()
    }));
    let (l, conn) = app.take_accepted().unwrap();
    assert_eq!(l, listener);
    let d = &app.conn(conn).desc;
    assert_eq!(d.word(desc::REMOTE_IP).load(Ordering::Relaxed), u32::from(PEER_IP));
    assert_eq!(d.word(desc::LOCAL_PORT).load(Ordering::Relaxed), 7000);
    assert_eq!(
        d.word(desc::REMOTE_PORT).load(Ordering::Relaxed),
        u32::from(world.peer.local_addr(peer).unwrap().port())
    );

    world.peer.tcp_send(peer, b"hello, sluice").unwrap();
    let mut echoed = Vec::new();
    assert!(world.run_until(Duration::from_secs(5), |w| {
        app.poll_events(usize::MAX);
        if app.conn(conn).readable {
            app.read(conn);
            let got = std::mem::take(&mut app.conns.get_mut(&conn).unwrap().received);
            assert_eq!(app.write(conn, &got), got.len());
        }
        w.peer_read(peer, &mut echoed);
        echoed == b"hello, sluice"
    }));
    let stats = world.stats(app.id);
    assert_eq!((stats.sessions, stats.listeners, stats.bad_requests, stats.violations), (1, 1, 0, 0));
    let rows = world.apps.sessions(&world.daemon);
    assert!(rows.iter().any(|r| r.state == "LISTEN" && r.local == "0.0.0.0:7000"));
    assert!(rows.iter().any(|r| r.state == "ESTABLISHED" && r.remote.starts_with("10.0.0.2:")));
}

#[test]
fn connect_reports_connected_and_refusals_carry_their_errno() {
    let mut world = World::new();
    let mut app = TestApp::attach(&mut world, 1, geometry(64, 4096));
    world.peer_listen(8000);
    let conn = app.connect(&mut world, 8000).unwrap();
    let local_port = app.conn(conn).desc.word(desc::LOCAL_PORT).load(Ordering::Relaxed);
    assert_ne!(local_port, 0, "the local address is in the desc with the reply");
    assert!(world.run_until(Duration::from_secs(5), |_| {
        app.poll_events(usize::MAX);
        app.conn(conn).bits & ready::CONNECTED != 0
    }));

    // Nobody listens on 8001: the peer answers RST.
    let refused = app.connect(&mut world, 8001).unwrap();
    assert!(world.run_until(Duration::from_secs(5), |_| {
        app.poll_events(usize::MAX);
        app.conn(refused).bits & ready::ERROR != 0
    }));
    assert_eq!(app.conn(refused).errno, libc::ECONNREFUSED);
    assert_eq!(app.conn(refused).bits & ready::CONNECTED, 0);
}

/// A strictly event-driven app moves `len` bytes each way over one
/// connection while the peer echoes nothing but sends its own stream.
fn exchange_both_ways(len: usize, fifo: u32) {
    let mut world = World::new();
    let mut app = TestApp::attach(&mut world, 1, geometry(8, fifo));
    let listener = world.peer_listen(9000);
    let conn = app.connect(&mut world, 9000).unwrap();
    let mut peer = None;
    let to_peer = pattern(1, 0, len);
    let to_app = pattern(2, 0, len);
    let (mut app_sent, mut peer_sent) = (0, 0);
    let mut peer_got = Vec::new();
    let done = world.run_until(Duration::from_secs(600), |w| {
        app.poll_events(usize::MAX);
        if peer.is_none() {
            peer = w.peer.tcp_accept(listener).ok().map(|(c, _)| c);
        }
        let Some(peer) = peer else { return false };
        if app.conn(conn).bits & ready::CONNECTED == 0 {
            return false;
        }
        // The app writes until the fifo is full, then waits for WRITABLE.
        while app_sent < len {
            let n = app.write(conn, &to_peer[app_sent..(app_sent + 8192).min(len)]);
            app_sent += n;
            if n == 0 {
                break;
            }
        }
        if app.conn(conn).readable {
            app.read(conn);
        }
        while peer_sent < len {
            match w.peer.tcp_send(peer, &to_app[peer_sent..(peer_sent + 65536).min(len)]) {
                Ok(n) => peer_sent += n,
                Err(_) => break,
            }
        }
        w.peer_read(peer, &mut peer_got);
        peer_got.len() == len && app.conn(conn).received.len() == len
    });
    assert!(
        done,
        "stalled: app sent {app_sent}, peer got {}, app got {}",
        peer_got.len(),
        app.conn(conn).received.len()
    );
    assert!(peer_got == to_peer, "app → peer bytes differ");
    assert!(app.conn(conn).received == to_app, "peer → app bytes differ");
    assert_eq!(world.stats(app.id).violations, 0);
}

#[test]
fn one_mib_each_way_through_4_kib_fifos() {
    exchange_both_ways(1 << 20, 4096);
}

#[test]
fn close_right_after_writing_delivers_every_byte_then_fin() {
    let mut daemon = stack_config(DAEMON_IP);
    // A small engine send buffer: the TX fifo drains over many WRITABLEs.
    daemon.tcp.send_buffer = 8 * 1024;
    let mut world = World::with(daemon, stack_config(PEER_IP));
    let mut app = TestApp::attach(&mut world, 1, geometry(8, 128 * 1024));
    let listener = world.peer_listen(9100);
    let conn = app.connect(&mut world, 9100).unwrap();
    let data = pattern(3, 0, 64 * 1024);
    assert_eq!(app.write(conn, &data), data.len(), "64 KiB fit in the TX fifo");
    app.close(conn);
    let mut peer = None;
    let mut got = Vec::new();
    let mut eof = false;
    assert!(world.run_until(Duration::from_secs(60), |w| {
        if peer.is_none() {
            peer = w.peer.tcp_accept(listener).ok().map(|(c, _)| c);
        }
        if let Some(p) = peer {
            eof |= w.peer_read(p, &mut got).is_none();
        }
        eof
    }));
    assert_eq!(got.len(), data.len());
    assert!(got == data);
    let stats = world.stats(app.id);
    assert_eq!(stats.sessions, 0, "the slot is freed once drained");
    // The app's old handle is refused.
    app.push(sluice_shm::protocol::Request::TxReady { handle: conn });
    world.pump();
    assert_eq!(world.stats(app.id).bad_requests, 1);
}

#[test]
fn peer_fin_reaches_the_app_only_after_all_data() {
    let mut world = World::new();
    let mut app = TestApp::attach(&mut world, 1, geometry(8, 4096));
    let listener = app.listen(&mut world, 7100, 4).unwrap();
    let peer = world.peer_connect(7100);
    let data = pattern(4, 0, 200 * 1024);
    let mut sent = 0;
    let mut closed = false;
    let mut conn = None;
    let mut reads = 0u32;
    assert!(world.run_until(Duration::from_secs(120), |w| {
        app.poll_events(usize::MAX);
        if conn.is_none() {
            conn = app.take_accepted().map(|(l, c)| {
                assert_eq!(l, listener);
                c
            });
        }
        while sent < data.len() {
            match w.peer.tcp_send(peer, &data[sent..]) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        if sent == data.len() && !closed {
            w.peer.tcp_close(w.now, peer).unwrap();
            closed = true;
        }
        let Some(conn) = conn else { return false };
        // A slow reader: one read every third step.
        reads += 1;
        if app.conn(conn).readable && reads % 3 == 0 {
            app.read(conn);
        }
        if app.conn(conn).bits & ready::PEER_CLOSED == 0 {
            return false;
        }
        app.read(conn);
        true
    }));
    let c = app.conn(conn.unwrap());
    assert_eq!(c.bytes_at_peer_closed, Some(data.len()), "PEER_CLOSED came with every byte already in the fifo");
    assert!(c.received == data);
}

#[test]
fn events_of_an_accepted_connection_follow_its_accepted_event() {
    let mut world = World::new();
    let mut app = TestApp::attach(&mut world, 1, geometry(8, 4096));
    app.listen(&mut world, 7200, 4).unwrap();
    let peer = world.peer_connect(7200);
    // Data arrives before the daemon even accepts: the engine reports it
    // with the accept.
    world.run_until(Duration::from_millis(10), |w| w.peer.tcp_send(peer, b"early").is_ok());
    assert!(world.run_until(Duration::from_secs(5), |_| {
        app.poll_events(usize::MAX);
        app.conns.values().any(|c| c.readable)
    }));
    let accepted_at = app.log.iter().position(|e| matches!(e, AppEvent::Accepted { .. })).unwrap();
    let first_session = app.log.iter().position(|e| matches!(e, AppEvent::Session { .. })).unwrap();
    assert!(accepted_at < first_session);
    assert!(world.peer_bits(SocketId::Conn(peer)).contains(EventSet::CONNECTED));
}
