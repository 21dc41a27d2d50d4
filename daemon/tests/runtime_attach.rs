//! The whole daemon with its real app layer (`AppSet`) on the memory wire:
//! an app attached with the raw protocol listens, a peer engine on the other
//! end of the wire connects, bytes cross both ways through the fifos, and
//! the app's departure closes its connections and its listener.

mod runtime_common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::Ordering;
use std::time::Instant as StdInstant;

use runtime_common::*;
use sluice_daemon::admin;
use sluice_daemon::daemon::Daemon;
use sluice_daemon::device::memory::{MemoryDevice, WireEnd};
use sluice_daemon::device::Device;
use sluice_shm::control::AdminCommand;
use sluice_shm::layout::{self, app_words, desc};
use sluice_shm::protocol::{ready, AppEvent, Request};
use sluice_shm::{FifoConsumer, FifoProducer, SessionHandle};
use sluice_stack::wire::EthernetAddress;
use sluice_stack::{ConnId, ConsumerId, EventSet, Instant, SocketId, Stack, StackConfig};

const PORT: u16 = 8080;

/// A peer engine on the test's end of the wire.
struct Peer {
    stack: Stack,
    end: WireEnd,
    origin: StdInstant,
}

impl Peer {
    fn new(end: WireEnd) -> Peer {
        let config = StackConfig::new(EthernetAddress(PEER_MAC), PEER_IP, 24, [3; 32]);
        Peer { stack: Stack::new(config, Instant::ZERO), end, origin: StdInstant::now() }
    }

    fn now(&self) -> Instant {
        Instant::from_micros(self.origin.elapsed().as_micros() as u64)
    }

    /// Moves frames both ways and runs the peer's timers once.
    fn pump(&mut self) {
        let now = self.now();
        while let Some(frame) = self.end.recv() {
            self.stack.handle_frame(now, &frame);
        }
        if self.stack.poll_timeout().is_some_and(|t| t <= now) {
            self.stack.handle_timeout(now);
        }
        let mut out: Vec<Vec<u8>> = Vec::new();
        self.stack.poll_transmit(now, &mut out);
        for frame in out {
            assert!(self.end.send(&frame));
        }
    }

    fn connect(&mut self) -> ConnId {
        let now = self.now();
        self.stack.tcp_connect(now, ConsumerId(0), SocketAddrV4::new(DAEMON_IP, PORT), None, None).unwrap()
    }

    /// Readiness of `conn` that rose since the last call.
    fn events_of(&mut self, conn: ConnId) -> EventSet {
        let mut set = EventSet::EMPTY;
        while let Some(e) = self.stack.poll_event(ConsumerId(0)) {
            if e.key == SocketId::Conn(conn) {
                set = set.union(e.kinds);
            }
        }
        set
    }
}

/// Pumps the peer until `done` returns a value, polling the app's events
/// into `app_events` meanwhile.
fn drive<T>(
    what: &str,
    peer: &mut Peer,
    app: &mut AppClient,
    app_events: &mut Vec<AppEvent>,
    mut done: impl FnMut(&mut Peer, &[AppEvent]) -> Option<T>,
) -> T {
    let deadline = StdInstant::now() + WAIT;
    loop {
        peer.pump();
        while let Some(e) = app.try_event() {
            app_events.push(e);
        }
        if let Some(v) = done(peer, app_events) {
            return v;
        }
        assert!(StdInstant::now() < deadline, "timed out waiting for {what}; app events {app_events:?}");
        readable(&peer.end, std::time::Duration::from_millis(1));
    }
}

fn start() -> (TempDir, Daemon, WireEnd) {
    let dir = TempDir::new(&format!("appset-{:?}", std::thread::current().id()));
    let (dev, end) = MemoryDevice::pair("wire", DAEMON_MAC).unwrap();
    let daemon = Daemon::start(config(dir.path()), vec![Box::new(dev) as Box<dyn Device>]).unwrap();
    (dir, daemon, end)
}

fn listen(app: &mut AppClient) -> SessionHandle {
    let local = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT);
    app.request(&Request::Listen { req_id: 1, local, backlog: 16, reuse_port: false });
    let listener = match app.next_event(WAIT) {
        Some(AppEvent::Reply { req_id: 1, result: Ok(h) }) => SessionHandle::from_u64(h).expect("a valid handle"),
        other => panic!("LISTEN: {other:?}"),
    };
    app.request(&Request::SetAccepting { handle: listener, accepting: true });
    listener
}

#[test]
fn listen_replies_with_a_handle() {
    let (_dir, daemon, _end) = start();
    let mut app = AppClient::attach(daemon.control_socket());
    let listener = listen(&mut app);
    let d = app.down.desc(listener.index).unwrap();
    assert_eq!(d.word(desc::LOCAL_PORT).load(Ordering::Acquire), u32::from(PORT));
    // A second listener on the same port is refused like the kernel's.
    let local = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT);
    app.request(&Request::Listen { req_id: 2, local, backlog: 16, reuse_port: false });
    assert_eq!(app.next_event(WAIT), Some(AppEvent::Reply { req_id: 2, result: Err(libc::EADDRINUSE) }));
    daemon.stop();
}

