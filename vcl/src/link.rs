//! The app → daemon direction: request rings and doorbells (design §2.4).
//!
//! Any thread pushes on a ring, then wakes the ring's daemon worker if it
//! sleeps (`Waker::wake_read_only`: its flag is in the read-only down
//! segment). A full ring has no wake-up of its own in the layout, so the
//! pusher rings the doorbell and sleeps in the kernel with a growing timeout
//! (50 µs to 5 ms) until a slot frees, watching the control socket so that a
//! dead daemon ends the wait with `ENETDOWN`.

use std::os::fd::AsFd;
use std::time::Duration;

use sluice_shm::poll::{ppoll, PollFd, POLLIN};
use sluice_shm::protocol::Request;
use sluice_shm::{RequestProducer, RequestRingFull, Waker};

use crate::attach::Attachment;
use crate::error::{Errno, Result};
use crate::Vcl;

const FULL_BACKOFF_START: Duration = Duration::from_micros(50);
const FULL_BACKOFF_MAX: Duration = Duration::from_millis(5);

pub(crate) struct Link {
    rings: Vec<RequestProducer>,
    /// Daemon worker `w`'s sleep flag, read-only.
    workers: Vec<Waker>,
    /// Ring of session-less requests (`LISTEN`, `CONNECT`), §3.4.
    home: u32,
}

impl Link {
    pub(crate) fn new(att: &Attachment) -> Result<Link, String> {
        let mut rings = Vec::new();
        let mut workers = Vec::new();
        for w in 0..att.geometry.workers {
            let parts = att.up.request_ring(w).ok_or("request ring outside the geometry")?;
            rings.push(RequestProducer::new(parts).map_err(|e| format!("request ring {w}: {e}"))?);
            workers.push(Waker::new(att.down.daemon_sleep_flag(w).ok_or("sleep flag outside the geometry")?));
        }
        Ok(Link { rings, workers, home: att.app_worker_id % att.geometry.workers })
    }

    /// The ring session-less requests go to.
    pub(crate) fn home(&self) -> u32 {
        self.home
    }
}

impl Vcl {
    /// Pushes `req` on worker `worker`'s ring and wakes that worker.
    pub(crate) fn send(&self, worker: u32, req: &Request) -> Result<()> {
        if self.is_stale() {
            // A fork child's copy: the rings are not mapped here.
            return Err(Errno::ENOTCONN);
        }
        let w = worker as usize;
        let (Some(ring), Some(waker), Some(doorbell)) =
            (self.link.rings.get(w), self.link.workers.get(w), self.att.doorbells.get(w))
        else {
            log::error!("request for daemon worker {worker}, which does not exist");
            return Err(Errno::EINVAL);
        };
        let body = req.encode();
        let mut backoff = FULL_BACKOFF_START;
        while let Err(RequestRingFull) = ring.push(&body) {
            if self.is_dead() {
                return Err(Errno::ENETDOWN);
            }
            // The worker drains rings whenever it runs; make sure it does.
            let _ = doorbell.notify();
            let mut fds = [PollFd::new(self.att.control.as_fd(), POLLIN)];
            if let Ok(n) = ppoll(&mut fds, Some(backoff), None) {
                if n > 0 {
                    self.on_control_readable(fds[0].revents);
                }
            }
            backoff = (backoff * 2).min(FULL_BACKOFF_MAX);
        }
        waker.wake_read_only(|| {
            if let Err(e) = doorbell.notify() {
                log::error!("ringing daemon worker {worker}'s doorbell failed: {e}");
            }
        });
        Ok(())
    }

    /// Sends a request whose failure the caller cannot report (cleanup after
    /// a local close): logged.
    pub(crate) fn send_or_log(&self, worker: u32, req: &Request) {
        if let Err(e) = self.send(worker, req) {
            log::warn!("request {req:?} not sent: {e}");
        }
    }
}
