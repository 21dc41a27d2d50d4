//! Cut-through sessions: two test apps on one app set, connected through
//! the stack's own address or 127.0.0.1 (loopback interception on), with
//! no engine connection in between.

mod app_common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::Ordering;

use app_common::*;
use sluice_daemon::app::{AppSet, AppSetConfig};
use sluice_shm::layout::{app_words, desc};
use sluice_shm::protocol::{ready, Request, ShutdownHow, SockOption};
use sluice_shm::SessionHandle;
use sluice_stack::Duration;

const LOOPBACK: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const MIB: usize = 1 << 20;

/// `CONNECT` to any remote; the reply's handle is adopted.
fn connect_to(app: &mut TestApp, world: &mut World, remote: SocketAddrV4) -> Result<SessionHandle, i32> {
    let raw = app.call(world, |req_id| Request::Connect { req_id, remote, local: None })?;
    let handle = SessionHandle::from_u64(raw).expect("a handle");
    app.adopt_conn(handle);
    Ok(handle)
}

fn desc_addr(app: &TestApp, conn: SessionHandle, ip: usize, port: usize) -> SocketAddrV4 {
    let d = &app.conn(conn).desc;
    SocketAddrV4::new(d.word(ip).load(Ordering::Relaxed).into(), d.word(port).load(Ordering::Relaxed) as u16)
}

fn local_of(app: &TestApp, conn: SessionHandle) -> SocketAddrV4 {
    desc_addr(app, conn, desc::LOCAL_IP, desc::LOCAL_PORT)
}

fn remote_of(app: &TestApp, conn: SessionHandle) -> SocketAddrV4 {
    desc_addr(app, conn, desc::REMOTE_IP, desc::REMOTE_PORT)
}

/// A server app (id 1) listening on `port` and a client app (id 2).
fn two_apps(world: &mut World, port: u16, backlog: u32, sessions: u32, fifo: u32) -> (TestApp, TestApp, SessionHandle) {
    let mut server = TestApp::attach(world, 1, geometry(sessions, fifo));
    let client = TestApp::attach(world, 2, geometry(sessions, fifo));
    let listener = server.listen(world, port, backlog).unwrap();
    (server, client, listener)
}

/// Connects the client to `remote` and runs until the server took the
/// accepted end and the client saw `CONNECTED`.
fn pair(
    world: &mut World,
    server: &mut TestApp,
    client: &mut TestApp,
    remote: SocketAddrV4,
) -> (SessionHandle, SessionHandle) {
    let c = connect_to(client, world, remote).unwrap();
    assert!(world.run_until(Duration::from_secs(5), |_| {
        server.poll_events(usize::MAX);
        client.poll_events(usize::MAX);
        !server.accepted.is_empty() && client.conn(c).bits & ready::CONNECTED != 0
    }));
    let (_, s) = server.take_accepted().unwrap();
    (c, s)
}

/// Sends `a_data` from `a` and `b_data` from `b` at once, both read as they
/// go; returns when each side has received all the other sent.
fn exchange(
    world: &mut World,
    (a, ah, a_data): (&mut TestApp, SessionHandle, &[u8]),
    (b, bh, b_data): (&mut TestApp, SessionHandle, &[u8]),
) {
    let (mut a_sent, mut b_sent) = (0, 0);
    assert!(
        world.run_until(Duration::from_secs(60), |_| {
            a.poll_events(usize::MAX);
            b.poll_events(usize::MAX);
            a_sent += a.write(ah, &a_data[a_sent..]);
            b_sent += b.write(bh, &b_data[b_sent..]);
            a.read(ah);
            b.read(bh);
            a.conn(ah).received.len() == b_data.len() && b.conn(bh).received.len() == a_data.len()
        }),
        "stalled: a received {} of {}, b received {} of {}",
        a.conn(ah).received.len(),
        b_data.len(),
        b.conn(bh).received.len(),
        a_data.len()
    );
    assert!(a.conn(ah).received == b_data, "b → a byte for byte");
    assert!(b.conn(bh).received == a_data, "a → b byte for byte");
}

