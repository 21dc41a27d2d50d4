//! The control thread's loop: one epoll set over the listening socket, every
//! client, the stop eventfd and the workers' report eventfd.
//!
//! * `Hello{App}`: segments and eventfds are made ([`Attachment`]), sent with
//!   `AttachOk`, then handed to the app's home worker. The reply goes first:
//!   if the app is already gone no worker ever hears of it, and requests the
//!   app pushes before the worker has attached it wait in the ring (the app
//!   rings the doorbell only when the worker's sleep flag, still zero in a
//!   fresh segment, says so; the `Attach` command itself wakes the worker).
//! * `Hello{Admin}` then `Admin{..}`: answered from the workers' snapshots;
//!   `Admin{Capture}` (uid 0 or `CAP_NET_RAW`, as for a packet socket) turns
//!   the client into a capture client that gets every frame the workers
//!   record until it hangs up.
//! * A client that hangs up (EPOLLHUP, or a read of length 0) is closed; an
//!   app's worker is told to reap it.
//! * A message that is malformed or unexpected gets an `Error` reply and the
//!   connection is closed.
//! * An app the worker killed has its connection closed (the app sees EOF).

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use sluice_shm::control::{text_chunks, AdminCommand, ControlError, Message, Role as HelloRole, MAX_MESSAGE};
use sluice_shm::layout::Geometry;
use sluice_shm::os::EventFd;
use sluice_shm::unix_socket;

use super::admin::{self, DaemonInfo};
use super::attach::Attachment;
use super::client::{Client, Flushed, Role};
use super::listener::ControlListener;
use crate::app::ports::has_capability;
use crate::app::{AppId, AppIdentity};
use crate::capture::CaptureTap;
use crate::worker::epoll::{self, Epoll};
use crate::worker::{WorkerCommand, WorkerLink, WorkerReport};

const LISTENER_TOKEN: u64 = 0;
const STOP_TOKEN: u64 = 1;
const REPORTS_TOKEN: u64 = 2;
const CAPTURE_TOKEN: u64 = 3;

/// Captured frames waiting for one capture client at most; beyond that its
/// frames are dropped (and counted), so a slow reader costs bounded memory.
const MAX_CAPTURE_BACKLOG: usize = 8192;

/// `CAP_NET_RAW` (`capabilities(7)`): what capturing packets needs.
const CAP_NET_RAW: u32 = 13;
const FIRST_CLIENT_TOKEN: u64 = 16;

/// The worker every app is homed on (v1 has one; design §3.4).
const HOME_WORKER: usize = 0;

/// How long accepting pauses after `accept` fails for lack of resources
/// (`EMFILE`, `ENFILE`, `ENOMEM`): the pending connection keeps the
/// listener readable, so retrying at once would spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Interest of a client connection.
const CLIENT_EVENTS: u32 = epoll::IN | epoll::RDHUP;

/// What the control thread runs with.
pub struct Server {
    epoll: Epoll,
    listener: ControlListener,
    reports: mpsc::Receiver<WorkerReport>,
    report_bell: Arc<EventFd>,
    stop: Arc<EventFd>,
    workers: Vec<WorkerLink>,
    geometry: Geometry,
    info: DaemonInfo,
    capture: Arc<CaptureTap>,
    /// Frames not sent to a capture client because its backlog was full.
    capture_dropped: u64,
    clients: HashMap<u64, Client>,
    /// The connection of each attached app.
    apps: HashMap<AppId, u64>,
    next_token: u64,
    next_app: u32,
    /// Until when accepting is paused, if it is.
    accept_paused_until: Option<Instant>,
    buf: Vec<u8>,
}

/// Everything the control thread needs.
pub struct ServerSetup {
    pub listener: ControlListener,
    pub geometry: Geometry,
    pub workers: Vec<WorkerLink>,
    pub reports: mpsc::Receiver<WorkerReport>,
    pub report_bell: Arc<EventFd>,
    pub info: DaemonInfo,
    pub capture: Arc<CaptureTap>,
}

fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// A short name of a message kind for errors.
fn kind_name(m: &Message) -> &'static str {
    match m {
        Message::Hello { .. } => "Hello",
        Message::AttachOk { .. } => "AttachOk",
        Message::Admin { .. } => "Admin",
        Message::Text { .. } => "Text",
        Message::Error { .. } => "Error",
        Message::CaptureFrame { .. } => "CaptureFrame",
    }
}

