//! Handing a listen group's connections to its members (design §3.5), and
//! taking back those a departing member never took.
//!
//! A connection goes to a member only when the member is accepting, has
//! credit (`ACCEPT_PUSHED − ACCEPT_TAKEN < backlog`) and a free session
//! slot. Connections a departing member was given but never took go back
//! to the group with the bytes its RX fifo held, and are offered (before the
//! engine's accept queue) to the next member that can take one.

use std::net::SocketAddrV4;
use std::sync::atomic::Ordering;

use sluice_shm::layout::{self, app_words, desc};
use sluice_shm::protocol::{ready, AppEvent};
use sluice_shm::{FifoConsumer, SessionHandle};
use sluice_stack::{EventSet, Instant, ListenerId, SocketId, Stack};

use super::listen_groups::{Returned, GROUP_CONSUMER};
use super::session::Fin;
use super::state::{App, Ctx};
use super::AppSet;

impl AppSet {
    /// Engine events of group listeners and of returned connections, then
    /// every group that may hand something out. Returns the work done.
    pub(super) fn serve_groups(&mut self, stack: &mut Stack, now: Instant) -> usize {
        let mut work = 0;
        while let Some(event) = stack.poll_event(GROUP_CONSUMER) {
            work += 1;
            match event.key {
                SocketId::Listener(id) => self.groups.mark_dirty(id),
                SocketId::Conn(conn) => {
                    if event.kinds.intersects(EventSet::RESET | EventSet::ERROR | EventSet::CLOSED) {
                        if self.groups.forget_returned(conn) {
                            let _ = stack.tcp_close(now, conn);
                        }
                    } else if event.kinds.contains(EventSet::PEER_CLOSED) {
                        self.groups.note_returned_fin(conn);
                    }
                }
            }
        }
        for id in self.groups.take_dirty() {
            work += self.hand_out(stack, now, id);
        }
        work
    }

    /// Releases groups without members whose holders have all exited (run
    /// before requests, so a `LISTEN` finds their port free).
    pub(super) fn release_abandoned(&mut self, stack: &mut Stack, now: Instant) {
        for (id, group) in self.groups.take_abandoned() {
            log::info!("listen group {} released: its last holder exited", group.local);
            reset_group(stack, now, id, group.returned);
        }
    }

    /// Gives group `id`'s waiting connections to members that can take them.
    fn hand_out(&mut self, stack: &mut Stack, now: Instant, id: ListenerId) -> usize {
        let mut handed = 0;
        loop {
            let apps = &mut self.apps;
            let Some(member) =
                self.groups.pick(id, |m| apps.get_mut(&m.app).is_some_and(|a| a.can_take(now, m.handle)))
            else {
                break;
            };
            let Some(app) = self.apps.get_mut(&member.app) else { break };
            let mut ctx = Ctx {
                stack,
                now,
                bounce: &mut self.bounce,
                config: &self.config,
                cut: &mut self.cut,
                groups: &mut self.groups,
            };
            let taken = match ctx.groups.pop_returned(id) {
                Some(conn) => app.adopt_returned(&mut ctx, member.handle, conn),
                None => app.accept_from(&mut ctx, member.handle, id),
            };
            if !taken {
                break;
            }
            self.groups.gave(id, &member);
            handed += 1;
        }
        handed
    }
}

/// Stops a dead group's engine listener (resetting its accept queue) and
/// resets the connections returned to it.
pub(super) fn reset_group(
    stack: &mut Stack,
    now: Instant,
    id: ListenerId,
    returned: impl IntoIterator<Item = Returned>,
) {
    if let Err(e) = stack.tcp_unlisten(now, id) {
        log::debug!("unlisten of {id:?}: {e}");
    }
    for r in returned {
        let _ = stack.tcp_abort(now, r.conn);
    }
}

impl App {
    /// Whether listener `handle` can be given a connection now: live app,
    /// credit left (reading the app's `ACCEPT_TAKEN`), a free slot. A member
    /// out of slots is remembered and retried after a free.
    pub(super) fn can_take(&mut self, now: Instant, handle: SessionHandle) -> bool {
        if self.detached || self.killed {
            return false;
        }
        let Some(session) = self.sessions.get_mut(handle) else { return false };
        let taken = session.words.word(app_words::ACCEPT_TAKEN).load(Ordering::Acquire);
        let Some(listener) = session.listener_mut() else { return false };
        let valid = listener.update_taken(taken);
        let has_credit = listener.outstanding() < listener.credit;
        if !valid {
            self.record_violation(now, &format_args!("listener {}: ACCEPT_TAKEN beyond ACCEPT_PUSHED", handle.index));
        }
        if !has_credit {
            return false;
        }
        if self.sessions.vacant().is_none() {
            if !self.starved.contains(&handle) {
                self.starved.push(handle);
            }
            return false;
        }
        true
    }

