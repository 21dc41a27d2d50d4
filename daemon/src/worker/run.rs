//! The worker loop (design §3.3):
//!
//! ```text
//! loop {
//!   now = clock.now()                              // once per iteration
//!   receive a batch from the device → engine
//!   commands from the control thread (attach, detach, snapshots, shutdown)
//!   engine timers, if due
//!   apps.poll: requests, fifos ↔ engine, events, wake-ups
//!   engine → device sink; flush
//!   apps the app layer killed → control thread
//!   poller: poll again, or sleep in epoll_wait
//! }
//! ```
//!
//! Timers run before the apps so an event a timeout raised (a connection
//! that timed out) reaches its app in the same iteration.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::mpsc;
use std::sync::Arc;

use log::{debug, error, warn};
use sluice_shm::os::EventFd;
use sluice_stack::{Instant, Stack};

use super::clock::Clock;
use super::doorbells::{self, Doorbells};
use super::epoll::{self, Epoll, Ready};
use super::poller::{Poller, Step};
use super::{AppWork, FailureGuard, ReportSender, WorkerCommand, WorkerReport, WorkerSetup};
use crate::app::{AppId, NewApp};
use crate::capture::{CaptureSink, CaptureTap};
use crate::device::{Device, RX_BATCH};
use crate::stats::{format_mac, EngineStats, PollerCounters, WorkerStats};

/// Most receive batches taken per loop iteration, so timers, apps and
/// transmission still get their turn under a flood.
const RX_BATCHES_PER_ITERATION: usize = 32;

/// Longest sleep while events wait for room in an app's event ring.
const EVENT_SPACE_POLL_MS: i32 = 2;

/// Epoll token of the device's descriptor.
const DEVICE_TOKEN: u64 = 0;
/// Epoll token of the command eventfd.
const COMMAND_TOKEN: u64 = 1;

/// What the thread is started with, prepared on the caller's thread so
/// setup errors are returned by `spawn`.
pub(super) struct Parts {
    setup: WorkerSetup,
    commands: mpsc::Receiver<WorkerCommand>,
    bell: Arc<EventFd>,
    epoll: Epoll,
}

impl Parts {
    pub(super) fn new(
        setup: WorkerSetup,
        commands: mpsc::Receiver<WorkerCommand>,
        bell: Arc<EventFd>,
    ) -> io::Result<Parts> {
        let epoll = Epoll::new(64)?;
        epoll.add(bell.as_raw_fd(), COMMAND_TOKEN, epoll::IN)?;
        if let Some(fd) = setup.device.wait_fd() {
            epoll.add(fd, DEVICE_TOKEN, epoll::IN)?;
        }
        Ok(Parts { setup, commands, bell, epoll })
    }
}

/// The thread's body.
pub(super) fn main<A: AppWork, F: FnOnce() -> A>(parts: Parts, make_apps: F) {
    let guard = FailureGuard::new(Arc::clone(&parts.setup.failure));
    let index = parts.setup.index;
    let mut worker = Worker::new(parts, make_apps());
    match worker.run() {
        Ok(()) => guard.disarm(),
        Err(e) => error!("worker {index} stopped: {e}"),
    }
}

struct Worker<A> {
    index: u32,
    clock: Clock,
    stack: Stack,
    device: Box<dyn Device>,
    apps: A,
    commands: mpsc::Receiver<WorkerCommand>,
    bell: Arc<EventFd>,
    epoll: Epoll,
    doorbells: Doorbells,
    poller: Poller,
    counters: PollerCounters,
    reports: ReportSender,
    capture: Arc<CaptureTap>,
    /// What the last `epoll_wait` reported (kept to avoid allocating per sleep).
    fired: Vec<Ready>,
}

