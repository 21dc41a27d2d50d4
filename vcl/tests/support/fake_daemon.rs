//! A small, honest stand-in for the daemon: it plays the daemon's side of
//! the attach (control socket in a temp dir, real memfds and eventfds passed
//! with SCM_RIGHTS) and of the shared-memory protocol (`sluice_shm::protocol`)
//! on one worker thread, with scripted peers instead of a TCP engine:
//!
//! * requests are popped and validated (handles checked against the slot's
//!   generation; anything wrong is recorded in `errors`, never trusted);
//! * sessions are published with their words zeroed and the desc's GEN last;
//! * RX: peer bytes go into the RX fifo, `READABLE` coalesced per pass; what
//!   does not fit sets `RX_BLOCKED` (fence, re-check) until `RX_SPACE`, which
//!   clears `RX_BLOCKED` and `RX_NOTE_SENT` before refilling; a peer FIN is
//!   delivered (`PEER_CLOSED`) only once every byte before it is in the fifo;
//! * TX: on `TX_READY` it stores `TX_PENDING = 0`, drains the fifo, then
//!   fences and swaps `WANT_TX_SPACE` to 0, sending `WRITABLE` if it was 1;
//! * accepts: `ACCEPTED` only to accepting listeners, while `ACCEPT_PUSHED −
//!   ACCEPT_TAKEN` (clamped) is below the credit;
//! * events go through the ring (a FIFO backlog when full) and the app is
//!   woken with the claiming `Waker` on its sleep flag; the worker sleeps with
//!   the `SleepFlag` protocol on its doorbell.
//!
//! Tests drive peers through [`FakeDaemon`]'s methods and wait for
//! conditions with deadlines (never sleeps).

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sluice_shm::control::{Message, Role, MAX_MESSAGE};
use sluice_shm::event_ring::Event;
use sluice_shm::layout::{self, app_words, desc, DownSegment, Geometry, SessionKind, UpSegment};
use sluice_shm::os::{self, Access, EventFd, Mapping};
use sluice_shm::poll::{ppoll, PollFd, POLLIN};
use sluice_shm::protocol::{ready, AppEvent, Request, ShutdownHow, SockOption};
use sluice_shm::{
    unix_socket, EventProducer, FifoConsumer, FifoProducer, Region, RequestConsumer, SessionHandle, SleepFlag, Waker,
};

/// How long a test waits for any condition before failing.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The daemon's address, as connections report it.
pub const DAEMON_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

/// What happens to a `CONNECT` to a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Wait for the test ([`FakeDaemon::complete_connect`]).
    Hold,
    /// Connected at once; the test plays the peer.
    Accept,
    /// Connected at once; the peer echoes every byte.
    Echo,
    /// Refused: `RESET | ERROR | CLOSED` with this errno.
    Refuse(i32),
}

/// How the app ended a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    Close,
    Abort,
}

pub struct Config {
    pub geometry: Geometry,
    /// Accept credit: `min(backlog, credit_cap)`.
    pub credit_cap: u32,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            geometry: Geometry {
                workers: 1,
                event_cap: 256,
                request_cap: 64,
                max_sessions: 64,
                rx_fifo: 16 * 1024,
                tx_fifo: 16 * 1024,
            },
            credit_cap: 64,
        }
    }
}

struct Conn {
    handle: SessionHandle,
    rx: FifoProducer,
    tx: FifoConsumer,
    /// Peer bytes not yet in the RX fifo.
    to_app: VecDeque<u8>,
    /// Bytes the app wrote, as the peer received them.
    from_app: Vec<u8>,
    echo: bool,
    /// The peer sent FIN; `PEER_CLOSED` goes once `to_app` is empty.
    fin_pending: bool,
    tx_ready: bool,
    tx_paused: bool,
    rx_blocked: bool,
    readable_event: bool,
    app_shutdown: Option<ShutdownHow>,
    rx_space_requests: u32,
    rx_blocked_times: u32,
}

struct Listener {
    handle: SessionHandle,
    local: SocketAddrV4,
    credit: u32,
    accepting: bool,
    pushed: u32,
    taken_seen: u32,
    /// Connections waiting for credit (slot indices).
    pending: VecDeque<u32>,
    /// Credit is looked at again only when something may have changed it
    /// (a new connection, `SET_ACCEPTING`, `RX_SPACE` on the listener), as
    /// the real daemon does: an app that never says it took one stalls.
    recheck: bool,
}

