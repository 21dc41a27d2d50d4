//! Listen groups (design §3.5) and holders (§4.5) through the app set:
//! listeners on one address from several app workers share one engine
//! listener; connections go only to members that accept and have credit;
//! a departing member's untaken connections go to the others, not reset.

mod app_common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};

use app_common::*;
use sluice_daemon::app::{AppId, AppIdentity};
use sluice_shm::protocol::Request;
use sluice_shm::SessionHandle;
use sluice_stack::{ConnId, Duration, EventSet, SocketId};

const PORT: u16 = 8000;

/// `LISTEN` on `PORT` as vcl sends it; `accepting` also sends
/// `SET_ACCEPTING` (a thread waits on it).
fn listen(
    world: &mut World,
    app: &mut TestApp,
    reuse_port: bool,
    inherit: bool,
    accepting: bool,
) -> Result<SessionHandle, i32> {
    listen_on(world, app, PORT, reuse_port, inherit, accepting)
}

/// [`listen`] on `port`.
fn listen_on(
    world: &mut World,
    app: &mut TestApp,
    port: u16,
    reuse_port: bool,
    inherit: bool,
    accepting: bool,
) -> Result<SessionHandle, i32> {
    let local = addr(DAEMON_IP, port);
    let backlog = 64;
    let raw = app.call(world, |req_id| match inherit {
        false => Request::Listen { req_id, local, backlog, reuse_port },
        true => Request::ListenInherited { req_id, local, backlog, reuse_port },
    })?;
    let handle = SessionHandle::from_u64(raw).unwrap();
    app.adopt_listener(handle, backlog);
    if accepting {
        app.push(Request::SetAccepting { handle, accepting: true });
    }
    Ok(handle)
}

/// Runs the world, taking every accepted connection in every app, until
/// `done` holds over the per-app counts.
fn serve(
    world: &mut World,
    apps: &mut [&mut TestApp],
    done: impl Fn(&HashMap<AppId, usize>) -> bool,
) -> HashMap<AppId, usize> {
    let mut counts = HashMap::new();
    let ok = world.run_until(Duration::from_secs(10), |_| {
        for app in apps.iter_mut() {
            app.poll_events(usize::MAX);
            while app.take_accepted().is_some() {
                *counts.entry(app.id).or_insert(0) += 1;
            }
        }
        done(&counts)
    });
    assert!(ok, "not served in time: {counts:?}");
    counts
}

fn peer_was_reset(world: &mut World, conns: &[ConnId]) -> usize {
    conns.iter().filter(|c| world.peer_bits(SocketId::Conn(**c)).contains(EventSet::RESET)).count()
}

fn total(counts: &HashMap<AppId, usize>) -> usize {
    counts.values().sum()
}

/// A child process of the test that lives until `finish`.
fn child() -> Child {
    Command::new("sh").args(["-c", "read x"]).stdin(Stdio::piped()).spawn().unwrap()
}