impl Server {
    /// A server for `setup`; it stops when `stop` is notified.
    pub fn new(setup: ServerSetup, stop: Arc<EventFd>) -> io::Result<Server> {
        if setup.workers.get(HOME_WORKER).is_none() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "the control thread needs at least one worker"));
        }
        let watch = || -> io::Result<Epoll> {
            let epoll = Epoll::new(64)?;
            epoll.add(setup.listener.as_fd().as_raw_fd(), LISTENER_TOKEN, epoll::IN)?;
            epoll.add(stop.as_raw_fd(), STOP_TOKEN, epoll::IN)?;
            epoll.add(setup.report_bell.as_raw_fd(), REPORTS_TOKEN, epoll::IN)?;
            epoll.add(setup.capture.bell().as_raw_fd(), CAPTURE_TOKEN, epoll::IN)?;
            Ok(epoll)
        };
        let epoll = match watch() {
            Ok(epoll) => epoll,
            Err(e) => {
                setup.listener.remove_file();
                return Err(e);
            }
        };
        Ok(Server {
            epoll,
            listener: setup.listener,
            reports: setup.reports,
            report_bell: setup.report_bell,
            stop,
            workers: setup.workers,
            geometry: setup.geometry,
            info: setup.info,
            capture: setup.capture,
            capture_dropped: 0,
            clients: HashMap::new(),
            apps: HashMap::new(),
            next_token: FIRST_CLIENT_TOKEN,
            next_app: 1,
            accept_paused_until: None,
            buf: vec![0; MAX_MESSAGE],
        })
    }

    /// Serves until the stop eventfd fires; then closes every connection and
    /// removes the socket file.
    pub fn run(&mut self) -> io::Result<()> {
        let result = self.serve();
        for token in self.clients.keys().copied().collect::<Vec<_>>() {
            // The workers detach every app themselves when they shut down.
            self.close(token, false);
        }
        self.listener.remove_file();
        result
    }

    fn serve(&mut self) -> io::Result<()> {
        loop {
            let timeout = self.timeout_ms(Instant::now());
            let ready: Vec<epoll::Ready> = self.epoll.wait(timeout)?.collect();
            for r in ready {
                match r.token {
                    LISTENER_TOKEN => self.accept(),
                    STOP_TOKEN => {
                        let _ = self.stop.drain();
                        return Ok(());
                    }
                    REPORTS_TOKEN => self.handle_reports(),
                    CAPTURE_TOKEN => self.forward_captured(),
                    token => self.client_ready(token, r.events),
                }
            }
            let now = Instant::now();
            self.resume_accepting(now)?;
            self.drop_stuck(now);
        }
    }

    /// Until the next deadline: a stuck client's, or the accept pause's.
    fn timeout_ms(&self, now: Instant) -> i32 {
        let deadline = self.clients.values().filter_map(Client::deadline).chain(self.accept_paused_until).min();
        match deadline {
            None => -1,
            Some(d) => {
                let ms = d.saturating_duration_since(now).as_micros().div_ceil(1000);
                i32::try_from(ms).unwrap_or(i32::MAX)
            }
        }
    }

    fn accept(&mut self) {
        // The listener is blocking, so one accept per readiness report; with
        // level-triggered epoll the next wait reports the next connection.
        match unix_socket::accept(self.listener.as_fd(), libc::SOCK_NONBLOCK) {
            Ok(sock) => {
                let token = self.next_token;
                self.next_token += 1;
                if let Err(e) = self.epoll.add(sock.as_raw_fd(), token, CLIENT_EVENTS) {
                    warn!("control: cannot watch a new connection: {e}");
                    return;
                }
                self.clients.insert(token, Client::new(sock));
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
            Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => {}
            Err(e) => {
                warn!("control: accept failed: {e}; pausing for {ACCEPT_PAUSE:?}");
                if let Err(e) = self.epoll.modify(self.listener.as_fd().as_raw_fd(), LISTENER_TOKEN, 0) {
                    warn!("control: cannot pause the listener: {e}");
                }
                self.accept_paused_until = Some(Instant::now() + ACCEPT_PAUSE);
            }
        }
    }

    fn resume_accepting(&mut self, now: Instant) -> io::Result<()> {
        if self.accept_paused_until.is_some_and(|t| t <= now) {
            self.accept_paused_until = None;
            self.epoll.modify(self.listener.as_fd().as_raw_fd(), LISTENER_TOKEN, epoll::IN)?;
        }
        Ok(())
    }

    fn drop_stuck(&mut self, now: Instant) {
        let stuck: Vec<u64> =
            self.clients.iter().filter(|(_, c)| c.deadline().is_some_and(|d| d <= now)).map(|(&t, _)| t).collect();
        for token in stuck {
            warn!("control: dropping a client that has not read its replies for {:?}", super::client::STUCK_LIMIT);
            self.close(token, true);
        }
    }

    fn handle_reports(&mut self) {
        let _ = self.report_bell.drain();
        while let Ok(report) = self.reports.try_recv() {
            match report {
                WorkerReport::Killed { worker, app } => {
                    if let Some(token) = self.apps.get(&app).copied() {
                        info!("control: closing app {}'s connection (killed by worker {worker})", app.0);
                        // The worker has reaped it already.
                        self.close(token, false);
                    }
                }
            }
        }
    }

    fn client_ready(&mut self, token: u64, events: u32) {
        if events & epoll::IN != 0 {
            self.read(token);
        } else if events & (epoll::HUP | epoll::ERR | epoll::RDHUP) != 0 {
            self.close(token, true);
            return;
        }
        if events & epoll::OUT != 0 {
            self.flush(token);
        }
    }

    /// Reads one message (level-triggered: the next wait reports more).
    fn read(&mut self, token: u64) {
        let Some(client) = self.clients.get(&token) else { return };
        let (len, fds) = match unix_socket::recv(client.sock.as_fd(), &mut self.buf, libc::MSG_DONTWAIT) {
            Ok(got) => got,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => return,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                // Too long, or too many descriptors.
                self.refuse(token, 0, libc::EMSGSIZE, &e.to_string());
                return;
            }
            Err(e) => {
                debug!("control: read failed: {e}");
                self.close(token, true);
                return;
            }
        };
        if len == 0 {
            self.close(token, true);
            return;
        }
        if !fds.is_empty() {
            // Dropping `fds` closes them.
            self.refuse(token, 0, libc::EPROTO, "no message to the daemon carries descriptors");
            return;
        }
        match Message::decode(&self.buf[..len]) {
            Ok((request_id, message)) => self.handle(token, request_id, message),
            Err(e) => {
                let errno = if matches!(e, ControlError::BadVersion(_)) { libc::EPROTONOSUPPORT } else { libc::EPROTO };
                self.refuse(token, 0, errno, &e.to_string());
            }
        }
    }

    fn handle(&mut self, token: u64, request_id: u32, message: Message) {
        let Some(role) = self.clients.get(&token).map(|c| c.role) else { return };
        match (role, message) {
            (Role::New, Message::Hello { pid, role: HelloRole::App }) => self.attach(token, request_id, pid),
            (Role::New, Message::Hello { role: HelloRole::Admin, .. }) => {
                if let Some(c) = self.clients.get_mut(&token) {
                    c.role = Role::Admin;
                }
            }
            (Role::Admin, Message::Admin { command: AdminCommand::Capture, .. }) => self.start_capture(token, request_id),
            (Role::Admin, Message::Admin { command, json }) => {
                let reply = admin::respond(command, json, &self.workers, &self.info, self.apps.len() as u32);
                let Some(c) = self.clients.get_mut(&token) else { return };
                match reply {
                    Ok(text) => {
                        for chunk in text_chunks(&text) {
                            c.queue(&chunk, request_id);
                        }
                    }
                    Err(message) => c.queue(&Message::Error { errno: libc::EIO, message }, request_id),
                }
                self.flush(token);
            }
            (role, message) => {
                let what = format!(
                    "unexpected {} message from a {} client",
                    kind_name(&message),
                    match role {
                        Role::New => "new",
                        Role::App(_) => "attached app",
                        Role::Admin => "admin",
                        Role::Capture => "capture",
                    }
                );
                self.refuse(token, request_id, libc::EPROTO, &what);
            }
        }
    }

    fn attach(&mut self, token: u64, request_id: u32, hello_pid: u32) {
        let Some(client) = self.clients.get(&token) else { return };
        let cred = match unix_socket::peer_cred(client.sock.as_fd()) {
            Ok(cred) => cred,
            Err(e) => return self.refuse(token, request_id, errno_of(&e), &format!("SO_PEERCRED: {e}")),
        };
        if cred.pid as u32 != hello_pid {
            // Different pid namespaces see different numbers; the kernel's is used.
            debug!("control: Hello says pid {hello_pid}, the kernel says {}", cred.pid);
        }
        let Some(next) = self.next_app.checked_add(1) else {
            return self.refuse(token, request_id, libc::EMFILE, "app worker ids exhausted");
        };
        let id = AppId(self.next_app);
        self.next_app = next;
        let attachment = match Attachment::create(id.0, self.geometry) {
            Ok(a) => a,
            Err(e) => {
                warn!("control: cannot create segments for app {}: {e}", id.0);
                return self.refuse(token, request_id, errno_of(&e), &format!("cannot create segments: {e}"));
            }
        };
        let reply = Message::AttachOk { app_worker_id: id.0, geometry: self.geometry }.encode(request_id);
        // A fresh connection's send buffer is empty: this send does not block.
        if let Err(e) = unix_socket::send(client.sock.as_fd(), &reply, &attachment.fds()) {
            debug!("control: AttachOk to pid {} failed: {e}", cred.pid);
            self.close(token, false);
            return;
        }
        let identity = AppIdentity { id, pid: cred.pid, uid: cred.uid, gid: cred.gid };
        let new_app = match attachment.into_new_app(identity, HOME_WORKER) {
            Ok(app) => app,
            Err(e) => {
                warn!("control: app {}: {e}", id.0);
                self.close(token, false);
                return;
            }
        };
        if let Err(e) = self.workers[HOME_WORKER].send(WorkerCommand::Attach(Box::new(new_app))) {
            warn!("control: cannot hand app {} to its worker: {e}", id.0);
            self.close(token, false);
            return;
        }
        if let Some(c) = self.clients.get_mut(&token) {
            c.role = Role::App(id);
        }
        self.apps.insert(id, token);
        info!("app worker {} attached: pid {}, uid {}, gid {}", id.0, cred.pid, cred.uid, cred.gid);
    }

    /// Makes an admin client a capture client, if its process may capture.
    fn start_capture(&mut self, token: u64, request_id: u32) {
        let Some(client) = self.clients.get_mut(&token) else { return };
        let allowed = match unix_socket::peer_cred(client.sock.as_fd()) {
            Ok(cred) => cred.uid == 0 || has_capability(cred.pid, CAP_NET_RAW),
            Err(_) => false,
        };
        if !allowed {
            return self.refuse(token, request_id, libc::EPERM, "capturing packets needs root or CAP_NET_RAW");
        }
        client.role = Role::Capture;
        // Acknowledged before any frame, so the client knows from when on
        // frames are recorded.
        client.queue(&Message::Text { last: true, text: "capture started".into() }, request_id);
        self.capture.set_enabled(true);
        self.flush(token);
        info!("control: packet capture started");
    }

    /// Sends the frames the workers captured to every capture client.
    fn forward_captured(&mut self) {
        let mut frames = Vec::new();
        self.capture.take(&mut frames);
        let tokens: Vec<u64> =
            self.clients.iter().filter(|(_, c)| c.role == Role::Capture).map(|(&t, _)| t).collect();
        for &token in &tokens {
            let Some(c) = self.clients.get_mut(&token) else { continue };
            for f in &frames {
                if c.queued() >= MAX_CAPTURE_BACKLOG {
                    self.capture_dropped += 1;
                    continue;
                }
                let message =
                    Message::CaptureFrame { timestamp_ns: f.timestamp_ns, orig_len: f.orig_len, data: f.data.clone() };
                c.queue(&message, 0);
            }
            self.flush(token);
        }
    }

    /// Sends an `Error` (best effort) and closes the connection.
    fn refuse(&mut self, token: u64, request_id: u32, errno: i32, message: &str) {
        debug!("control: refusing a client: {message}");
        if let Some(c) = self.clients.get(&token) {
            let reply = Message::Error { errno, message: message.to_string() }.encode(request_id);
            let _ = unix_socket::send(c.sock.as_fd(), &reply, &[]);
        }
        self.close(token, true);
    }

    fn flush(&mut self, token: u64) {
        let Some(c) = self.clients.get_mut(&token) else { return };
        let want_out = match c.flush(Instant::now()) {
            Ok(Flushed::All) => false,
            Ok(Flushed::Blocked) => true,
            Err(e) => {
                debug!("control: send failed: {e}");
                self.close(token, true);
                return;
            }
        };
        if want_out != c.watching_out {
            let events = if want_out { CLIENT_EVENTS | epoll::OUT } else { CLIENT_EVENTS };
            match self.epoll.modify(c.sock.as_raw_fd(), token, events) {
                Ok(()) => c.watching_out = want_out,
                Err(e) => {
                    warn!("control: epoll_ctl on a client failed: {e}");
                    self.close(token, true);
                }
            }
        }
    }

    /// Closes a connection; with `detach`, an attached app's worker is told
    /// to reap it.
    fn close(&mut self, token: u64, detach: bool) {
        let Some(client) = self.clients.remove(&token) else { return };
        // Removed while the descriptor is still open (see `Epoll::delete`).
        let _ = self.epoll.delete(client.sock.as_raw_fd());
        if client.role == Role::Capture && !self.clients.values().any(|c| c.role == Role::Capture) {
            self.capture.set_enabled(false);
            info!(
                "control: packet capture stopped ({} frames dropped by the workers' queue, {} by slow clients)",
                self.capture.dropped(),
                self.capture_dropped
            );
        }
        if let Role::App(id) = client.role {
            self.apps.remove(&id);
            info!("app worker {} detached", id.0);
            if detach {
                if let Err(e) = self.workers[HOME_WORKER].send(WorkerCommand::Detach(id)) {
                    debug!("control: detach of app {}: {e}", id.0);
                }
            }
        }
    }
}
