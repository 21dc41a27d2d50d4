//! Shared by the runtime tests: a daemon configuration in a temporary
//! directory, a client that attaches with the raw control protocol and maps
//! the segments as an app does, frame builders for the memory wire, and a
//! stand-in app layer (`ToyApps`) that answers `LISTEN` requests, so the
//! daemon's threads can be tested without the real one.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as StdInstant};

use sluice_daemon::app::{AppId, AppIdentity, AppSetConfig, AppStats, NewApp, SessionRow};
use sluice_daemon::config::{DaemonConfig, DeviceKind, PollMode, XdpMode};
use sluice_daemon::worker::AppWork;
use sluice_shm::control::{Message, Role, MAX_MESSAGE};
use sluice_shm::layout::{self, DownSegment, Geometry, UpSegment};
use sluice_shm::os::{Access, EventFd, Mapping};
use sluice_shm::protocol::{AppEvent, Request};
use sluice_shm::wake::{AWAKE, SLEEPING};
use sluice_shm::{
    unix_socket, EventConsumer, EventProducer, Region, RequestConsumer, RequestProducer, SleepFlag, Waker,
};
use sluice_stack::{Instant, Stack};

pub const WAIT: Duration = Duration::from_secs(10);
pub const DAEMON_IP: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);
pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
pub const DAEMON_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

/// A directory removed (with its contents) when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("sluice-rt-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A small, valid configuration with the control socket in `dir`.
pub fn config(dir: &Path) -> DaemonConfig {
    DaemonConfig {
        device: DeviceKind::Tap,
        iface: "mem0".into(),
        ip: DAEMON_IP,
        prefix: 24,
        gateway: None,
        mac: Some(DAEMON_MAC),
        mtu: 1500,
        queues: 1,
        xdp_mode: XdpMode::Auto,
        zero_copy: None,
        xdp_frames: 4096,
        poll_mode: PollMode::Adaptive,
        idle_spin_us: 50,
        rx_fifo: 65536,
        tx_fifo: 65536,
        max_sessions: 16,
        event_ring: 256,
        request_ring: 64,
        control_socket: dir.join("run/control.sock"),
        socket_mode: 0o666,
        loopback: false,
        log: "warn".into(),
        loss_ppm: 0,
        loss_seed: None,
        allow_kernel_addr: false,
    }
}