fn mebibyte_each_way(remote_ip: Ipv4Addr) {
    let mut world = World::new();
    let (mut server, mut client, _) = two_apps(&mut world, 7000, 16, 64, 4096);
    let (c, s) = pair(&mut world, &mut server, &mut client, SocketAddrV4::new(remote_ip, 7000));

    // Real addresses: the client's from the ephemeral range on the
    // destination's address, mirrored in the server's desc.
    let client_local = local_of(&client, c);
    assert_eq!(*client_local.ip(), remote_ip);
    let (low, high) = world.daemon.config().ephemeral_ports;
    assert!((low..=high).contains(&client_local.port()), "{client_local}");
    assert_eq!(remote_of(&client, c), SocketAddrV4::new(remote_ip, 7000));
    assert_eq!(local_of(&server, s), SocketAddrV4::new(remote_ip, 7000));
    assert_eq!(remote_of(&server, s), client_local);

    let up = pattern(1, 0, MIB);
    let down = pattern(2, 0, MIB);
    exchange(&mut world, (&mut client, c, &up), (&mut server, s, &down));

    let rows = world.apps.sessions(&world.daemon);
    let cut: Vec<_> = rows.iter().filter(|r| r.cut_through).collect();
    assert_eq!(cut.len(), 2, "{rows:?}");
    assert!(cut.iter().all(|r| r.state == "ESTABLISHED"), "{cut:?}");
    assert!(cut.iter().any(|r| r.local == client_local.to_string() && r.app == 2));
    assert!(rows.iter().any(|r| r.state == "LISTEN" && !r.cut_through));
    assert!(world.to_peer.is_empty() && world.peer_events.is_empty(), "nothing crossed the link");
    for app in [&server, &client] {
        let stats = world.stats(app.id);
        assert_eq!((stats.bad_requests, stats.violations), (0, 0));
    }
}

#[test]
fn a_mebibyte_each_way_through_the_stack_address() {
    mebibyte_each_way(DAEMON_IP);
}

#[test]
fn a_mebibyte_each_way_through_127_0_0_1() {
    mebibyte_each_way(LOOPBACK);
}

#[test]
fn eof_follows_the_last_byte_in_both_directions() {
    let mut world = World::new();
    let (mut server, mut client, _) = two_apps(&mut world, 7000, 16, 64, 4096);
    let (c, s) = pair(&mut world, &mut server, &mut client, SocketAddrV4::new(LOOPBACK, 7000));
    let request = pattern(3, 0, 100_000);
    let mut sent = 0;
    assert!(world.run_until(Duration::from_secs(10), |_| {
        server.poll_events(usize::MAX);
        client.poll_events(usize::MAX);
        if sent < request.len() {
            sent += client.write(c, &request[sent..]);
            if sent == request.len() {
                client.shutdown(c, ShutdownHow::Write);
            }
        }
        server.read(s);
        server.conn(s).bits & ready::PEER_CLOSED != 0
    }));
    server.read(s);
    assert_eq!(server.conn(s).bytes_at_peer_closed, Some(request.len()), "EOF after every byte");
    assert!(server.conn(s).received == request);

    // The server answers on its half and closes: the client gets every
    // byte, then EOF, and the server's slot is freed.
    let reply = pattern(4, 0, 50_000);
    let mut sent = 0;
    assert!(world.run_until(Duration::from_secs(10), |w| {
        server.poll_events(usize::MAX);
        client.poll_events(usize::MAX);
        if sent < reply.len() {
            sent += server.write(s, &reply[sent..]);
            if sent == reply.len() {
                server.close(s);
            }
        }
        client.read(c);
        client.conn(c).bits & ready::PEER_CLOSED != 0 && w.stats(server.id).sessions == 0
    }));
    client.read(c);
    assert_eq!(client.conn(c).bytes_at_peer_closed, Some(reply.len()));
    assert!(client.conn(c).received == reply);
    assert_eq!(client.conn(c).bits & ready::RESET, 0);
    let rows = world.apps.sessions(&world.daemon);
    assert!(rows.iter().any(|r| r.cut_through && r.app == 2 && r.state == "TIME-WAIT"), "{rows:?}");

    client.close(c);
    assert!(world.run_until(Duration::from_secs(5), |w| w.stats(client.id).sessions == 0));
    assert!(!world.apps.sessions(&world.daemon).iter().any(|r| r.cut_through));
}

