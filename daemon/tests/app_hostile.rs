//! A hostile app: garbage request bodies, forged handles, and fifo index
//! words out of range. Each is refused or punished without a panic and
//! without touching the app's other sessions.

mod app_common;

use std::sync::atomic::Ordering;

use app_common::*;
use sluice_shm::layout::app_words;
use sluice_shm::protocol::{ready, Request, ShutdownHow, SockOption};
use sluice_shm::request_ring::REQUEST_BODY_SIZE;
use sluice_shm::SessionHandle;
use sluice_stack::{ConnId, Duration, EventSet, SocketId};

/// A connected pair: the app's session and the peer's connection.
fn connected(world: &mut World, app: &mut TestApp, port: u16) -> (SessionHandle, ConnId) {
    let listener = world.peer.tcp_listen(PEER, addr(PEER_IP, port), 16, false).unwrap();
    let conn = app.connect(world, port).unwrap();
    let mut peer = None;
    assert!(world.run_until(Duration::from_secs(5), |w| {
        app.poll_events(usize::MAX);
        if peer.is_none() {
            peer = w.peer.tcp_accept(listener).ok().map(|(c, _)| c);
        }
        peer.is_some() && app.conn(conn).bits & ready::CONNECTED != 0
    }));
    (conn, peer.unwrap())
}

/// The pair still moves bytes both ways.
fn assert_echoes(world: &mut World, app: &mut TestApp, conn: SessionHandle, peer: ConnId, tag: &[u8]) {
    app.conns.get_mut(&conn).unwrap().received.clear();
    assert_eq!(app.write(conn, tag), tag.len());
    world.peer.tcp_send(peer, tag).unwrap();
    let mut got = Vec::new();
    assert!(world.run_until(Duration::from_secs(5), |w| {
        app.poll_events(usize::MAX);
        app.read(conn);
        w.peer_read(peer, &mut got);
        got == tag && app.conn(conn).received == tag
    }));
}

