//! A session's life: binding it to the daemon handle that `LISTEN`,
//! `CONNECT` or `ACCEPTED` gave it, and ending it.
//!
//! Binding and ending both hold the `rx` then `tx` tokens, so exactly one of
//! them sees the other: a session closed before its handle arrived is not
//! bound (the caller releases the handle), and a bound session's close sees
//! the handle and sends `CLOSE`. After a close nothing here writes the slot's
//! app words again, which is what lets the daemon reuse the slot.

use std::sync::atomic::Ordering;

use sluice_shm::protocol::Request;
use sluice_shm::{FifoConsumer, FifoProducer, SessionHandle};

use crate::error::{Errno, Result};
use crate::replies::Purpose;
use crate::session::Session;
use crate::table::Key;
use crate::Vcl;

/// What ending a life leaves to release.
pub(crate) struct Ended {
    pub handle: Option<SessionHandle>,
    pub worker: u32,
    /// A listener's accepted connections the user never took.
    pub queued: Vec<Key>,
}

impl Vcl {
    /// Binds `h` to `key`'s session: fifo halves, daemon handle, slot owner,
    /// then the options set while there was no handle. `false` when the life
    /// ended first or the handle names no slot of the geometry.
    pub(crate) fn bind(&self, key: Key, s: &Session, h: SessionHandle) -> bool {
        let Some(w) = self.slots.words(h.index) else {
            log::error!("daemon handle {h:?} is outside the segment geometry");
            return false;
        };
        {
            let mut rx = s.rx.lock();
            let mut tx = s.tx.lock();
            if rx.life != key.gen || tx.life != key.gen {
                return false;
            }
            // Both halves start at index 0 in every life (the daemon zeroes
            // the slot's words before publishing it).
            let (Ok(c), Ok(p)) = (FifoConsumer::new(w.rx.clone(), 0), FifoProducer::new(w.tx.clone(), 0)) else {
                log::error!("daemon slot {} has fifos of an invalid size", h.index);
                return false;
            };
            rx.fifo = Some(c);
            tx.fifo = Some(p);
            s.set_worker(self.link.home());
            s.set_daemon(Some(h));
            self.slots.set_owner(h, key);
        }
        // Options set before the handle existed, in order; later ones are
        // sent by `set_option` itself under the same lock, after these.
        let mut setup = s.setup.lock();
        for (option, value) in std::mem::take(&mut setup.options) {
            let req_id = self.replies.register(Purpose::Discard);
            self.send_or_log(s.worker(), &Request::SetOption { req_id, handle: h, option, value });
        }
        true
    }

    /// Ends `key`'s life: later uses are `EBADF`, threads blocked on it wake,
    /// pollers drop it. The slot becomes allocatable at the next drain.
    /// Returns what the caller must release in the daemon; `EBADF` if the
    /// life had already ended.
    pub(crate) fn end_life(&self, key: Key) -> Result<Ended> {
        let s = self.table.retire(key).ok_or(Errno::EBADF)?;
        let handle = {
            let mut rx = s.rx.lock();
            let mut tx = s.tx.lock();
            rx.life = 0;
            rx.fifo = None;
            tx.life = 0;
            tx.fifo = None;
            let h = s.daemon();
            s.set_daemon(None);
            h
        };
        let queued = {
            let mut q = s.accept.lock();
            q.life = 0;
            s.queued.store(0, Ordering::Release);
            std::mem::take(&mut q.queue).into_iter().collect()
        };
        if let Some(h) = handle {
            self.slots.clear_owner(h, key);
        }
        let worker = s.worker();
        s.changed(key);
        s.watchers.lock().clear();
        self.released.lock().push(key);
        Ok(Ended { handle, worker, queued })
    }

    /// Closes `key` (design §4.2, Close): ends the life and releases the
    /// daemon session, `CLOSE` for a connection or listener (the daemon sends
    /// what the TX fifo holds, then FIN), `ABORT` when `abort`.
    ///
    /// A listener's never-accepted connections only end their lives here:
    /// the daemon counts them pushed but not taken, and at the listener's
    /// `CLOSE` hands them to another member of its listen group (a forked
    /// server's processes share one kernel socket, whose queue survives one
    /// process's close: nginx's old workers at a reload) or, if it was the
    /// last member, resets them as the kernel resets a closed listener's
    /// queue. Aborting them from here would reset them in both cases.
    pub(crate) fn close_key(&self, key: Key, abort: bool) -> Result<()> {
        if self.is_stale() {
            // A fork child's copy of its parent's socket: the session is the
            // parent's, and the child's copy of the table is left alone.
            return Ok(());
        }
        if self.table.get(key).is_some_and(|s| s.state() == crate::session::State::Listening) {
            crate::fork::listener_closed();
        }
        let ended = self.end_life(key)?;
        for conn in ended.queued {
            let _ = self.end_life(conn);
        }
        if let Some(handle) = ended.handle {
            let req = if abort { Request::Abort { handle } } else { Request::Close { handle } };
            self.send(ended.worker, &req)?;
        }
        Ok(())
    }

    /// Ends a life nobody will use (an accepted connection that lost its
    /// listener) and resets its connection.
    pub(crate) fn discard(&self, key: Key) {
        if let Ok(ended) = self.end_life(key) {
            if let Some(handle) = ended.handle {
                self.send_or_log(ended.worker, &Request::Abort { handle });
            }
        }
    }
}
