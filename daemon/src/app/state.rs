//! Per-app-worker state: its segments and eventfds, the daemon's ends of its
//! rings, its session table, and its counters.

use std::collections::HashMap;

use sluice_shm::layout::{self, Geometry};
use sluice_shm::os::EventFd;
use sluice_shm::{RequestConsumer, SessionHandle, SharedU32, Waker};
use sluice_stack::{ConsumerId, Instant, SocketId, Stack};

use super::cut_through::CutThrough;
use super::events::Outbox;
use super::listen_groups::ListenGroups;
use super::publish::Segments;
use super::sessions::SessionTable;
use super::violations::ViolationLog;
use super::{AppIdentity, AppSetConfig, NewApp};

/// What the work of one iteration needs besides the app: the engine, the
/// time, a private bounce buffer for copies between fifos and the engine
/// (the app's memory is never a Rust reference), and the settings.
pub(super) struct Ctx<'a> {
    pub stack: &'a mut Stack,
    pub now: Instant,
    pub bounce: &'a mut [u8],
    pub config: &'a AppSetConfig,
    /// Cut-through work for after the app's turn (it spans apps).
    pub cut: &'a mut CutThrough,
    /// The worker's listen groups (design §3.5), shared by its app workers.
    pub groups: &'a mut ListenGroups,
}

pub(super) struct App {
    pub identity: AppIdentity,
    /// The engine event queue of this app's sockets.
    pub consumer: ConsumerId,
    pub seg: Segments,
    pub geometry: Geometry,
    /// Daemon → app wake-ups, and app → daemon doorbell.
    pub wake: EventFd,
    pub doorbell: EventFd,
    app_sleep: Waker,
    /// This worker's sleep flag in the app's down segment.
    pub daemon_sleep: SharedU32,
    pub requests: RequestConsumer,
    pub outbox: Outbox,
    pub sessions: SessionTable,
    /// Engine socket → the session it backs.
    pub by_socket: HashMap<SocketId, SessionHandle>,
    /// Sum of the listeners' accept credit (ring headroom for `ACCEPTED`).
    pub credit_total: u64,
    /// Listeners that had credit and waiting connections but no free slot;
    /// served again once a slot is freed.
    pub starved: Vec<SessionHandle>,
    pub slot_freed: bool,
    /// Requests taken, and those refused.
    pub requests_taken: u64,
    pub bad_requests: u64,
    pub violations: ViolationLog,
    /// Killed for violations: its requests are no longer served.
    pub killed: bool,
    /// Its app worker is gone: only the slots still draining remain.
    pub detached: bool,
    /// Where the next search for an ephemeral listen port starts.
    pub port_cursor: u16,
    /// The app's process announced an `execve` (`FORKED` naming itself):
    /// if the app worker goes while this process lives, the process holds
    /// its listen groups for the new image (`holders.rs`).
    pub exec_holder: Option<std::sync::Arc<sluice_shm::process::PidFd>>,
}

impl App {
    /// The state of a newly attached app worker, or why it cannot be served
    /// (segments not laid out for this worker).
    pub fn new(app: NewApp, config: &AppSetConfig) -> Result<App, String> {
        let geometry = *app.down.geometry();
        if app.up.geometry() != &geometry {
            return Err("the two segments have different geometries".into());
        }
        let ring = app.up.request_ring(config.worker).ok_or("no request ring for this worker")?;
        let requests = RequestConsumer::new(ring.slots).map_err(|e| format!("request ring: {e}"))?;
        let outbox = Outbox::new(layout::event_ring(&app.down, &app.up)).map_err(|e| format!("event ring: {e}"))?;
        let daemon_sleep = app.down.daemon_sleep_flag(config.worker).ok_or("no sleep flag for this worker")?;
        let mut state = App {
            identity: app.identity,
            consumer: ConsumerId(app.identity.id.0),
            app_sleep: Waker::new(app.up.app_sleep_flag()),
            seg: Segments::new(app.down, app.up, app.down_fd, app.up_fd),
            geometry,
            wake: app.wake,
            doorbell: app.doorbell,
            daemon_sleep,
            requests,
            outbox,
            sessions: SessionTable::new(geometry.max_sessions),
            by_socket: HashMap::new(),
            credit_total: 0,
            starved: Vec::new(),
            slot_freed: false,
            requests_taken: 0,
            bad_requests: 0,
            violations: ViolationLog::default(),
            killed: false,
            detached: false,
            port_cursor: 0,
            exec_holder: None,
        };
        state.update_headroom();
        Ok(state)
    }

    /// Ring slots kept for events that cannot be merged: a reply for every
    /// request the rings can hold, and an `ACCEPTED` for every credit.
    pub fn update_headroom(&mut self) {
        let requests = u64::from(self.geometry.workers) * u64::from(self.geometry.request_cap);
        self.outbox.set_headroom(requests + self.credit_total);
    }

    /// Counts a violation; kills the app when it has too many.
    pub fn record_violation(&mut self, now: Instant, what: &dyn std::fmt::Display) {
        if self.violations.record(now, self.identity.id.0, what) && !self.killed {
            log::warn!("app worker {} (pid {}) killed for protocol violations", self.identity.id.0, self.identity.pid);
            self.killed = true;
        }
    }

    /// Wakes the app if events were published since the last wake and it
    /// sleeps (design §2.6: once per iteration, not per event).
    pub fn wake_if_published(&mut self) {
        if self.outbox.take_unannounced() {
            let wake = &self.wake;
            self.app_sleep.wake(|| {
                if let Err(e) = wake.notify() {
                    log::warn!("cannot wake app worker {}: {e}", self.identity.id.0);
                }
            });
        }
    }

    /// Whether the next iteration has work for this app without any new
    /// input (the sleep re-check): events that can go into the ring now, or
    /// listeners waiting for a slot that was freed.
    pub fn has_pending_work(&self) -> bool {
        self.outbox.can_flush() || (self.slot_freed && !self.starved.is_empty())
    }
}