    /// Takes one connection from the group's engine listener onto member
    /// listener `handle`; false when the engine's accept queue is empty.
    pub(super) fn accept_from(&mut self, ctx: &mut Ctx<'_>, handle: SessionHandle, engine: ListenerId) -> bool {
        let Some(conn_handle) = self.sessions.vacant() else { return false };
        let Ok((conn, remote)) = ctx.stack.tcp_accept_for(engine, self.consumer) else { return false };
        let local = ctx.stack.local_addr(conn).unwrap_or(SocketAddrV4::new(ctx.stack.config().ip, 0));
        if !self.install_conn(ctx, conn_handle, conn, local, remote) {
            // Reset by install_conn; the next one may fare better.
            return true;
        }
        let inherited = self.sessions.get_mut(handle).and_then(|s| s.listener_mut()).map(|l| l.inherited.clone());
        for (option, value) in inherited.unwrap_or_default() {
            if let Err(e) = self.apply_option(ctx, conn, option, value) {
                log::debug!("inheriting {option:?} = {value}: errno {e}");
            }
        }
        self.push_accepted(handle, conn_handle);
        true
    }

    /// Gives a returned connection to member listener `handle`: a new slot,
    /// the bytes it had received, then ACCEPTED. False (and the connection
    /// back in the group) if the member cannot take it after all.
    pub(super) fn adopt_returned(&mut self, ctx: &mut Ctx<'_>, handle: SessionHandle, r: Returned) -> bool {
        let Some(conn_handle) = self.sessions.vacant() else {
            if let Some(engine) = self.sessions.get(handle).and_then(listener_id) {
                ctx.groups.unpop_returned(engine, r);
            }
            return false;
        };
        if !self.install_conn(ctx, conn_handle, r.conn, r.local, r.remote) {
            return true;
        }
        let Some(conn) = self.sessions.get_mut(conn_handle).and_then(|s| s.conn_mut()) else { return true };
        // Both RX fifos have the geometry's size, so the bytes always fit; a
        // short write would be a daemon bug, and the connection is reset.
        if conn.rx.write(&r.rx).ok() != Some(r.rx.len()) {
            log::error!("returned connection did not fit its new RX fifo; reset");
            self.abort(ctx, conn_handle);
            return true;
        }
        if r.fin {
            conn.fin = Fin::Pending;
        }
        if let Err(e) = ctx.stack.tcp_set_owner(r.conn, self.consumer) {
            log::debug!("returned connection {:?}: {e}", r.conn);
        }
        self.push_accepted(handle, conn_handle);
        let mut bits = if r.rx.is_empty() { 0 } else { ready::READABLE };
        bits |= self.receive(ctx, conn_handle);
        self.outbox.post_session(&mut self.sessions, conn_handle, bits, 0);
        true
    }

    /// Counts a push on listener `handle` and posts `ACCEPTED`.
    fn push_accepted(&mut self, handle: SessionHandle, conn_handle: SessionHandle) {
        let Some(session) = self.sessions.get_mut(handle) else { return };
        let pushed_word = session.desc.shared(desc::ACCEPT_PUSHED);
        let Some(listener) = session.listener_mut() else { return };
        let seq = listener.pushed;
        listener.pushed = seq.wrapping_add(1);
        listener.unaccepted.push_back((seq, conn_handle));
        // The count before the event, so an app that sees the event sees
        // the count that includes it.
        pushed_word.store(listener.pushed, Ordering::Release);
        self.outbox.push_urgent(AppEvent::Accepted { listener: handle, conn: conn_handle });
    }

    /// Takes a connection pushed to this app worker but never taken out of
    /// its slot, for the group to give to another member. The app's pending
    /// engine events must have been handled (they are dropped here).
    pub(super) fn take_for_return(&mut self, ctx: &mut Ctx<'_>, handle: SessionHandle) -> Option<Returned> {
        let session = self.sessions.get_mut(handle).filter(|s| !s.released())?;
        let conn = session.conn_mut()?;
        let id = conn.id;
        let fin = conn.fin != Fin::None;
        // The app never took the connection, so it never read: its RX fifo
        // holds every byte the daemon put there, from index 0.
        let mut rx = Vec::new();
        let parts = layout::rx_fifo(&self.seg.down, &self.seg.up, handle.index)?;
        let mut reader = FifoConsumer::new(parts, 0).ok()?;
        let mut buf = [0u8; 16 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => rx.extend_from_slice(&buf[..n]),
                Err(_) => {
                    // Our own index words are corrupt: give up on the move.
                    self.abort(ctx, handle);
                    return None;
                }
            }
        }
        let local = ctx.stack.local_addr(id).ok()?;
        let remote = ctx.stack.peer_addr(id).ok()?;
        ctx.stack.tcp_set_owner(id, GROUP_CONSUMER).ok()?;
        self.free(handle);
        Some(Returned { conn: id, local, remote, rx, fin })
    }
}

/// The engine listener behind a listener session.
fn listener_id(session: &super::session::Session) -> Option<ListenerId> {
    match &session.role {
        super::session::Role::Listener(l) => Some(l.id),
        super::session::Role::Conn(_) | super::session::Role::Cut(_) => None,
    }
}
