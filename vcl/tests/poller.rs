//! The epoll-like poller: level, edge and one-shot reporting, listeners,
//! writability, and its readiness as a kernel fd.

mod support;

use std::os::fd::AsFd;
use std::time::Duration;

use sluice_shm::poll::{ppoll, PollFd, POLLIN};
use sluice_shm::protocol::Request;
use sluice_vcl::{Interest, PollEvent};
use support::*;

fn tokens(events: &[PollEvent]) -> Vec<u64> {
    events.iter().map(|e| e.token).collect()
}

#[test]
fn level_triggered_reports_while_readable() {
    let (d, vcl) = attached();
    let (_l, conn, h) = accepted(&d, &vcl, 7001);
    let p = vcl.poller().unwrap();
    p.add(&conn, 11, Interest::READABLE).unwrap();
    let mut ev = Vec::new();
    assert_eq!(p.wait(&mut ev, Some(Duration::ZERO)).unwrap(), 0, "nothing to read yet");
    d.peer_send(h, b"abc");
    assert_eq!(p.wait(&mut ev, Some(DEADLINE)).unwrap(), 1);
    assert_eq!(tokens(&ev), [11]);
    assert!(ev[0].readiness.readable && !ev[0].readiness.writable, "writable was not asked for");
    // Not read: reported again, and again.
    assert_eq!(p.wait(&mut ev, Some(Duration::ZERO)).unwrap(), 1);
    assert_eq!(p.wait(&mut ev, Some(Duration::ZERO)).unwrap(), 1);
    let mut buf = [0u8; 8];
    assert_eq!(conn.read(&mut buf).unwrap(), 3);
    assert_eq!(p.wait(&mut ev, Some(Duration::ZERO)).unwrap(), 0, "drained: no longer reported");
    d.assert_clean();
}

#[test]
fn edge_triggered_reports_each_arrival_once() {
    let (d, vcl) = attached();
    let (_l, conn, h) = accepted(&d, &vcl, 7002);
    let p = vcl.poller().unwrap();
    p.add(&conn, 5, Interest::READABLE.edge()).unwrap();
    let mut ev = Vec::new();
    d.peer_send(h, b"one");
    assert_eq!(p.wait(&mut ev, Some(DEADLINE)).unwrap(), 1);
    assert_eq!(p.wait(&mut ev, Some(Duration::ZERO)).unwrap(), 0, "same data: no new edge");
    // New data fires again although the old was never read (Linux ET).
    d.peer_send(h, b"two");
    assert_eq!(p.wait(&mut ev, Some(DEADLINE)).unwrap(), 1);
    assert_eq!(tokens(&ev), [5]);
    assert_eq!(p.wait(&mut ev, Some(Duration::ZERO)).unwrap(), 0);
    let mut buf = [0u8; 8];
    assert_eq!(conn.read(&mut buf).unwrap(), 6);
    // The peer's FIN is an edge too.
    d.peer_fin(h);
    assert_eq!(p.wait(&mut ev, Some(DEADLINE)).unwrap(), 1);
    assert!(ev[0].readiness.readable);
    d.assert_clean();
}

#[test]
fn oneshot_reports_once_until_modified() {
    let (d, vcl) = attached();
    let (_l, conn, h) = accepted(&d, &vcl, 7003);
    let p = vcl.poller().unwrap();
    p.add(&conn, 1, Interest::READABLE.oneshot()).unwrap();
    let mut ev = Vec::new();
    d.peer_send(h, b"x");
    assert_eq!(p.wait(&mut ev, Some(DEADLINE)).unwrap(), 1);
    d.peer_send(h, b"y");
    d.wait_events_flushed();
    assert_eq!(p.wait(&mut ev, Some(Duration::from_millis(20))).unwrap(), 0, "disabled after firing");
    p.modify(&conn, 2, Interest::READABLE.oneshot()).unwrap();
    assert_eq!(p.wait(&mut ev, Some(DEADLINE)).unwrap(), 1);
    assert_eq!(tokens(&ev), [2], "the new token");
    assert_eq!(p.wait(&mut ev, Some(Duration::ZERO)).unwrap(), 0);
    p.delete(&conn).unwrap();
    assert_eq!(p.delete(&conn), Err(sluice_vcl::Errno::ENOENT));
    assert_eq!(p.modify(&conn, 3, Interest::READABLE), Err(sluice_vcl::Errno::ENOENT));
    d.assert_clean();
}

