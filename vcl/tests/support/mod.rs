//! Test support: a fake daemon and helpers.
#![allow(dead_code)]

pub mod fake_daemon;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

#[allow(unused_imports)]
pub use fake_daemon::{Config, Ended, FakeDaemon, Policy, DEADLINE};
use sluice_vcl::{Socket, Vcl};

/// A fake daemon and an app attached to it.
pub fn attached() -> (FakeDaemon, Arc<Vcl>) {
    attached_with(Config::default())
}

pub fn attached_with(config: Config) -> (FakeDaemon, Arc<Vcl>) {
    let d = FakeDaemon::start_with(config);
    let vcl = Vcl::attach(d.path()).expect("attach to the fake daemon");
    (d, vcl)
}

pub fn addr(a: u8, b: u8, c: u8, e: u8, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(a, b, c, e), port)
}

/// A connection accepted on `port` (a listener is made there) with its
/// daemon handle.
pub fn accepted(d: &FakeDaemon, vcl: &Arc<Vcl>, port: u16) -> (Socket, Socket, sluice_shm::SessionHandle) {
    let listener = vcl.listen(addr(0, 0, 0, 0, port), 16).unwrap();
    let h = d.incoming(port, addr(10, 0, 0, 2, 50000));
    let (conn, peer) = listener.accept().unwrap();
    assert_eq!(peer, addr(10, 0, 0, 2, 50000));
    bounded(&conn);
    (listener, conn, h)
}

/// Blocking calls on `s` fail (EAGAIN) instead of hanging past the deadline.
pub fn bounded(s: &Socket) {
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.set_write_timeout(Some(DEADLINE)).unwrap();
}

/// Waits until thread `tid` of this process blocks in `ppoll` (read from
/// `/proc/self/task/TID/syscall`, whose first field is the number of the
/// system call the thread is blocked in).
pub fn wait_blocked_in_ppoll(tid: i32) {
    let deadline = std::time::Instant::now() + DEADLINE;
    let path = format!("/proc/self/task/{tid}/syscall");
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.split_whitespace().next() == Some(&libc::SYS_ppoll.to_string()) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "thread {tid} never blocked in ppoll ({text:?})");
        std::thread::yield_now();
    }
}

/// Deterministic test bytes.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 8) as u8)).collect()
}
