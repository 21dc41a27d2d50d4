//! Bytes between a session's fifos and its engine connection, with the
//! flow-control words of `sluice_shm::protocol`.
//!
//! Every copy goes through the daemon's private bounce buffer: the fifo
//! halves copy out of (or into) shared memory with raw copies, and the
//! engine only ever sees private bytes. Fifo indices the app wrote are
//! checked by the fifo halves; a bad one is a [`Violation`] that aborts the
//! session (see `close`).

use std::sync::atomic::{fence, Ordering};

use sluice_shm::layout::{app_words, desc};
use sluice_shm::protocol::ready;
use sluice_shm::{SessionHandle, Violation};
use sluice_stack::{ConnId, Error, Stack};

use super::session::{Fin, FinishAction};
use super::state::{App, Ctx};

/// Whether the engine holds received bytes the app has not been given.
pub(super) fn engine_has_data(stack: &Stack, conn: ConnId) -> bool {
    matches!(stack.tcp_peek(conn, &mut [0u8; 1]), Ok(1))
}

impl App {
    /// Moves received bytes from the engine into the RX fifo. Returns the
    /// bits to report: `READABLE` when bytes were added, and `PEER_CLOSED`
    /// once the FIN is reached with every byte before it in the fifo.
    pub(super) fn receive(&mut self, ctx: &mut Ctx<'_>, handle: SessionHandle) -> u16 {
        match self.fill_rx(ctx, handle) {
            Ok(bits) => bits,
            Err(violation) => {
                self.abort_for_violation(ctx, handle, violation);
                0
            }
        }
    }

