//! Opening sessions: `LISTEN`, `CONNECT`, and accepting connections onto a
//! listener's credit (protocol doc, Accepts).

use std::net::SocketAddrV4;
use std::sync::atomic::Ordering;

use sluice_shm::layout::{app_words, desc};
use sluice_shm::protocol::AppEvent;
use sluice_shm::SessionHandle;
use sluice_stack::{Error, ListenerId, SocketId};

use super::errno::{connect_errno, errno};
use super::ports::may_bind;
use super::session::{Conn, Listener, Role, Session};
use super::state::{App, Ctx};

/// Largest accept credit: the engine's own backlog limit.
const MAX_CREDIT: u32 = 65_535;

/// `EMFILE`: every session slot of the app worker is in use, as a process
/// out of descriptors.
pub(super) const OUT_OF_SLOTS: i32 = libc::EMFILE;

impl App {
    /// `LISTEN`: replies with the listener's handle, or an errno.
    pub(super) fn listen(
        &mut self,
        ctx: &mut Ctx<'_>,
        local: SocketAddrV4,
        backlog: u32,
        reuse_port: bool,
    ) -> Result<u64, i32> {
        if !may_bind(&self.identity, local.port(), ctx.config.unprivileged_port_start) {
            return Err(libc::EACCES);
        }
        if !local.ip().is_unspecified() && *local.ip() != ctx.stack.config().ip {
            return Err(libc::EADDRNOTAVAIL);
        }
        let handle = self.sessions.vacant().ok_or(OUT_OF_SLOTS)?;
        let credit = backlog.clamp(1, MAX_CREDIT);
        let id = if local.port() == 0 {
            self.listen_ephemeral(ctx, local, credit, reuse_port)?
        } else {
            ctx.stack.tcp_listen(self.consumer, local, credit as usize, reuse_port).map_err(errno)?
        };
        let bound = ctx.stack.listener_addr(id).unwrap_or(local);
        let Some((desc, words)) = self.seg.publish_listener(handle, bound) else {
            let _ = ctx.stack.tcp_unlisten(ctx.now, id);
            return Err(libc::ENOMEM);
        };
        let session =
            Session { desc, words, role: Role::Listener(Listener::new(id, credit)), backlog: Default::default() };
        if !self.sessions.insert(handle, session) {
            let _ = ctx.stack.tcp_unlisten(ctx.now, id);
            return Err(libc::ENOMEM);
        }
        self.by_socket.insert(SocketId::Listener(id), handle);
        self.credit_total += u64::from(credit);
        self.update_headroom();
        Ok(handle.to_u64())
    }

    /// `listen(2)` on port 0 binds an ephemeral port (`ip(7)`): the first
    /// free one of the engine's range, searched from a rotating start.
    fn listen_ephemeral(
        &mut self,
        ctx: &mut Ctx<'_>,
        local: SocketAddrV4,
        credit: u32,
        reuse_port: bool,
    ) -> Result<ListenerId, i32> {
        let (low, high) = ctx.stack.config().ephemeral_ports;
        let span = u32::from(high.saturating_sub(low)) + 1;
        for i in 0..span {
            let port = low + ((u32::from(self.port_cursor) + i) % span) as u16;
            match ctx.stack.tcp_listen(self.consumer, SocketAddrV4::new(*local.ip(), port), credit as usize, reuse_port)
            {
                Ok(id) => {
                    self.port_cursor = ((u32::from(port - low) + 1) % span) as u16;
                    return Ok(id);
                }
                Err(Error::AddrInUse) => continue,
                Err(e) => return Err(errno(e)),
            }
        }
        Err(libc::EADDRINUSE)
    }

    /// `CONNECT`: replies with the connection's handle at once; the outcome
    /// comes as `SESSION{CONNECTED}` or `SESSION{ERROR}`.
    pub(super) fn connect(
        &mut self,
        ctx: &mut Ctx<'_>,
        remote: SocketAddrV4,
        local: Option<SocketAddrV4>,
    ) -> Result<u64, i32> {
        if let Some(local) = local {
            if !may_bind(&self.identity, local.port(), ctx.config.unprivileged_port_start) {
                return Err(libc::EACCES);
            }
        }
        if let Some(result) = self.cut_through_connect(ctx, remote, local) {
            return result;
        }
        let handle = self.sessions.vacant().ok_or(OUT_OF_SLOTS)?;
        let id = ctx.stack.tcp_connect(ctx.now, self.consumer, remote, local, None).map_err(connect_errno)?;
        let bound = ctx.stack.local_addr(id).unwrap_or(SocketAddrV4::new(ctx.stack.config().ip, 0));
        if !self.install_conn(ctx, handle, id, bound, remote) {
            return Err(libc::ENOMEM);
        }
        Ok(handle.to_u64())
    }

