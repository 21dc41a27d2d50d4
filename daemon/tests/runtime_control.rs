//! The daemon's threads end to end on the memory wire, with a stand-in app
//! layer: attach over the raw control protocol, segments and their seals,
//! requests and replies through the rings with the worker asleep, detach on
//! close, kill on a violation, admin commands, protocol errors, and the
//! control socket's file.

mod runtime_common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::time::Duration;

use runtime_common::*;
use sluice_daemon::admin;
use sluice_daemon::config::PollMode;
use sluice_daemon::daemon::Daemon;
use sluice_daemon::device::memory::{MemoryDevice, WireEnd};
use sluice_daemon::device::Device;
use sluice_shm::control::{AdminCommand, Message, Role};
use sluice_shm::os::{self, Access, Mapping};
use sluice_shm::protocol::{AppEvent, Request};
use sluice_shm::unix_socket;

fn start(dir: &TempDir, mode: PollMode) -> (Daemon, WireEnd, std::sync::Arc<std::sync::Mutex<Observed>>) {
    let mut cfg = config(dir.path());
    cfg.poll_mode = mode;
    let (dev, end) = MemoryDevice::pair("wire", DAEMON_MAC).unwrap();
    let (make, observed) = ToyApps::factory();
    let daemon = Daemon::start_with(cfg, vec![Box::new(dev) as Box<dyn Device>], make).unwrap();
    (daemon, end, observed)
}

fn listen(port: u16, req_id: u32) -> Request {
    Request::Listen { req_id, local: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port), backlog: 16, reuse_port: false }
}

#[test]
fn attach_hands_out_sealed_initialised_segments() {
    let dir = TempDir::new("attach");
    let (daemon, _end, observed) = start(&dir, PollMode::Adaptive);
    let socket = daemon.control_socket().to_path_buf();
    assert!(std::fs::symlink_metadata(&socket).unwrap().file_type().is_socket());
    assert_eq!(std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777, 0o666);

    let app = AppClient::attach(&socket);
    let cfg = config(dir.path());
    assert_eq!(app.geometry, cfg.geometry());
    assert_eq!(app.id, 1);
    // The down segment cannot be mapped writable, nor resized; the up one
    // cannot be resized either.
    let err = Mapping::map(app.down_fd.as_fd(), app.geometry.down_len(), Access::ReadWrite).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPERM));
    for fd in [&app.down_fd, &app.up_fd] {
        assert_eq!(os::seals(fd.as_fd()).unwrap() & os::SEGMENT_SEALS, os::SEGMENT_SEALS);
    }
    assert_ne!(os::seals(app.down_fd.as_fd()).unwrap() & libc::F_SEAL_FUTURE_WRITE, 0);
    assert_eq!(os::file_size(app.down_fd.as_fd()).unwrap(), app.geometry.down_len() as u64);
    assert_eq!(os::file_size(app.up_fd.as_fd()).unwrap(), app.geometry.up_len() as u64);

    wait_for("the worker to attach the app", || observed.lock().unwrap().attached.len() == 1);
    let identity = observed.lock().unwrap().attached[0];
    assert_eq!(identity.id.0, app.id);
    assert_eq!(identity.pid as u32, std::process::id(), "the pid comes from SO_PEERCRED");
    // SAFETY: getuid has no preconditions.
    assert_eq!(identity.uid, unsafe { libc::getuid() });

    // A second app gets the next id and its own segments.
    let second = AppClient::attach(&socket);
    assert_eq!(second.id, 2);
    daemon.stop();
    assert!(!socket.exists(), "the socket file is removed on stop");
}

