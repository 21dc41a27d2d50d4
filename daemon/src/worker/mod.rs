//! A worker thread: one engine, one device queue, the apps it serves, and
//! adaptive polling (design §3.3).
//!
//! The control thread talks to a worker through a [`WorkerLink`]: commands
//! on a channel, each followed by a write to the worker's command eventfd so
//! a sleeping worker wakes. The worker reports back (apps it killed) through
//! a [`ReportSender`], which wakes the control thread the same way.
//!
//! The worker is generic over [`AppWork`], the app layer's interface
//! ([`crate::app::AppSet`] in the daemon), so the loop, its commands and its
//! sleeping can be tested on their own.

use std::io;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use sluice_shm::os::EventFd;
use sluice_stack::{Instant, Stack, StackConfig};

use crate::app::{AppId, AppSet, AppStats, NewApp, SessionRow};
use crate::config::PollMode;
use crate::device::Device;
use crate::stats::WorkerStats;

pub mod clock;
pub mod doorbells;
pub mod epoll;
pub mod poller;
mod run;

/// What a worker needs from the app layer; [`AppSet`]'s API.
pub trait AppWork {
    fn attach(&mut self, app: NewApp);
    fn detach(&mut self, id: AppId, stack: &mut Stack, now: Instant);
    fn poll(&mut self, stack: &mut Stack, now: Instant) -> usize;
    /// Announces the sleep to every app, re-checks their request rings and
    /// calls `block` only if none has work; whether it blocked.
    fn sleep_unless_work(&self, block: &mut dyn FnMut()) -> bool;
    /// Events wait for room in an app's event ring. The app frees room
    /// without a doorbell, so a sleeping worker bounds its sleep meanwhile.
    fn waiting_for_event_space(&self) -> bool {
        false
    }
    fn take_killed(&mut self) -> Vec<AppId>;
    fn stats(&self) -> Vec<AppStats>;
    fn sessions(&self, stack: &Stack) -> Vec<SessionRow>;
}

impl AppWork for AppSet {
    fn attach(&mut self, app: NewApp) {
        AppSet::attach(self, app)
    }
    fn detach(&mut self, id: AppId, stack: &mut Stack, now: Instant) {
        AppSet::detach(self, id, stack, now)
    }
    fn poll(&mut self, stack: &mut Stack, now: Instant) -> usize {
        AppSet::poll(self, stack, now)
    }
    fn sleep_unless_work(&self, block: &mut dyn FnMut()) -> bool {
        AppSet::sleep_unless_work(self, block)
    }
    fn waiting_for_event_space(&self) -> bool {
        AppSet::waiting_for_event_space(self)
    }
    fn take_killed(&mut self) -> Vec<AppId> {
        AppSet::take_killed(self)
    }
    fn stats(&self) -> Vec<AppStats> {
        AppSet::stats(self)
    }
    fn sessions(&self, stack: &Stack) -> Vec<SessionRow> {
        AppSet::sessions(self, stack)
    }
}

/// Commands from the control thread.
pub enum WorkerCommand {
    /// Serve a newly attached app worker.
    Attach(Box<NewApp>),
    /// The app worker's control connection closed: reap it.
    Detach(AppId),
    /// Reply with the worker's counters.
    Snapshot(mpsc::Sender<WorkerStats>),
    /// Reply with the worker's sessions.
    Sessions(mpsc::Sender<Vec<SessionRow>>),
    /// Detach every app (closing their connections as the kernel closes an
    /// exiting process's sockets), send what that produced, and exit.
    Shutdown,
}

/// Reports from a worker to the control thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerReport {
    /// The app layer killed this app (a protocol violation, or its doorbell
    /// could not be watched): close its control connection.
    Killed { worker: u32, app: AppId },
}

/// The sending side of the workers' reports: a channel plus an eventfd the
/// control thread watches.
#[derive(Clone, Debug)]
pub struct ReportSender {
    tx: mpsc::Sender<WorkerReport>,
    bell: Arc<EventFd>,
}

impl ReportSender {
    /// A report channel; the receiver and the eventfd go to the control thread.
    pub fn channel() -> io::Result<(ReportSender, mpsc::Receiver<WorkerReport>, Arc<EventFd>)> {
        let (tx, rx) = mpsc::channel();
        let bell = Arc::new(EventFd::new()?);
        Ok((ReportSender { tx, bell: Arc::clone(&bell) }, rx, bell))
    }

