//! Many sessions on one app worker whose app reads its events rarely: the
//! event ring (1,024 slots) overflows into the coalescing backlog, and yet
//! every connection gets every event.

mod app_common;

use std::collections::HashMap;

use app_common::*;
use sluice_shm::protocol::{ready, Request};
use sluice_shm::SessionHandle;
use sluice_stack::{ConnId, Duration};

/// 100,000 in optimised builds (what `make test` runs: the figure for
/// one app worker), 20,000 in debug builds, where it would take minutes.
const SESSIONS: usize = if cfg!(debug_assertions) { 20_000 } else { 100_000 };

#[test]
fn many_sessions_with_a_slow_reader_lose_no_event() {
    let mut world = World::new();
    let mut geo = geometry(SESSIONS as u32 + 16, 4096);
    geo.event_cap = 1024;
    let mut app = TestApp::attach(&mut world, 1, geo);
    // One remote port gives at most one ephemeral port's worth (~28,000)
    // of four-tuples: spread the connections over several.
    let ports: Vec<u16> = (0..SESSIONS.div_ceil(20_000) as u16).map(|i| 80 + i).collect();
    let listeners: Vec<_> = ports.iter().map(|&p| world.peer_listen(p)).collect();

    // Phase 1: connect everything; the app drains events one step in 20.
    let mut connect_ids: HashMap<u32, ()> = HashMap::new();
    let mut requested = 0usize;
    let mut handles: Vec<SessionHandle> = Vec::with_capacity(SESSIONS);
    let mut peer_conns: Vec<ConnId> = Vec::with_capacity(SESSIONS);
    let mut step = 0u64;
    let mut peer_sent = 0usize;
    let mut peer_closed = false;
    let done = world.run_until(Duration::from_secs(600), |w| {
        step += 1;
        while requested < SESSIONS {
            let req_id = app.next_req_id();
            let remote = addr(PEER_IP, ports[requested % ports.len()]);
            if app.requests.push(&Request::Connect { req_id, remote, local: None }.encode()).is_err() {
                break;
            }
            connect_ids.insert(req_id, ());
            requested += 1;
        }
        if step % 20 == 0 {
            app.poll_events(1024);
            let replies: Vec<u32> = app.replies.keys().copied().filter(|id| connect_ids.contains_key(id)).collect();
            for req_id in replies {
                connect_ids.remove(&req_id);
                let raw = app.replies.remove(&req_id).unwrap().expect("connect accepted");
                let handle = SessionHandle::from_u64(raw).unwrap();
                app.adopt_conn(handle);
                handles.push(handle);
            }
            for &h in &handles {
                if app.conn(h).readable {
                    app.read(h);
                }
            }
        }
        for &listener in &listeners {
            while let Ok((conn, _)) = w.peer.tcp_accept(listener) {
                peer_conns.push(conn);
            }
        }
        // Each peer connection sends four bytes once.
        while peer_sent < peer_conns.len() {
            w.peer.tcp_send(peer_conns[peer_sent], b"ping").unwrap();
            peer_sent += 1;
        }
        let all_read = handles.len() == SESSIONS && handles.iter().all(|h| app.conn(*h).received.len() == 4);
        if all_read && !peer_closed {
            for &c in &peer_conns {
                w.peer.tcp_close(w.now, c).unwrap();
            }
            peer_closed = true;
        }
        peer_closed && handles.iter().all(|h| app.conn(*h).bits & ready::PEER_CLOSED != 0)
    });
    let stats = world.stats(app.id);
    let missing_connected = handles.iter().filter(|h| app.conn(**h).bits & ready::CONNECTED == 0).count();
    assert!(done, "{} connections, {} replies pending, stats {stats:?}", handles.len(), connect_ids.len());
    assert_eq!(handles.len(), SESSIONS);
    assert_eq!(missing_connected, 0, "every connection heard CONNECTED");
    assert!(handles.iter().all(|h| app.conn(*h).received == b"ping"));
    assert!(stats.backlog_high_water > 1024, "the ring overflowed into the backlog: {stats:?}");
    assert!(stats.backlog_high_water <= SESSIONS as u64, "at most one entry per session");
    assert_eq!(stats.sessions, SESSIONS as u64);
    assert_eq!(stats.bad_requests + stats.violations, 0);
    // Everything waiting was handed over.
    app.poll_events(usize::MAX);
    world.pump();
    app.poll_events(usize::MAX);
    assert_eq!(world.stats(app.id).backlog, 0);
}
