//! Attached app workers, as one daemon worker serves them (design §2–§3).
//!
//! An [`AppSet`] belongs to one worker thread and is driven by it: the
//! control thread attaches an app worker (segments mapped, eventfds made),
//! hands a [`NewApp`] to the worker, and the worker calls [`AppSet::poll`]
//! every iteration. `poll` drains each app's request ring (copy, then
//! [`sluice_shm::protocol::Request::decode`], then act on the engine), moves
//! bytes between the session fifos and the engine, turns engine events into
//! app events (coalescing into a backlog when the ring is full, so none is
//! ever lost), and wakes apps that sleep. The shared-memory rules are in
//! `sluice_shm::protocol`; nothing read from an app's segment is trusted.
//!
//! The files, one job each:
//! * `state` — one app worker's state (segments, rings, table, counters);
//! * `session` — what the daemon keeps per session; `sessions` — the slot
//!   table (free list, generations); `publish` — desc publication and
//!   retirement (generation bump, hole punch);
//! * `requests` — drain, decode, check and dispatch requests; `open` —
//!   listen, connect, accept onto credit; `close` — shutdown, close, abort,
//!   free; `options` — `SET_OPTION`;
//! * `pump` — bytes between fifos and the engine, flow-control words;
//! * `engine_events` — engine events to fifo work and app events;
//!   `events` — the event ring, reply FIFO and coalescing backlog;
//! * `cut_through` — connections between two apps of this worker, moved
//!   fifo to fifo without the engine (design §3.7);
//! * `listen_groups` — listeners on one address shared by app workers,
//!   handed out only to accepting members with credit; `group_accept` —
//!   moving connections to members and back; `holders` — forked children
//!   that keep a group alive (design §3.5, §4.5);
//! * `reaper` — closing a departed app's sessions; `ports` — the
//!   privileged-port rule; `violations` — counting and killing;
//!   `errno` — engine errors as errno; `report` — stats and session rows.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, Ordering};

use serde::Serialize;
use sluice_shm::layout::{DownSegment, UpSegment};
use sluice_shm::os::EventFd;
use sluice_shm::wake::{AWAKE, SLEEPING};
use sluice_shm::FlagWord;
use sluice_stack::{Instant, Stack};

mod close;
mod cut_through;
mod engine_events;
mod errno;
mod events;
mod group_accept;
mod holders;
mod listen_groups;
mod open;
mod options;
pub(crate) mod ports;
mod publish;
mod pump;
mod reaper;
mod report;
mod requests;
mod session;
mod sessions;
mod state;
mod violations;

use cut_through::CutThrough;
use listen_groups::ListenGroups;
use state::{App, Ctx};

/// Size of the private buffer every copy between a fifo and the engine
/// goes through.
const BOUNCE_BYTES: usize = 64 * 1024;

/// An attached app worker's id, unique for the daemon's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct AppId(pub u32);

/// Who an app worker is, from `SO_PEERCRED` at attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct AppIdentity {
    pub id: AppId,
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

/// Everything a worker needs to serve a newly attached app worker.
pub struct NewApp {
    pub identity: AppIdentity,
    /// The daemon's read-write views of the two segments (already
    /// initialised with `init`).
    pub down: DownSegment,
    pub up: UpSegment,
    /// The memfds behind them, for punching freed fifo pages
    /// (`fallocate(PUNCH_HOLE)`); `None` for heap segments in tests.
    pub down_fd: Option<OwnedFd>,
    pub up_fd: Option<OwnedFd>,
    /// Daemon → app wake-ups (the app sleeps on it).
    pub wake: EventFd,
    /// App → this worker wake-ups (in the worker's epoll).
    pub doorbell: EventFd,
}

/// Settings of an [`AppSet`].
#[derive(Clone, Debug)]
pub struct AppSetConfig {
    /// This worker's index (its request ring in every app's up segment).
    pub worker: u32,
    /// Ports below this need uid 0 or `CAP_NET_BIND_SERVICE` (the kernel's
    /// `net.ipv4.ip_unprivileged_port_start`).
    pub unprivileged_port_start: u16,
    /// Requests taken from one app's ring per `poll`.
    pub request_budget: usize,
    /// Connections to 127.0.0.0/8 are served as cut-through sessions
    /// (`--loopback on`); when off they fail with `ENETUNREACH`.
    pub loopback: bool,
}

