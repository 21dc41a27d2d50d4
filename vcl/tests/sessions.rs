//! Sessions against the fake daemon: attach, listen/accept, connect, reads
//! and writes with the kernel's semantics, flow control, close.

mod support;

use std::io::{IoSlice, IoSliceMut};
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use sluice_shm::protocol::{Request, ShutdownHow, SockOption};
use sluice_vcl::{Errno, MsgFlags, Socket, Vcl};
use support::*;

#[test]
fn attach_without_a_daemon_fails_at_once_with_a_clear_error() {
    let missing = Path::new("/nonexistent-sluice-dir/control.sock");
    let e = Vcl::attach(missing).unwrap_err();
    assert_eq!(e.errno(), Errno::ENOENT);
    assert!(e.message().contains("/nonexistent-sluice-dir/control.sock"), "{e}");

    // A socket file nobody listens on any more.
    let d = FakeDaemon::start();
    let path = d.path().to_path_buf();
    let stale = path.with_file_name("stale.sock");
    drop(sluice_shm::unix_socket::listen(&stale, 1).unwrap());
    assert_eq!(Vcl::attach(&stale).unwrap_err().errno(), Errno::ECONNREFUSED);
}

#[test]
fn listen_accept_and_a_round_trip() {
    let (d, vcl) = attached();
    assert_eq!(vcl.app_worker_id(), 7);
    let listener = vcl.listen(addr(0, 0, 0, 0, 8080), 16).unwrap();
    assert_eq!(listener.local_addr().unwrap(), addr(0, 0, 0, 0, 8080));
    assert_eq!(listener.peer_addr(), Err(Errno::ENOTCONN));
    let h = d.incoming(8080, addr(10, 0, 0, 2, 41000));
    let (conn, peer) = listener.accept().unwrap();
    assert_eq!(peer, addr(10, 0, 0, 2, 41000));
    assert_eq!(conn.peer_addr().unwrap(), peer);
    assert_eq!(conn.local_addr().unwrap(), addr(0, 0, 0, 0, 8080));
    assert!(d.requests().iter().any(|r| matches!(r, Request::SetAccepting { accepting: true, .. })));

    d.peer_send(h, b"hello");
    let mut buf = [0u8; 64];
    assert_eq!(conn.read(&mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"hello");
    assert_eq!(conn.write(b"world").unwrap(), 5);
    assert_eq!(d.wait_received(h, 5), b"world");

    conn.close().unwrap();
    assert_eq!(d.wait_ended(h), Ended::Close);
    d.assert_clean();
}

#[test]
fn a_blocked_read_is_woken_by_an_event_from_the_daemon() {
    let (d, vcl) = attached();
    let (_l, conn, h) = accepted(&d, &vcl, 8081);
    let conn = Arc::new(conn);
    let (tx, rx) = mpsc::channel();
    let reader = {
        let conn = Arc::clone(&conn);
        std::thread::spawn(move || {
            let mut buf = [0u8; 16];
            let n = conn.read(&mut buf);
            tx.send(n.map(|n| buf[..n].to_vec())).unwrap();
        })
    };
    // The reader sleeps in the kernel as the leader: the app's flag says so.
    d.wait_app_sleeping();
    d.peer_send(h, b"wake up");
    assert_eq!(rx.recv_timeout(DEADLINE).unwrap().unwrap(), b"wake up");
    reader.join().unwrap();
    d.assert_clean();
}

#[test]
fn eof_comes_only_after_every_byte() {
    let (d, vcl) = attached();
    let (_l, conn, h) = accepted(&d, &vcl, 8082);
    // Four fifos' worth, then FIN: the daemon must hold the FIN back.
    let data = pattern(64 * 1024, 3);
    d.peer_send(h, &data);
    d.peer_fin(h);
    let mut got = Vec::new();
    let mut buf = [0u8; 5000];
    loop {
        match conn.read(&mut buf).unwrap() {
            0 => break,
            n => got.extend_from_slice(&buf[..n]),
        }
    }
    assert_eq!(got.len(), data.len());
    assert!(got == data, "bytes differ");
    assert_eq!(conn.read(&mut buf).unwrap(), 0, "EOF stays");
    let r = conn.readiness().unwrap();
    assert!(r.readable && r.rdhup && !r.hup && r.writable, "{r:?}");
    // Half-closed: writing still works.
    assert_eq!(conn.write(b"bye").unwrap(), 3);
    assert_eq!(d.wait_received(h, 3), b"bye");
    d.assert_clean();
}

#[test]
fn a_reset_fails_the_read_once_then_reads_eof_and_writes_epipe() {
    let (d, vcl) = attached();
    let (_l, conn, h) = accepted(&d, &vcl, 8083);
    d.peer_send(h, b"last words");
    let mut buf = [0u8; 64];
    assert_eq!(conn.read(&mut buf).unwrap(), 10, "queued bytes come first");
    d.peer_reset(h);
    assert_eq!(conn.read(&mut buf), Err(Errno::ECONNRESET));
    assert_eq!(conn.read(&mut buf), Ok(0));
    assert_eq!(conn.write(b"x"), Err(Errno::EPIPE));
    let r = conn.readiness().unwrap();
    assert!(r.readable && r.writable && r.hup && !r.error, "{r:?}");

    // A write sees the reset first on another connection.
    let (_l2, conn2, h2) = accepted(&d, &vcl, 8084);
    d.peer_reset(h2);
    d.wait_events_flushed();
    assert!(conn2.readiness().unwrap().error);
    assert_eq!(conn2.write(b"x"), Err(Errno::ECONNRESET));
    assert_eq!(conn2.write(b"x"), Err(Errno::EPIPE));
    d.assert_clean();
}

#[test]
fn blocking_connect_succeeds_or_reports_the_refusal() {
    let (d, vcl) = attached();
    d.set_policy(9000, Policy::Accept);
    d.set_policy(9001, Policy::Refuse(libc::ECONNREFUSED));
    let conn = vcl.connect(addr(10, 0, 0, 9, 9000)).unwrap();
    assert_eq!(conn.peer_addr().unwrap(), addr(10, 0, 0, 9, 9000));
    assert_eq!(*conn.local_addr().unwrap().ip(), fake_daemon_ip());
    let h = d.wait_conn_to(9000);
    conn.write(b"hi").unwrap();
    assert_eq!(d.wait_received(h, 2), b"hi");

    assert_eq!(vcl.connect(addr(10, 0, 0, 9, 9001)).unwrap_err(), Errno::ECONNREFUSED);
    let s = vcl.socket().unwrap();
    assert_eq!(s.connect(addr(10, 0, 0, 9, 0)), Err(Errno::ECONNREFUSED), "port 0");
    d.assert_clean();
}

fn fake_daemon_ip() -> std::net::Ipv4Addr {
    support::fake_daemon::DAEMON_IP
}

#[test]
fn nonblocking_connect_completes_through_writability_and_so_error() {
    let (d, vcl) = attached();
    let s = vcl.socket().unwrap();
    s.set_nonblocking(true).unwrap();
    assert_eq!(s.connect(addr(10, 0, 0, 9, 9100)), Err(Errno::EINPROGRESS));
    assert_eq!(s.connect(addr(10, 0, 0, 9, 9100)), Err(Errno::EALREADY));
    let (h, remote) = d.next_held_connect();
    assert_eq!(remote, addr(10, 0, 0, 9, 9100));
    assert!(!s.readiness().unwrap().writable, "not writable while connecting");
    assert_eq!(s.peer_addr(), Err(Errno::ENOTCONN));
    let mut buf = [0u8; 4];
    assert_eq!(s.read(&mut buf), Err(Errno::EAGAIN));
    d.complete_connect(h, Ok(()));
    let poller = vcl.poller().unwrap();
    poller.add(&s, 1, sluice_vcl::Interest::WRITABLE).unwrap();
    let mut events = Vec::new();
    assert_eq!(poller.wait(&mut events, Some(DEADLINE)).unwrap(), 1);
    assert!(events[0].readiness.writable && !events[0].readiness.error);
    assert_eq!(s.take_error().unwrap(), None);
    assert_eq!(s.peer_addr().unwrap(), addr(10, 0, 0, 9, 9100));
    assert_eq!(s.connect(addr(10, 0, 0, 9, 9100)), Err(Errno::EISCONN));

    // Refused: writable with an error, SO_ERROR read once.
    let s2 = vcl.socket().unwrap();
    s2.set_nonblocking(true).unwrap();
    assert_eq!(s2.connect(addr(10, 0, 0, 9, 9101)), Err(Errno::EINPROGRESS));
    let (h2, _) = d.next_held_connect();
    d.complete_connect(h2, Err(libc::ECONNREFUSED));
    poller.add(&s2, 2, sluice_vcl::Interest::WRITABLE).unwrap();
    let r = loop {
        poller.wait(&mut events, Some(DEADLINE)).unwrap();
        if let Some(e) = events.iter().find(|e| e.token == 2 && e.readiness.error) {
            break e.readiness;
        }
    };
    assert!(r.writable && r.hup, "{r:?}");
    assert_eq!(s2.take_error().unwrap(), Some(Errno::ECONNREFUSED));
    assert_eq!(s2.take_error().unwrap(), None);
    d.assert_clean();
}

#[test]
fn nonblocking_calls_return_eagain() {
    let (d, vcl) = attached();
    let listener = vcl.listen(addr(0, 0, 0, 0, 8085), 4).unwrap();
    listener.set_nonblocking(true).unwrap();
    assert_eq!(listener.accept().unwrap_err(), Errno::EAGAIN);
    let h = d.incoming(8085, addr(10, 0, 0, 3, 1234));
    // The first accept said the listener accepts; the daemon pushes now.
    d.wait_pushed(8085, 1);
    d.wait_events_flushed();
    let (conn, _) = listener.accept().unwrap();
    conn.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(conn.read(&mut buf), Err(Errno::EAGAIN));
    // A blocking socket with MSG_DONTWAIT does not block either.
    let conn_b = Arc::new(conn);
    conn_b.set_nonblocking(false).unwrap();
    assert_eq!(conn_b.recv(&mut buf, MsgFlags { dont_wait: true, peek: false }), Err(Errno::EAGAIN));
    conn_b.set_nonblocking(true).unwrap();

    // Writes: what fits, then EAGAIN.
    d.set_tx_paused(h, true);
    let size = vcl.geometry().tx_fifo as usize;
    let data = pattern(size + 100, 1);
    assert_eq!(conn_b.write(&data).unwrap(), size);
    assert_eq!(conn_b.write(&data[size..]), Err(Errno::EAGAIN));
    assert!(!conn_b.readiness().unwrap().writable);
    d.set_tx_paused(h, false);
    assert_eq!(d.wait_received(h, size), data[..size]);
    d.assert_clean();
}

#[test]
fn a_full_tx_fifo_blocks_the_writer_until_the_daemon_drains() {
    let (d, vcl) = attached();
    let (_l, conn, h) = accepted(&d, &vcl, 8086);
    let conn = Arc::new(conn);
    d.set_tx_paused(h, true);
    let size = vcl.geometry().tx_fifo as usize;
    let data = pattern(4 * size, 9);
    let (tx, rx) = mpsc::channel();
    let writer = {
        let (conn, data) = (Arc::clone(&conn), data.clone());
        std::thread::spawn(move || tx.send(conn.write(&data)).unwrap())
    };
    // The writer filled the fifo and sleeps (asked for WRITABLE).
    d.wait_for_tx_full(h, size as u32);
    d.wait_app_sleeping();
    assert!(rx.try_recv().is_err(), "the writer must still be blocked");
    d.set_tx_paused(h, false);
    assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), Ok(data.len()));
    assert!(d.wait_received(h, data.len()) == data);
    writer.join().unwrap();
    d.assert_clean();
}

