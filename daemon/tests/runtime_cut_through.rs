//! Cut-through end to end: the real daemon on the memory wire with loopback
//! interception on, and two `sluice_vcl` attachments in this process (two
//! app workers): an echo server and a client that reaches it through
//! 127.0.0.1. Nothing crosses the wire.

mod runtime_common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use runtime_common::*;
use sluice_daemon::admin;
use sluice_daemon::daemon::Daemon;
use sluice_daemon::device::memory::MemoryDevice;
use sluice_daemon::device::Device;
use sluice_shm::control::AdminCommand;
use sluice_shm::protocol::ShutdownHow;
use sluice_vcl::{Errno, Socket, Vcl};

const PORT: u16 = 7100;
const LOOPBACK: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) % 251) as u8).collect()
}

fn write_all(socket: &Socket, mut data: &[u8]) {
    while !data.is_empty() {
        let n = socket.write(data).expect("write");
        data = &data[n..];
    }
}

/// Echoes one connection until EOF, then closes it.
fn echo(conn: Socket) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match conn.read(&mut buf).expect("server read") {
            0 => break,
            n => write_all(&conn, &buf[..n]),
        }
    }
    conn.close().unwrap();
}

#[test]
fn a_vcl_client_and_echo_server_talk_through_127_0_0_1() {
    let dir = TempDir::new("cut-through");
    let mut cfg = config(dir.path());
    cfg.loopback = true;
    let (dev, wire) = MemoryDevice::pair("wire", DAEMON_MAC).unwrap();
    let daemon = Daemon::start(cfg, vec![Box::new(dev) as Box<dyn Device>]).unwrap();

    let server_vcl = Vcl::attach(daemon.control_socket()).unwrap();
    let client_vcl = Vcl::attach(daemon.control_socket()).unwrap();
    assert_ne!(server_vcl.app_worker_id(), client_vcl.app_worker_id(), "two app workers");
    let listener = server_vcl.listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT), 16).unwrap();
    let server = std::thread::spawn(move || {
        let (conn, peer) = listener.accept().unwrap();
        assert_eq!(*peer.ip(), LOOPBACK);
        echo(conn);
        listener
    });

    let conn = Arc::new(client_vcl.connect(SocketAddrV4::new(LOOPBACK, PORT)).unwrap());
    let local = conn.local_addr().unwrap();
    assert_eq!(*local.ip(), LOOPBACK);
    assert_ne!(local.port(), 0);
    assert_eq!(conn.peer_addr().unwrap(), SocketAddrV4::new(LOOPBACK, PORT));

    // Both ends show in `sluice sessions`, marked cut-through.
    let v: serde_json::Value =
        serde_json::from_str(&admin::request(daemon.control_socket(), AdminCommand::Sessions, true).unwrap()).unwrap();
    let cut: Vec<_> = v["sessions"].as_array().unwrap().iter().filter(|r| r["cut_through"] == true).collect();
    assert_eq!(cut.len(), 2, "{v}");
    assert!(cut.iter().any(|r| r["local"] == local.to_string()), "{v}");

    // A writer thread, so the echo's returning bytes never wait on us.
    let sent = pattern(1 << 20);
    let writer = {
        let (conn, sent) = (Arc::clone(&conn), sent.clone());
        std::thread::spawn(move || {
            write_all(&conn, &sent);
            conn.shutdown(ShutdownHow::Write).unwrap();
        })
    };
    let mut got = Vec::with_capacity(sent.len());
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match conn.read(&mut buf).expect("client read") {
            0 => break,
            n => got.extend_from_slice(&buf[..n]),
        }
    }
    writer.join().unwrap();
    assert_eq!(got.len(), sent.len());
    assert!(got == sent, "echoed byte for byte, EOF after the last");
    let listener = server.join().unwrap();

    // No listener on the next port: refused, as by the kernel's RST.
    assert_eq!(client_vcl.connect(SocketAddrV4::new(LOOPBACK, PORT + 1)).unwrap_err(), Errno::ECONNREFUSED);

    assert!(wire.recv().is_none(), "nothing crossed the wire");
    Arc::into_inner(conn).unwrap().close().unwrap();
    listener.close().unwrap();
    daemon.stop();
}

#[test]
fn without_loopback_interception_127_is_unreachable_but_the_stack_address_is_served() {
    let dir = TempDir::new("cut-through-off");
    let cfg = config(dir.path());
    assert!(!cfg.loopback);
    let (dev, wire) = MemoryDevice::pair("wire", DAEMON_MAC).unwrap();
    let daemon = Daemon::start(cfg, vec![Box::new(dev) as Box<dyn Device>]).unwrap();
    let server_vcl = Vcl::attach(daemon.control_socket()).unwrap();
    let client_vcl = Vcl::attach(daemon.control_socket()).unwrap();
    let listener = server_vcl.listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT), 16).unwrap();

    assert_eq!(client_vcl.connect(SocketAddrV4::new(LOOPBACK, PORT)).unwrap_err(), Errno(libc::ENETUNREACH));

    let conn = client_vcl.connect(SocketAddrV4::new(DAEMON_IP, PORT)).unwrap();
    let (accepted, peer) = listener.accept().unwrap();
    assert_eq!(peer, conn.local_addr().unwrap());
    assert_eq!(*peer.ip(), DAEMON_IP);
    write_all(&conn, b"ping");
    let mut buf = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        got += accepted.read(&mut buf[got..]).unwrap();
    }
    assert_eq!(&buf, b"ping");
    conn.close().unwrap();
    assert_eq!(accepted.read(&mut buf).unwrap(), 0, "EOF after the client's close");
    accepted.close().unwrap();
    listener.close().unwrap();
    assert!(wire.recv().is_none(), "nothing crossed the wire");
    daemon.stop();
}