    pub fn send(&self, report: WorkerReport) {
        // A closed channel means the control thread is gone (shutting down):
        // nobody is left to act on the report.
        if self.tx.send(report).is_ok() {
            let _ = self.bell.notify();
        }
    }
}

/// The control thread's way to reach one worker. Cheap to clone.
#[derive(Clone, Debug)]
pub struct WorkerLink {
    index: u32,
    commands: mpsc::Sender<WorkerCommand>,
    bell: Arc<EventFd>,
}

fn gone(index: u32) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, format!("worker {index} has exited"))
}

impl WorkerLink {
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Queues `command` and wakes the worker.
    pub fn send(&self, command: WorkerCommand) -> io::Result<()> {
        self.commands.send(command).map_err(|_| gone(self.index))?;
        self.bell.notify()
    }

    /// The worker's counters, waiting at most `timeout` for its reply.
    pub fn snapshot(&self, timeout: Duration) -> io::Result<WorkerStats> {
        let (tx, rx) = mpsc::channel();
        self.send(WorkerCommand::Snapshot(tx))?;
        self.await_reply(rx, timeout)
    }

    /// The worker's sessions, waiting at most `timeout` for its reply.
    pub fn sessions(&self, timeout: Duration) -> io::Result<Vec<SessionRow>> {
        let (tx, rx) = mpsc::channel();
        self.send(WorkerCommand::Sessions(tx))?;
        self.await_reply(rx, timeout)
    }

    fn await_reply<T>(&self, rx: mpsc::Receiver<T>, timeout: Duration) -> io::Result<T> {
        rx.recv_timeout(timeout).map_err(|e| match e {
            mpsc::RecvTimeoutError::Timeout => {
                io::Error::new(io::ErrorKind::TimedOut, format!("worker {} did not answer in {timeout:?}", self.index))
            }
            mpsc::RecvTimeoutError::Disconnected => gone(self.index),
        })
    }
}

/// Everything a worker thread is started with.
pub struct WorkerSetup {
    pub index: u32,
    /// The engine's configuration; the worker creates the `Stack` on its own
    /// clock.
    pub stack: StackConfig,
    pub device: Box<dyn Device>,
    pub poll_mode: PollMode,
    pub idle_spin_us: u32,
    pub reports: ReportSender,
    /// Notified if the thread ends other than by `Shutdown` (an error or a
    /// panic), so the daemon does not keep running without it.
    pub failure: Arc<EventFd>,
    /// Where frames go while `sluice capture` runs.
    pub capture: Arc<crate::capture::CaptureTap>,
}

/// Notifies an eventfd if dropped while armed: a thread holds one so that
/// an error return and a panic's unwinding alike tell the daemon the thread
/// is gone. A thread that ends as asked disarms it.
#[derive(Debug)]
pub struct FailureGuard {
    bell: Arc<EventFd>,
    armed: bool,
}

impl FailureGuard {
    pub fn new(bell: Arc<EventFd>) -> FailureGuard {
        FailureGuard { bell, armed: true }
    }

    /// The thread ended normally.
    pub fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for FailureGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.bell.notify();
        }
    }
}

/// A running worker thread.
#[derive(Debug)]
pub struct WorkerHandle {
    link: WorkerLink,
    thread: Option<JoinHandle<()>>,
}

impl WorkerHandle {
    /// Starts a worker thread; `make_apps` builds its app layer on the thread.
    pub fn spawn<A, F>(setup: WorkerSetup, make_apps: F) -> io::Result<WorkerHandle>
    where
        A: AppWork + 'static,
        F: FnOnce() -> A + Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        let bell = Arc::new(EventFd::new()?);
        let link = WorkerLink { index: setup.index, commands: tx, bell: Arc::clone(&bell) };
        let parts = run::Parts::new(setup, rx, bell)?;
        let name = format!("sluice-worker-{}", link.index);
        let thread = std::thread::Builder::new().name(name).spawn(move || run::main(parts, make_apps))?;
        Ok(WorkerHandle { link, thread: Some(thread) })
    }

    pub fn link(&self) -> WorkerLink {
        self.link.clone()
    }

    /// Asks the worker to shut down and waits for it.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        let _ = self.link.send(WorkerCommand::Shutdown);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                log::error!("worker {} panicked", self.link.index);
            }
        }
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

#[cfg(test)]
mod tests;