#[test]
fn reading_sends_rx_space_when_the_daemon_is_blocked() {
    let (d, vcl) = attached();
    let (_l, conn, h) = accepted(&d, &vcl, 8087);
    let size = vcl.geometry().rx_fifo as usize;
    let data = pattern(5 * size + 17, 5);
    d.peer_send(h, &data);
    d.wait_rx_blocked(h);
    let mut got = vec![0u8; data.len()];
    let mut off = 0;
    while off < got.len() {
        off += conn.read(&mut got[off..]).unwrap();
    }
    assert!(got == data, "bytes differ");
    let (blocked, notes) = d.rx_flow(h);
    assert!(blocked >= 4, "the daemon blocked each time the fifo filled ({blocked})");
    assert!(notes >= blocked, "one RX_SPACE per block at least: {blocked} blocks, {notes} notes");
    d.assert_clean();
}

#[test]
fn a_signal_interrupts_a_blocking_read_with_eintr() {
    sluice_shm::poll::install_noop_handler(libc::SIGUSR1).unwrap();
    let (d, vcl) = attached();
    let (_l, conn, h) = accepted(&d, &vcl, 8088);
    let conn = Arc::new(conn);
    let (tid_tx, tid_rx) = mpsc::channel();
    let (res_tx, res_rx) = mpsc::channel();
    let reader = {
        let conn = Arc::clone(&conn);
        std::thread::spawn(move || {
            tid_tx.send(sluice_shm::poll::gettid()).unwrap();
            let mut buf = [0u8; 8];
            res_tx.send(conn.read(&mut buf)).unwrap();
        })
    };
    let tid = tid_rx.recv().unwrap();
    // A signal that lands before the thread blocks is lost to it, as with
    // the kernel: repeat until the read returns.
    let deadline = std::time::Instant::now() + DEADLINE;
    let res = loop {
        sluice_shm::poll::tgkill(tid, libc::SIGUSR1).unwrap();
        if let Ok(res) = res_rx.recv_timeout(Duration::from_millis(20)) {
            break res;
        }
        assert!(std::time::Instant::now() < deadline, "the read was never interrupted");
    };
    assert_eq!(res, Err(Errno::EINTR));
    reader.join().unwrap();
    // The connection is unharmed.
    d.peer_send(h, b"ok");
    let mut buf = [0u8; 8];
    assert_eq!(conn.read(&mut buf).unwrap(), 2);
    d.assert_clean();
}