impl<A: AppWork> Worker<A> {
    fn new(parts: Parts, apps: A) -> Worker<A> {
        let Parts { setup, commands, bell, epoll } = parts;
        let clock = Clock::new();
        Worker {
            index: setup.index,
            stack: Stack::new(setup.stack, clock.now()),
            clock,
            device: setup.device,
            apps,
            commands,
            bell,
            epoll,
            doorbells: Doorbells::default(),
            poller: Poller::new(setup.poll_mode, setup.idle_spin_us),
            counters: PollerCounters::default(),
            reports: setup.reports,
            capture: setup.capture,
            fired: Vec::new(),
        }
    }

    fn run(&mut self) -> io::Result<()> {
        loop {
            let now = self.clock.now();
            let mut work = self.receive(now);
            match self.handle_commands(now) {
                Some(n) => work += n,
                None => {
                    self.shutdown(now);
                    return Ok(());
                }
            }
            if self.stack.poll_timeout().is_some_and(|deadline| deadline <= now) {
                self.stack.handle_timeout(now);
                work += 1;
            }
            work += self.apps.poll(&mut self.stack, now);
            work += self.transmit(now);
            self.reap_killed();

            self.counters.iterations += 1;
            if work > 0 {
                self.counters.busy_iterations += 1;
            }
            let deadline = self.stack.poll_timeout();
            match self.poller.after_iteration(work, now, deadline, self.stack.wants_transmit()) {
                Step::Poll => {
                    if work == 0 {
                        std::hint::spin_loop();
                    }
                }
                Step::Sleep { timeout_ms } => self.sleep(timeout_ms)?,
            }
        }
    }

    /// Frames from the device into the engine, batch by batch until the
    /// device has no more or [`RX_BATCHES_PER_ITERATION`] batches came;
    /// frames received. One transmit can send thousands of segments whose
    /// ACKs all come back before the next iteration: taking a single batch
    /// per iteration let the AF_XDP RX ring overflow (measured: 15% of
    /// received frames dropped at 100 concurrent downloads).
    fn receive(&mut self, now: Instant) -> usize {
        let stack = &mut self.stack;
        let capture = &*self.capture;
        let mut total = 0;
        for _ in 0..RX_BATCHES_PER_ITERATION {
            let mut deliver = |frames: &[&[u8]]| {
                if capture.enabled() {
                    frames.iter().for_each(|f| capture.record(f));
                }
                stack.handle_frames(now, frames)
            };
            match self.device.receive(RX_BATCH, &mut deliver) {
                Ok(n) => {
                    total += n;
                    if n < RX_BATCH {
                        break;
                    }
                }
                Err(e) => {
                    self.device_error("receive", &e);
                    break;
                }
            }
        }
        total
    }

    /// Everything due from the engine into the device, then sent; frames emitted.
    fn transmit(&mut self, now: Instant) -> usize {
        let frames = if self.capture.enabled() {
            let mut sink = CaptureSink { inner: self.device.sink(), tap: &self.capture };
            self.stack.poll_transmit(now, &mut sink)
        } else {
            self.stack.poll_transmit(now, self.device.sink())
        };
        if let Err(e) = self.device.flush() {
            self.device_error("flush", &e);
        }
        frames
    }

    /// Logs device errors at 1, 2, 4, 8, ... occurrences, so a device that
    /// fails persistently (an interface gone down) does not flood the log.
    fn device_error(&mut self, what: &str, e: &io::Error) {
        self.counters.device_errors += 1;
        let n = self.counters.device_errors;
        if n.is_power_of_two() {
            warn!("worker {}: device {what} failed: {e} ({n} device errors so far)", self.index);
        }
    }

    /// Runs every queued command; the number run, or `None` to shut down.
    fn handle_commands(&mut self, now: Instant) -> Option<usize> {
        let mut n = 0;
        loop {
            let command = match self.commands.try_recv() {
                Ok(command) => command,
                Err(mpsc::TryRecvError::Empty) => return Some(n),
                // Every link is gone: nobody can command this worker any more.
                Err(mpsc::TryRecvError::Disconnected) => return None,
            };
            n += 1;
            match command {
                WorkerCommand::Attach(app) => self.attach(*app),
                WorkerCommand::Detach(id) => self.detach(id, now),
                WorkerCommand::Snapshot(reply) => {
                    let _ = reply.send(self.snapshot());
                }
                WorkerCommand::Sessions(reply) => {
                    let _ = reply.send(self.apps.sessions(&self.stack));
                }
                WorkerCommand::Shutdown => return None,
            }
        }
    }