/// Per-app counters for `sluice stats`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AppStats {
    pub id: u32,
    pub pid: i32,
    pub uid: u32,
    pub sessions: u64,
    pub listeners: u64,
    pub requests: u64,
    pub events: u64,
    /// Events waiting in the coalescing backlog because the ring was full.
    pub backlog: u64,
    pub backlog_high_water: u64,
    /// Requests refused (undecodable body, stale handle, bad argument).
    pub bad_requests: u64,
    /// Index words out of range (fifo heads/tails, accept counters).
    pub violations: u64,
}

/// One row of `sluice sessions` (like `ss -tin`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct SessionRow {
    pub app: u32,
    pub pid: i32,
    /// `LISTEN`, `SYN-SENT`, `ESTABLISHED`, ... as `ss` prints them.
    pub state: String,
    pub local: String,
    pub remote: String,
    pub cwnd: u32,
    pub ssthresh: u32,
    pub srtt_us: u32,
    pub rttvar_us: u32,
    pub rto_us: u32,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub retransmits: u64,
    /// Bytes waiting in the session's RX fifo (for the app) and TX fifo (for the engine).
    pub rx_fifo: u32,
    pub tx_fifo: u32,
    /// A cut-through session: the peer is another app on this daemon, the
    /// bytes never cross the NIC, and the TCP columns stay zero.
    pub cut_through: bool,
}

/// All app workers one daemon worker serves.
pub struct AppSet {
    config: AppSetConfig,
    /// Attached apps, and detached ones whose last slots still drain.
    apps: BTreeMap<AppId, App>,
    /// Apps killed since the last `take_killed`.
    killed: Vec<AppId>,
    bounce: Box<[u8]>,
    /// Cut-through work that spans apps (connects, resets, pair pumping).
    cut: CutThrough,
    /// Listen groups: every listener of these app workers is a member of one.
    groups: ListenGroups,
}

impl AppSet {
    pub fn new(config: AppSetConfig) -> AppSet {
        AppSet {
            config,
            apps: BTreeMap::new(),
            killed: Vec::new(),
            bounce: vec![0; BOUNCE_BYTES].into_boxed_slice(),
            cut: CutThrough::default(),
            groups: ListenGroups::default(),
        }
    }

    /// Starts serving an app worker. Segments this worker cannot serve (no
    /// request ring or sleep flag for it) are refused: the app is reported
    /// through [`take_killed`](Self::take_killed) at once.
    pub fn attach(&mut self, app: NewApp) {
        let id = app.identity.id;
        if self.apps.contains_key(&id) {
            // Ids are unique for the daemon's life: a caller bug. Reporting
            // the id as killed would take down the app already attached.
            log::error!("app worker {} attached twice; the second attach is dropped", id.0);
            return;
        }
        match App::new(app, &self.config) {
            Ok(state) => {
                log::info!("app worker {} (pid {}, uid {}) attached", id.0, state.identity.pid, state.identity.uid);
                self.apps.insert(id, state);
            }
            Err(why) => {
                log::error!("app worker {} cannot be served: {why}", id.0);
                self.killed.push(id);
            }
        }
    }

    /// The app worker is gone (its control connection closed, or it was
    /// killed): its connections are closed as the kernel closes an exiting
    /// process's sockets (RST when unread data is left, else FIN after what
    /// it had written), its listeners removed, its memory released.
    pub fn detach(&mut self, id: AppId, stack: &mut Stack, now: Instant) {
        let Some(app) = self.apps.get_mut(&id).filter(|a| !a.detached) else { return };
        let mut ctx = Ctx {
            stack,
            now,
            bounce: &mut self.bounce,
            config: &self.config,
            cut: &mut self.cut,
            groups: &mut self.groups,
        };
        app.reap(&mut ctx);
        log::info!("app worker {} detached, {} sessions still draining", id.0, app.sessions.len());
        // Its cut-through peers hear of the closes now.
        cut_through::run(&mut self.apps, &mut ctx);
        self.apps.retain(|_, app| !(app.detached && app.sessions.is_empty()));
        // Connections it was given but never took go to other members now.
        self.serve_groups(stack, now);
        for app in self.apps.values_mut() {
            app.outbox.flush(&mut app.sessions);
            app.wake_if_published();
        }
    }