#[test]
fn a_stale_socket_after_close_is_ebadf() {
    let (d, vcl) = attached();
    let (_l, conn, h) = accepted(&d, &vcl, 8089);
    let key = conn.into_key();
    let again = Socket::from_key(Arc::clone(&vcl), key);
    again.close().unwrap();
    assert_eq!(d.wait_ended(h), Ended::Close);
    // The slot is reused by a new socket; the old key still fails.
    let _fresh = vcl.socket().unwrap();
    let stale = Socket::from_key(Arc::clone(&vcl), key);
    let mut buf = [0u8; 4];
    assert_eq!(stale.read(&mut buf), Err(Errno::EBADF));
    assert_eq!(stale.write(b"x"), Err(Errno::EBADF));
    assert_eq!(stale.readiness(), Err(Errno::EBADF));
    assert_eq!(stale.set_nonblocking(true), Err(Errno::EBADF));
    assert_eq!(stale.close(), Err(Errno::EBADF));
    // The daemon heard exactly one CLOSE.
    let closes = d.requests().iter().filter(|r| matches!(r, Request::Close { handle } if *handle == h)).count();
    assert_eq!(closes, 1);
    d.assert_clean();
}

#[test]
fn accept_credit_resumes_and_closing_a_listener_leaves_its_queue_to_the_daemon() {
    let (d, vcl) = attached_with(Config { credit_cap: 2, ..Config::default() });
    let listener = vcl.listen(addr(0, 0, 0, 0, 8090), 8).unwrap();
    bounded(&listener);
    let peers: Vec<_> = (0..6).map(|i| d.incoming(8090, addr(10, 0, 0, 4, 2000 + i))).collect();
    // Six connections through a credit of two: taking them must reopen it.
    for i in 0..6u16 {
        let (_c, peer) = listener.accept().unwrap();
        assert_eq!(peer, addr(10, 0, 0, 4, 2000 + i));
    }
    d.wait_taken(8090, 6);
    assert_eq!(d.pushed(8090), 6);
    drop(peers);

    // Two more are pushed but never accepted: closing the listener sends
    // its CLOSE only. The daemon has them as pushed but not taken, and gives
    // them to another member of the listen group or resets them (a forked
    // server's shared kernel socket keeps its queue when one process closes it).
    let q1 = d.incoming(8090, addr(10, 0, 0, 5, 1));
    let q2 = d.incoming(8090, addr(10, 0, 0, 5, 2));
    d.wait_pushed(8090, 8);
    d.wait_events_flushed();
    // The app applied the two ACCEPTED events: they sit in its queue.
    assert!(listener.readiness().unwrap().readable);
    let accepting = d.wait_request("SET_ACCEPTING", |r| matches!(r, Request::SetAccepting { .. }));
    let Request::SetAccepting { handle: lh, .. } = accepting else { unreachable!() };
    listener.close().unwrap();
    // Requests are handled in order: an ABORT of theirs would be seen by now.
    d.wait_request("the listener's CLOSE", |r| *r == Request::Close { handle: lh });
    assert!(d.ended(q1).is_none() && d.ended(q2).is_none(), "the app ended a queued connection itself");
    d.assert_clean();
}