#[test]
fn a_watched_listener_accepts_and_reports_connections() {
    let (d, vcl) = attached();
    let listener = vcl.listen(addr(0, 0, 0, 0, 7004), 8).unwrap();
    let p = vcl.poller().unwrap();
    p.add(&listener, 9, Interest::READABLE).unwrap();
    // Watching is waiting: the daemon may push connections now.
    d.wait_request("SET_ACCEPTING", |r| matches!(r, Request::SetAccepting { accepting: true, .. }));
    d.incoming(7004, addr(10, 0, 0, 7, 7));
    let mut ev = Vec::new();
    assert_eq!(p.wait(&mut ev, Some(DEADLINE)).unwrap(), 1);
    assert_eq!(tokens(&ev), [9]);
    listener.set_nonblocking(true).unwrap();
    let (_c, peer) = listener.accept().unwrap();
    assert_eq!(peer, addr(10, 0, 0, 7, 7));
    assert_eq!(p.wait(&mut ev, Some(Duration::ZERO)).unwrap(), 0);
    d.assert_clean();
}

#[test]
fn writability_is_reported_when_the_daemon_makes_room() {
    let (d, vcl) = attached();
    let (_l, conn, h) = accepted(&d, &vcl, 7005);
    conn.set_nonblocking(true).unwrap();
    let p = vcl.poller().unwrap();
    p.add(&conn, 3, Interest::WRITABLE).unwrap();
    let mut ev = Vec::new();
    assert_eq!(p.wait(&mut ev, Some(DEADLINE)).unwrap(), 1, "an empty TX fifo is writable");
    d.set_tx_paused(h, true);
    let size = vcl.geometry().tx_fifo as usize;
    assert_eq!(conn.write(&pattern(size, 2)).unwrap(), size);
    assert_eq!(p.wait(&mut ev, Some(Duration::ZERO)).unwrap(), 0, "full: not writable");
    d.set_tx_paused(h, false);
    assert_eq!(p.wait(&mut ev, Some(DEADLINE)).unwrap(), 1, "the drain's WRITABLE wakes the poller");
    assert!(ev[0].readiness.writable);
    d.wait_received(h, size);
    d.assert_clean();
}

#[test]
fn closing_a_socket_removes_it_and_hangups_are_always_reported() {
    let (d, vcl) = attached();
    let (_l, conn, h) = accepted(&d, &vcl, 7006);
    let (_l2, other, h2) = accepted(&d, &vcl, 7007);
    let p = vcl.poller().unwrap();
    p.add(&conn, 1, Interest::READABLE).unwrap();
    p.add(&other, 2, Interest::default()).unwrap();
    assert_eq!(p.add(&other, 2, Interest::default()), Err(sluice_vcl::Errno::EEXIST));
    d.peer_send(h, b"z");
    let mut ev = Vec::new();
    assert_eq!(p.wait(&mut ev, Some(DEADLINE)).unwrap(), 1);
    conn.close().unwrap();
    assert_eq!(p.wait(&mut ev, Some(Duration::ZERO)).unwrap(), 0, "a closed socket leaves the poller");
    // No interest at all, but a reset is reported (EPOLLHUP | EPOLLERR).
    d.peer_reset(h2);
    assert_eq!(p.wait(&mut ev, Some(DEADLINE)).unwrap(), 1);
    assert_eq!(tokens(&ev), [2]);
    assert!(ev[0].readiness.hup && ev[0].readiness.error && !ev[0].readiness.readable);
    d.assert_clean();
}

