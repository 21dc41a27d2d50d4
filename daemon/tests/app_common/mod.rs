//! Harness for the app-layer tests: the daemon's engine and a peer engine
//! on a simulated link (frames in `Vec`s, virtual time), an `AppSet` driven
//! in-process, and a test-side app that speaks the shared-memory protocol
//! with the shm primitives, as vcl will.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsFd;
use std::sync::atomic::{fence, Ordering};

use sluice_daemon::app::{AppId, AppIdentity, AppSet, AppSetConfig, AppStats, NewApp};
use sluice_shm::layout::{self, app_words, desc, DownSegment, Geometry, SessionAppWords, SessionDesc, UpSegment};
use sluice_shm::os::EventFd;
use sluice_shm::protocol::{ready, AppEvent, Request, ShutdownHow, SockOption};
use sluice_shm::request_ring::RequestBody;
use sluice_shm::{EventConsumer, FifoConsumer, FifoProducer, Region, RequestProducer, SessionHandle};
use sluice_stack::wire::EthernetAddress;
use sluice_stack::{ConnId, ConsumerId, Duration, EventSet, Instant, ListenerId, SocketId, Stack, StackConfig};

pub const DAEMON_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
pub const PEER: ConsumerId = ConsumerId(1_000_000);
/// A uid that is not root: identities with it pass the privileged-port
/// check only through the process's capabilities.
pub const UNPRIVILEGED_UID: u32 = 1000;

pub fn stack_config(ip: Ipv4Addr) -> StackConfig {
    let mut secret = [7u8; 32];
    secret[0] = ip.octets()[3];
    StackConfig::new(EthernetAddress([2, 0, 0, 0, 0, ip.octets()[3]]), ip, 24, secret)
}

pub fn geometry(max_sessions: u32, fifo: u32) -> Geometry {
    Geometry { workers: 1, event_cap: 1024, request_cap: 256, max_sessions, rx_fifo: fifo, tx_fifo: fifo }
}