/// A child process without root's capabilities (uid 1000), as an nginx
/// worker after it drops privileges; returned once it has dropped them.
fn unprivileged_child() -> Child {
    use std::io::BufRead;
    let mut kid = Command::new("setpriv")
        .args(["--reuid", &UNPRIVILEGED_UID.to_string(), "--regid", "1000", "--clear-groups"])
        .args(["sh", "-c", "echo dropped; read x"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("setpriv (util-linux)");
    let mut line = String::new();
    std::io::BufReader::new(kid.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line, "dropped\n");
    kid
}

fn finish(mut child: Child) {
    drop(child.stdin.take());
    child.wait().unwrap();
}

/// Connections that arrive one at a time (each handed out before the next
/// comes) still alternate between the members: a hand-out that finds the
/// accept queue empty must not take a member's turn.
#[test]
fn connections_arriving_one_by_one_alternate_between_members() {
    let mut world = World::new();
    let geo = geometry(64, 4096);
    let mut w1 = TestApp::attach(&mut world, 1, geo);
    let mut w2 = TestApp::attach(&mut world, 2, geo);
    listen(&mut world, &mut w1, true, false, true).unwrap();
    listen(&mut world, &mut w2, true, false, true).unwrap();
    let mut counts = HashMap::new();
    for n in 1..=8 {
        world.peer_connect(PORT);
        let round = serve(&mut world, &mut [&mut w1, &mut w2], |c| total(c) >= 1);
        for (app, k) in round {
            *counts.entry(app).or_insert(0) += k;
        }
        assert_eq!(total(&counts), n);
    }
    assert_eq!((counts.get(&AppId(1)), counts.get(&AppId(2))), (Some(&4), Some(&4)), "{counts:?}");
}

#[test]
fn connections_go_only_to_accepting_members_each_to_exactly_one() {
    let mut world = World::new();
    let geo = geometry(256, 4096);
    let mut master = TestApp::attach(&mut world, 1, geo);
    let mut w1 = TestApp::attach(&mut world, 2, geo);
    let mut w2 = TestApp::attach(&mut world, 3, geo);
    listen(&mut world, &mut master, true, false, false).unwrap();
    listen(&mut world, &mut w1, true, false, true).unwrap();
    listen(&mut world, &mut w2, true, false, true).unwrap();
    const M: usize = 60;
    let peers: Vec<ConnId> = (0..M).map(|_| world.peer_connect(PORT)).collect();
    let counts = serve(&mut world, &mut [&mut master, &mut w1, &mut w2], |c| total(c) >= M);
    assert_eq!(total(&counts), M, "every connection accepted exactly once");
    assert_eq!(counts.get(&AppId(1)), None, "the member that never waits gets nothing");
    let (a, b) = (counts[&AppId(2)], counts[&AppId(3)]);
    assert!(a > 0 && b > 0, "both accepting members get a share: {a} / {b}");
    assert_eq!(peer_was_reset(&mut world, &peers), 0);
}

#[test]
fn a_group_that_nobody_accepts_on_keeps_its_connections_queued() {
    let mut world = World::new();
    let geo = geometry(64, 4096);
    let mut master = TestApp::attach(&mut world, 1, geo);
    listen(&mut world, &mut master, true, false, false).unwrap();
    let peers: Vec<ConnId> = (0..5).map(|_| world.peer_connect(PORT)).collect();
    // Every handshake completes (the peer sees CONNECTED) ...
    let mut connected = 0;
    assert!(world.run_until(Duration::from_secs(5), |w| {
        connected += peers.iter().filter(|p| w.peer_bits(SocketId::Conn(**p)).contains(EventSet::CONNECTED)).count();
        connected == peers.len()
    }));
    world.run_until(Duration::from_millis(200), |_| false);
    master.poll_events(usize::MAX);
    assert!(master.accepted.is_empty(), "a member that never waits is never given a connection");
    // ... and a worker that starts accepting later takes every one of them.
    let mut worker = TestApp::attach(&mut world, 2, geo);
    listen(&mut world, &mut worker, true, false, true).unwrap();
    let counts = serve(&mut world, &mut [&mut master, &mut worker], |c| total(c) >= 5);
    assert_eq!(counts.get(&AppId(2)), Some(&5));
    assert_eq!(peer_was_reset(&mut world, &peers), 0);
}

#[test]
fn binding_a_bound_port_follows_the_kernel() {
    let mut world = World::new();
    let geo = geometry(16, 4096);
    let mut a = TestApp::attach(&mut world, 1, geo);
    let mut b = TestApp::attach(&mut world, 2, geo);
    let other_uid = AppIdentity { id: AppId(3), pid: std::process::id() as i32, uid: UNPRIVILEGED_UID + 1, gid: 0 };
    let mut c = TestApp::attach_as(&mut world, other_uid, geo);
    // Neither a member's pid (that is the member's own new image after an
    // exec) nor its child: init.
    let unrelated = AppIdentity { id: AppId(4), pid: 1, uid: UNPRIVILEGED_UID, gid: 0 };
    let mut d = TestApp::attach_as(&mut world, unrelated, geo);
    listen(&mut world, &mut a, true, false, true).unwrap();
    assert_eq!(listen(&mut world, &mut b, false, false, true), Err(libc::EADDRINUSE), "no SO_REUSEPORT");
    assert_eq!(listen(&mut world, &mut c, true, false, true), Err(libc::EADDRINUSE), "another uid");
    assert_eq!(listen(&mut world, &mut d, false, true, true), Err(libc::EADDRINUSE), "inherit without FORKED");
    assert!(listen(&mut world, &mut b, true, false, true).is_ok(), "same uid, both SO_REUSEPORT");
}

#[test]
fn a_dead_members_untaken_connections_go_to_the_others_with_their_data() {
    let mut world = World::new();
    let geo = geometry(256, 4096);
    let mut w1 = TestApp::attach(&mut world, 1, geo);
    let mut w2 = TestApp::attach(&mut world, 2, geo);
    listen(&mut world, &mut w1, true, false, true).unwrap();
    listen(&mut world, &mut w2, true, false, true).unwrap();
    const M: usize = 20;
    let peers: Vec<ConnId> = (0..M).map(|_| world.peer_connect(PORT)).collect();
    // w1 is given its share but never takes it (it is about to die).
    assert!(world.run_until(Duration::from_secs(10), |w| {
        w1.poll_events(usize::MAX);
        w2.poll_events(usize::MAX);
        let connected = peers.iter().all(|p| w.peer.tcp_send(*p, &[]).is_ok());
        connected && w1.accepted.len() + w2.accepted.len() == M
    }));
    let stranded = w1.accepted.len();
    assert!(stranded > 0, "w1 was given a share");
    for (n, p) in peers.iter().enumerate() {
        assert_eq!(world.peer.tcp_send(*p, &pattern(n as u64, 0, 100)).unwrap(), 100);
    }
    world.run_until(Duration::from_millis(50), |_| false);
    world.apps.detach(w1.id, &mut world.daemon, world.now);
    let mut got: HashMap<SessionHandle, usize> = HashMap::new();
    assert!(
        world.run_until(Duration::from_secs(10), |_| {
            w2.poll_events(usize::MAX);
            while let Some((_, conn)) = w2.take_accepted() {
                got.insert(conn, 0);
            }
            for conn in got.keys().copied().collect::<Vec<_>>() {
                w2.read(conn);
                got.insert(conn, w2.conn(conn).received.len());
            }
            got.len() == M && got.values().all(|n| *n == 100)
        }),
        "w2 has {} connections",
        got.len()
    );
    // Each connection carries its own stream, intact.
    let mut streams: Vec<Vec<u8>> = got.keys().map(|c| w2.conn(*c).received.clone()).collect();
    let mut expected: Vec<Vec<u8>> = (0..M).map(|n| pattern(n as u64, 0, 100)).collect();
    streams.sort();
    expected.sort();
    assert_eq!(streams, expected);
    assert_eq!(peer_was_reset(&mut world, &peers), 0, "returned, not reset");
}

#[test]
fn the_last_members_close_resets_what_it_never_took_and_frees_the_port() {
    let mut world = World::new();
    let geo = geometry(64, 4096);
    let mut only = TestApp::attach(&mut world, 1, geo);
    let listener = listen(&mut world, &mut only, false, false, true).unwrap();
    let peers: Vec<ConnId> = (0..3).map(|_| world.peer_connect(PORT)).collect();
    assert!(world.run_until(Duration::from_secs(5), |_| {
        only.poll_events(usize::MAX);
        only.accepted.len() == 3
    }));
    only.close(listener);
    let mut reset = 0;
    assert!(
        world.run_until(Duration::from_secs(5), |w| {
            reset += peer_was_reset(w, &peers);
            reset == 3
        }),
        "Linux resets a closed listener's queue: {reset} of 3 reset"
    );
    let mut next = TestApp::attach(&mut world, 2, geo);
    assert!(listen(&mut world, &mut next, false, false, true).is_ok(), "the port is free again");
}

#[test]
fn a_forked_child_holds_the_group_until_it_re_creates_its_listener() {
    let mut world = World::new();
    let geo = geometry(64, 4096);
    let me = std::process::id() as i32;
    let kid = child();
    let kid_pid = kid.id() as i32;
    let mut parent =
        TestApp::attach_as(&mut world, AppIdentity { id: AppId(1), pid: me, uid: UNPRIVILEGED_UID, gid: 0 }, geo);
    let listener = listen(&mut world, &mut parent, false, false, false).unwrap();
    assert_eq!(parent.call(&mut world, |req_id| Request::Forked { req_id, child_pid: kid_pid as u32 }), Ok(1));
    // P0 of nginx's daemon() chain exits: its listener closes, but the
    // child still holds the port.
    parent.close(listener);
    world.run_until(Duration::from_millis(10), |_| false);
    let peers: Vec<ConnId> = (0..4).map(|_| world.peer_connect(PORT)).collect();
    world.run_until(Duration::from_millis(100), |_| false);
    let mut stranger = TestApp::attach(&mut world, 2, geo);
    assert_eq!(listen(&mut world, &mut stranger, false, false, true), Err(libc::EADDRINUSE), "still bound");
    // The child re-creates its inherited listener and starts accepting.
    let child_id = AppIdentity { id: AppId(3), pid: kid_pid, uid: UNPRIVILEGED_UID, gid: 0 };
    let mut child_app = TestApp::attach_as(&mut world, child_id, geo);
    listen(&mut world, &mut child_app, false, true, true).unwrap();
    let counts = serve(&mut world, &mut [&mut child_app], |c| total(c) >= 4);
    assert_eq!(total(&counts), 4);
    assert_eq!(peer_was_reset(&mut world, &peers), 0, "queued, not reset, while the child held the port");
    finish(kid);
}

/// nginx's master binds port 80 as root and forks workers that drop root:
/// each re-creates the listener it inherited, which needs no privilege (the
/// kernel's inherited socket needs no new bind), while a fresh bind of a
/// privileged port by the same worker is refused.
#[test]
fn an_unprivileged_child_re_creates_an_inherited_privileged_listener() {
    let mut world = World::new();
    let geo = geometry(64, 4096);
    let me = std::process::id() as i32;
    let kid = unprivileged_child();
    let kid_pid = kid.id() as i32;
    let root = AppIdentity { id: AppId(1), pid: me, uid: 0, gid: 0 };
    let mut parent = TestApp::attach_as(&mut world, root, geo);
    listen_on(&mut world, &mut parent, 80, false, false, false).unwrap();
    assert_eq!(parent.call(&mut world, |req_id| Request::Forked { req_id, child_pid: kid_pid as u32 }), Ok(1));
    let worker = AppIdentity { id: AppId(2), pid: kid_pid, uid: UNPRIVILEGED_UID, gid: 0 };
    let mut child_app = TestApp::attach_as(&mut world, worker, geo);
    assert_eq!(listen_on(&mut world, &mut child_app, 81, false, false, false), Err(libc::EACCES), "a fresh bind");
    listen_on(&mut world, &mut child_app, 80, false, true, true).expect("the inherited listener");
    let peers: Vec<ConnId> = (0..3).map(|_| world.peer_connect(80)).collect();
    let counts = serve(&mut world, &mut [&mut child_app], |c| total(c) >= 3);
    assert_eq!(total(&counts), 3);
    assert_eq!(peer_was_reset(&mut world, &peers), 0);
    finish(kid);
}

#[test]
fn a_group_is_released_when_its_last_holder_exits() {
    let mut world = World::new();
    let geo = geometry(64, 4096);
    let me = std::process::id() as i32;
    let kid = child();
    let mut parent =
        TestApp::attach_as(&mut world, AppIdentity { id: AppId(1), pid: me, uid: UNPRIVILEGED_UID, gid: 0 }, geo);
    let listener = listen(&mut world, &mut parent, false, false, true).unwrap();
    assert_eq!(parent.call(&mut world, |req_id| Request::Forked { req_id, child_pid: kid.id() }), Ok(1));
    parent.close(listener);
    world.run_until(Duration::from_millis(10), |_| false);
    let mut other = TestApp::attach(&mut world, 2, geo);
    assert_eq!(listen(&mut world, &mut other, false, false, true), Err(libc::EADDRINUSE));
    finish(kid);
    assert!(listen(&mut world, &mut other, false, false, true).is_ok(), "the holder's exit freed the port");
}

#[test]
fn forked_must_name_the_apps_own_child() {
    let mut world = World::new();
    let geo = geometry(16, 4096);
    // Not our child: pid 1.
    let mut app = TestApp::attach(&mut world, 1, geo);
    let listener = listen(&mut world, &mut app, false, false, true).unwrap();
    let before = world.stats(app.id).bad_requests;
    assert_eq!(app.call(&mut world, |req_id| Request::Forked { req_id, child_pid: 1 }), Err(libc::ECHILD));
    app.close(listener);
    world.run_until(Duration::from_millis(10), |_| false);
    assert_eq!(world.stats(app.id).bad_requests, before + 1);
    let mut other = TestApp::attach(&mut world, 2, geo);
    assert!(listen(&mut world, &mut other, false, false, true).is_ok(), "pid 1 holds nothing of ours");
}