#[test]
fn the_poller_fd_is_readable_while_sockets_are_listed() {
    let (d, vcl) = attached();
    let (_l, conn, h) = accepted(&d, &vcl, 7008);
    let p = vcl.poller().unwrap();
    let readable = |p: &sluice_vcl::Poller| {
        let mut fds = [PollFd::new(p.as_fd(), POLLIN)];
        ppoll(&mut fds, Some(Duration::ZERO), None).unwrap() == 1
    };
    assert!(!readable(&p));
    p.add(&conn, 1, Interest::READABLE.edge()).unwrap();
    assert!(readable(&p), "a new item is evaluated at the next wait");
    let mut ev = Vec::new();
    assert_eq!(p.wait(&mut ev, Some(Duration::ZERO)).unwrap(), 0);
    assert!(!readable(&p));
    d.peer_send(h, b"data");
    d.wait_events_flushed();
    // Any vcl call applies the event, which lists the socket.
    let _ = conn.readiness();
    assert!(readable(&p));
    assert_eq!(p.wait(&mut ev, Some(Duration::ZERO)).unwrap(), 1);
    assert!(!readable(&p), "edge-triggered and reported: nothing listed");
    d.assert_clean();
}

#[test]
fn wait_fd_applies_daemon_events_while_it_sleeps_on_a_kernel_fd() {
    let (d, vcl) = attached();
    let (_l, conn, h) = accepted(&d, &vcl, 7009);
    let p = vcl.poller().unwrap();
    p.add(&conn, 5, Interest::READABLE).unwrap();
    let mut ev = Vec::new();
    assert_eq!(p.wait(&mut ev, Some(Duration::ZERO)).unwrap(), 0);
    // Nothing happens: the wait ends at its timeout.
    let started = std::time::Instant::now();
    assert!(!vcl.wait_fd(p.as_fd(), POLLIN, Some(Duration::from_millis(100)), None).unwrap());
    assert!(started.elapsed() >= Duration::from_millis(100));
    // Data arrives while the thread sleeps on the poller's fd alone: the
    // sleeping thread applies the daemon's event, which makes the fd ready.
    let sleeper = {
        let vcl = std::sync::Arc::clone(&vcl);
        let efd = p.as_fd().try_clone_to_owned().unwrap();
        std::thread::spawn(move || vcl.wait_fd(efd.as_fd(), POLLIN, Some(DEADLINE), None))
    };
    d.wait_app_sleeping();
    d.peer_send(h, b"x");
    assert_eq!(sleeper.join().unwrap(), Ok(true));
    assert_eq!(p.wait(&mut ev, Some(Duration::ZERO)).unwrap(), 1);
    assert_eq!(tokens(&ev), [5]);
    d.assert_clean();
}

#[test]
fn refresh_unlists_what_a_wait_would_not_report_and_keeps_edges() {
    let (d, vcl) = attached();
    let (_l, conn, h) = accepted(&d, &vcl, 7010);
    let p = vcl.poller().unwrap();
    let readable = |p: &sluice_vcl::Poller| {
        let mut fds = [PollFd::new(p.as_fd(), POLLIN)];
        ppoll(&mut fds, Some(Duration::ZERO), None).unwrap() == 1
    };
    p.add(&conn, 3, Interest::READABLE).unwrap();
    d.peer_send(h, b"ab");
    let mut ev = Vec::new();
    assert_eq!(p.wait(&mut ev, Some(DEADLINE)).unwrap(), 1);
    assert!(readable(&p), "level-triggered and still readable: listed");
    let mut buf = [0u8; 8];
    assert_eq!(conn.read(&mut buf).unwrap(), 2);
    assert!(readable(&p), "only a wait or a refresh re-evaluates");
    p.refresh();
    assert!(!readable(&p), "nothing to report: unlisted");
    // Edge-triggered: a refresh does not consume the edge.
    p.modify(&conn, 4, Interest::READABLE.edge()).unwrap();
    d.peer_send(h, b"c");
    d.wait_events_flushed();
    p.refresh();
    assert!(readable(&p));
    p.refresh();
    assert!(readable(&p), "the edge is still unreported");
    assert_eq!(p.wait(&mut ev, Some(Duration::ZERO)).unwrap(), 1);
    assert_eq!(tokens(&ev), [4]);
    p.refresh();
    assert!(!readable(&p), "reported: the edge is consumed");
    d.assert_clean();
}
