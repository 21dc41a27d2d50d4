//! The control socket (design §2.1): attach, admin commands, app death.
//!
//! One thread serves the socket ([`server`]); [`ControlHandle`] starts and
//! stops it. [`listener`] owns the socket file, [`attach`] makes an app's
//! segments, [`admin`] answers `sluice stats`/`sessions`, and [`signals`]
//! is how the daemon's main thread waits for SIGINT/SIGTERM.

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;

use log::error;
use sluice_shm::os::EventFd;

use crate::worker::FailureGuard;

pub mod admin;
pub mod attach;
pub mod client;
pub mod listener;
pub mod server;
pub mod signals;

pub use server::ServerSetup;

/// The running control thread.
#[derive(Debug)]
pub struct ControlHandle {
    stop: Arc<EventFd>,
    thread: Option<JoinHandle<()>>,
}

impl ControlHandle {
    /// Starts the control thread. `failure` is notified if it ends on its
    /// own (an error or a panic).
    pub fn spawn(setup: ServerSetup, failure: Arc<EventFd>) -> io::Result<ControlHandle> {
        let stop = Arc::new(EventFd::new()?);
        let mut server = server::Server::new(setup, Arc::clone(&stop))?;
        let thread = std::thread::Builder::new().name("sluice-control".into()).spawn(move || {
            let guard = FailureGuard::new(failure);
            match server.run() {
                Ok(()) => guard.disarm(),
                Err(e) => error!("control thread stopped: {e}"),
            }
        })?;
        Ok(ControlHandle { stop, thread: Some(thread) })
    }

    /// Stops the thread: every control connection is closed and the socket
    /// file removed.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        let _ = self.stop.notify();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                error!("control thread panicked");
            }
        }
    }
}

impl Drop for ControlHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