#[test]
fn read_timeout_gives_eagain() {
    let (d, vcl) = attached();
    let (_l, conn, _h) = accepted(&d, &vcl, 8091);
    conn.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
    let start = std::time::Instant::now();
    let mut buf = [0u8; 4];
    assert_eq!(conn.read(&mut buf), Err(Errno::EAGAIN));
    assert!(start.elapsed() >= Duration::from_millis(30));
    d.assert_clean();
}

#[test]
fn options_are_sent_when_the_daemon_knows_the_socket() {
    let (d, vcl) = attached();
    d.set_policy(9200, Policy::Accept);
    let s = vcl.socket().unwrap();
    s.set_option(SockOption::NoDelay, 1).unwrap();
    assert!(d.requests().iter().all(|r| !matches!(r, Request::SetOption { .. })), "no handle yet");
    s.connect(addr(10, 0, 0, 9, 9200)).unwrap();
    d.wait_request("the queued option", |r| {
        matches!(r, Request::SetOption { option: SockOption::NoDelay, value: 1, .. })
    });
    s.set_option(SockOption::KeepAlive, 1).unwrap();
    assert_eq!(s.set_option(SockOption::KeepIdle, 0), Err(Errno::EINVAL), "the daemon's error comes back");
    d.assert_clean();
}

