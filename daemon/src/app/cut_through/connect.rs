//! Completing cut-through connects, once every app has had its turn: the
//! client end finds a listener of any attached app worker of this worker
//! (the engine's rule: bound to the remote's address or to 0.0.0.0, same
//! port) and the server end is pushed to it as `ACCEPTED` on its credit.
//!
//! No listener is the kernel's RST to the SYN: `ECONNREFUSED`. A listener
//! without credit (its accept queue full) or without a free slot is the
//! kernel's dropped SYN: the connect waits, retried every iteration and at
//! once when the app takes a connection (its `RX_SPACE` on the listener
//! wakes the worker), and fails with `ETIMEDOUT` after the SYN retries.

use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::sync::atomic::Ordering;

use sluice_shm::layout::{app_words, desc};
use sluice_shm::protocol::{ready, AppEvent, SockOption};
use sluice_shm::SessionHandle;
use sluice_stack::Stack;

use super::super::session::{Role, Session};
use super::super::state::{App, Ctx};
use super::super::AppId;
use super::pump::post;
use super::{CutEnd, Endpoint, Phase};

/// What became of a pending connect this iteration.
enum Outcome {
    Connected(Endpoint),
    Waiting,
    Failed(i32),
}

/// Completes what it can of the queued connects; returns how many ended.
pub(super) fn complete_connects(apps: &mut BTreeMap<AppId, App>, ctx: &mut Ctx<'_>) -> usize {
    if ctx.cut.pending.is_empty() {
        return 0;
    }
    let mut ended = 0;
    for client in std::mem::take(&mut ctx.cut.pending) {
        let Some((remote, local, deadline)) = connecting(apps, client) else { continue };
        let outcome = match accept_on_listener(apps, ctx.stack, ctx.now, client, local, remote) {
            Outcome::Waiting if ctx.now >= deadline => Outcome::Failed(libc::ETIMEDOUT),
            outcome => outcome,
        };
        let Some(end) = end_mut(apps, client) else { continue };
        match outcome {
            Outcome::Waiting => {
                ctx.cut.pending.push(client);
                continue;
            }
            Outcome::Connected(server) => {
                end.phase = Phase::Open;
                end.peer = Some(server);
                post(apps, client, ready::CONNECTED | ready::WRITABLE, 0);
                // Bytes the client wrote before the connect completed.
                ctx.cut.kick(client);
            }
            Outcome::Failed(errno) => {
                end.phase = Phase::Failed;
                post(apps, client, ready::ERROR | ready::CLOSED, errno);
            }
        }
        ended += 1;
    }
    ended
}

/// The remote, local address and deadline of a client end still connecting.
fn connecting(
    apps: &BTreeMap<AppId, App>,
    client: Endpoint,
) -> Option<(SocketAddrV4, SocketAddrV4, sluice_stack::Instant)> {
    let session = apps.get(&client.app)?.sessions.get(client.handle)?;
    let Role::Cut(end) = &session.role else { return None };
    match end.phase {
        Phase::Connecting { remote, deadline } if !end.released => Some((remote, end.port?, deadline)),
        _ => None,
    }
}

pub(super) fn end_mut(apps: &mut BTreeMap<AppId, App>, end: Endpoint) -> Option<&mut CutEnd> {
    apps.get_mut(&end.app)?.sessions.get_mut(end.handle).and_then(Session::cut_mut)
}

/// Listeners of live app workers that `remote` reaches: bound to its
/// address or to the wildcard, on its port.
fn listeners_for(apps: &BTreeMap<AppId, App>, stack: &Stack, remote: SocketAddrV4) -> Vec<Endpoint> {
    let mut found = Vec::new();
    for (id, app) in apps.iter().filter(|(_, app)| !app.detached && !app.killed) {
        for (handle, session) in app.sessions.iter() {
            let Role::Listener(listener) = &session.role else { continue };
            let Ok(bound) = stack.listener_addr(listener.id) else { continue };
            if bound.port() == remote.port() && (bound.ip().is_unspecified() || bound.ip() == remote.ip()) {
                found.push(Endpoint { app: *id, handle });
            }
        }
    }
    found
}

/// Pushes a server end to the first matching listener with credit and a
/// free slot.
fn accept_on_listener(
    apps: &mut BTreeMap<AppId, App>,
    stack: &Stack,
    now: sluice_stack::Instant,
    client: Endpoint,
    client_addr: SocketAddrV4,
    remote: SocketAddrV4,
) -> Outcome {
    let listeners = listeners_for(apps, stack, remote);
    if listeners.is_empty() {
        return Outcome::Failed(libc::ECONNREFUSED);
    }
    for listener in listeners {
        let Some(app) = apps.get_mut(&listener.app) else { continue };
        if let Some(handle) = app.accept_cut(now, listener.handle, remote, client_addr, client) {
            return Outcome::Connected(Endpoint { app: listener.app, handle });
        }
    }
    Outcome::Waiting
}

impl App {
    /// The server end of a pair on listener `listener`, if it has credit
    /// (`ACCEPT_PUSHED − ACCEPT_TAKEN < backlog`) and a slot is free: its
    /// local address is the one the client reached, its remote the client's.
    fn accept_cut(
        &mut self,
        now: sluice_stack::Instant,
        listener: SessionHandle,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        client: Endpoint,
    ) -> Option<SessionHandle> {
        let session = self.sessions.get_mut(listener)?;
        let taken = session.words.word(app_words::ACCEPT_TAKEN).load(Ordering::Acquire);
        let Role::Listener(state) = &mut session.role else { return None };
        if !state.update_taken(taken) {
            self.record_violation(now, &format_args!("listener {}: ACCEPT_TAKEN beyond ACCEPT_PUSHED", listener.index));
            return None;
        }
        if state.outstanding() >= state.credit {
            return None;
        }
        let linger_zero = state.inherited.iter().any(|&(o, v)| o == SockOption::LingerZero && v != 0);
        let handle = self.sessions.vacant()?;
        let slot = self.seg.publish_conn(handle, local, remote)?;
        let mut end = CutEnd::new(slot.rx, slot.tx, Phase::Open);
        end.peer = Some(client);
        end.linger_zero = linger_zero;
        let session = Session { desc: slot.desc, words: slot.words, role: Role::Cut(end), backlog: Default::default() };
        if !self.sessions.insert(handle, session) {
            log::error!("app worker {}: cannot publish session slot {}", self.identity.id.0, handle.index);
            return None;
        }
        let session = self.sessions.get_mut(listener)?;
        let pushed_word = session.desc.shared(desc::ACCEPT_PUSHED);
        let state = session.listener_mut()?;
        let seq = state.pushed;
        state.pushed = seq.wrapping_add(1);
        state.unaccepted.push_back((seq, handle));
        // The count before the event, as for an engine accept (`open`).
        pushed_word.store(state.pushed, Ordering::Release);
        self.outbox.push_urgent(AppEvent::Accepted { listener, conn: handle });
        Some(handle)
    }
}