#[test]
fn a_peer_connects_and_bytes_cross_both_ways_then_the_apps_exit_closes_everything() {
    let (_dir, daemon, end) = start();
    let mut app = AppClient::attach(daemon.control_socket());
    let listener = listen(&mut app);
    let mut peer = Peer::new(end);
    let mut events = Vec::new();

    let peer_conn = peer.connect();
    let conn = drive("the accept", &mut peer, &mut app, &mut events, |_, ev| {
        ev.iter().find_map(|e| match *e {
            AppEvent::Accepted { listener: l, conn } if l == listener => Some(conn),
            _ => None,
        })
    });
    drive("the peer's connect", &mut peer, &mut app, &mut events, |p, _| {
        p.events_of(peer_conn).contains(EventSet::CONNECTED).then_some(())
    });
    let d = app.down.desc(conn.index).unwrap();
    assert_eq!(d.word(desc::LOCAL_PORT).load(Ordering::Acquire), u32::from(PORT));
    assert_eq!(d.word(desc::REMOTE_IP).load(Ordering::Acquire), u32::from(PEER_IP));

    // Peer → app.
    assert_eq!(peer.stack.tcp_send(peer_conn, b"hello daemon").unwrap(), 12);
    events.clear();
    drive("READABLE", &mut peer, &mut app, &mut events, |_, ev| {
        ev.iter()
            .any(|e| matches!(*e, AppEvent::Session { handle, bits, .. } if handle == conn && bits & ready::READABLE != 0))
            .then_some(())
    });
    let words = app.up.app_words(conn.index).unwrap();
    let rx_start = words.word(app_words::RX_HEAD).load(Ordering::Acquire);
    let mut rx = FifoConsumer::new(layout::rx_fifo(&app.down, &app.up, conn.index).unwrap(), rx_start).unwrap();
    let mut buf = [0u8; 64];
    let n = rx.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello daemon");

    // App → peer.
    let tx_start = words.word(app_words::TX_TAIL).load(Ordering::Acquire);
    let mut tx = FifoProducer::new(layout::tx_fifo(&app.down, &app.up, conn.index).unwrap(), tx_start).unwrap();
    assert_eq!(tx.write(b"hello peer").unwrap(), 10);
    if words.word(app_words::TX_PENDING).swap(1, Ordering::SeqCst) == 0 {
        app.request(&Request::TxReady { handle: conn });
    }
    let mut got = Vec::new();
    drive("the peer to receive", &mut peer, &mut app, &mut events, |p, _| {
        let mut b = [0u8; 64];
        if let Ok(n) = p.stack.tcp_recv(peer_conn, &mut b) {
            got.extend_from_slice(&b[..n]);
        }
        (got.len() >= 10).then_some(())
    });
    assert_eq!(got, b"hello peer");

    // Sessions and stats with the real app layer.
    let v: serde_json::Value =
        serde_json::from_str(&admin::request(daemon.control_socket(), AdminCommand::Sessions, true).unwrap()).unwrap();
    let rows = v["sessions"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    assert!(rows.iter().any(|r| r["state"] == "LISTEN"), "{v}");
    assert!(rows.iter().all(|r| r["pid"] == std::process::id()), "{v}");
    let v: serde_json::Value =
        serde_json::from_str(&admin::request(daemon.control_socket(), AdminCommand::Stats, true).unwrap()).unwrap();
    assert_eq!(v["apps_attached"], 1);
    assert!(v["workers"][0]["apps"][0]["sessions"].as_u64().unwrap() >= 1, "{v}");
    assert!(v["workers"][0]["apps"][0]["requests"].as_u64().unwrap() >= 3, "{v}");

    // The app exits: its connection is closed (FIN: nothing unread) and its
    // listener removed, so a new connection is refused.
    drop(app);
    let mut app2 = AppClient::attach(daemon.control_socket());
    let mut none = Vec::new();
    drive("the peer to see the close", &mut peer, &mut app2, &mut none, |p, _| {
        p.events_of(peer_conn).intersects(EventSet::PEER_CLOSED.union(EventSet::RESET)).then_some(())
    });
    let refused = peer.connect();
    drive("the refusal", &mut peer, &mut app2, &mut none, |p, _| {
        p.events_of(refused).intersects(EventSet::ERROR.union(EventSet::RESET)).then_some(())
    });
    daemon.stop();
}

#[test]
fn the_daemon_answers_arp_with_its_real_app_layer() {
    let (_dir, daemon, end) = start();
    assert!(end.send(&arp_request(DAEMON_IP)));
    assert!(is_arp_reply(&end.recv_timeout(WAIT).unwrap()));
    let _app = AppClient::attach(daemon.control_socket());
    assert!(end.send(&arp_request(DAEMON_IP)));
    assert!(is_arp_reply(&end.recv_timeout(WAIT).unwrap()));
    daemon.stop();
}