/// The values of the `SET_OPTION Cork` requests the daemon got so far.
fn cork_requests(d: &FakeDaemon) -> Vec<u64> {
    d.requests()
        .iter()
        .filter_map(|r| match r {
            Request::SetOption { option: SockOption::Cork, value, .. } => Some(*value),
            _ => None,
        })
        .collect()
}

/// MSG_MORE and TCP_CORK both cork the daemon's connection; only changes
/// of the combined state are sent, and clearing TCP_CORK ends a MSG_MORE hold.
#[test]
fn msg_more_and_tcp_cork_send_only_changes_of_the_cork() {
    let (d, vcl) = attached();
    let (_l, conn, _h) = accepted(&d, &vcl, 8093);
    conn.set_more(true).unwrap();
    conn.set_more(true).unwrap();
    assert_eq!(conn.write(b"head").unwrap(), 4);
    conn.set_more(false).unwrap();
    conn.set_more(false).unwrap();
    assert_eq!(cork_requests(&d), vec![1, 0], "one cork and one uncork around the MSG_MORE writes");

    conn.set_option(SockOption::Cork, 1).unwrap();
    conn.set_more(true).unwrap();
    conn.set_more(false).unwrap();
    assert_eq!(cork_requests(&d), vec![1, 0, 1], "MSG_MORE changes nothing under TCP_CORK");
    conn.set_more(true).unwrap();
    conn.set_option(SockOption::Cork, 0).unwrap();
    conn.set_more(false).unwrap();
    assert_eq!(cork_requests(&d), vec![1, 0, 1, 0], "clearing TCP_CORK pushes the MSG_MORE bytes too");
    d.assert_clean();
}