struct Seg {
    down: DownSegment,
    up: UpSegment,
    events: EventProducer,
    requests: RequestConsumer,
    wake: EventFd,
    doorbell: Arc<EventFd>,
    app: Waker,
    own_flag: SleepFlag,
    control: Option<OwnedFd>,
}

/// The fake daemon's state, shared by its worker and the test.
struct State {
    seg: Option<Seg>,
    credit_cap: u32,
    gens: Vec<u32>,
    in_use: Vec<bool>,
    free: Vec<u32>,
    conns: HashMap<u32, Conn>,
    listeners: HashMap<u32, Listener>,
    backlog: VecDeque<Event>,
    policies: HashMap<u16, Policy>,
    held: VecDeque<(SessionHandle, SocketAddrV4)>,
    next_port: u16,
    log: Vec<Request>,
    ended: HashMap<SessionHandle, Ended>,
    /// What the peer received of each ended connection.
    ended_data: HashMap<SessionHandle, Vec<u8>>,
    errors: Vec<String>,
    passes: u64,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    poke: EventFd,
    stop: AtomicBool,
}

pub struct FakeDaemon {
    shared: Arc<Shared>,
    dir: PathBuf,
    path: PathBuf,
    worker: Option<JoinHandle<()>>,
}

static DIRS: AtomicU32 = AtomicU32::new(0);

impl FakeDaemon {
    pub fn start() -> FakeDaemon {
        FakeDaemon::start_with(Config::default())
    }

