//! One non-blocking attempt at a read or a write on a session's fifo, with
//! the app side of the flow-control rules (`sluice_shm::protocol`), and the
//! conditions blocked readers and writers wait for.
//!
//! Kernel semantics kept: a read returns queued bytes first, then a pending
//! error once (`ECONNRESET`), then 0 (EOF) once the receive side is shut; a
//! write fails with the pending error once, then `EPIPE`, once the sending
//! side is shut or the connection is over (`tcp_sendmsg`); reading a socket
//! that is not connected is `ENOTCONN`, writing one `EPIPE`.

use std::sync::atomic::{fence, Ordering};

use sluice_shm::protocol::Request;
use sluice_shm::{FifoConsumer, FifoProducer, SessionHandle, Violation};

use crate::error::{Errno, Result};
use crate::session::{bits, Session, State};
use crate::slots::SlotWords;
use crate::table::Key;
use crate::Vcl;

/// Outcome of one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// Bytes moved (0: end of file, for reads).
    Done(usize),
    /// Nothing to read / no room: block or `EAGAIN`.
    WouldBlock,
}

fn violation(key: Key, v: Violation) -> Errno {
    log::error!("session {key:?}: the daemon broke a fifo index ({v}); reporting EIO");
    Errno::EIO
}

impl Vcl {
    /// Reads through `op` (a copy, peek or vectored read) from `s`'s RX fifo;
    /// `consume` is false for a peek, which leaves flow control alone.
    pub(crate) fn try_recv(
        &self,
        key: Key,
        s: &Session,
        op: &mut dyn FnMut(&mut FifoConsumer) -> Result<usize, Violation>,
        consume: bool,
    ) -> Result<Attempt> {
        let state = s.state();
        match state {
            State::Candidate | State::ListenPending | State::Listening => return Err(Errno::ENOTCONN),
            State::Connecting => return Ok(Attempt::WouldBlock),
            State::Connected | State::Failed => {}
        }
        let mut rx = s.rx.lock();
        if rx.life != key.gen {
            return Err(Errno::EBADF);
        }
        // Order: bits, then RX_BLOCKED, then the fifo. Bytes before a FIN are
        // in the fifo before PEER_CLOSED is raised, so a FIN seen here means
        // an empty fifo below is the end of the stream.
        let b = s.bits.load(Ordering::Acquire);
        let handle = s.daemon();
        let words = handle.and_then(|h| self.slots.words(h.index));
        let blocked = words.is_some_and(|w| w.rx_blocked.load(Ordering::Acquire) != 0);
        if let Some(fifo) = rx.fifo.as_mut() {
            let n = op(fifo).map_err(|v| violation(key, v))?;
            if n > 0 {
                if let (true, Some(h), Some(w)) = (consume, handle, words) {
                    self.after_read(s.worker(), h, w);
                }
                return Ok(Attempt::Done(n));
            }
        }
        drop(rx);
        if let Some(e) = s.take_errno() {
            return Err(Errno(e));
        }
        let dead = b & bits::DEAD != 0 || state == State::Failed;
        if dead || b & bits::SHUT_RD != 0 || (b & bits::PEER_CLOSED != 0 && !blocked) {
            return Ok(Attempt::Done(0));
        }
        if self.is_dead() {
            return Err(Errno::ENETDOWN);
        }
        Ok(Attempt::WouldBlock)
    }

    /// RX flow control after consuming bytes: if the daemon holds bytes back
    /// (`RX_BLOCKED`), tell it once (`RX_NOTE_SENT` 0 → 1) that there is room.
    fn after_read(&self, worker: u32, handle: SessionHandle, w: &SlotWords) {
        fence(Ordering::SeqCst);
        if w.rx_blocked.load(Ordering::Relaxed) != 0 && w.rx_note_sent.swap(1, Ordering::AcqRel) == 0 {
            self.send_or_log(worker, &Request::RxSpace { handle });
        }
    }

    /// Writes through `op` into `s`'s TX fifo.
    pub(crate) fn try_send(
        &self,
        key: Key,
        s: &Session,
        op: &mut dyn FnMut(&mut FifoProducer) -> Result<usize, Violation>,
    ) -> Result<Attempt> {
        let state = s.state();
        match state {
            State::Candidate | State::ListenPending | State::Listening => return Err(Errno::EPIPE),
            State::Connecting => return Ok(Attempt::WouldBlock),
            State::Connected | State::Failed => {}
        }
        let mut tx = s.tx.lock();
        if tx.life != key.gen {
            return Err(Errno::EBADF);
        }
        if let Some(e) = s.take_errno() {
            return Err(Errno(e));
        }
        let b = s.bits.load(Ordering::Acquire);
        if b & (bits::DEAD | bits::SHUT_WR) != 0 || state == State::Failed {
            return Err(Errno::EPIPE);
        }
        let (Some(fifo), Some(h)) = (tx.fifo.as_mut(), s.daemon()) else { return Err(Errno::EPIPE) };
        let Some(w) = self.slots.words(h.index) else { return Err(Errno::EPIPE) };
        loop {
            let n = op(fifo).map_err(|v| violation(key, v))?;
            if n > 0 {
                // The fence orders the tail store before the swap against the
                // daemon's clear-then-drain (protocol: TX).
                fence(Ordering::SeqCst);
                if w.tx_pending.swap(1, Ordering::AcqRel) == 0 {
                    self.send(s.worker(), &Request::TxReady { handle: h })?;
                }
                return Ok(Attempt::Done(n));
            }
            // Full: ask for a WRITABLE event, then re-check (protocol: TX space).
            w.want_tx_space.store(1, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            if fifo.free().map_err(|v| violation(key, v))? == 0 {
                if self.is_dead() {
                    return Err(Errno::ENETDOWN);
                }
                return Ok(Attempt::WouldBlock);
            }
        }
    }

    /// What a blocked reader waits for: something `try_recv` would not
    /// block on (bytes, EOF, an error, a state change, the end of the life).
    pub(crate) fn recv_ready(&self, key: Key, s: &Session) -> bool {
        if !self.table.is_live(key) {
            return true;
        }
        match s.state() {
            State::Connecting => false,
            State::Connected => self.readiness_of(s).readable,
            _ => true,
        }
    }

    /// What a blocked writer waits for: any TX room (not the quarter poll
    /// uses), an error or shutdown, a state change, the end of the life.
    pub(crate) fn send_ready(&self, key: Key, s: &Session) -> bool {
        if !self.table.is_live(key) {
            return true;
        }
        match s.state() {
            State::Connecting => false,
            State::Connected => {
                let room = match s.daemon().and_then(|h| self.slots.words(h.index)) {
                    Some(w) => w.tx_free() > 0,
                    None => true,
                };
                room || s.has_errno() || s.bits.load(Ordering::Acquire) & (bits::DEAD | bits::SHUT_WR) != 0
            }
            _ => true,
        }
    }
}