#[test]
fn abort_and_close_with_unread_bytes_reset_the_peer() {
    let mut world = World::new();
    let (mut server, mut client, _) = two_apps(&mut world, 7000, 16, 64, 4096);
    let remote = SocketAddrV4::new(DAEMON_IP, 7000);

    // ABORT (linger 0 close, as vcl sends it).
    let (c, s) = pair(&mut world, &mut server, &mut client, remote);
    server.push(Request::Abort { handle: s });
    assert!(world.run_until(Duration::from_secs(5), |_| {
        client.poll_events(usize::MAX);
        client.conn(c).bits & ready::RESET != 0
    }));
    assert_eq!(client.conn(c).bits & ready::PEER_CLOSED, 0, "a reset is not an EOF");
    client.close(c);

    // CLOSE with bytes left unread in the RX fifo (RFC 2525 §2.17).
    let (c, s) = pair(&mut world, &mut server, &mut client, remote);
    assert_eq!(client.write(c, b"never read"), 10);
    assert!(world.run_until(Duration::from_secs(5), |_| {
        server.poll_events(usize::MAX);
        server.conn(s).readable
    }));
    server.close(s);
    assert!(world.run_until(Duration::from_secs(5), |_| {
        client.poll_events(usize::MAX);
        client.conn(c).bits & ready::RESET != 0
    }));
    client.close(c);

    // SO_LINGER 0 then CLOSE, from the client side this time.
    let (c, s) = pair(&mut world, &mut server, &mut client, remote);
    assert_eq!(client.set_option(&mut world, c, SockOption::LingerZero, 1), Ok(0));
    client.close(c);
    assert!(world.run_until(Duration::from_secs(5), |_| {
        server.poll_events(usize::MAX);
        server.conn(s).bits & ready::RESET != 0
    }));
    assert_eq!(server.conn(s).bits & ready::PEER_CLOSED, 0);

    // Writing after a reset drops the bytes instead of wedging.
    assert_eq!(server.write(s, b"into the void"), 13);
    server.close(s);
    assert!(world
        .run_until(Duration::from_secs(5), |w| w.stats(server.id).sessions == 0 && w.stats(client.id).sessions == 0));
}

#[test]
fn no_listener_is_refused_like_a_kernel_rst() {
    let mut world = World::new();
    let (_server, mut client, _) = two_apps(&mut world, 7000, 16, 64, 4096);
    for remote in [SocketAddrV4::new(DAEMON_IP, 7001), SocketAddrV4::new(LOOPBACK, 7001)] {
        let c = connect_to(&mut client, &mut world, remote).unwrap();
        assert!(world.run_until(Duration::from_secs(5), |_| {
            client.poll_events(usize::MAX);
            client.conn(c).bits & ready::ERROR != 0
        }));
        assert_eq!(client.conn(c).errno, libc::ECONNREFUSED);
        client.close(c);
    }
    assert!(world.run_until(Duration::from_secs(5), |w| w.stats(client.id).sessions == 0));
    assert!(world.to_peer.is_empty());
}

#[test]
fn a_listener_on_the_stack_address_is_not_reached_through_127() {
    let mut world = World::new();
    let mut server = TestApp::attach(&mut world, 1, geometry(64, 4096));
    let mut client = TestApp::attach(&mut world, 2, geometry(64, 4096));
    let local = addr(DAEMON_IP, 7000);
    let raw = server.call(&mut world, |req_id| Request::Listen { req_id, local, backlog: 4, reuse_port: false });
    server.adopt_listener(SessionHandle::from_u64(raw.unwrap()).unwrap(), 4);
    let c = connect_to(&mut client, &mut world, SocketAddrV4::new(LOOPBACK, 7000)).unwrap();
    assert!(world.run_until(Duration::from_secs(5), |_| {
        client.poll_events(usize::MAX);
        client.conn(c).bits & ready::ERROR != 0
    }));
    assert_eq!(client.conn(c).errno, libc::ECONNREFUSED);
    let (_, s) = pair(&mut world, &mut server, &mut client, local);
    assert_eq!(local_of(&server, s), local);
}

#[test]
fn a_full_accept_queue_makes_the_connect_wait_for_credit() {
    let mut world = World::new();
    let (mut server, mut client, _) = two_apps(&mut world, 7000, 1, 64, 4096);
    let remote = SocketAddrV4::new(DAEMON_IP, 7000);
    let first = connect_to(&mut client, &mut world, remote).unwrap();
    let second = connect_to(&mut client, &mut world, remote).unwrap();
    // Two seconds of virtual time: the first is pushed, the second waits
    // (the kernel drops the SYN and retries) rather than failing.
    world.run_until(Duration::from_secs(2), |_| {
        server.poll_events(usize::MAX);
        client.poll_events(usize::MAX);
        false
    });
    assert_eq!(server.accepted.len(), 1, "one credit");
    assert_ne!(client.conn(first).bits & ready::CONNECTED, 0);
    assert_eq!(client.conn(second).bits & (ready::CONNECTED | ready::ERROR), 0, "still connecting");
    let rows = world.apps.sessions(&world.daemon);
    assert!(rows.iter().any(|r| r.app == 2 && r.state == "SYN-SENT"), "{rows:?}");
    // Taking the first returns the credit (RX_SPACE on the listener).
    server.take_accepted().unwrap();
    assert!(world.run_until(Duration::from_secs(5), |_| {
        server.poll_events(usize::MAX);
        client.poll_events(usize::MAX);
        client.conn(second).bits & ready::CONNECTED != 0
    }));
    assert_eq!(server.accepted.len(), 1);
}