#[test]
fn shutdown_write_makes_writes_fail_and_tells_the_daemon() {
    let (d, vcl) = attached();
    let (_l, conn, h) = accepted(&d, &vcl, 8092);
    conn.shutdown(ShutdownHow::Write).unwrap();
    assert_eq!(conn.write(b"x"), Err(Errno::EPIPE));
    d.wait_request("SHUTDOWN", |r| matches!(r, Request::Shutdown { handle, how: ShutdownHow::Write } if *handle == h));
    d.peer_send(h, b"still readable");
    let mut buf = [0u8; 32];
    assert_eq!(conn.read(&mut buf).unwrap(), 14);
    d.peer_fin(h);
    assert_eq!(conn.read(&mut buf).unwrap(), 0);
    assert!(conn.readiness().unwrap().hup, "both directions shut");
    let unconnected = vcl.socket().unwrap();
    assert_eq!(unconnected.shutdown(ShutdownHow::Both), Err(Errno::ENOTCONN));
    assert_eq!(unconnected.write(b"x"), Err(Errno::EPIPE));
    assert_eq!(unconnected.read(&mut buf), Err(Errno::ENOTCONN));
    let r = unconnected.readiness().unwrap();
    assert!(r.writable && r.hup && !r.readable, "a never-connected socket polls OUT|HUP: {r:?}");
    d.assert_clean();
}

#[test]
fn a_dead_daemon_ends_blocked_calls_with_enetdown() {
    let (d, vcl) = attached();
    let (_l, conn, _h) = accepted(&d, &vcl, 8093);
    let conn = Arc::new(conn);
    let (tx, rx) = mpsc::channel();
    let reader = {
        let conn = Arc::clone(&conn);
        std::thread::spawn(move || {
            let mut buf = [0u8; 8];
            tx.send(conn.read(&mut buf)).unwrap();
        })
    };
    d.wait_app_sleeping();
    d.hang_up();
    assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), Err(Errno::ENETDOWN));
    reader.join().unwrap();
    assert!(!vcl.is_attached());
}

#[test]
fn peek_readv_writev_and_nread() {
    let (d, vcl) = attached();
    let (_l, conn, h) = accepted(&d, &vcl, 8094);
    d.peer_send(h, b"0123456789");
    let mut buf = [0u8; 4];
    assert_eq!(conn.peek(&mut buf).unwrap(), 4);
    assert_eq!(&buf, b"0123");
    assert_eq!(conn.nread().unwrap(), 10, "peeking consumed nothing");
    let (mut a, mut b) = ([0u8; 3], [0u8; 20]);
    let n = conn.readv(&mut [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)]).unwrap();
    assert_eq!(n, 10);
    assert_eq!(&a, b"012");
    assert_eq!(&b[..7], b"3456789");
    assert_eq!(conn.nread().unwrap(), 0);
    assert_eq!(conn.read(&mut []).unwrap(), 0, "an empty read returns at once");

    // A writev larger than the fifo goes out whole and in order.
    let big = pattern(40_000, 4);
    let parts = [IoSlice::new(b"head:"), IoSlice::new(&big), IoSlice::new(b":tail")];
    assert_eq!(conn.writev(&parts).unwrap(), 40_010);
    let got = d.wait_received(h, 40_010);
    assert_eq!(got.len(), 40_010);
    assert!(got[..5] == *b"head:" && got[5..40_005] == big[..] && got[40_005..] == *b":tail");
    d.assert_clean();
}