    pub fn start_with(config: Config) -> FakeDaemon {
        let dir = std::env::temp_dir().join(format!(
            "sluice-vcl-test-{}-{}",
            std::process::id(),
            DIRS.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("control.sock");
        let listener = unix_socket::listen(&path, 8).unwrap();
        let n = config.geometry.max_sessions as usize;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                seg: None,
                credit_cap: config.credit_cap,
                gens: vec![0; n],
                in_use: vec![false; n],
                free: (0..n as u32).rev().collect(),
                conns: HashMap::new(),
                listeners: HashMap::new(),
                backlog: VecDeque::new(),
                policies: HashMap::new(),
                held: VecDeque::new(),
                next_port: 40000,
                log: Vec::new(),
                ended: HashMap::new(),
                ended_data: HashMap::new(),
                errors: Vec::new(),
                passes: 0,
            }),
            changed: Condvar::new(),
            poke: EventFd::new().unwrap(),
            stop: AtomicBool::new(false),
        });
        let worker = {
            let shared = Arc::clone(&shared);
            let geometry = config.geometry;
            std::thread::Builder::new()
                .name("fake-daemon".into())
                .spawn(move || run(&shared, listener, geometry))
                .unwrap()
        };
        FakeDaemon { shared, dir, path, worker: Some(worker) }
    }

    /// The control socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap()
    }

    fn poke(&self) {
        self.shared.poke.notify().unwrap();
    }

    /// Waits until `f` returns `Some`, re-evaluated after every worker pass
    /// and every test change; panics naming `what` after [`DEADLINE`].
    fn wait_for<T>(&self, what: &str, mut f: impl FnMut(&mut State) -> Option<T>) -> T {
        let deadline = Instant::now() + DEADLINE;
        let mut st = self.lock();
        loop {
            if let Some(v) = f(&mut st) {
                return v;
            }
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("fake daemon: timed out waiting for {what}; errors: {:?}", st.errors));
            // Re-checked at least every 2 ms too: some conditions (fifo
            // indices the app moves) change without a worker pass.
            st = self.shared.changed.wait_timeout(st, left.min(Duration::from_millis(2))).unwrap().0;
        }
    }

    /// Changes state under the lock and wakes the worker.
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let v = f(&mut self.lock());
        self.poke();
        self.shared.changed.notify_all();
        v
    }

    /// Protocol errors the app made so far.
    pub fn errors(&self) -> Vec<String> {
        self.lock().errors.clone()
    }

    /// Asserts the app made no protocol error.
    pub fn assert_clean(&self) {
        let errors = self.errors();
        assert!(errors.is_empty(), "the app broke the protocol: {errors:?}");
    }

    /// Every request decoded so far.
    pub fn requests(&self) -> Vec<Request> {
        self.lock().log.clone()
    }

    /// Waits until a request matching `pred` was received.
    pub fn wait_request(&self, what: &str, pred: impl Fn(&Request) -> bool) -> Request {
        self.wait_for(what, |st| st.log.iter().find(|r| pred(r)).copied())
    }

    pub fn set_policy(&self, port: u16, policy: Policy) {
        self.with(|st| st.policies.insert(port, policy));
    }

    /// Waits for a `CONNECT` held by [`Policy::Hold`].
    pub fn next_held_connect(&self) -> (SessionHandle, SocketAddrV4) {
        self.wait_for("a held CONNECT", |st| st.held.pop_front())
    }

    /// Completes a held connect: connected, or failed with `errno`.
    pub fn complete_connect(&self, h: SessionHandle, result: Result<(), i32>) {
        self.with(|st| {
            let bits = match result {
                Ok(()) => ready::CONNECTED | ready::WRITABLE,
                Err(_) => ready::RESET | ready::ERROR | ready::CLOSED,
            };
            st.backlog.push_back(AppEvent::Session { handle: h, bits, errno: result.err().unwrap_or(0) }.encode());
        });
    }

    /// A connection from `remote` to the listener on `port`: published now,
    /// pushed as `ACCEPTED` when the listener accepts and has credit.
    pub fn incoming(&self, port: u16, remote: SocketAddrV4) -> SessionHandle {
        let lindex = self.wait_for("a listener on the port", |st| {
            st.listeners.iter().find(|(_, l)| l.local.port() == port).map(|(i, _)| *i)
        });
        self.with(|st| {
            let local = st.listeners[&lindex].local;
            let h = st.publish(SessionKind::Connection, local, remote).expect("a free slot");
            let l = st.listeners.get_mut(&lindex).unwrap();
            l.pending.push_back(h.index);
            l.recheck = true;
            h
        })
    }

    /// Waits until the app has taken (`ACCEPT_TAKEN`) `n` connections of the
    /// listener on `port`.
    pub fn wait_taken(&self, port: u16, n: u32) {
        self.wait_for("accepts taken", |st| {
            let (i, _) = st.listeners.iter().find(|(_, l)| l.local.port() == port)?;
            let taken = st.seg.as_ref()?.up.app_words(*i)?.word(app_words::ACCEPT_TAKEN).load(Ordering::Acquire);
            (taken >= n).then_some(())
        })
    }

    /// Waits until `n` connections were pushed to the listener on `port`.
    pub fn wait_pushed(&self, port: u16, n: u32) {
        self.wait_for("ACCEPTED pushes", |st| {
            st.listeners.values().find(|l| l.local.port() == port).filter(|l| l.pushed >= n).map(|_| ())
        })
    }

    /// Waits for a whole worker pass that started after this call (so the
    /// events of every change made before it are produced) and until every
    /// event is in the ring.
    pub fn wait_events_flushed(&self) {
        let start = self.with(|st| st.passes);
        self.wait_for("events in the ring", |st| (st.passes > start && st.backlog.is_empty()).then_some(()))
    }

    /// Waits until the connection's TX fifo holds `n` bytes.
    pub fn wait_for_tx_full(&self, h: SessionHandle, n: u32) {
        self.wait_for("a full TX fifo", |st| (st.conn(h).tx.readable().unwrap() >= n).then_some(()))
    }

    /// Waits until the daemon had to block the connection's RX.
    pub fn wait_rx_blocked(&self, h: SessionHandle) {
        self.wait_for("RX_BLOCKED", |st| (st.conn(h).rx_blocked_times > 0).then_some(()))
    }

    /// `ACCEPTED` events pushed to the listener on `port`.
    pub fn pushed(&self, port: u16) -> u32 {
        self.lock().listeners.values().find(|l| l.local.port() == port).map_or(0, |l| l.pushed)
    }

    /// The peer sends `bytes`.
    pub fn peer_send(&self, h: SessionHandle, bytes: &[u8]) {
        self.with(|st| st.conn(h).to_app.extend(bytes.iter().copied()));
    }

    /// The peer sends FIN (after its bytes).
    pub fn peer_fin(&self, h: SessionHandle) {
        self.with(|st| st.conn(h).fin_pending = true);
    }

    /// The peer resets the connection.
    pub fn peer_reset(&self, h: SessionHandle) {
        self.with(|st| {
            st.conn(h).to_app.clear();
            st.backlog.push_back(
                AppEvent::Session {
                    handle: h,
                    bits: ready::RESET | ready::ERROR | ready::CLOSED,
                    errno: libc::ECONNRESET,
                }
                .encode(),
            );
        });
    }

    /// Stops (or resumes) draining the connection's TX fifo.
    pub fn set_tx_paused(&self, h: SessionHandle, paused: bool) {
        self.with(|st| st.conn(h).tx_paused = paused);
    }

    /// Waits until the peer received at least `n` bytes; returns them all.
    pub fn wait_received(&self, h: SessionHandle, n: usize) -> Vec<u8> {
        self.wait_for("bytes from the app", |st| {
            let got = match st.conns.get(&h.index) {
                Some(c) if c.handle == h => &c.from_app,
                _ => st.ended_data.get(&h)?,
            };
            (got.len() >= n).then(|| got.clone())
        })
    }

    /// Bytes waiting in the connection's TX fifo, not drained yet.
    pub fn tx_fifo_len(&self, h: SessionHandle) -> u32 {
        let mut st = self.lock();
        st.conn(h).tx.readable().unwrap()
    }

    /// Times the daemon set `RX_BLOCKED` on the connection, and `RX_SPACE`
    /// requests it got for it.
    pub fn rx_flow(&self, h: SessionHandle) -> (u32, u32) {
        let mut st = self.lock();
        let c = st.conn(h);
        (c.rx_blocked_times, c.rx_space_requests)
    }

    /// Waits until the app ended the session; returns how.
    pub fn wait_ended(&self, h: SessionHandle) -> Ended {
        self.wait_for("the session's end", |st| st.ended.get(&h).copied())
    }

    pub fn ended(&self, h: SessionHandle) -> Option<Ended> {
        self.lock().ended.get(&h).copied()
    }

    /// Waits until the app's leader sleeps on its flag.
    pub fn wait_app_sleeping(&self) {
        self.wait_for("the app to sleep", |st| {
            let flag = st.seg.as_ref()?.up.app_sleep_flag();
            (flag.load(Ordering::Acquire) != sluice_shm::wake::AWAKE).then_some(())
        })
    }

    /// Waits for a connection the app opened to `port` and returns it.
    pub fn wait_conn_to(&self, port: u16) -> SessionHandle {
        self.wait_for("a connection", |st| {
            st.conns
                .values()
                .find(|c| {
                    st.seg
                        .as_ref()
                        .unwrap()
                        .down
                        .desc(c.handle.index)
                        .unwrap()
                        .word(desc::REMOTE_PORT)
                        .load(Ordering::Relaxed)
                        == u32::from(port)
                })
                .map(|c| c.handle)
        })
    }

    /// Hangs up the control connection, as a dying daemon would.
    pub fn hang_up(&self) {
        self.with(|st| {
            if let Some(seg) = st.seg.as_mut() {
                seg.control = None;
            }
        });
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.poke();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl State {
    fn seg(&self) -> &Seg {
        self.seg.as_ref().expect("attached")
    }

    fn conn(&mut self, h: SessionHandle) -> &mut Conn {
        match self.conns.get_mut(&h.index) {
            Some(c) if c.handle == h => c,
            _ => panic!("no live connection {h:?}"),
        }
    }

    fn event(&mut self, e: AppEvent) {
        self.backlog.push_back(e.encode());
    }

    /// Allocates a slot and publishes a session in it: words zeroed, desc
    /// filled, GEN last.
    fn publish(&mut self, kind: SessionKind, local: SocketAddrV4, remote: SocketAddrV4) -> Option<SessionHandle> {
        let index = self.free.pop()?;
        let gen = SessionHandle::next_gen(self.gens[index as usize]);
        self.gens[index as usize] = gen;
        self.in_use[index as usize] = true;
        let seg = self.seg();
        let a = seg.up.app_words(index).unwrap();
        for off in [
            app_words::RX_HEAD,
            app_words::TX_TAIL,
            app_words::TX_PENDING,
            app_words::WANT_TX_SPACE,
            app_words::ACCEPT_TAKEN,
            app_words::RX_NOTE_SENT,
        ] {
            a.word(off).store(0, Ordering::Relaxed);
        }
        let d = seg.down.desc(index).unwrap();
        d.word(desc::KIND).store(kind as u32, Ordering::Relaxed);
        d.word(desc::LOCAL_IP).store(u32::from(*local.ip()), Ordering::Relaxed);
        d.word(desc::LOCAL_PORT).store(u32::from(local.port()), Ordering::Relaxed);
        d.word(desc::REMOTE_IP).store(u32::from(*remote.ip()), Ordering::Relaxed);
        d.word(desc::REMOTE_PORT).store(u32::from(remote.port()), Ordering::Relaxed);
        d.word(desc::RX_BLOCKED).store(0, Ordering::Relaxed);
        d.word(desc::ACCEPT_PUSHED).store(0, Ordering::Relaxed);
        let rx = FifoProducer::new(layout::rx_fifo(&seg.down, &seg.up, index).unwrap(), 0).unwrap();
        let tx = FifoConsumer::new(layout::tx_fifo(&seg.down, &seg.up, index).unwrap(), 0).unwrap();
        d.word(desc::GEN).store(gen, Ordering::Release);
        let handle = SessionHandle::new(index, gen).unwrap();
        if kind == SessionKind::Connection {
            self.conns.insert(
                index,
                Conn {
                    handle,
                    rx,
                    tx,
                    to_app: VecDeque::new(),
                    from_app: Vec::new(),
                    echo: false,
                    fin_pending: false,
                    tx_ready: false,
                    tx_paused: false,
                    rx_blocked: false,
                    readable_event: false,
                    app_shutdown: None,
                    rx_space_requests: 0,
                    rx_blocked_times: 0,
                },
            );
        }
        Some(handle)
    }

    fn free_slot(&mut self, index: u32) {
        self.in_use[index as usize] = false;
        self.conns.remove(&index);
        self.listeners.remove(&index);
        self.free.push(index);
    }

    /// The handle names a live session of this app.
    fn valid(&mut self, h: SessionHandle) -> bool {
        let ok = (h.index as usize) < self.gens.len()
            && self.in_use[h.index as usize]
            && self.gens[h.index as usize] == h.gen;
        if !ok {
            self.errors.push(format!("request with stale or unknown handle {h:?}"));
        }
        ok
    }

    fn handle_request(&mut self, req: Request) {
        self.log.push(req);
        match req {
            Request::Listen { req_id, mut local, backlog, reuse_port } => {
                if local.port() == 0 {
                    local.set_port(self.ephemeral());
                }
                let clash = self.listeners.values().any(|l| l.local.port() == local.port());
                if clash && !reuse_port {
                    self.event(AppEvent::Reply { req_id, result: Err(libc::EADDRINUSE) });
                    return;
                }
                let Some(h) = self.publish(SessionKind::Listener, local, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))
                else {
                    self.event(AppEvent::Reply { req_id, result: Err(libc::ENOBUFS) });
                    return;
                };
                let credit = backlog.clamp(1, self.credit_cap);
                self.listeners.insert(
                    h.index,
                    Listener {
                        handle: h,
                        local,
                        credit,
                        accepting: false,
                        pushed: 0,
                        taken_seen: 0,
                        pending: VecDeque::new(),
                        recheck: false,
                    },
                );
                self.event(AppEvent::Reply { req_id, result: Ok(h.to_u64()) });
            }
            Request::Connect { req_id, remote, local } => {
                let port = self.ephemeral();
                let local = local.map_or(SocketAddrV4::new(DAEMON_IP, port), |l| {
                    SocketAddrV4::new(
                        if l.ip().is_unspecified() { DAEMON_IP } else { *l.ip() },
                        if l.port() == 0 { port } else { l.port() },
                    )
                });
                let Some(h) = self.publish(SessionKind::Connection, local, remote) else {
                    self.event(AppEvent::Reply { req_id, result: Err(libc::ENOBUFS) });
                    return;
                };
                self.event(AppEvent::Reply { req_id, result: Ok(h.to_u64()) });
                match self.policies.get(&remote.port()).copied().unwrap_or(Policy::Hold) {
                    Policy::Hold => self.held.push_back((h, remote)),
                    Policy::Accept | Policy::Echo => {
                        self.conn(h).echo = self.policies.get(&remote.port()) == Some(&Policy::Echo);
                        self.event(AppEvent::Session { handle: h, bits: ready::CONNECTED | ready::WRITABLE, errno: 0 });
                    }
                    Policy::Refuse(errno) => self.event(AppEvent::Session {
                        handle: h,
                        bits: ready::RESET | ready::ERROR | ready::CLOSED,
                        errno,
                    }),
                }
            }
            Request::SetAccepting { handle, accepting } => {
                if self.valid(handle) {
                    match self.listeners.get_mut(&handle.index) {
                        Some(l) => {
                            l.accepting = accepting;
                            l.recheck = true;
                        }
                        None => self.errors.push(format!("SET_ACCEPTING on a connection {handle:?}")),
                    }
                }
            }
            Request::TxReady { handle } => {
                if self.valid(handle) {
                    match self.conns.get_mut(&handle.index) {
                        Some(c) => c.tx_ready = true,
                        None => self.errors.push(format!("TX_READY on a listener {handle:?}")),
                    }
                }
            }
            Request::RxSpace { handle } => {
                if self.valid(handle) {
                    let a = self.seg().up.app_words(handle.index).unwrap();
                    let d = self.seg().down.desc(handle.index).unwrap();
                    // Clear both words before refilling (protocol: RX).
                    d.word(desc::RX_BLOCKED).store(0, Ordering::SeqCst);
                    a.word(app_words::RX_NOTE_SENT).store(0, Ordering::SeqCst);
                    if let Some(c) = self.conns.get_mut(&handle.index) {
                        c.rx_blocked = false;
                        c.rx_space_requests += 1;
                    }
                    if let Some(l) = self.listeners.get_mut(&handle.index) {
                        l.recheck = true;
                    }
                }
            }
            Request::Shutdown { handle, how } => {
                if self.valid(handle) {
                    if let Some(c) = self.conns.get_mut(&handle.index) {
                        c.app_shutdown = Some(how);
                    }
                }
            }
            Request::Close { handle } | Request::Abort { handle } => {
                if self.valid(handle) {
                    let kind = if matches!(req, Request::Close { .. }) { Ended::Close } else { Ended::Abort };
                    if let Some(c) = self.conns.get_mut(&handle.index) {
                        if kind == Ended::Close {
                            // What the app wrote before closing still goes out.
                            drain_tx(c);
                        }
                        let data = std::mem::take(&mut c.from_app);
                        self.ended_data.insert(handle, data);
                    }
                    self.ended.insert(handle, kind);
                    self.free_slot(handle.index);
                }
            }
            Request::SetOption { req_id, handle, option, value } => {
                if !self.valid(handle) {
                    self.event(AppEvent::Reply { req_id, result: Err(libc::EBADF) });
                    return;
                }
                let result = if option == SockOption::KeepIdle && value == 0 { Err(libc::EINVAL) } else { Ok(0) };
                self.event(AppEvent::Reply { req_id, result });
            }
        }
    }

    fn ephemeral(&mut self) -> u16 {
        self.next_port += 1;
        self.next_port
    }

    /// Accept credit: push `ACCEPTED` while the listener accepts and has some.
    fn push_accepts(&mut self) -> usize {
        let mut pushed = Vec::new();
        let seg = self.seg.as_ref().unwrap();
        for (index, l) in self.listeners.iter_mut() {
            if !l.accepting || !std::mem::take(&mut l.recheck) {
                continue;
            }
            let taken = seg.up.app_words(*index).unwrap().word(app_words::ACCEPT_TAKEN).load(Ordering::Acquire);
            // Clamp to [taken seen, pushed]: a lying app only stalls itself.
            if taken.wrapping_sub(l.taken_seen) > l.pushed.wrapping_sub(l.taken_seen) {
                self.errors.push(format!("ACCEPT_TAKEN {taken} beyond pushed {}", l.pushed));
            } else {
                l.taken_seen = taken;
            }
            while l.pushed.wrapping_sub(l.taken_seen) < l.credit {
                let Some(conn) = l.pending.pop_front() else { break };
                l.pushed = l.pushed.wrapping_add(1);
                seg.down.desc(*index).unwrap().word(desc::ACCEPT_PUSHED).store(l.pushed, Ordering::Release);
                let ch = SessionHandle::new(conn, self.gens[conn as usize]).unwrap();
                pushed.push(AppEvent::Accepted { listener: l.handle, conn: ch });
            }
        }
        let n = pushed.len();
        for e in pushed {
            self.event(e);
        }
        n
    }

    /// Moves bytes for every connection; returns the work done.
    fn pump(&mut self) -> usize {
        let mut work = 0;
        let mut events = Vec::new();
        let seg = self.seg.as_ref().unwrap();
        for (index, c) in self.conns.iter_mut() {
            let a = seg.up.app_words(*index).unwrap();
            let d = seg.down.desc(*index).unwrap();
            if c.tx_ready && !c.tx_paused {
                c.tx_ready = false;
                // Clear before draining: bytes written after this produce a
                // new TX_READY (protocol: TX).
                a.word(app_words::TX_PENDING).store(0, Ordering::SeqCst);
                fence(Ordering::SeqCst);
                work += drain_tx(c);
                fence(Ordering::SeqCst);
                if a.word(app_words::WANT_TX_SPACE).swap(0, Ordering::SeqCst) == 1 {
                    events.push(AppEvent::Session { handle: c.handle, bits: ready::WRITABLE, errno: 0 });
                }
            }
            while !c.rx_blocked && !c.to_app.is_empty() {
                let (front, _) = c.to_app.as_slices();
                let n = c.rx.write(front).expect("app RX head within bounds");
                if n > 0 {
                    c.to_app.drain(..n);
                    c.readable_event = true;
                    work += n;
                    continue;
                }
                // Full: block, fence, re-check (protocol: RX).
                d.word(desc::RX_BLOCKED).store(1, Ordering::SeqCst);
                fence(Ordering::SeqCst);
                if c.rx.free().expect("app RX head within bounds") == 0 {
                    c.rx_blocked = true;
                    c.rx_blocked_times += 1;
                }
            }
            let mut bits = 0;
            if c.readable_event {
                c.readable_event = false;
                bits |= ready::READABLE;
            }
            if c.fin_pending && c.to_app.is_empty() && !c.rx_blocked {
                c.fin_pending = false;
                bits |= ready::PEER_CLOSED | ready::READABLE;
            }
            if bits != 0 {
                events.push(AppEvent::Session { handle: c.handle, bits, errno: 0 });
            }
        }
        work += events.len();
        for e in events {
            self.event(e);
        }
        work
    }

    /// Pops and handles every request.
    fn requests(&mut self) -> usize {
        let mut n = 0;
        while let Some(body) = self.seg.as_mut().unwrap().requests.pop() {
            n += 1;
            match Request::decode(&body) {
                Ok(req) => self.handle_request(req),
                Err(e) => self.errors.push(format!("undecodable request: {e:?}")),
            }
        }
        n
    }

    /// Moves the backlog into the ring; wakes the app if anything went.
    fn flush_events(&mut self) -> usize {
        let seg = self.seg.as_ref().unwrap();
        let mut n = 0;
        while let Some(e) = self.backlog.front() {
            if seg.events.push(e, 0).is_err() {
                break;
            }
            self.backlog.pop_front();
            n += 1;
        }
        if n > 0 {
            seg.app.wake(|| seg.wake.notify().unwrap());
        }
        n
    }
}

