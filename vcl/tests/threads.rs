//! Many threads at once: one connection per thread, several acceptors on
//! one listener, a thread per direction of one connection.

mod support;

use std::sync::{mpsc, Arc, Barrier};

use sluice_vcl::Errno;
use support::*;

/// Writes `data` in chunks and reads each chunk's echo back.
fn echo_through(conn: &sluice_vcl::Socket, data: &[u8], chunk: usize) -> Vec<u8> {
    let mut back = Vec::with_capacity(data.len());
    let mut buf = vec![0u8; chunk];
    for piece in data.chunks(chunk) {
        assert_eq!(conn.write(piece).unwrap(), piece.len());
        let mut got = 0;
        while got < piece.len() {
            let n = conn.read(&mut buf[got..piece.len()]).unwrap();
            assert!(n > 0, "unexpected EOF");
            got += n;
        }
        back.extend_from_slice(&buf[..piece.len()]);
    }
    back
}

#[test]
fn eight_threads_each_echo_a_mebibyte_on_their_own_connection() {
    let (d, vcl) = attached();
    d.set_policy(7, Policy::Echo);
    let start = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8u8)
        .map(|i| {
            let (vcl, start) = (Arc::clone(&vcl), Arc::clone(&start));
            std::thread::spawn(move || {
                let conn = vcl.connect(addr(10, 0, 0, 20, 7)).unwrap();
                bounded(&conn);
                let data = pattern(1 << 20, i);
                start.wait();
                // Chunks larger than a fifo exercise blocking on both sides.
                let back = echo_through(&conn, &data, 12_000 + usize::from(i) * 1000);
                assert!(back == data, "thread {i}: echo differs");
                conn.close().unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    d.assert_clean();
}

#[test]
fn several_threads_blocked_in_accept_each_get_a_connection() {
    let (d, vcl) = attached();
    let listener = Arc::new(vcl.listen(addr(0, 0, 0, 0, 7100), 16).unwrap());
    bounded(&listener);
    let (tx, rx) = mpsc::channel();
    let acceptors: Vec<_> = (0..4)
        .map(|_| {
            let (listener, tx) = (Arc::clone(&listener), tx.clone());
            std::thread::spawn(move || {
                let (conn, peer) = listener.accept().unwrap();
                bounded(&conn);
                let mut buf = [0u8; 1];
                assert_eq!(conn.read(&mut buf).unwrap(), 1);
                tx.send((peer.port(), buf[0])).unwrap();
            })
        })
        .collect();
    for i in 0..4u16 {
        let h = d.incoming(7100, addr(10, 0, 0, 30, 3000 + i));
        d.peer_send(h, &[i as u8]);
    }
    let mut got: Vec<_> = (0..4).map(|_| rx.recv_timeout(DEADLINE).unwrap()).collect();
    got.sort_unstable();
    assert_eq!(got, [(3000, 0), (3001, 1), (3002, 2), (3003, 3)], "each connection to exactly one acceptor");
    for a in acceptors {
        a.join().unwrap();
    }
    d.assert_clean();
}

#[test]
fn a_reader_and_a_writer_thread_share_one_connection() {
    let (d, vcl) = attached();
    d.set_policy(7, Policy::Echo);
    let conn = Arc::new(vcl.connect(addr(10, 0, 0, 21, 7)).unwrap());
    bounded(&conn);
    let data = pattern(3 << 20, 77);
    let reader = {
        let (conn, len) = (Arc::clone(&conn), data.len());
        std::thread::spawn(move || {
            let mut got = vec![0u8; len];
            let mut off = 0;
            while off < len {
                let n = conn.read(&mut got[off..]).unwrap();
                assert!(n > 0);
                off += n;
            }
            got
        })
    };
    let mut off = 0;
    while off < data.len() {
        let end = (off + 50_000).min(data.len());
        off += conn.write(&data[off..end]).unwrap();
    }
    assert!(reader.join().unwrap() == data, "echo differs");
    d.assert_clean();
}

#[test]
fn closing_while_another_thread_is_blocked_reading_ends_its_read() {
    let (d, vcl) = attached();
    let (_l, conn, h) = accepted(&d, &vcl, 7101);
    let key = conn.into_key();
    let (tx, rx) = mpsc::channel();
    let reader = {
        let vcl = Arc::clone(&vcl);
        std::thread::spawn(move || {
            let s = sluice_vcl::Socket::from_key(vcl, key);
            let mut buf = [0u8; 4];
            tx.send(s.read(&mut buf)).unwrap();
            // Owned by the closing thread now: do not close it twice.
            let _ = s.into_key();
        })
    };
    d.wait_app_sleeping();
    sluice_vcl::Socket::from_key(Arc::clone(&vcl), key).close().unwrap();
    assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), Err(Errno::EBADF));
    reader.join().unwrap();
    assert_eq!(d.wait_ended(h), Ended::Close);
    d.assert_clean();
}

#[test]
fn a_leaving_leader_hands_the_wake_fd_to_a_sleeping_follower() {
    let (d, vcl) = attached();
    let (_l1, c1, h1) = accepted(&d, &vcl, 7102);
    let (_l2, c2, h2) = accepted(&d, &vcl, 7103);
    let spawn_reader = |conn: sluice_vcl::Socket| {
        let (tid_tx, tid_rx) = mpsc::channel();
        let (tx, rx) = mpsc::channel();
        let t = std::thread::spawn(move || {
            tid_tx.send(sluice_shm::poll::gettid()).unwrap();
            let mut buf = [0u8; 8];
            tx.send(conn.read(&mut buf).map(|n| buf[..n].to_vec())).unwrap();
        });
        (tid_rx.recv().unwrap(), rx, t)
    };
    // The first reader to block is the leader, the second a follower.
    let (tid1, rx1, t1) = spawn_reader(c1);
    wait_blocked_in_ppoll(tid1);
    d.wait_app_sleeping();
    let (tid2, rx2, t2) = spawn_reader(c2);
    wait_blocked_in_ppoll(tid2);
    // The leader's data comes: it returns, leaving the follower alone.
    d.peer_send(h1, b"first");
    assert_eq!(rx1.recv_timeout(DEADLINE).unwrap().unwrap(), b"first");
    // Only a follower that took over the lead can see this one arrive.
    d.peer_send(h2, b"second");
    assert_eq!(rx2.recv_timeout(DEADLINE).unwrap().unwrap(), b"second");
    t1.join().unwrap();
    t2.join().unwrap();
    d.assert_clean();
}

#[test]
fn tiny_rings_still_move_every_byte() {
    // Two request slots and four event slots: pushes find the request ring
    // full (the app waits for room) and the daemon's events back up.
    let mut config = Config::default();
    config.geometry.request_cap = 2;
    config.geometry.event_cap = 4;
    let (d, vcl) = attached_with(config);
    d.set_policy(7, Policy::Echo);
    let threads: Vec<_> = (0..4u8)
        .map(|i| {
            let vcl = Arc::clone(&vcl);
            std::thread::spawn(move || {
                let conn = vcl.connect(addr(10, 0, 0, 22, 7)).unwrap();
                bounded(&conn);
                let data = pattern(256 * 1024, i);
                assert!(echo_through(&conn, &data, 5000) == data, "thread {i}: echo differs");
                conn.set_option(sluice_vcl::SockOption::NoDelay, 1).unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    d.assert_clean();
}