#[test]
fn a_request_reaches_a_sleeping_worker_through_the_doorbell_and_the_reply_wakes_the_app() {
    for mode in [PollMode::Sleep, PollMode::Adaptive] {
        let dir = TempDir::new(&format!("doorbell-{mode:?}"));
        let (daemon, _end, observed) = start(&dir, mode);
        let mut app = AppClient::attach(daemon.control_socket());
        wait_for("the attach", || observed.lock().unwrap().attached.len() == 1);
        for round in 0..5u32 {
            wait_for("the worker to sleep", || observed.lock().unwrap().blocked);
            let wakes = observed.lock().unwrap().doorbell_wakes;
            app.request(&listen(8000 + round as u16, round));
            match app.next_event(WAIT) {
                Some(AppEvent::Reply { req_id, result }) => {
                    assert_eq!(req_id, round);
                    assert_eq!(result, Ok(8000 + u64::from(round)));
                }
                other => panic!("{mode:?} round {round}: {other:?}"),
            }
            assert!(observed.lock().unwrap().doorbell_wakes > wakes, "{mode:?}: the doorbell was rung");
            // The worker resets a doorbell only when epoll reported it: one
            // left readable was not in its epoll set (the sleep's timeout,
            // not the doorbell, woke it).
            wait_for("the worker to reset the doorbell", || !readable(&app.doorbells[0], Duration::ZERO));
        }
        daemon.stop();
    }
}

#[test]
fn closing_the_control_connection_detaches_the_app() {
    let dir = TempDir::new("detach");
    let (daemon, _end, observed) = start(&dir, PollMode::Adaptive);
    let a = AppClient::attach(daemon.control_socket());
    let b = AppClient::attach(daemon.control_socket());
    wait_for("both attached", || observed.lock().unwrap().attached.len() == 2);
    let a_id = a.id;
    drop(a);
    wait_for("the detach", || !observed.lock().unwrap().detached.is_empty());
    assert_eq!(observed.lock().unwrap().detached, vec![sluice_daemon::app::AppId(a_id)]);
    let stats = admin::request(daemon.control_socket(), AdminCommand::Stats, true).unwrap();
    let v: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(v["apps_attached"], 1);
    assert_eq!(v["workers"][0]["apps"].as_array().unwrap().len(), 1);
    assert_eq!(v["workers"][0]["apps"][0]["id"], b.id);
    daemon.stop();
}

#[test]
fn an_app_killed_by_its_worker_loses_its_control_connection() {
    let dir = TempDir::new("kill");
    let (daemon, _end, observed) = start(&dir, PollMode::Adaptive);
    let app = AppClient::attach(daemon.control_socket());
    let healthy = AppClient::attach(daemon.control_socket());
    wait_for("the attach", || observed.lock().unwrap().attached.len() == 2);
    let mut garbage = [0xAAu8; 56];
    garbage[0..2].copy_from_slice(&999u16.to_le_bytes());
    app.push_raw(&garbage);
    assert!(app.sees_eof(WAIT), "the killed app's connection is closed");
    assert!(!healthy.sees_eof(Duration::from_millis(50)), "the other app keeps its connection");
    // Killed apps are reaped by the worker itself: no extra detach.
    assert!(observed.lock().unwrap().detached.is_empty());
    let v: serde_json::Value =
        serde_json::from_str(&admin::request(daemon.control_socket(), AdminCommand::Stats, true).unwrap()).unwrap();
    assert_eq!(v["apps_attached"], 1);
    daemon.stop();
    assert!(healthy.sees_eof(WAIT), "stopping the daemon closes every app's connection");
}