/// Polls `cond` until it holds, failing the test after [`WAIT`].
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = StdInstant::now() + WAIT;
    while !cond() {
        assert!(StdInstant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Whether `fd` becomes readable within `timeout`.
pub fn readable(fd: &impl AsFd, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd { fd: fd.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd, live for the call.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    n > 0
}

/// An app worker attached with the raw protocol, holding the segments as
/// an app maps them: down read-only, up read-write.
pub struct AppClient {
    pub sock: OwnedFd,
    pub id: u32,
    pub geometry: Geometry,
    pub down_fd: OwnedFd,
    pub up_fd: OwnedFd,
    pub down: DownSegment,
    pub up: UpSegment,
    pub wake: EventFd,
    pub doorbells: Vec<EventFd>,
    requests: RequestProducer,
    events: EventConsumer,
    sleep: SleepFlag,
}

impl AppClient {
    /// Connects to `socket` and attaches.
    pub fn attach(socket: &Path) -> AppClient {
        let sock = unix_socket::connect(socket).unwrap();
        let hello = Message::Hello { pid: std::process::id(), role: Role::App };
        unix_socket::send(sock.as_fd(), &hello.encode(7), &[]).unwrap();
        let mut buf = vec![0u8; MAX_MESSAGE];
        assert!(readable(&sock, WAIT), "no AttachOk");
        let (n, fds) = unix_socket::recv(sock.as_fd(), &mut buf, 0).unwrap();
        let (request_id, message) = Message::decode(&buf[..n]).unwrap();
        assert_eq!(request_id, 7, "the reply echoes the request id");
        let Message::AttachOk { app_worker_id, geometry } = message else {
            panic!("expected AttachOk, got {message:?}")
        };
        assert_eq!(fds.len(), 3 + geometry.workers as usize, "down, up, wake and one doorbell per worker");
        let mut fds = fds.into_iter();
        let (down_fd, up_fd) = (fds.next().unwrap(), fds.next().unwrap());
        let wake = EventFd::from_fd(fds.next().unwrap());
        let doorbells: Vec<EventFd> = fds.map(EventFd::from_fd).collect();
        let down_map = Mapping::map(down_fd.as_fd(), geometry.down_len(), Access::ReadOnly).unwrap();
        let up_map = Mapping::map(up_fd.as_fd(), geometry.up_len(), Access::ReadWrite).unwrap();
        let down = DownSegment::new(Region::new(Arc::new(down_map)), geometry).unwrap();
        let up = UpSegment::new(Region::new(Arc::new(up_map)), geometry).unwrap();
        assert!(down.is_valid(), "the daemon initialised the down segment");
        assert_eq!(down.app_worker_id(), app_worker_id);
        let requests = RequestProducer::new(up.request_ring(0).unwrap()).unwrap();
        let events = EventConsumer::new(layout::event_ring(&down, &up)).unwrap();
        let sleep = SleepFlag::new(up.app_sleep_flag());
        AppClient {
            sock,
            id: app_worker_id,
            geometry,
            down_fd,
            up_fd,
            down,
            up,
            wake,
            doorbells,
            requests,
            events,
            sleep,
        }
    }

    /// Pushes a request on worker 0's ring and rings its doorbell if the
    /// worker sleeps (design §2.6, app side).
    pub fn request(&self, request: &Request) {
        self.push_raw(&request.encode());
    }

    /// Pushes any 56-byte body (for malformed requests).
    pub fn push_raw(&self, body: &[u8; 56]) {
        self.requests.push(body).expect("request ring full");
        let flag = self.down.daemon_sleep_flag(0).unwrap();
        Waker::new(flag).wake_read_only(|| self.doorbells[0].notify().unwrap());
    }

    /// The next event if one is waiting.
    pub fn try_event(&mut self) -> Option<AppEvent> {
        self.events.pop().map(|e| AppEvent::decode(&e).expect("an event of a known kind"))
    }

    /// The next event, sleeping on the wake eventfd as the vcl leader does.
    pub fn next_event(&mut self, timeout: Duration) -> Option<AppEvent> {
        let deadline = StdInstant::now() + timeout;
        loop {
            if let Some(e) = self.events.pop() {
                return Some(AppEvent::decode(&e).expect("an event of a known kind"));
            }
            let left = deadline.checked_duration_since(StdInstant::now())?;
            let events = &self.events;
            let wake = &self.wake;
            self.sleep.sleep_unless(
                || events.is_ready(),
                || {
                    let _ = wake.wait(Some(left));
                },
            );
            let _ = self.wake.drain();
        }
    }

    /// Whether the daemon closes the control connection within `timeout`.
    pub fn sees_eof(&self, timeout: Duration) -> bool {
        eof(&self.sock, timeout)
    }
}

/// Whether the peer of `sock` closes within `timeout` (messages before the
/// close are skipped).
pub fn eof(sock: &OwnedFd, timeout: Duration) -> bool {
    let deadline = StdInstant::now() + timeout;
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let Some(left) = deadline.checked_duration_since(StdInstant::now()) else { return false };
        if !readable(sock, left) {
            return false;
        }
        match unix_socket::recv(sock.as_fd(), &mut buf, libc::MSG_DONTWAIT) {
            Ok((0, _)) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return true,
        }
    }
}

/// Reads one control message (with a deadline).
pub fn recv_message(sock: &OwnedFd) -> Option<Message> {
    if !readable(sock, WAIT) {
        return None;
    }
    let mut buf = vec![0u8; MAX_MESSAGE];
    let (n, _) = unix_socket::recv(sock.as_fd(), &mut buf, 0).ok()?;
    if n == 0 {
        return None;
    }
    Some(Message::decode(&buf[..n]).unwrap().1)
}

/// An ARP request from the peer for `target`.
pub fn arp_request(target: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&PEER_IP.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f
}

/// Whether `frame` is the daemon's ARP reply to the peer.
pub fn is_arp_reply(frame: &[u8]) -> bool {
    frame.len() >= 42
        && frame[12..14] == [0x08, 0x06]
        && frame[20..22] == [0, 2]
        && frame[22..28] == DAEMON_MAC
        && frame[28..32] == DAEMON_IP.octets()
        && frame[32..38] == PEER_MAC
}

/// What the stand-in app layer saw, for assertions.
#[derive(Debug, Default)]
pub struct Observed {
    pub attached: Vec<AppIdentity>,
    pub detached: Vec<AppId>,
    pub requests: u64,
    /// Sleeps that ended with an app's doorbell readable.
    pub doorbell_wakes: u64,
    /// Whether the worker is inside `block` right now.
    pub blocked: bool,
}

struct ToyApp {
    identity: AppIdentity,
    down: DownSegment,
    requests: RequestConsumer,
    events: EventProducer,
    app_waker: Waker,
    wake: EventFd,
    doorbell: EventFd,
    handled: u64,
}

/// A stand-in app layer: answers `LISTEN` with a `REPLY` carrying the
/// port, ignores other valid requests, and kills an app that sends an
/// undecodable one.
pub struct ToyApps {
    worker: u32,
    apps: Vec<ToyApp>,
    killed: Vec<AppId>,
    observed: Arc<Mutex<Observed>>,
}

impl ToyApps {
    /// A factory for `Daemon::start_with`, and what the apps will observe.
    pub fn factory() -> (impl Fn(AppSetConfig) -> ToyApps + Clone + Send + 'static, Arc<Mutex<Observed>>) {
        let observed = Arc::new(Mutex::new(Observed::default()));
        let shared = Arc::clone(&observed);
        let make = move |config: AppSetConfig| ToyApps {
            worker: config.worker,
            apps: Vec::new(),
            killed: Vec::new(),
            observed: Arc::clone(&shared),
        };
        (make, observed)
    }
}

impl AppWork for ToyApps {
    fn attach(&mut self, app: NewApp) {
        let ring = app.up.request_ring(self.worker).unwrap();
        self.observed.lock().unwrap().attached.push(app.identity);
        self.apps.push(ToyApp {
            identity: app.identity,
            requests: RequestConsumer::new(ring.slots).unwrap(),
            events: EventProducer::new(layout::event_ring(&app.down, &app.up)).unwrap(),
            app_waker: Waker::new(app.up.app_sleep_flag()),
            down: app.down,
            wake: app.wake,
            doorbell: app.doorbell,
            handled: 0,
        });
    }

    fn detach(&mut self, id: AppId, _: &mut Stack, _: Instant) {
        self.apps.retain(|a| a.identity.id != id);
        self.observed.lock().unwrap().detached.push(id);
    }

    fn poll(&mut self, _: &mut Stack, _: Instant) -> usize {
        let mut work = 0;
        let mut killed = Vec::new();
        for app in &mut self.apps {
            let mut replied = false;
            while let Some(body) = app.requests.pop() {
                work += 1;
                app.handled += 1;
                self.observed.lock().unwrap().requests += 1;
                match Request::decode(&body) {
                    Ok(Request::Listen { req_id, local, .. }) => {
                        let reply = AppEvent::Reply { req_id, result: Ok(local.port().into()) };
                        app.events.push(&reply.encode(), 0).expect("event ring has room");
                        replied = true;
                    }
                    Ok(_) => {}
                    Err(_) => {
                        killed.push(app.identity.id);
                        break;
                    }
                }
            }
            if replied {
                app.app_waker.wake(|| app.wake.notify().unwrap());
            }
        }
        self.apps.retain(|a| !killed.contains(&a.identity.id));
        self.killed.extend(killed);
        work
    }

    fn sleep_unless_work(&self, block: &mut dyn FnMut()) -> bool {
        let flags: Vec<_> = self.apps.iter().map(|a| a.down.daemon_sleep_flag(self.worker).unwrap()).collect();
        for f in &flags {
            f.store(SLEEPING, Ordering::Relaxed);
        }
        fence(Ordering::SeqCst);
        let idle = !self.apps.iter().any(|a| a.requests.is_ready());
        if idle {
            self.observed.lock().unwrap().blocked = true;
            block();
            let rang = self.apps.iter().filter(|a| a.doorbell.wait(Some(Duration::ZERO)).unwrap_or(false)).count();
            let mut o = self.observed.lock().unwrap();
            o.blocked = false;
            o.doorbell_wakes += rang as u64;
        }
        for f in &flags {
            f.store(AWAKE, Ordering::Relaxed);
        }
        idle
    }

    fn take_killed(&mut self) -> Vec<AppId> {
        std::mem::take(&mut self.killed)
    }

    fn stats(&self) -> Vec<AppStats> {
        self.apps
            .iter()
            .map(|a| AppStats {
                id: a.identity.id.0,
                pid: a.identity.pid,
                uid: a.identity.uid,
                requests: a.handled,
                ..Default::default()
            })
            .collect()
    }

    fn sessions(&self, _: &Stack) -> Vec<SessionRow> {
        self.apps
            .iter()
            .map(|a| SessionRow {
                app: a.identity.id.0,
                pid: a.identity.pid,
                state: "LISTEN".into(),
                local: "0.0.0.0:80".into(),
                remote: "0.0.0.0:*".into(),
                ..Default::default()
            })
            .collect()
    }
}