    /// Publishes engine connection `id` in the vacant slot `handle`; on
    /// failure (a daemon bug) the connection is reset.
    fn install_conn(
        &mut self,
        ctx: &mut Ctx<'_>,
        handle: SessionHandle,
        id: sluice_stack::ConnId,
        local: SocketAddrV4,
        remote: SocketAddrV4,
    ) -> bool {
        let installed = self.seg.publish_conn(handle, local, remote).is_some_and(|slot| {
            let session = Session {
                desc: slot.desc,
                words: slot.words,
                role: Role::Conn(Conn::new(id, slot.rx, slot.tx)),
                backlog: Default::default(),
            };
            self.sessions.insert(handle, session)
        });
        if installed {
            self.by_socket.insert(SocketId::Conn(id), handle);
        } else {
            log::error!("app worker {}: cannot publish session slot {}", self.identity.id.0, handle.index);
            let _ = ctx.stack.tcp_abort(ctx.now, id);
        }
        installed
    }

    /// Accepts waiting connections onto listener `handle` while it has
    /// credit (`ACCEPT_PUSHED − ACCEPT_TAKEN < backlog`) and a slot is free;
    /// the rest stay in the engine's accept queue. Returns how many.
    pub(super) fn accept_ready(&mut self, ctx: &mut Ctx<'_>, handle: SessionHandle) -> usize {
        let mut accepted = 0;
        while let Some(session) = self.sessions.get_mut(handle) {
            let taken = session.words.word(app_words::ACCEPT_TAKEN).load(Ordering::Acquire);
            let Role::Listener(listener) = &mut session.role else { break };
            let valid = listener.update_taken(taken);
            let (id, has_credit) = (listener.id, listener.outstanding() < listener.credit);
            let inherited = listener.inherited.clone();
            if !valid {
                self.record_violation(
                    ctx.now,
                    &format_args!("listener {}: ACCEPT_TAKEN beyond ACCEPT_PUSHED", handle.index),
                );
            }
            if !has_credit {
                break;
            }
            let Some(conn_handle) = self.sessions.vacant() else {
                if !self.starved.contains(&handle) {
                    self.starved.push(handle);
                }
                break;
            };
            let Ok((conn, remote)) = ctx.stack.tcp_accept(id) else { break };
            let local = ctx.stack.local_addr(conn).unwrap_or(SocketAddrV4::new(ctx.stack.config().ip, 0));
            if !self.install_conn(ctx, conn_handle, conn, local, remote) {
                break;
            }
            for (option, value) in inherited {
                if let Err(e) = self.apply_option(ctx, conn, option, value) {
                    log::debug!("inheriting {option:?} = {value}: errno {e}");
                }
            }
            let Some(session) = self.sessions.get_mut(handle) else { break };
            let pushed_word = session.desc.shared(desc::ACCEPT_PUSHED);
            let Some(listener) = session.listener_mut() else { break };
            let seq = listener.pushed;
            listener.pushed = seq.wrapping_add(1);
            listener.unaccepted.push_back((seq, conn_handle));
            // The count before the event, so an app that sees the event
            // sees the count that includes it.
            pushed_word.store(listener.pushed, Ordering::Release);
            self.outbox.push_urgent(AppEvent::Accepted { listener: handle, conn: conn_handle });
            accepted += 1;
        }
        accepted
    }

    /// Listeners that ran out of slots get another chance after a free.
    pub(super) fn retry_starved(&mut self, ctx: &mut Ctx<'_>) -> usize {
        if !std::mem::take(&mut self.slot_freed) || self.starved.is_empty() {
            return 0;
        }
        let mut accepted = 0;
        for handle in std::mem::take(&mut self.starved) {
            accepted += self.accept_ready(ctx, handle);
        }
        accepted
    }
}
