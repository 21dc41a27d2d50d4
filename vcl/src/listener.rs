//! Listener side of accepting (design §3.5, protocol: Accepts).
//!
//! The daemon pushes `ACCEPTED` only to a listener that said it accepts
//! (`SET_ACCEPTING`, sent the first time a thread waits on it), and only
//! while `ACCEPT_PUSHED − ACCEPT_TAKEN` is below the listener's credit. The
//! drain queues pushed connections locally; taking one bumps `ACCEPT_TAKEN`
//! and, when that take may have been what the daemon waited for, sends
//! `RX_SPACE` on the listener so it pushes again.

use std::sync::atomic::Ordering;

use sluice_shm::protocol::Request;

use crate::error::{Errno, Result};
use crate::session::{Session, State};
use crate::table::Key;
use crate::Vcl;

impl Vcl {
    /// Sends `SET_ACCEPTING` once per listener.
    pub(crate) fn ensure_accepting(&self, s: &Session) -> Result<()> {
        if s.state() != State::Listening || s.accepting_sent.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        match s.daemon() {
            Some(handle) => self.send(s.worker(), &Request::SetAccepting { handle, accepting: true }),
            None => Ok(()),
        }
    }

    /// Takes the oldest queued connection of listener `key`.
    pub(crate) fn pop_accepted(&self, key: Key, s: &Session) -> Result<Option<Key>> {
        let mut q = s.accept.lock();
        if q.life != key.gen {
            return Err(Errno::EBADF);
        }
        let Some(conn) = q.queue.pop_front() else { return Ok(None) };
        s.queued.fetch_sub(1, Ordering::AcqRel);
        if let Some((h, w)) = s.daemon().and_then(|h| Some((h, self.slots.words(h.index)?))) {
            // Only this thread (holding the queue lock) writes ACCEPT_TAKEN.
            let taken = w.accept_taken.load(Ordering::Relaxed).wrapping_add(1);
            w.accept_taken.store(taken, Ordering::Release);
            let pushed = w.accept_pushed.load(Ordering::Acquire);
            let outstanding_before = pushed.wrapping_sub(taken).wrapping_add(1);
            // The daemon stops pushing when the credit is used up. That was
            // possibly the case if this take emptied what it pushed (its
            // credit may be lower than the backlog asked for), or if the
            // backlog's worth was outstanding.
            if pushed == taken || outstanding_before >= q.backlog.max(1) {
                self.send(s.worker(), &Request::RxSpace { handle: h })?;
            }
        }
        Ok(Some(conn))
    }
}
