//! The TAP device against the kernel, in a network namespace of the test's
//! own: the test thread `unshare(CLONE_NEWNET)`s, so the namespace (and the
//! TAP interface in it) exists only while that thread and its descriptors
//! do, and vanishes with them; nothing is left on the host. Needs root.

mod runtime_common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::process::Command;
use std::time::Instant;

use runtime_common::*;
use sluice_daemon::admin;
use sluice_daemon::config::{DeviceKind, PollMode};
use sluice_daemon::daemon::{open_device, Daemon};
use sluice_daemon::device::tap::TapDevice;
use sluice_daemon::device::Device;
use sluice_daemon::worker::epoll::{self, Epoll};
use sluice_shm::control::AdminCommand;

const KERNEL_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const TAP_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);

/// Runs `f` on a thread in a fresh network namespace.
fn in_fresh_netns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: unshare(CLONE_NEWNET) changes only this thread's network namespace; it takes no pointers.
            let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "unshare(CLONE_NEWNET) needs root: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// Runs `ip ARGS` (in the calling thread's namespace: children inherit it).
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Gives the kernel side of `name` the address 10.99.0.1/24 and brings it up.
fn kernel_side_up(name: &str) {
    ip(&["addr", "add", "10.99.0.1/24", "dev", name]);
    ip(&["link", "set", name, "up"]);
}

/// Receives frames until `want` accepts one (other traffic, such as IPv6
/// neighbour discovery, is skipped).
fn receive_until(tap: &mut TapDevice, mut want: impl FnMut(&[u8]) -> bool) -> Vec<u8> {
    let mut ep = Epoll::new(1).unwrap();
    ep.add(tap.wait_fd().unwrap(), 0, epoll::IN).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let mut found = None;
        tap.receive(64, &mut |frames| {
            if found.is_none() {
                found = frames.iter().find(|f| want(f)).map(|f| f.to_vec());
            }
        })
        .unwrap();
        if let Some(frame) = found {
            return frame;
        }
        assert!(Instant::now() < deadline, "the expected frame never came");
        let _ = ep.wait(100).unwrap().count();
    }
}

fn is_arp_request_for(frame: &[u8], target: Ipv4Addr) -> bool {
    frame.len() >= 42 && frame[12..14] == [0x08, 0x06] && frame[20..22] == [0, 1] && frame[38..42] == target.octets()
}

#[test]
fn a_tap_device_exchanges_frames_with_the_kernel() {
    in_fresh_netns(|| {
        let mut tap = TapDevice::open("sltest0", 1500, DAEMON_MAC).unwrap();
        assert_eq!(tap.name(), "sltest0");
        kernel_side_up("sltest0");

        // The kernel resolves 10.99.0.2 before sending a datagram to it.
        let udp = UdpSocket::bind((KERNEL_IP, 0)).unwrap();
        udp.send_to(b"hello tap", (TAP_IP, 9)).unwrap();
        let request = receive_until(&mut tap, |f| is_arp_request_for(f, TAP_IP));
        let kernel_mac: [u8; 6] = request[22..28].try_into().unwrap();

        // Our ARP reply, through the sink and flush.
        let mut reply = Vec::with_capacity(42);
        reply.extend_from_slice(&kernel_mac);
        reply.extend_from_slice(&DAEMON_MAC);
        reply.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 2]);
        reply.extend_from_slice(&DAEMON_MAC);
        reply.extend_from_slice(&TAP_IP.octets());
        reply.extend_from_slice(&kernel_mac);
        reply.extend_from_slice(&KERNEL_IP.octets());
        assert!(tap.sink().emit(reply.len(), &mut |buf| buf.copy_from_slice(&reply)));
        assert_eq!(tap.flush().unwrap(), 1);

        // Now the datagram comes, addressed to our MAC.
        let datagram = receive_until(&mut tap, |f| f.len() > 42 && f[12..14] == [0x08, 0x00] && f[23] == 17);
        assert_eq!(&datagram[0..6], &DAEMON_MAC);
        assert_eq!(&datagram[30..34], &TAP_IP.octets());
        let ihl = usize::from(datagram[14] & 0x0f) * 4;
        let udp_payload = &datagram[14 + ihl + 8..];
        assert_eq!(udp_payload, b"hello tap");

        let c = tap.counters();
        assert!(c.rx_frames >= 2 && c.rx_bytes >= 42 + 51, "{c:?}");
        assert_eq!((c.tx_frames, c.tx_bytes, c.tx_dropped), (1, 42, 0));
        let info = tap.info();
        assert_eq!((info.kind.as_str(), info.name.as_str(), info.queue), ("tap", "sltest0", 0));
    });
}

#[test]
fn a_frame_longer_than_the_mtu_allows_is_dropped_and_counted() {
    in_fresh_netns(|| {
        // Our buffers fit IP packets of 576 bytes; the kernel's MTU is 1500.
        let mut tap = TapDevice::open("sltest1", 576, DAEMON_MAC).unwrap();
        kernel_side_up("sltest1");
        // Teach the kernel our MAC so it sends IP straight away.
        ip(&["neigh", "replace", "10.99.0.2", "lladdr", "02:00:00:00:00:02", "dev", "sltest1"]);
        let udp = UdpSocket::bind((KERNEL_IP, 0)).unwrap();
        udp.send_to(&[7u8; 1000], (TAP_IP, 9)).unwrap();
        udp.send_to(b"small", (TAP_IP, 9)).unwrap();
        let small = receive_until(&mut tap, |f| f.len() > 42 && f[12..14] == [0x08, 0x00] && f[23] == 17);
        assert!(small.ends_with(b"small"), "the big datagram was not delivered");
        assert_eq!(tap.counters().rx_dropped, 1);
    });
}

#[test]
fn the_daemon_on_a_tap_device_answers_the_kernel() {
    in_fresh_netns(|| {
        let dir = TempDir::new("tap-daemon");
        let mut cfg = config(dir.path());
        cfg.device = DeviceKind::Tap;
        cfg.iface = "sltest2".into();
        cfg.ip = TAP_IP;
        cfg.poll_mode = PollMode::Adaptive;
        let device: Box<dyn Device> = open_device(&cfg, 0).unwrap();
        kernel_side_up("sltest2");
        let (make, _) = ToyApps::factory();
        let daemon = Daemon::start_with(cfg, vec![device], make).unwrap();

        // ARP, then a SYN to a port nobody listens on: the engine answers
        // RST, which the kernel reports as ECONNREFUSED.
        let target = SocketAddr::V4(SocketAddrV4::new(TAP_IP, 80));
        let err = TcpStream::connect_timeout(&target, WAIT).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");

        let out = Command::new("ping").args(["-c", "1", "-W", "5", "10.99.0.2"]).output().expect("run ping");
        assert!(out.status.success(), "ping: {}", String::from_utf8_lossy(&out.stdout));

        let v: serde_json::Value =
            serde_json::from_str(&admin::request(daemon.control_socket(), AdminCommand::Stats, true).unwrap()).unwrap();
        let w = &v["workers"][0];
        assert_eq!(w["device"]["kind"], "tap");
        assert_eq!(w["device"]["name"], "sltest2");
        assert!(w["engine"]["tcp_rst_out"].as_u64().unwrap() >= 1);
        assert!(w["device_counters"]["tx_frames"].as_u64().unwrap() >= 3, "ARP reply, RST, echo reply");
        daemon.stop();
    });
}
