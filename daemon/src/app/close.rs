//! Ending sessions: shutdown, close, abort, listener close, and freeing
//! slots. The kernel's `close(2)` is the reference: no byte the app wrote
//! is lost (the TX fifo drains into the engine before FIN), and closing
//! with unread received data resets the connection (RFC 2525 §2.17).

use sluice_shm::protocol::ShutdownHow;
use sluice_shm::{SessionHandle, Violation};
use sluice_stack::Shutdown;

use super::group_accept::reset_group;
use super::listen_groups::Leave;
use super::pump::engine_has_data;
use super::session::{Finish, FinishAction, Role};
use super::state::{App, Ctx};

impl App {
    /// `SHUTDOWN`: reading stops at once; writing ends with FIN after every
    /// byte already in the TX fifo. Returns the bits the drain raised.
    pub(super) fn shutdown(&mut self, ctx: &mut Ctx<'_>, handle: SessionHandle, how: ShutdownHow) -> u16 {
        if let Some(bits) = self.cut_shutdown(ctx, handle, how) {
            return bits;
        }
        let Some(conn) = self.sessions.get_mut(handle).and_then(|s| s.conn_mut()) else { return 0 };
        let id = conn.id;
        if matches!(how, ShutdownHow::Read | ShutdownHow::Both) {
            if let Err(e) = ctx.stack.tcp_shutdown(ctx.now, id, Shutdown::Read) {
                log::debug!("shutdown(read) of {id:?}: {e}");
            }
        }
        if matches!(how, ShutdownHow::Write | ShutdownHow::Both) && !conn.write_shut && conn.finish.is_none() {
            match conn.tx.readable() {
                Ok(remaining) => conn.finish = Some(Finish { remaining, then: FinishAction::ShutdownWrite }),
                Err(violation) => {
                    self.abort_for_violation(ctx, handle, violation);
                    return 0;
                }
            }
            return self.transmit(ctx, handle);
        }
        0
    }

    /// `CLOSE` of a connection: the app gives up the handle. Unread bytes
    /// (in the RX fifo or the engine) or `SO_LINGER` 0 reset the connection
    /// at once; otherwise the slot lives until the TX fifo has drained,
    /// then the engine closes it (FIN) and the slot is freed.
    pub(super) fn close(&mut self, ctx: &mut Ctx<'_>, handle: SessionHandle) {
        if self.cut_close(ctx, handle) {
            return;
        }
        let Some(conn) = self.sessions.get_mut(handle).and_then(|s| s.conn_mut()) else { return };
        let id = conn.id;
        let unread = match conn.rx.free() {
            Ok(free) => free < conn.rx.size() || engine_has_data(ctx.stack, id),
            Err(violation) => return self.abort_for_violation(ctx, handle, violation),
        };
        let linger_zero = ctx.stack.tcp_config(id).is_ok_and(|c| c.linger_zero);
        if unread || linger_zero {
            return self.abort(ctx, handle);
        }
        match conn.tx.readable() {
            Ok(remaining) => {
                conn.released = true;
                conn.finish = Some(Finish { remaining, then: FinishAction::Close });
            }
            Err(violation) => return self.abort_for_violation(ctx, handle, violation),
        }
        self.outbox_forget(handle);
        self.transmit(ctx, handle);
    }

    /// `ABORT` of a connection: RST, and the slot is free at once.
    pub(super) fn abort(&mut self, ctx: &mut Ctx<'_>, handle: SessionHandle) {
        if self.cut_abort(ctx, handle) {
            return;
        }
        let Some(conn) = self.sessions.get_mut(handle).and_then(|s| s.conn_mut()) else { return };
        let id = conn.id;
        if let Err(e) = ctx.stack.tcp_abort(ctx.now, id) {
            log::debug!("abort of {id:?}: {e}");
        }
        self.free(handle);
    }

    /// `CLOSE` (or `ABORT`) of a listener: the app worker leaves its listen
    /// group. Connections pushed to it but never taken go back to the group
    /// for another member; if it was the group's last member (and no forked
    /// child holds the group) the listener stops and they are reset, as
    /// Linux resets a closed listener's accept queue.
    pub(super) fn close_listener(&mut self, ctx: &mut Ctx<'_>, handle: SessionHandle) {
        let Some(session) = self.sessions.get_mut(handle) else { return };
        let taken_word =
            session.words.word(sluice_shm::layout::app_words::ACCEPT_TAKEN).load(std::sync::atomic::Ordering::Acquire);
        let Role::Listener(listener) = &mut session.role else { return };
        let id = listener.id;
        let valid = listener.update_taken(taken_word);
        let untaken: Vec<SessionHandle> = listener.unaccepted.drain(..).map(|(_, h)| h).collect();
        if !valid {
            self.record_violation(ctx.now, &"ACCEPT_TAKEN beyond ACCEPT_PUSHED at listener close");
        }
        self.free(handle);
        let live = |app: &Self, conn| app.sessions.get(conn).is_some_and(|s| !s.released());
        match ctx.groups.leave(id, self.identity.id, handle) {
            Leave::Stays => {
                // Their events so far are handled here, before the engine
                // sends the rest to the group.
                self.collect_engine_events(ctx);
                for conn in untaken {
                    if !live(self, conn) {
                        continue;
                    }
                    match self.take_for_return(ctx, conn) {
                        Some(returned) => ctx.groups.push_returned(id, returned),
                        None => self.abort(ctx, conn),
                    }
                }
            }
            Leave::Dies(group) => {
                reset_group(ctx.stack, ctx.now, id, group.returned);
                for conn in untaken {
                    if live(self, conn) {
                        self.abort(ctx, conn);
                    }
                }
            }
        }
    }

    /// A fifo index the app wrote was impossible: the session is reset and
    /// freed, and the violation counted (design §2.3).
    pub(super) fn abort_for_violation(&mut self, ctx: &mut Ctx<'_>, handle: SessionHandle, violation: Violation) {
        self.record_violation(ctx.now, &format_args!("session {}: {violation}", handle.index));
        self.abort(ctx, handle);
    }

    /// Drops the session's pending backlog event (the app gave the handle up).
    pub(super) fn outbox_forget(&mut self, handle: SessionHandle) {
        if let Some(session) = self.sessions.get_mut(handle) {
            self.outbox.forget(std::mem::take(&mut session.backlog).queued);
        }
    }

    /// Frees a slot: a new generation in its desc (every handle of this life
    /// stops resolving), its fifo pages punched, its engine mapping and
    /// backlog entry dropped. The engine socket must already be closed.
    pub(super) fn free(&mut self, handle: SessionHandle) {
        let Some((session, next_gen)) = self.sessions.remove(handle) else { return };
        self.outbox.forget(session.backlog.queued);
        if let Some(socket) = session.socket() {
            self.by_socket.remove(&socket);
        }
        let had_fifos = !matches!(session.role, Role::Listener(_));
        self.seg.retire(&session.desc, handle.index, next_gen, had_fifos);
        if let Role::Listener(listener) = &session.role {
            self.credit_total -= u64::from(listener.credit);
            self.starved.retain(|h| *h != handle);
            self.update_headroom();
        }
        self.slot_freed = true;
    }
}