/// Drains a connection's TX fifo to its peer (or back, for an echo).
fn drain_tx(c: &mut Conn) -> usize {
    let mut buf = [0u8; 4096];
    let mut total = 0;
    loop {
        let n = c.tx.read(&mut buf).expect("app TX tail within bounds");
        if n == 0 {
            return total;
        }
        total += n;
        if c.echo {
            c.to_app.extend(&buf[..n]);
        } else {
            c.from_app.extend_from_slice(&buf[..n]);
        }
    }
}

fn map(fd: &OwnedFd, len: usize) -> Region {
    Region::new(Arc::new(Mapping::map(fd.as_fd(), len, Access::ReadWrite).unwrap()))
}

/// Accepts the app's control connection and answers its `Hello`.
fn handshake(shared: &Shared, listener: &OwnedFd, geo: Geometry) -> Option<Seg> {
    loop {
        if shared.stop.load(Ordering::Acquire) {
            return None;
        }
        let mut fds = [PollFd::new(listener.as_fd(), POLLIN), PollFd::new(shared.poke.as_fd(), POLLIN)];
        ppoll(&mut fds, None, None).unwrap();
        let _ = shared.poke.drain();
        if fds[0].revents != 0 {
            break;
        }
    }
    let control = unix_socket::accept(listener.as_fd(), 0).unwrap();
    let mut fds = [PollFd::new(control.as_fd(), POLLIN)];
    ppoll(&mut fds, Some(DEADLINE), None).unwrap();
    let mut buf = vec![0u8; MAX_MESSAGE];
    let (n, _) = unix_socket::recv(control.as_fd(), &mut buf, 0).unwrap();
    match Message::decode(&buf[..n]).unwrap().1 {
        Message::Hello { role: Role::App, pid } => assert_eq!(pid, std::process::id()),
        other => panic!("expected Hello, got {other:?}"),
    }
    let down_fd = os::memfd_create("fake-down", geo.down_len() as u64).unwrap();
    let up_fd = os::memfd_create("fake-up", geo.up_len() as u64).unwrap();
    os::add_seals(down_fd.as_fd(), os::SEGMENT_SEALS).unwrap();
    os::add_seals(up_fd.as_fd(), os::SEGMENT_SEALS).unwrap();
    let down = DownSegment::new(map(&down_fd, geo.down_len()), geo).unwrap();
    let up = UpSegment::new(map(&up_fd, geo.up_len()), geo).unwrap();
    up.init().unwrap();
    down.init(7);
    let wake = EventFd::new().unwrap();
    let doorbell = Arc::new(EventFd::new().unwrap());
    let reply = Message::AttachOk { app_worker_id: 7, geometry: geo }.encode(1);
    unix_socket::send(control.as_fd(), &reply, &[down_fd.as_fd(), up_fd.as_fd(), wake.as_fd(), doorbell.as_fd()])
        .unwrap();
    let events = EventProducer::new(layout::event_ring(&down, &up)).unwrap();
    let requests = RequestConsumer::new(up.request_ring(0).unwrap().slots).unwrap();
    let app = Waker::new(up.app_sleep_flag());
    let own_flag = SleepFlag::new(down.daemon_sleep_flag(0).unwrap());
    Some(Seg { down, up, events, requests, wake, doorbell, app, own_flag, control: Some(control) })
}