    fn attach(&mut self, app: NewApp) {
        let id = app.identity.id;
        if let Err(e) = self.doorbells.add(&self.epoll, id, app.doorbell.as_fd()) {
            // Without its doorbell in the epoll set the worker would not wake
            // for the app's requests: refuse the app rather than serve it late.
            warn!("worker {}: cannot watch app {}'s doorbell: {e}; dropping the app", self.index, id.0);
            self.reports.send(WorkerReport::Killed { worker: self.index, app: id });
            return;
        }
        debug!("worker {}: app {} (pid {}) attached", self.index, id.0, app.identity.pid);
        self.apps.attach(app);
    }

    fn detach(&mut self, id: AppId, now: Instant) {
        // Only apps this worker serves: one the app layer killed (or that was
        // refused at attach) is already gone.
        if self.doorbells.remove(&self.epoll, id) {
            debug!("worker {}: app {} detached", self.index, id.0);
            self.apps.detach(id, &mut self.stack, now);
        }
    }

    fn reap_killed(&mut self) {
        for id in self.apps.take_killed() {
            self.doorbells.remove(&self.epoll, id);
            warn!("worker {}: app {} killed for a protocol violation", self.index, id.0);
            self.reports.send(WorkerReport::Killed { worker: self.index, app: id });
        }
    }

    fn snapshot(&self) -> WorkerStats {
        WorkerStats {
            worker: self.index,
            mac: format_mac(self.device.mac()),
            device: self.device.info(),
            device_counters: self.device.counters(),
            engine: EngineStats::new(self.stack.stats(), self.stack.connection_count()),
            poller: self.counters,
            apps: self.apps.stats(),
        }
    }

    /// Sleeps in `epoll_wait` unless the app layer's final re-check finds
    /// work (design §2.6), then resets every eventfd that fired.
    fn sleep(&mut self, timeout_ms: i32) -> io::Result<()> {
        // Events held back for ring room go out as soon as the app has read:
        // look again every couple of milliseconds rather than at the next timer.
        let timeout_ms = match self.apps.waiting_for_event_space() {
            true if !(0..=EVENT_SPACE_POLL_MS).contains(&timeout_ms) => EVENT_SPACE_POLL_MS,
            _ => timeout_ms,
        };
        let epoll = &mut self.epoll;
        let fired = &mut self.fired;
        let mut result = Ok(());
        fired.clear();
        let blocked = self.apps.sleep_unless_work(&mut || match epoll.wait(timeout_ms) {
            Ok(ready) => fired.extend(ready),
            Err(e) => result = Err(e),
        });
        result?;
        self.poller.woke();
        if !blocked {
            self.counters.sleeps_skipped += 1;
            return Ok(());
        }
        self.counters.sleeps += 1;
        if !self.fired.is_empty() {
            self.counters.wakeups += 1;
        }
        for ready in &self.fired {
            match ready.token {
                // Level-triggered: the next receive empties it.
                DEVICE_TOKEN => {}
                COMMAND_TOKEN => {
                    // Commands sent after this drain notify again, and the
                    // next iteration's try_recv sees every earlier one.
                    let _ = self.bell.drain();
                }
                token => {
                    if let Some(id) = doorbells::app_of(token) {
                        self.doorbells.drain(id);
                    }
                }
            }
        }
        Ok(())
    }

    /// Detaches every app and sends what their closing produced.
    fn shutdown(&mut self, now: Instant) {
        for id in self.doorbells.apps() {
            self.detach(id, now);
        }
        self.transmit(now);
        debug!("worker {} stopped", self.index);
    }
}
