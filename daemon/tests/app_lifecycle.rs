//! Session and app lifetimes: binding rules, listener close, options that
//! change closing, half-close, slot exhaustion, detach, and sleeping.

mod app_common;

use std::sync::atomic::Ordering;

use app_common::*;
use sluice_daemon::app::{AppId, AppIdentity};
use sluice_shm::layout::desc;
use sluice_shm::protocol::{ready, Request, ShutdownHow, SockOption};
use sluice_shm::wake::{AWAKE, SLEEPING};
use sluice_shm::SessionHandle;
use sluice_stack::{ConnId, Duration, EventSet, SocketId};

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

/// Runs until the peer connection ends; returns what it received and
/// whether it ended with a reset (else with FIN).
fn peer_outcome(world: &mut World, peer: ConnId) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut reset = false;
    let mut eof = false;
    assert!(world.run_until(Duration::from_secs(60), |w| {
        reset |= w.peer_bits(SocketId::Conn(peer)).contains(EventSet::RESET);
        eof |= w.peer_read(peer, &mut got).is_none();
        reset || eof
    }));
    (got, reset)
}

fn cap_net_bind_service() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let caps = status.lines().find_map(|l| l.strip_prefix("CapEff:")).unwrap();
    u64::from_str_radix(caps.trim(), 16).unwrap() & (1 << 10) != 0
}

#[test]
fn privileged_ports_need_root_or_the_capability() {
    let mut world = World::new();
    let geo = geometry(8, 4096);
    // No process has this pid (pid_max ≤ 2^22): no capability.
    let nobody = AppIdentity { id: AppId(1), pid: i32::MAX, uid: UNPRIVILEGED_UID, gid: UNPRIVILEGED_UID };
    let mut app = TestApp::attach_as(&mut world, nobody, geo);
    assert_eq!(app.listen(&mut world, 80, 8), Err(libc::EACCES));
    assert!(app.listen(&mut world, 1024, 8).is_ok(), "the first unprivileged port");
    let local = Some(addr(DAEMON_IP, 99));
    let refused = app.call(&mut world, |req_id| Request::Connect { req_id, remote: addr(PEER_IP, 80), local });
    assert_eq!(refused, Err(libc::EACCES));

    let root = AppIdentity { id: AppId(2), pid: i32::MAX, uid: 0, gid: 0 };
    let mut root_app = TestApp::attach_as(&mut world, root, geo);
    assert!(root_app.listen(&mut world, 80, 8).is_ok());

    // This test process, under a non-root uid: its own CapEff decides
    // (CI runs as root, which has the capability).
    let me = AppIdentity { id: AppId(3), pid: std::process::id() as i32, uid: UNPRIVILEGED_UID, gid: 0 };
    let mut mine = TestApp::attach_as(&mut world, me, geo);
    let result = mine.listen(&mut world, 81, 8);
    if cap_net_bind_service() {
        assert!(result.is_ok(), "{result:?}");
    } else {
        assert_eq!(result, Err(libc::EACCES));
    }
}

#[test]
fn listen_errors_and_ephemeral_ports() {
    let mut world = World::new();
    let mut app = TestApp::attach(&mut world, 1, geometry(8, 4096));
    app.listen(&mut world, 6000, 8).unwrap();
    assert_eq!(app.listen(&mut world, 6000, 8), Err(libc::EADDRINUSE));
    let elsewhere = addr(std::net::Ipv4Addr::new(10, 0, 0, 99), 6001);
    let r = app.call(&mut world, |req_id| Request::Listen { req_id, local: elsewhere, backlog: 1, reuse_port: false });
    assert_eq!(r, Err(libc::EADDRNOTAVAIL));
    let ephemeral = app.listen(&mut world, 0, 8).unwrap();
    let port = app.listeners[&ephemeral].desc.word(desc::LOCAL_PORT).load(Ordering::Relaxed) as u16;
    let (low, high) = world.daemon.config().ephemeral_ports;
    assert!((low..=high).contains(&port), "port {port}");
    let peer = world.peer_connect(port);
    assert!(world.run_until(Duration::from_secs(5), |_| {
        app.poll_events(usize::MAX);
        !app.accepted.is_empty()
    }));
    assert!(world.peer.tcp_info(peer).is_ok());
}

