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
    (listener, conn, h)
}

/// Deterministic test bytes.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 8) as u8)).collect()
}
