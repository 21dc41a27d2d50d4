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

mod protocol;
mod worker;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sluice_shm::layout::{app_words, desc, Geometry, SessionKind};
use sluice_shm::os::EventFd;
use sluice_shm::protocol::{ready, AppEvent, Request};
use sluice_shm::{unix_socket, SessionHandle};

use protocol::State;

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
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(config.credit_cap, config.geometry.max_sessions)),
            changed: Condvar::new(),
            poke: EventFd::new().unwrap(),
            stop: AtomicBool::new(false),
        });
        let worker = {
            let shared = Arc::clone(&shared);
            let geometry = config.geometry;
            std::thread::Builder::new()
                .name("fake-daemon".into())
                .spawn(move || worker::run(&shared, listener, geometry))
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