#[test]
fn a_connect_that_never_gets_credit_times_out() {
    let mut world = World::new();
    let (mut server, mut client, _) = two_apps(&mut world, 7000, 1, 64, 4096);
    let remote = SocketAddrV4::new(DAEMON_IP, 7000);
    let _first = connect_to(&mut client, &mut world, remote).unwrap();
    let second = connect_to(&mut client, &mut world, remote).unwrap();
    let start = world.now;
    assert!(world.run_until(Duration::from_secs(200), |_| {
        server.poll_events(usize::MAX);
        client.poll_events(usize::MAX);
        client.conn(second).bits & ready::ERROR != 0
    }));
    assert_eq!(client.conn(second).errno, libc::ETIMEDOUT);
    // The kernel's SYN retries: 127 s, not sooner.
    assert!(world.now - start >= Duration::from_secs(127), "{:?}", world.now - start);
    client.close(second);
    assert!(world.run_until(Duration::from_secs(5), |w| w.stats(client.id).sessions == 1));
}

#[test]
fn the_death_of_one_app_closes_its_ends() {
    let mut world = World::new();
    let (mut server, mut client, _) = two_apps(&mut world, 7000, 16, 64, 4096);
    let remote = SocketAddrV4::new(LOOPBACK, 7000);
    let (graceful, gs) = pair(&mut world, &mut server, &mut client, remote);
    let (reset, rs) = pair(&mut world, &mut server, &mut client, remote);
    // The server leaves bytes in its TX fifo on one pair, and bytes unread
    // in its RX fifo on the other.
    let last_words = pattern(5, 0, 3000);
    assert_eq!(server.write(gs, &last_words), last_words.len());
    assert_eq!(client.write(reset, b"unread"), 6);
    assert!(world.run_until(Duration::from_secs(5), |_| {
        server.poll_events(usize::MAX);
        server.conn(rs).readable
    }));
    let _ = rs;

    world.apps.detach(server.id, &mut world.daemon, world.now);
    assert!(world.run_until(Duration::from_secs(5), |_| {
        client.poll_events(usize::MAX);
        client.read(graceful);
        client.conn(graceful).bits & ready::PEER_CLOSED != 0 && client.conn(reset).bits & ready::RESET != 0
    }));
    client.read(graceful);
    assert!(client.conn(graceful).received == last_words, "a closing app's bytes still arrive");
    assert_eq!(client.conn(graceful).bytes_at_peer_closed, Some(last_words.len()));
    assert_eq!(client.conn(graceful).bits & ready::RESET, 0);
    assert!(world.apps.stats().iter().all(|s| s.id != server.id.0), "the dead app is gone");

    // Connecting to its port now meets no listener.
    let c = connect_to(&mut client, &mut world, remote).unwrap();
    assert!(world.run_until(Duration::from_secs(5), |_| {
        client.poll_events(usize::MAX);
        client.conn(c).bits & ready::ERROR != 0
    }));
    assert_eq!(client.conn(c).errno, libc::ECONNREFUSED);
}

#[test]
fn the_peer_of_a_dead_client_is_closed_too() {
    let mut world = World::new();
    let (mut server, mut client, _) = two_apps(&mut world, 7000, 16, 64, 4096);
    let (_c, s) = pair(&mut world, &mut server, &mut client, SocketAddrV4::new(DAEMON_IP, 7000));
    world.apps.detach(client.id, &mut world.daemon, world.now);
    assert!(world.run_until(Duration::from_secs(5), |_| {
        server.poll_events(usize::MAX);
        server.conn(s).bits & ready::PEER_CLOSED != 0
    }));
    // Its answer finds no reader: reset, as by a closed kernel socket.
    assert_eq!(server.write(s, b"anyone?"), 7);
    assert!(world.run_until(Duration::from_secs(5), |_| {
        server.poll_events(usize::MAX);
        server.conn(s).bits & ready::RESET != 0
    }));
}