    /// One iteration's work for every app; returns the amount done (0 when
    /// idle), which drives adaptive polling.
    pub fn poll(&mut self, stack: &mut Stack, now: Instant) -> usize {
        let mut work = 0;
        self.release_abandoned(stack, now);
        let mut ctx = Ctx {
            stack,
            now,
            bounce: &mut self.bounce,
            config: &self.config,
            cut: &mut self.cut,
            groups: &mut self.groups,
        };
        for (id, app) in self.apps.iter_mut() {
            if app.detached {
                // Only slots draining towards their close are left.
                work += app.collect_engine_events(&mut ctx);
                continue;
            }
            let was_killed = app.killed;
            work += app.outbox.flush(&mut app.sessions);
            if !app.killed {
                work += app.drain_requests(&mut ctx);
            }
            work += app.collect_engine_events(&mut ctx);
            work += app.retry_starved(&mut ctx);
            work += app.outbox.flush(&mut app.sessions);
            if app.outbox.take_new_clamps() > 0 {
                app.record_violation(now, &"event ring head out of range");
            }
            app.wake_if_published();
            if app.killed && !was_killed {
                self.killed.push(*id);
            }
        }
        work += cut_through::run(&mut self.apps, &mut ctx);
        work += self.serve_groups(stack, now);
        for app in self.apps.values_mut() {
            // ACCEPTED events the groups pushed.
            work += app.outbox.flush(&mut app.sessions);
            app.wake_if_published();
        }
        self.apps.retain(|_, app| !(app.detached && app.sessions.is_empty()));
        work
    }

    /// Doorbell descriptors to watch (one per app); changes after
    /// `attach`/`detach`.
    pub fn doorbell_fds(&self) -> Vec<(AppId, RawFd)> {
        self.attached().map(|(id, app)| (*id, app.doorbell.as_raw_fd())).collect()
    }

    /// The worker's sleep (design §2.6, daemon side): announces the sleep in
    /// every app's down segment, fences, re-checks every request ring, and
    /// calls `block` only if none has work. Returns whether it blocked.
    pub fn sleep_unless_work(&self, block: impl FnOnce()) -> bool {
        for (_, app) in self.attached() {
            app.daemon_sleep.store(SLEEPING);
        }
        // Dekker with the apps' request pushes: either a ring re-check below
        // sees the request, or the app sees SLEEPING and rings the doorbell.
        fence(Ordering::SeqCst);
        let busy = self.attached().any(|(_, app)| (!app.killed && app.requests.is_ready()) || app.has_pending_work());
        if !busy {
            block();
        }
        for (_, app) in self.attached() {
            app.daemon_sleep.store(AWAKE);
        }
        !busy
    }

    /// Whether some app has events waiting for room in its event ring. The
    /// app frees room without telling the daemon, so a worker that sleeps
    /// while this is true should bound its sleep (a few milliseconds) to
    /// hand them over soon after the app catches up.
    ///
    /// Cut-through connects waiting for a listener's credit count too: their
    /// `ETIMEDOUT` deadline has no engine timer behind it, so the same
    /// bounded sleep lets them fail on time.
    pub fn waiting_for_event_space(&self) -> bool {
        self.attached().any(|(_, app)| app.outbox.is_waiting()) || self.cut.has_pending()
    }

    /// Apps killed for protocol violations since the last call; the worker
    /// tells the control thread, which closes their control connections.
    pub fn take_killed(&mut self) -> Vec<AppId> {
        std::mem::take(&mut self.killed)
    }

    pub fn stats(&self) -> Vec<AppStats> {
        self.attached().map(|(_, app)| app.stats()).collect()
    }

    pub fn sessions(&self, stack: &Stack) -> Vec<SessionRow> {
        self.attached().flat_map(|(_, app)| app.rows(stack)).collect()
    }

    fn attached(&self) -> impl Iterator<Item = (&AppId, &App)> {
        self.apps.iter().filter(|(_, app)| !app.detached)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worker thread is spawned with its app set.
    #[test]
    fn an_app_set_can_move_to_its_worker_thread() {
        fn is_send<T: Send>() {}
        is_send::<AppSet>();
    }
}