#[test]
fn closing_a_listener_resets_connections_the_app_never_took() {
    let mut world = World::new();
    let mut app = TestApp::attach(&mut world, 1, geometry(16, 4096));
    let listener = app.listen(&mut world, 6100, 8).unwrap();
    let peers: Vec<ConnId> = (0..3).map(|_| world.peer_connect(6100)).collect();
    assert!(world.run_until(Duration::from_secs(5), |_| {
        app.poll_events(usize::MAX);
        app.accepted.len() == 3
    }));
    let (_, taken) = app.take_accepted().unwrap();
    let taken_peer = peers
        .iter()
        .copied()
        .find(|p| {
            let port = world.peer.local_addr(*p).unwrap().port();
            app.conn(taken).desc.word(desc::REMOTE_PORT).load(Ordering::Relaxed) == u32::from(port)
        })
        .unwrap();
    app.close(listener);
    let mut reset = Vec::new();
    assert!(world.run_until(Duration::from_secs(5), |w| {
        for &p in &peers {
            if !reset.contains(&p) && w.peer_bits(SocketId::Conn(p)).contains(EventSet::RESET) {
                reset.push(p);
            }
        }
        reset.len() == 2
    }));
    assert!(!reset.contains(&taken_peer), "the connection the app took lives on");
    world.peer.tcp_send(taken_peer, b"still here").unwrap();
    assert!(world.run_until(Duration::from_secs(5), |_| {
        app.poll_events(usize::MAX);
        app.read(taken);
        app.conn(taken).received == b"still here"
    }));
    let stats = world.stats(app.id);
    assert_eq!((stats.sessions, stats.listeners), (1, 0));
}

#[test]
fn linger_zero_makes_close_reset_and_listeners_pass_options_on() {
    let mut world = World::new();
    let mut app = TestApp::attach(&mut world, 1, geometry(8, 4096));
    let (conn, peer) = connected(&mut world, &mut app, 6200);
    assert_eq!(app.set_option(&mut world, conn, SockOption::NoDelay, 1), Ok(0));
    assert_eq!(app.set_option(&mut world, conn, SockOption::KeepIdle, 0), Err(libc::EINVAL));
    assert_eq!(app.set_option(&mut world, conn, SockOption::KeepAlive, 1), Ok(0));
    assert_eq!(app.set_option(&mut world, conn, SockOption::LingerZero, 1), Ok(0));
    app.write(conn, b"lost to the reset");
    app.close(conn);
    let (_, reset) = peer_outcome(&mut world, peer);
    assert!(reset, "SO_LINGER 0: close sends RST");

    let listener = app.listen(&mut world, 6201, 4).unwrap();
    assert_eq!(app.set_option(&mut world, listener, SockOption::LingerZero, 1), Ok(0));
    assert_eq!(app.set_option(&mut world, listener, SockOption::KeepCount, 500), Err(libc::EINVAL));
    let peer = world.peer_connect(6201);
    assert!(world.run_until(Duration::from_secs(5), |_| {
        app.poll_events(usize::MAX);
        !app.accepted.is_empty()
    }));
    let (_, accepted) = app.take_accepted().unwrap();
    app.close(accepted);
    let (_, reset) = peer_outcome(&mut world, peer);
    assert!(reset, "the accepted connection inherited SO_LINGER 0");
}

#[test]
fn shutdown_write_sends_fin_after_the_data_and_reading_goes_on() {
    let mut daemon = stack_config(DAEMON_IP);
    daemon.tcp.send_buffer = 4096;
    let mut world = World::with(daemon, stack_config(PEER_IP));
    let mut app = TestApp::attach(&mut world, 1, geometry(8, 64 * 1024));
    let (conn, peer) = connected(&mut world, &mut app, 6300);
    let data = pattern(5, 0, 48 * 1024);
    assert_eq!(app.write(conn, &data), data.len());
    app.shutdown(conn, ShutdownHow::Write);
    let mut got = Vec::new();
    assert!(world.run_until(Duration::from_secs(30), |w| w.peer_read(peer, &mut got).is_none()));
    assert!(got == data, "every byte before the FIN");
    world.peer.tcp_send(peer, b"reply after half-close").unwrap();
    assert!(world.run_until(Duration::from_secs(5), |_| {
        app.poll_events(usize::MAX);
        app.read(conn);
        app.conn(conn).received == b"reply after half-close"
    }));
}

#[test]
fn unread_data_at_close_resets_as_the_kernel_does() {
    let mut world = World::new();
    let mut app = TestApp::attach(&mut world, 1, geometry(8, 4096));
    let (conn, peer) = connected(&mut world, &mut app, 6400);
    world.peer.tcp_send(peer, b"never read").unwrap();
    assert!(world.run_until(Duration::from_secs(5), |_| {
        app.poll_events(usize::MAX);
        app.conn(conn).readable
    }));
    app.close(conn);
    let (_, reset) = peer_outcome(&mut world, peer);
    assert!(reset);
}