    fn fill_rx(&mut self, ctx: &mut Ctx<'_>, handle: SessionHandle) -> Result<u16, Violation> {
        let Some(session) = self.sessions.get_mut(handle) else { return Ok(0) };
        let blocked_word = session.desc.shared(desc::RX_BLOCKED);
        let Some(conn) = session.conn_mut().filter(|c| !c.released) else { return Ok(0) };
        let mut added = 0usize;
        loop {
            let free = conn.rx.free()? as usize;
            if free == 0 {
                if !engine_has_data(ctx.stack, conn.id) {
                    break;
                }
                // Dekker with the app's read (protocol doc, RX): announce
                // the block, fence, and look again; either we see the space
                // the app freed, or the app sees RX_BLOCKED and sends RX_SPACE.
                conn.rx_blocked = true;
                blocked_word.store(1, Ordering::Relaxed);
                fence(Ordering::SeqCst);
                if conn.rx.free()? == 0 {
                    break;
                }
                conn.rx_blocked = false;
                blocked_word.store(0, Ordering::Relaxed);
                continue;
            }
            let want = free.min(ctx.bounce.len());
            match ctx.stack.tcp_recv(conn.id, &mut ctx.bounce[..want]) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    // The space only grows until we write, so all of it fits.
                    let written = conn.rx.write(&ctx.bounce[..n])?;
                    debug_assert_eq!(written, n);
                    added += written;
                }
            }
        }
        let mut bits = if added > 0 { ready::READABLE } else { 0 };
        if conn.fin == Fin::Pending && !engine_has_data(ctx.stack, conn.id) {
            conn.fin = Fin::Delivered;
            bits |= ready::PEER_CLOSED | ready::READABLE;
        }
        Ok(bits)
    }

    /// `RX_SPACE` on a connection: the app read after seeing `RX_BLOCKED`.
    /// Both words are cleared before the refill, so a refill that blocks
    /// again gets a fresh `RX_SPACE`.
    pub(super) fn rx_space(&mut self, ctx: &mut Ctx<'_>, handle: SessionHandle) -> u16 {
        if let Some(bits) = self.cut_rx_space(ctx, handle) {
            return bits;
        }
        let Some(session) = self.sessions.get_mut(handle) else { return 0 };
        session.words.word(app_words::RX_NOTE_SENT).store(0, Ordering::Relaxed);
        session.desc.word(desc::RX_BLOCKED).store(0, Ordering::Relaxed);
        let mut fin_delivered = false;
        if let Some(conn) = session.conn_mut() {
            conn.rx_blocked = false;
            fin_delivered = conn.fin == Fin::Delivered;
        }
        let bits = self.receive(ctx, handle);
        // The app reports end of stream only once RX_BLOCKED is clear
        // (protocol doc, RX). A refill that ran between the block and this
        // RX_SPACE may have delivered the FIN while the word was still set:
        // the app saw PEER_CLOSED, held the EOF back, and hears of nothing
        // else unless it is told again now that the word is clear.
        if fin_delivered {
            bits | ready::READABLE | ready::PEER_CLOSED
        } else {
            bits
        }
    }

    /// `TX_READY`: clears `TX_PENDING` first (so bytes written after the
    /// drain bring a new `TX_READY`), then drains.
    pub(super) fn tx_ready(&mut self, ctx: &mut Ctx<'_>, handle: SessionHandle) -> u16 {
        if let Some(bits) = self.cut_tx_ready(ctx, handle) {
            return bits;
        }
        let Some(session) = self.sessions.get(handle) else { return 0 };
        // A swap orders this before the fifo's tail load below, against the
        // app's tail store and its own swap (a plain store could be
        // reordered after the load and strand the app's bytes).
        session.words.word(app_words::TX_PENDING).swap(0, Ordering::SeqCst);
        self.transmit(ctx, handle)
    }

    /// Moves TX fifo bytes into the engine, then carries out a pending
    /// shutdown or close once its bytes are in. Returns `WRITABLE` when the
    /// app was waiting for fifo space.
    pub(super) fn transmit(&mut self, ctx: &mut Ctx<'_>, handle: SessionHandle) -> u16 {
        match self.drain_tx(ctx, handle) {
            Ok(bits) => {
                self.finish_if_drained(ctx, handle);
                bits
            }
            Err(violation) => {
                self.abort_for_violation(ctx, handle, violation);
                0
            }
        }
    }

    fn drain_tx(&mut self, ctx: &mut Ctx<'_>, handle: SessionHandle) -> Result<u16, Violation> {
        let Some(session) = self.sessions.get_mut(handle) else { return Ok(0) };
        let want_space = session.words.shared(app_words::WANT_TX_SPACE);
        let Some(conn) = session.conn_mut() else { return Ok(0) };
        let mut moved = 0usize;
        conn.tx_waiting = false;
        loop {
            let limit = conn.finish.map_or(ctx.bounce.len(), |f| (f.remaining as usize).min(ctx.bounce.len()));
            if limit == 0 {
                break;
            }
            let n = conn.tx.peek(&mut ctx.bounce[..limit])?;
            if n == 0 {
                break;
            }
            let taken = match ctx.stack.tcp_send(conn.id, &ctx.bounce[..n]) {
                Ok(taken) => taken,
                Err(Error::WouldBlock) => 0,
                // The bytes can never be sent (shut down, reset, closed): a
                // write(2) would have failed; they are dropped so the fifo
                // does not wedge, and the app hears of the failure through
                // the connection's events.
                Err(_) => n,
            };
            conn.tx.consume(taken);
            moved += taken;
            if let Some(finish) = conn.finish.as_mut() {
                finish.remaining -= taken as u32;
            }
            if taken < n {
                // The engine reports WRITABLE when it has room again.
                conn.tx_waiting = true;
                break;
            }
        }
        if moved == 0 {
            return Ok(0);
        }
        // Dekker with the app's full-fifo check (protocol doc, TX space).
        fence(Ordering::SeqCst);
        Ok(if want_space.swap(0, Ordering::Relaxed) == 1 { ready::WRITABLE } else { 0 })
    }

    /// Carries out a shutdown or close whose bytes are all in the engine.
    fn finish_if_drained(&mut self, ctx: &mut Ctx<'_>, handle: SessionHandle) {
        let Some(conn) = self.sessions.get_mut(handle).and_then(|s| s.conn_mut()) else { return };
        let Some(finish) = conn.finish.filter(|f| f.remaining == 0) else { return };
        conn.finish = None;
        let id = conn.id;
        match finish.then {
            FinishAction::ShutdownWrite => {
                conn.write_shut = true;
                if let Err(e) = ctx.stack.tcp_shutdown(ctx.now, id, sluice_stack::Shutdown::Write) {
                    log::debug!("shutdown of {id:?}: {e}");
                }
            }
            FinishAction::Close => {
                // The engine finishes the connection as an orphan (FIN
                // after the data, or RST if bytes arrived unread).
                if let Err(e) = ctx.stack.tcp_close(ctx.now, id) {
                    log::debug!("close of {id:?}: {e}");
                }
                self.free(handle);
            }
        }
    }
}