/// xorshift64*: deterministic garbage.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[test]
fn garbage_bodies_and_forged_handles_are_refused_and_harm_nobody() {
    let mut world = World::new();
    let mut app = TestApp::attach(&mut world, 1, geometry(16, 4096));
    let (conn, peer) = connected(&mut world, &mut app, 5000);
    let listener = app.listen(&mut world, 5001, 4).unwrap();
    // A slot that was used and freed: a closed listener.
    let freed = app.listen(&mut world, 5002, 4).unwrap();
    app.close(freed);
    world.pump();
    let before = world.stats(app.id);
    assert_eq!(before.bad_requests, 0);

    let mut refused = 0u64;
    // Unknown opcodes with random bytes everywhere else.
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..500 {
        let mut body = [0u8; REQUEST_BODY_SIZE];
        for chunk in body.chunks_mut(8) {
            let bytes = next(&mut rng).to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        let op = 10 + (next(&mut rng) % (u64::from(u16::MAX) - 10)) as u16;
        body[..2].copy_from_slice(&op.to_le_bytes());
        app.push_raw(&body);
        refused += 1;
        if refused % 200 == 0 {
            world.pump();
        }
    }
    world.pump();

    // Bodies of replying requests that do not decode get EINVAL.
    let bad_listen = {
        let mut b =
            Request::Listen { req_id: 9001, local: addr(DAEMON_IP, 6000), backlog: 1, reuse_port: false }.encode();
        b[2] = 7; // flags out of range
        b
    };
    let bad_connect = {
        let mut b = Request::Connect { req_id: 9002, remote: addr(PEER_IP, 1), local: None }.encode();
        b[20..22].copy_from_slice(&0u16.to_le_bytes()); // remote port 0
        b
    };
    let bad_option = {
        let mut b = Request::SetOption { req_id: 9003, handle: conn, option: SockOption::NoDelay, value: 1 }.encode();
        b[2..4].copy_from_slice(&99u16.to_le_bytes()); // no such option
        b
    };
    for b in [bad_listen, bad_connect, bad_option] {
        app.push_raw(&b);
        refused += 1;
    }
    // A zero handle does not decode either.
    let mut zero_handle = Request::TxReady { handle: conn }.encode();
    zero_handle[8..16].fill(0);
    app.push_raw(&zero_handle);
    refused += 1;

    // Forged handles: wrong generation, freed slot, never-used slot, out of
    // range, and a listener where a connection is needed.
    let forged = [
        SessionHandle::new(conn.index, conn.gen + 1).unwrap(),
        freed,
        SessionHandle::new(15, 1).unwrap(),
        SessionHandle::new(16, 1).unwrap(),
        SessionHandle::new(u32::MAX, u32::MAX).unwrap(),
    ];
    for handle in forged {
        for request in [
            Request::TxReady { handle },
            Request::RxSpace { handle },
            Request::Shutdown { handle, how: ShutdownHow::Both },
            Request::SetAccepting { handle, accepting: true },
            Request::Close { handle },
            Request::Abort { handle },
        ] {
            app.push(request);
            refused += 1;
        }
    }
    app.push(Request::TxReady { handle: listener });
    app.push(Request::Shutdown { handle: listener, how: ShutdownHow::Write });
    app.push(Request::SetAccepting { handle: conn, accepting: true });
    refused += 3;
    world.pump();
    for (i, handle) in forged.iter().enumerate() {
        let req_id = 9100 + i as u32;
        app.push(Request::SetOption { req_id, handle: *handle, option: SockOption::NoDelay, value: 1 });
        refused += 1;
    }
    world.pump();
    app.poll_events(usize::MAX);

    for req_id in [9001, 9002, 9003] {
        assert_eq!(app.replies.remove(&req_id), Some(Err(libc::EINVAL)), "req {req_id}");
    }
    for i in 0..forged.len() as u32 {
        assert_eq!(app.replies.remove(&(9100 + i)), Some(Err(libc::EBADF)));
    }
    let stats = world.stats(app.id);
    assert_eq!(stats.bad_requests, refused);
    assert_eq!(stats.violations, 0, "bad requests are not index violations");
    assert_eq!((stats.sessions, stats.listeners), (1, 1), "nothing was closed by a forged handle");
    assert!(world.apps.take_killed().is_empty());
    assert!(!world.peer_bits(SocketId::Conn(peer)).contains(EventSet::RESET));
    assert_echoes(&mut world, &mut app, conn, peer, b"still fine");
}

#[test]
fn a_tx_tail_beyond_the_fifo_aborts_only_that_session() {
    let mut world = World::new();
    let mut app = TestApp::attach(&mut world, 1, geometry(8, 4096));
    let (victim, victim_peer) = connected(&mut world, &mut app, 5100);
    let (other, other_peer) = connected(&mut world, &mut app, 5101);
    let words = app.up.app_words(victim.index).unwrap();
    words.word(app_words::TX_TAIL).store(4096 * 16, Ordering::Release);
    app.push(Request::TxReady { handle: victim });
    assert!(world
        .run_until(Duration::from_secs(5), |w| { w.peer_bits(SocketId::Conn(victim_peer)).contains(EventSet::RESET) }));
    let stats = world.stats(app.id);
    assert_eq!(stats.violations, 1);
    assert_eq!(stats.sessions, 1, "the victim's slot is freed");
    assert!(world.apps.take_killed().is_empty(), "one violation does not kill");
    assert_echoes(&mut world, &mut app, other, other_peer, b"unaffected");
    // The freed handle is stale now.
    app.push(Request::TxReady { handle: victim });
    world.pump();
    assert_eq!(world.stats(app.id).bad_requests, 1);
}

#[test]
fn an_rx_head_beyond_the_tail_aborts_the_session() {
    let mut world = World::new();
    let mut app = TestApp::attach(&mut world, 1, geometry(8, 4096));
    let (conn, peer) = connected(&mut world, &mut app, 5200);
    app.up.app_words(conn.index).unwrap().word(app_words::RX_HEAD).store(100, Ordering::Release);
    world.peer.tcp_send(peer, b"data the daemon cannot place").unwrap();
    assert!(world.run_until(Duration::from_secs(5), |w| w.peer_bits(SocketId::Conn(peer)).contains(EventSet::RESET)));
    assert_eq!(world.stats(app.id).violations, 1);
    assert_eq!(world.stats(app.id).sessions, 0);
}

#[test]
fn more_than_three_violations_in_a_second_kill_the_app() {
    let mut world = World::new();
    let mut app = TestApp::attach(&mut world, 7, geometry(8, 4096));
    let mut victims = Vec::new();
    for i in 0..4 {
        victims.push(connected(&mut world, &mut app, 5300 + i).0);
    }
    for &v in &victims {
        app.up.app_words(v.index).unwrap().word(app_words::TX_TAIL).store(u32::MAX / 2, Ordering::Release);
        app.push(Request::TxReady { handle: v });
    }
    world.pump();
    assert_eq!(world.stats(app.id).violations, 4);
    assert_eq!(world.apps.take_killed(), vec![app.id]);
    assert!(world.apps.take_killed().is_empty(), "reported once");
    // A killed app's requests are no longer served.
    let before = world.stats(app.id).requests;
    app.push(Request::Listen { req_id: 1, local: addr(DAEMON_IP, 5400), backlog: 1, reuse_port: false });
    world.pump();
    assert_eq!(world.stats(app.id).requests, before);
    world.apps.detach(app.id, &mut world.daemon, world.now);
    world.pump();
    assert!(world.apps.stats().is_empty());
}

#[test]
fn an_accept_taken_beyond_pushed_is_a_violation_and_grants_no_credit() {
    let mut world = World::new();
    let mut app = TestApp::attach(&mut world, 1, geometry(8, 4096));
    let listener = app.listen(&mut world, 5500, 1).unwrap();
    app.up.app_words(listener.index).unwrap().word(app_words::ACCEPT_TAKEN).store(1000, Ordering::Release);
    for _ in 0..3 {
        world.peer_connect(5500);
    }
    world.run_until(Duration::from_millis(200), |_| {
        app.poll_events(usize::MAX);
        false
    });
    assert_eq!(app.accepted.len(), 1, "a backlog of 1 allows one connection in the app's hands");
    assert!(world.stats(app.id).violations >= 1);
}