#[test]
fn out_of_slots_refuses_connects_and_defers_accepts_until_a_slot_frees() {
    let mut world = World::new();
    let mut app = TestApp::attach(&mut world, 1, geometry(2, 4096));
    app.listen(&mut world, 6500, 8).unwrap();
    let first = world.peer_connect(6500);
    assert!(world.run_until(Duration::from_secs(5), |_| {
        app.poll_events(usize::MAX);
        !app.accepted.is_empty()
    }));
    let (_, conn) = app.take_accepted().unwrap();
    assert_eq!(app.connect(&mut world, 80), Err(libc::EMFILE));
    let second = world.peer_connect(6500);
    world.run_until(Duration::from_millis(100), |_| {
        app.poll_events(usize::MAX);
        false
    });
    assert!(app.accepted.is_empty(), "no slot: the connection waits in the engine's queue");
    assert!(world.peer.tcp_info(second).is_ok());
    app.close(conn);
    assert!(world.run_until(Duration::from_secs(5), |_| {
        app.poll_events(usize::MAX);
        !app.accepted.is_empty()
    }));
    let (_, reused) = app.take_accepted().unwrap();
    assert_eq!(reused.index, conn.index, "the freed slot, in a new generation");
    assert_ne!(reused.gen, conn.gen);
    let remote = app.conn(reused).desc.word(desc::REMOTE_PORT).load(Ordering::Relaxed);
    assert_eq!(remote, u32::from(world.peer.local_addr(second).unwrap().port()));
    let (_, reset) = peer_outcome(&mut world, first);
    assert!(!reset, "the first connection was closed with FIN");
}

#[test]
fn detach_resets_connections_with_unread_data() {
    let mut world = World::new();
    let mut app = TestApp::attach(&mut world, 1, geometry(8, 4096));
    let (conn, peer) = connected(&mut world, &mut app, 6600);
    world.peer.tcp_send(peer, b"unread at exit").unwrap();
    assert!(world.run_until(Duration::from_secs(5), |_| {
        app.poll_events(usize::MAX);
        app.conn(conn).readable
    }));
    world.apps.detach(app.id, &mut world.daemon, world.now);
    assert!(world.apps.doorbell_fds().is_empty());
    assert!(world.apps.stats().is_empty());
    let (_, reset) = peer_outcome(&mut world, peer);
    assert!(reset);
}

#[test]
fn detach_sends_pending_bytes_then_fin() {
    let mut daemon = stack_config(DAEMON_IP);
    daemon.tcp.send_buffer = 8 * 1024;
    let mut world = World::with(daemon, stack_config(PEER_IP));
    let mut app = TestApp::attach(&mut world, 1, geometry(8, 128 * 1024));
    let (conn, peer) = connected(&mut world, &mut app, 6700);
    let (_, idle_peer) = connected(&mut world, &mut app, 6701);
    app.listen(&mut world, 6702, 4).unwrap();
    let data = pattern(6, 0, 100 * 1024);
    assert_eq!(app.write(conn, &data), data.len());
    world.apps.detach(app.id, &mut world.daemon, world.now);
    let (got, reset) = peer_outcome(&mut world, peer);
    assert!(!reset);
    assert!(got == data, "{} of {} bytes before the FIN", got.len(), data.len());
    let (got, reset) = peer_outcome(&mut world, idle_peer);
    assert!(got.is_empty() && !reset, "an idle connection gets a plain FIN");
    // Nobody listens any more.
    let late = world.peer_connect(6702);
    let (_, reset) = peer_outcome(&mut world, late);
    assert!(reset);
}

#[test]
fn the_worker_sleeps_only_without_work_and_wakes_a_sleeping_app() {
    let mut world = World::new();
    let mut app = TestApp::attach(&mut world, 1, geometry(8, 4096));
    let flag = app.down.daemon_sleep_flag(0).unwrap();
    let mut seen = None;
    assert!(world.apps.sleep_unless_work(|| seen = Some(flag.load(Ordering::Relaxed))));
    assert_eq!(seen, Some(SLEEPING), "the sleep was announced before blocking");
    assert_eq!(flag.load(Ordering::Relaxed), AWAKE);

    app.push(Request::Listen { req_id: 5, local: addr(DAEMON_IP, 6800), backlog: 1, reuse_port: false });
    assert!(!world.apps.sleep_unless_work(|| panic!("blocked with a request waiting")));

    // The app sleeps; the reply wakes it through its eventfd, once.
    app.up.app_sleep_flag().store(SLEEPING, Ordering::SeqCst);
    world.pump();
    assert!(app.wake.wait(Some(std::time::Duration::ZERO)).unwrap());
    assert_eq!(app.wake.drain().unwrap(), 1);
    app.poll_events(usize::MAX);
    assert!(matches!(app.replies.get(&5), Some(Ok(_))));
    // An awake app is not written to.
    world.peer_connect(6800);
    world.run_until(Duration::from_millis(50), |_| false);
    assert_eq!(app.wake.drain().unwrap(), 0);
}

#[test]
fn segments_without_a_ring_for_this_worker_are_refused() {
    let mut world = World::new();
    let mut geo = geometry(8, 4096);
    geo.workers = 1;
    let mut config = world.apps_config();
    config.worker = 1;
    world.apps = sluice_daemon::app::AppSet::new(config);
    let app = TestApp::attach(&mut world, 9, geo);
    assert_eq!(world.apps.take_killed(), vec![app.id]);
    assert!(world.apps.doorbell_fds().is_empty());
    assert!(world.apps.stats().is_empty());
}