#[test]
fn admin_commands_report_workers_apps_and_sessions() {
    let dir = TempDir::new("admin");
    let (daemon, end, observed) = start(&dir, PollMode::Adaptive);
    let socket = daemon.control_socket().to_path_buf();
    let app = AppClient::attach(&socket);
    wait_for("the attach", || observed.lock().unwrap().attached.len() == 1);
    // Some traffic so the counters move.
    assert!(end.send(&arp_request(DAEMON_IP)));
    assert!(is_arp_reply(&end.recv_timeout(WAIT).unwrap()));

    let json = admin::request(&socket, AdminCommand::Stats, true).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["address"], "10.9.0.2/24");
    assert_eq!(v["mtu"], 1500);
    assert_eq!(v["apps_attached"], 1);
    let w = &v["workers"][0];
    assert_eq!(w["worker"], 0);
    assert_eq!(w["mac"], "02:00:00:00:00:02");
    assert_eq!(w["device"]["kind"], "memory");
    assert_eq!(w["device"]["name"], "wire");
    assert_eq!(w["device_counters"]["rx_frames"], 1);
    assert_eq!(w["device_counters"]["tx_frames"], 1);
    assert_eq!(w["engine"]["frames_in"], 1);
    assert!(w["engine"]["tcp_retransmits"].is_u64());
    assert!(w["engine"]["tcp_postponed_dropped"].is_u64());
    assert!(w["poller"]["iterations"].as_u64().unwrap() > 0);
    assert_eq!(w["apps"][0]["id"], app.id);
    assert_eq!(w["apps"][0]["pid"], std::process::id());

    let text = admin::request(&socket, AdminCommand::Stats, false).unwrap();
    assert!(text.starts_with("sluice 10.9.0.2/24 mtu 1500: 1 worker, 1 app worker attached"), "{text}");
    assert!(text.contains("worker 0: memory wire queue 0"), "{text}");

    let sessions = admin::request(&socket, AdminCommand::Sessions, true).unwrap();
    let v: serde_json::Value = serde_json::from_str(&sessions).unwrap();
    assert_eq!(v["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(v["sessions"][0]["state"], "LISTEN");
    let text = admin::request(&socket, AdminCommand::Sessions, false).unwrap();
    assert!(text.lines().next().unwrap().starts_with("State"), "{text}");
    assert!(text.contains(&format!("app={},pid={}", app.id, std::process::id())), "{text}");
    daemon.stop();
    let err = admin::request(&socket, AdminCommand::Stats, true).unwrap_err();
    assert!(err.to_string().contains("cannot reach the daemon"), "{err}");
}

#[test]
fn malformed_and_unexpected_messages_get_an_error_and_a_close() {
    let dir = TempDir::new("protocol");
    let (daemon, _end, observed) = start(&dir, PollMode::Adaptive);
    let socket = daemon.control_socket().to_path_buf();

    // Garbage.
    let sock = unix_socket::connect(&socket).unwrap();
    unix_socket::send(sock.as_fd(), b"not a sluice message", &[]).unwrap();
    assert!(matches!(recv_message(&sock), Some(Message::Error { errno, .. }) if errno == libc::EPROTO));
    assert!(eof(&sock, WAIT));

    // A wrong protocol version.
    let sock = unix_socket::connect(&socket).unwrap();
    let mut hello = Message::Hello { pid: 1, role: Role::App }.encode(1);
    hello[2] = 99;
    unix_socket::send(sock.as_fd(), &hello, &[]).unwrap();
    assert!(matches!(recv_message(&sock), Some(Message::Error { errno, .. }) if errno == libc::EPROTONOSUPPORT));
    assert!(eof(&sock, WAIT));

    // An admin command without Hello.
    let sock = unix_socket::connect(&socket).unwrap();
    unix_socket::send(sock.as_fd(), &Message::Admin { command: AdminCommand::Stats, json: true }.encode(3), &[])
        .unwrap();
    match recv_message(&sock) {
        Some(Message::Error { errno, message }) => {
            assert_eq!(errno, libc::EPROTO);
            assert!(message.contains("unexpected Admin"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(eof(&sock, WAIT));

    // Descriptors sent to the daemon.
    let sock = unix_socket::connect(&socket).unwrap();
    let stray = sluice_shm::os::EventFd::new().unwrap();
    let hello = Message::Hello { pid: 1, role: Role::Admin }.encode(1);
    unix_socket::send(sock.as_fd(), &hello, &[stray.as_fd()]).unwrap();
    assert!(matches!(recv_message(&sock), Some(Message::Error { .. })));
    assert!(eof(&sock, WAIT));

    // An attached app saying Hello again: refused, closed, and detached.
    let app = AppClient::attach(&socket);
    wait_for("the attach", || observed.lock().unwrap().attached.len() == 1);
    unix_socket::send(app.sock.as_fd(), &Message::Hello { pid: 1, role: Role::App }.encode(9), &[]).unwrap();
    match recv_message(&app.sock) {
        Some(Message::Error { message, .. }) => assert!(message.contains("attached app"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(app.sees_eof(WAIT));
    wait_for("the detach", || observed.lock().unwrap().detached.len() == 1);

    // The daemon still serves.
    assert!(admin::request(&socket, AdminCommand::Stats, false).is_ok());
    daemon.stop();
}

#[test]
fn a_second_daemon_on_a_live_socket_is_refused_and_a_stale_socket_is_replaced() {
    let dir = TempDir::new("socket");
    let (daemon, _end, _) = start(&dir, PollMode::Adaptive);
    let socket = daemon.control_socket().to_path_buf();
    let (dev, _end2) = MemoryDevice::pair("second", DAEMON_MAC).unwrap();
    let (make, _) = ToyApps::factory();
    let err = Daemon::start_with(config(dir.path()), vec![Box::new(dev) as Box<dyn Device>], make).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    assert!(admin::request(&socket, AdminCommand::Stats, true).is_ok(), "the first daemon is untouched");
    daemon.stop();

    // A socket file left behind by a daemon that died.
    drop(unix_socket::listen(&socket, 1).unwrap());
    assert!(socket.exists());
    let (daemon, _end, _) = start(&dir, PollMode::Adaptive);
    assert!(admin::request(&socket, AdminCommand::Stats, true).is_ok());
    daemon.stop();
}

#[test]
fn start_checks_devices_against_queues() {
    let dir = TempDir::new("queues");
    let (make, _) = ToyApps::factory();
    let err = Daemon::start_with(config(dir.path()), Vec::new(), make.clone()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let mut cfg = config(dir.path());
    cfg.rx_fifo = 1000;
    let (dev, _end) = MemoryDevice::pair("wire", DAEMON_MAC).unwrap();
    let err = Daemon::start_with(cfg, vec![Box::new(dev) as Box<dyn Device>], make).unwrap_err();
    assert!(err.to_string().contains("rx_fifo"), "{err}");
    assert!(!config(dir.path()).control_socket.exists(), "nothing bound on a refused start");
}

#[test]
fn two_workers_each_answer_on_their_own_wire_and_report_in_stats() {
    let dir = TempDir::new("two");
    let mut cfg = config(dir.path());
    cfg.queues = 2;
    let (dev0, end0) = MemoryDevice::pair("q0", DAEMON_MAC).unwrap();
    let (dev1, end1) = MemoryDevice::pair("q1", DAEMON_MAC).unwrap();
    let (make, observed) = ToyApps::factory();
    let daemon = Daemon::start_with(cfg, vec![Box::new(dev0) as Box<dyn Device>, Box::new(dev1)], make).unwrap();
    for end in [&end0, &end1] {
        assert!(end.send(&arp_request(DAEMON_IP)));
        assert!(is_arp_reply(&end.recv_timeout(WAIT).unwrap()));
    }
    let mut app = AppClient::attach(daemon.control_socket());
    assert_eq!(app.doorbells.len(), 2);
    app.request(&listen(80, 1));
    assert!(matches!(app.next_event(WAIT), Some(AppEvent::Reply { req_id: 1, result: Ok(80) })));
    assert_eq!(observed.lock().unwrap().attached.len(), 1, "homed on one worker");
    let v: serde_json::Value =
        serde_json::from_str(&admin::request(daemon.control_socket(), AdminCommand::Stats, true).unwrap()).unwrap();
    let workers = v["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    assert_eq!(workers[1]["device"]["name"], "q1");
    assert_eq!(workers[0]["apps"].as_array().unwrap().len(), 1);
    assert_eq!(workers[1]["apps"].as_array().unwrap().len(), 0);
    daemon.stop();
}