pub fn addr(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

/// Deterministic test bytes: stream `n`, offsets `from..from + len`.
pub fn pattern(n: u64, from: usize, len: usize) -> Vec<u8> {
    (from..from + len).map(|i| ((i as u64).wrapping_mul(31).wrapping_add(n.wrapping_mul(131)) % 251) as u8).collect()
}

/// The daemon's engine and app set, and a peer engine, on one link.
pub struct World {
    pub daemon: Stack,
    pub peer: Stack,
    pub apps: AppSet,
    pub now: Instant,
    /// Frames in flight (for tests that inspect or drop them).
    pub to_peer: Vec<Vec<u8>>,
    pub to_daemon: Vec<Vec<u8>>,
    /// Peer events not yet taken by the test.
    pub peer_events: VecDeque<(SocketId, EventSet)>,
}

impl World {
    pub fn new() -> World {
        World::with(stack_config(DAEMON_IP), stack_config(PEER_IP))
    }

    pub fn with(daemon: StackConfig, peer: StackConfig) -> World {
        let now = Instant::from_secs(1);
        World {
            daemon: Stack::new(daemon, now),
            peer: Stack::new(peer, now),
            apps: AppSet::new(World::default_apps_config()),
            now,
            to_peer: Vec::new(),
            to_daemon: Vec::new(),
            peer_events: VecDeque::new(),
        }
    }

    fn default_apps_config() -> AppSetConfig {
        AppSetConfig { worker: 0, unprivileged_port_start: 1024, request_budget: 256, loopback: true }
    }

    /// The app set's settings in these tests.
    pub fn apps_config(&self) -> AppSetConfig {
        World::default_apps_config()
    }

    /// One pass: the app set, then frames both ways until the link is
    /// quiet (the app set runs between exchanges). Returns the work done.
    pub fn pump(&mut self) -> usize {
        let mut work = self.apps.poll(&mut self.daemon, self.now);
        for _ in 0..100_000 {
            self.daemon.poll_transmit(self.now, &mut self.to_peer);
            self.peer.poll_transmit(self.now, &mut self.to_daemon);
            if self.to_peer.is_empty() && self.to_daemon.is_empty() {
                break;
            }
            work += self.to_peer.len() + self.to_daemon.len();
            for frame in std::mem::take(&mut self.to_peer) {
                self.peer.handle_frame(self.now, &frame);
            }
            for frame in std::mem::take(&mut self.to_daemon) {
                self.daemon.handle_frame(self.now, &frame);
            }
            work += self.apps.poll(&mut self.daemon, self.now);
        }
        while let Some(e) = self.peer.poll_event(PEER) {
            self.peer_events.push_back((e.key, e.kinds));
            work += 1;
        }
        work
    }

    /// Moves virtual time to the next engine deadline (at most `limit`) and
    /// fires it; false if none is due by then.
    pub fn advance(&mut self, limit: Instant) -> bool {
        let next = [self.daemon.poll_timeout(), self.peer.poll_timeout()].into_iter().flatten().min();
        match next {
            Some(next) if next <= limit => {
                self.now = self.now.max(next);
                self.daemon.handle_timeout(self.now);
                self.peer.handle_timeout(self.now);
                true
            }
            _ => false,
        }
    }

    /// Runs the link, the daemon and `step` (the test's apps) until `step`
    /// returns true or `max` of virtual time passes. Time moves only when
    /// neither the daemon nor the link has anything to do.
    pub fn run_until(&mut self, max: Duration, mut step: impl FnMut(&mut World) -> bool) -> bool {
        let limit = self.now + max;
        loop {
            let mut busy = self.pump();
            if step(self) {
                return true;
            }
            busy += self.pump();
            if busy == 0 && !self.advance(limit) {
                if self.now >= limit {
                    return step(self);
                }
                // Nothing scheduled: let an idle millisecond pass, so tests
                // that wait on nothing but their own steps still end.
                self.now += Duration::from_millis(1);
            }
        }
    }

    pub fn stats(&self, id: AppId) -> AppStats {
        self.apps.stats().into_iter().find(|s| s.id == id.0).expect("app attached")
    }

    // ---- the peer (a plain engine user) ----

    pub fn peer_listen(&mut self, port: u16) -> ListenerId {
        self.peer.tcp_listen(PEER, addr(PEER_IP, port), 65_535, false).unwrap()
    }

    pub fn peer_connect(&mut self, port: u16) -> ConnId {
        self.peer.tcp_connect(self.now, PEER, addr(DAEMON_IP, port), None, None).unwrap()
    }

    /// Takes the peer events for `socket` seen so far, ORed.
    pub fn peer_bits(&mut self, socket: SocketId) -> EventSet {
        let mut bits = EventSet::EMPTY;
        self.peer_events.retain(|(s, k)| {
            if *s == socket {
                bits |= *k;
                false
            } else {
                true
            }
        });
        bits
    }

    /// Reads what the peer connection has; `None` at end of stream.
    pub fn peer_read(&mut self, conn: ConnId, into: &mut Vec<u8>) -> Option<usize> {
        let mut buf = [0u8; 16 * 1024];
        let mut total = 0;
        loop {
            match self.peer.tcp_recv(conn, &mut buf) {
                Ok(0) => return if total > 0 { Some(total) } else { None },
                Ok(n) => {
                    into.extend_from_slice(&buf[..n]);
                    total += n;
                }
                Err(_) => return Some(total),
            }
        }
    }
}

/// The app's view of one connection.
pub struct AppConn {
    pub desc: SessionDesc,
    pub words: SessionAppWords,
    pub rx: FifoConsumer,
    pub tx: FifoProducer,
    /// Readiness bits received so far (ORed), and the last errno.
    pub bits: u16,
    pub errno: i32,
    pub received: Vec<u8>,
    /// Bytes in the app's hands plus the RX fifo when PEER_CLOSED arrived.
    pub bytes_at_peer_closed: Option<usize>,
    /// The TX fifo was full and WANT_TX_SPACE is set: wait for WRITABLE.
    pub tx_blocked: bool,
    /// A READABLE not yet acted on.
    pub readable: bool,
}

/// A listener as the app tracks it.
pub struct AppListener {
    pub desc: SessionDesc,
    pub words: SessionAppWords,
    pub backlog: u32,
    pub taken: u32,
}

/// A test app worker speaking the protocol.
pub struct TestApp {
    pub id: AppId,
    pub down: DownSegment,
    pub up: UpSegment,
    pub requests: RequestProducer,
    pub events: EventConsumer,
    pub wake: EventFd,
    pub doorbell: EventFd,
    pub conns: HashMap<SessionHandle, AppConn>,
    pub listeners: HashMap<SessionHandle, AppListener>,
    pub replies: HashMap<u32, Result<u64, i32>>,
    /// (listener, connection) of ACCEPTED events not yet taken.
    pub accepted: VecDeque<(SessionHandle, SessionHandle)>,
    /// Every event received, in order.
    pub log: Vec<AppEvent>,
    /// Session events for handles not adopted yet (a CONNECT's events can
    /// arrive in the same batch as its reply), applied at adoption.
    early: HashMap<SessionHandle, Vec<(u16, i32)>>,
    next_req: u32,
}

impl TestApp {
    /// Attaches an app worker with `identity` (pid and uid of this process
    /// unless overridden) and `geo` to the world's app set.
    pub fn attach(world: &mut World, id: u32, geo: Geometry) -> TestApp {
        let identity = AppIdentity { id: AppId(id), pid: std::process::id() as i32, uid: UNPRIVILEGED_UID, gid: 0 };
        TestApp::attach_as(world, identity, geo)
    }

    pub fn attach_as(world: &mut World, identity: AppIdentity, geo: Geometry) -> TestApp {
        let down = DownSegment::new(Region::heap(geo.down_len()), geo).unwrap();
        let up = UpSegment::new(Region::heap(geo.up_len()), geo).unwrap();
        down.init(identity.id.0);
        up.init().unwrap();
        let wake = EventFd::new().unwrap();
        let doorbell = EventFd::new().unwrap();
        let dup = |e: &EventFd| EventFd::from_fd(e.as_fd().try_clone_to_owned().unwrap());
        world.apps.attach(NewApp {
            identity,
            down: down.clone(),
            up: up.clone(),
            down_fd: None,
            up_fd: None,
            wake: dup(&wake),
            doorbell: dup(&doorbell),
        });
        let requests = RequestProducer::new(up.request_ring(0).unwrap()).unwrap();
        let events = EventConsumer::new(layout::event_ring(&down, &up)).unwrap();
        TestApp {
            id: identity.id,
            down,
            up,
            requests,
            events,
            wake,
            doorbell,
            conns: HashMap::new(),
            listeners: HashMap::new(),
            replies: HashMap::new(),
            accepted: VecDeque::new(),
            log: Vec::new(),
            early: HashMap::new(),
            next_req: 1,
        }
    }

    pub fn push(&self, request: Request) {
        self.push_raw(&request.encode());
    }

    pub fn push_raw(&self, body: &RequestBody) {
        self.requests.push(body).expect("request ring full");
    }

    pub fn next_req_id(&mut self) -> u32 {
        self.next_req += 1;
        self.next_req
    }

    /// Sends a request with a reply and runs the world until the reply.
    pub fn call(&mut self, world: &mut World, make: impl FnOnce(u32) -> Request) -> Result<u64, i32> {
        let req_id = self.next_req_id();
        self.push(make(req_id));
        assert!(world.run_until(Duration::from_secs(5), |_| {
            self.poll_events(usize::MAX);
            self.replies.contains_key(&req_id)
        }));
        self.replies.remove(&req_id).unwrap()
    }

    pub fn listen(&mut self, world: &mut World, port: u16, backlog: u32) -> Result<SessionHandle, i32> {
        let local = addr(Ipv4Addr::UNSPECIFIED, port);
        let raw = self.call(world, |req_id| Request::Listen { req_id, local, backlog, reuse_port: false })?;
        let handle = SessionHandle::from_u64(raw).expect("a handle");
        self.adopt_listener(handle, backlog);
        // As vcl does when a thread first waits on the listener: only an
        // accepting member is given connections (design §3.5).
        self.push(Request::SetAccepting { handle, accepting: true });
        Ok(handle)
    }

    pub fn adopt_listener(&mut self, handle: SessionHandle, backlog: u32) {
        let desc = self.down.desc(handle.index).unwrap();
        assert_eq!(desc.word(desc::GEN).load(Ordering::Acquire), handle.gen, "desc published before the reply");
        let words = self.up.app_words(handle.index).unwrap();
        self.listeners.insert(handle, AppListener { desc, words, backlog, taken: 0 });
    }

    pub fn connect(&mut self, world: &mut World, port: u16) -> Result<SessionHandle, i32> {
        let remote = addr(PEER_IP, port);
        let raw = self.call(world, |req_id| Request::Connect { req_id, remote, local: None })?;
        let handle = SessionHandle::from_u64(raw).expect("a handle");
        self.adopt_conn(handle);
        Ok(handle)
    }

    /// Starts tracking a connection the daemon published.
    pub fn adopt_conn(&mut self, handle: SessionHandle) {
        let desc = self.down.desc(handle.index).unwrap();
        assert_eq!(desc.word(desc::GEN).load(Ordering::Acquire), handle.gen, "desc published before its handle");
        let rx = FifoConsumer::new(layout::rx_fifo(&self.down, &self.up, handle.index).unwrap(), 0).unwrap();
        let tx = FifoProducer::new(layout::tx_fifo(&self.down, &self.up, handle.index).unwrap(), 0).unwrap();
        let words = self.up.app_words(handle.index).unwrap();
        self.conns.insert(
            handle,
            AppConn {
                desc,
                words,
                rx,
                tx,
                bits: 0,
                errno: 0,
                received: Vec::new(),
                bytes_at_peer_closed: None,
                tx_blocked: false,
                readable: false,
            },
        );
        for (bits, errno) in self.early.remove(&handle).unwrap_or_default() {
            self.on_session(handle, bits, errno);
        }
    }

    /// Takes up to `max` events; returns how many.
    pub fn poll_events(&mut self, max: usize) -> usize {
        let mut events = Vec::new();
        let n = self.events.drain(max, |e| events.push(e));
        for e in events {
            let Some(event) = AppEvent::decode(&e) else { panic!("undecodable event {e:?}") };
            self.log.push(event);
            match event {
                AppEvent::Reply { req_id, result } => {
                    assert!(self.replies.insert(req_id, result).is_none(), "one reply per request");
                }
                AppEvent::Accepted { listener, conn } => {
                    assert!(self.listeners.contains_key(&listener), "ACCEPTED for a listener we hold");
                    self.adopt_conn(conn);
                    self.accepted.push_back((listener, conn));
                }
                AppEvent::Session { handle, bits, errno } => {
                    if self.conns.contains_key(&handle) {
                        self.on_session(handle, bits, errno);
                    } else if !self.listeners.contains_key(&handle) {
                        self.early.entry(handle).or_default().push((bits, errno));
                    }
                }
            }
        }
        n
    }

    fn on_session(&mut self, handle: SessionHandle, bits: u16, errno: i32) {
        let c = self.conns.get_mut(&handle).unwrap();
        c.bits |= bits;
        if bits & ready::ERROR != 0 {
            c.errno = errno;
        }
        if bits & ready::WRITABLE != 0 {
            c.tx_blocked = false;
        }
        if bits & ready::READABLE != 0 {
            c.readable = true;
        }
        if bits & ready::PEER_CLOSED != 0 && c.bytes_at_peer_closed.is_none() {
            let in_fifo = c.rx.readable().unwrap() as usize;
            c.bytes_at_peer_closed = Some(c.received.len() + in_fifo);
        }
    }

    /// Hands the oldest accepted connection to "the user": bumps
    /// ACCEPT_TAKEN, and sends RX_SPACE if that returns the last credit.
    pub fn take_accepted(&mut self) -> Option<(SessionHandle, SessionHandle)> {
        let (listener, conn) = self.accepted.pop_front()?;
        let l = self.listeners.get_mut(&listener).unwrap();
        let pushed = l.desc.word(desc::ACCEPT_PUSHED).load(Ordering::Acquire);
        let was_full = pushed.wrapping_sub(l.taken) >= l.backlog;
        l.taken = l.taken.wrapping_add(1);
        l.words.word(app_words::ACCEPT_TAKEN).store(l.taken, Ordering::Release);
        if was_full {
            self.push(Request::RxSpace { handle: listener });
        }
        Some((listener, conn))
    }

    /// Writes as much of `data` as fits (protocol doc, TX): TX_READY on the
    /// TX_PENDING 0 → 1 transition; WANT_TX_SPACE when the fifo is full.
    pub fn write(&mut self, handle: SessionHandle, data: &[u8]) -> usize {
        let c = self.conns.get_mut(&handle).expect("known connection");
        if c.tx_blocked {
            return 0;
        }
        let n = c.tx.write(data).unwrap();
        if n > 0 && c.words.word(app_words::TX_PENDING).swap(1, Ordering::SeqCst) == 0 {
            self.requests.push(&Request::TxReady { handle }.encode()).expect("request ring full");
        }
        if n < data.len() {
            c.words.word(app_words::WANT_TX_SPACE).store(1, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            if c.tx.free().unwrap() == 0 {
                c.tx_blocked = true;
            }
        }
        n
    }

    /// Reads everything in the RX fifo (protocol doc, RX: RX_SPACE when the
    /// daemon is blocked on space). Returns the bytes read.
    pub fn read(&mut self, handle: SessionHandle) -> usize {
        let c = self.conns.get_mut(&handle).expect("known connection");
        c.readable = false;
        let mut buf = [0u8; 8192];
        let mut total = 0;
        loop {
            let n = c.rx.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            c.received.extend_from_slice(&buf[..n]);
            total += n;
        }
        fence(Ordering::SeqCst);
        if c.desc.word(desc::RX_BLOCKED).load(Ordering::Relaxed) == 1
            && c.words.word(app_words::RX_NOTE_SENT).swap(1, Ordering::SeqCst) == 0
        {
            self.requests.push(&Request::RxSpace { handle }.encode()).expect("request ring full");
        }
        total
    }

    pub fn close(&mut self, handle: SessionHandle) {
        self.push(Request::Close { handle });
        self.conns.remove(&handle);
        self.listeners.remove(&handle);
    }

    pub fn shutdown(&mut self, handle: SessionHandle, how: ShutdownHow) {
        self.push(Request::Shutdown { handle, how });
    }

    pub fn set_option(
        &mut self,
        world: &mut World,
        handle: SessionHandle,
        option: SockOption,
        value: u64,
    ) -> Result<u64, i32> {
        self.call(world, |req_id| Request::SetOption { req_id, handle, option, value })
    }

    pub fn conn(&self, handle: SessionHandle) -> &AppConn {
        &self.conns[&handle]
    }
}