#[test]
fn a_thousand_pairs() {
    const PAIRS: usize = 1000;
    let mut world = World::new();
    let (mut server, mut client, _) = two_apps(&mut world, 7000, 1024, 2048, 4096);
    let remote = SocketAddrV4::new(LOOPBACK, 7000);
    let mut clients = Vec::new();
    for _ in 0..PAIRS {
        clients.push(connect_to(&mut client, &mut world, remote).unwrap());
        server.poll_events(usize::MAX);
    }
    let mut servers = Vec::new();
    assert!(world.run_until(Duration::from_secs(10), |_| {
        server.poll_events(usize::MAX);
        client.poll_events(usize::MAX);
        while let Some((_, s)) = server.take_accepted() {
            servers.push(s);
        }
        servers.len() == PAIRS
    }));
    assert!(clients.iter().all(|&c| client.conn(c).bits & ready::CONNECTED != 0));
    let mut ports: Vec<u16> = clients.iter().map(|&c| local_of(&client, c).port()).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), PAIRS, "distinct local ports");

    // Each client says who it is; each server end echoes it.
    for (i, &c) in clients.iter().enumerate() {
        let hello = pattern(i as u64, 0, 100);
        assert_eq!(client.write(c, &hello), 100);
        if i % 100 == 99 {
            world.pump();
        }
    }
    assert!(world.run_until(Duration::from_secs(30), |w| {
        server.poll_events(usize::MAX);
        client.poll_events(usize::MAX);
        for (i, &s) in servers.iter().enumerate() {
            if i % 100 == 99 {
                w.pump();
            }
            if server.conn(s).readable {
                server.read(s);
                let got = std::mem::take(&mut server.conns.get_mut(&s).unwrap().received);
                assert_eq!(server.write(s, &got), got.len());
            }
        }
        clients.iter().all(|&c| {
            client.read(c);
            client.conn(c).received.len() == 100
        })
    }));
    for (i, &c) in clients.iter().enumerate() {
        assert!(client.conn(c).received == pattern(i as u64, 0, 100), "pair {i} got its own bytes back");
    }
    for (i, &c) in clients.iter().enumerate() {
        client.close(c);
        if i % 100 == 99 {
            world.pump();
        }
    }
    assert!(world.run_until(Duration::from_secs(10), |_| {
        server.poll_events(usize::MAX);
        servers.iter().all(|&s| server.conn(s).bits & ready::PEER_CLOSED != 0)
    }));
    for (i, &s) in servers.iter().enumerate() {
        server.close(s);
        if i % 100 == 99 {
            world.pump();
        }
    }
    assert!(world
        .run_until(Duration::from_secs(10), |w| w.stats(server.id).sessions == 0 && w.stats(client.id).sessions == 0));
}

#[test]
fn without_loopback_interception_127_is_unreachable() {
    let mut world = World::new();
    world.apps = AppSet::new(AppSetConfig { loopback: false, ..world.apps_config() });
    let (mut server, mut client, _) = two_apps(&mut world, 7000, 16, 64, 4096);
    let remote = SocketAddrV4::new(LOOPBACK, 7000);
    assert_eq!(connect_to(&mut client, &mut world, remote), Err(libc::ENETUNREACH));
    // The stack's own address is still served.
    pair(&mut world, &mut server, &mut client, SocketAddrV4::new(DAEMON_IP, 7000));
}

#[test]
fn an_impossible_tx_tail_resets_the_pair_and_counts_a_violation() {
    let mut world = World::new();
    let (mut server, mut client, _) = two_apps(&mut world, 7000, 16, 64, 4096);
    let (c, s) = pair(&mut world, &mut server, &mut client, SocketAddrV4::new(DAEMON_IP, 7000));
    // The server claims far more bytes than its fifo holds.
    server.conn(s).words.word(app_words::TX_TAIL).store(1 << 30, Ordering::Release);
    server.push(Request::TxReady { handle: s });
    assert!(world.run_until(Duration::from_secs(5), |_| {
        client.poll_events(usize::MAX);
        client.conn(c).bits & ready::RESET != 0
    }));
    assert_eq!(client.conn(c).received.len(), 0, "no garbage delivered");
    assert!(world.stats(server.id).violations >= 1);
    assert_eq!(world.stats(client.id).violations, 0);
    assert_eq!(world.stats(server.id).sessions, 0, "the violating end is freed");
}
