//! Opening sessions: `LISTEN`, `CONNECT`, and accepting connections onto a
//! listener's credit (protocol doc, Accepts).

use std::net::SocketAddrV4;

use sluice_shm::SessionHandle;
use sluice_stack::{Error, ListenerId, SocketId};

use super::errno::{connect_errno, errno};
use super::holders::parent_of;
use super::listen_groups::{Join, GROUP_CONSUMER};
use super::ports::may_bind;
use super::session::{Conn, Listener, Role, Session};
use super::state::{App, Ctx};

/// Largest accept credit: the engine's own backlog limit.
const MAX_CREDIT: u32 = 65_535;

/// `EMFILE`: every session slot of the app worker is in use, as a process
/// out of descriptors.
pub(super) const OUT_OF_SLOTS: i32 = libc::EMFILE;

impl App {
    /// `LISTEN`: replies with the listener's handle, or an errno. The
    /// listener is a member of the listen group on its address (created
    /// here if there is none; `listen_groups` has the joining rules).
    pub(super) fn listen(
        &mut self,
        ctx: &mut Ctx<'_>,
        local: SocketAddrV4,
        backlog: u32,
        reuse_port: bool,
        inherit: bool,
    ) -> Result<u64, i32> {
        if !local.ip().is_unspecified() && *local.ip() != ctx.stack.config().ip {
            return Err(libc::EADDRNOTAVAIL);
        }
        let handle = self.sessions.vacant().ok_or(OUT_OF_SLOTS)?;
        let credit = backlog.clamp(1, MAX_CREDIT);
        let (uid, pid) = (self.identity.uid, self.identity.pid);
        let inherit = inherit.then(|| (pid, parent_of(pid)));
        let joined = match local.port() {
            0 => None,
            _ => ctx.groups.joinable(local, reuse_port, inherit, uid)?,
        };
        // An inherited listener was bound by the parent: nginx's workers
        // drop root but keep port 80, as with the kernel's inherited socket.
        let inherited = matches!(joined, Some(Join::Inherited(_)));
        if !inherited && !may_bind(&self.identity, local.port(), ctx.config.unprivileged_port_start) {
            return Err(libc::EACCES);
        }
        let id = match joined {
            Some(join) => join.id(),
            None => {
                let id = if local.port() == 0 {
                    self.listen_ephemeral(ctx, local, credit, reuse_port)?
                } else {
                    ctx.stack.tcp_listen(GROUP_CONSUMER, local, credit as usize, reuse_port).map_err(errno)?
                };
                let bound = ctx.stack.listener_addr(id).unwrap_or(local);
                ctx.groups.create(id, bound, reuse_port, uid);
                id
            }
        };
        let bound = ctx.stack.listener_addr(id).unwrap_or(local);
        let published = self.seg.publish_listener(handle, bound).is_some_and(|(desc, words)| {
            let role = Role::Listener(Listener::new(id, credit));
            self.sessions.insert(handle, Session { desc, words, role, backlog: Default::default() })
        });
        if !published {
            if ctx.groups.discard_if_empty(id) {
                let _ = ctx.stack.tcp_unlisten(ctx.now, id);
            }
            return Err(libc::ENOMEM);
        }
        ctx.groups.add_member(id, self.identity.id, pid, handle);
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
            match ctx.stack.tcp_listen(GROUP_CONSUMER, SocketAddrV4::new(*local.ip(), port), credit as usize, reuse_port)
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
    pub(super) fn install_conn(
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

    /// Listener `handle` may take connections (it gained credit or started
    /// accepting): its listen group hands them out after this iteration's
    /// requests (`group_accept`), as members of other app workers share it.
    pub(super) fn accept_ready(&mut self, ctx: &mut Ctx<'_>, handle: SessionHandle) -> usize {
        if let Some(Role::Listener(listener)) = self.sessions.get(handle).map(|s| &s.role) {
            ctx.groups.mark_dirty(listener.id);
        }
        0
    }

    /// Listeners that ran out of slots get another chance after a free.
    pub(super) fn retry_starved(&mut self, ctx: &mut Ctx<'_>) -> usize {
        if !std::mem::take(&mut self.slot_freed) || self.starved.is_empty() {
            return 0;
        }
        let starved = std::mem::take(&mut self.starved);
        for &handle in &starved {
            self.accept_ready(ctx, handle);
        }
        starved.len()
    }
}