/// The worker: handshake, then passes until stopped.
fn run(shared: &Shared, listener: OwnedFd, geo: Geometry) {
    let Some(seg) = handshake(shared, &listener, geo) else { return };
    shared.state.lock().unwrap().seg = Some(seg);
    shared.changed.notify_all();
    while !shared.stop.load(Ordering::Acquire) {
        let (work, backlogged) = {
            let mut st = shared.state.lock().unwrap();
            let mut work = st.requests();
            work += st.push_accepts();
            work += st.pump();
            work += st.flush_events();
            st.passes += 1;
            (work, !st.backlog.is_empty())
        };
        shared.changed.notify_all();
        if work > 0 {
            continue;
        }
        // Sleep until a doorbell or a test change; while events wait for
        // ring room, look again soon (the layout has no "room" signal).
        let timeout = backlogged.then(|| Duration::from_millis(1));
        let st = shared.state.lock().unwrap();
        let seg = st.seg.as_ref().unwrap();
        let (flag, doorbell) = (seg.own_flag.clone(), Arc::clone(&seg.doorbell));
        drop(st);
        flag.sleep_unless(
            || shared.state.lock().unwrap().seg.as_ref().unwrap().requests.is_ready(),
            || {
                let mut fds = [PollFd::new(doorbell.as_fd(), POLLIN), PollFd::new(shared.poke.as_fd(), POLLIN)];
                let _ = ppoll(&mut fds, timeout, None);
            },
        );
        let _ = doorbell.drain();
        let _ = shared.poke.drain();
    }
}
