//! Socket calls. A connection handle resolves for the application only while
//! the application holds it: after `tcp_close`/`tcp_abort` (or before
//! `tcp_accept`) every call with it fails with `InvalidHandle`, even though
//! the connection itself may live on as an orphan until it finishes.

use core::net::{Ipv4Addr, SocketAddrV4};

use super::accept_queue::AcceptQueue;
use super::events::{post, retract};
use super::slots::{ConnSlot, ListenerSlot, Origin};
use super::{ConnId, ConsumerId, ListenerId, Shutdown, SocketId, Stack};
use crate::config::TcpConfig;
use crate::error::{Error, Result};
use crate::session::demux::FourTuple;
use crate::tcp::conn::{TcpConn, TcpInfo};
use crate::time::Instant;

/// Largest accept backlog (Linux's default `somaxconn` is 4096).
const MAX_BACKLOG: usize = 65_535;

/// A connection taken out of one [`Stack`] with [`Stack::tcp_detach`], to be
/// attached to another with [`Stack::tcp_attach`] (elastic workers, later).
pub struct DetachedConn {
    conn: Box<TcpConn>,
}

impl DetachedConn {
    pub fn local(&self) -> SocketAddrV4 {
        self.conn.local()
    }
    pub fn remote(&self) -> SocketAddrV4 {
        self.conn.remote()
    }
}

impl Stack {
    fn app_slot(&self, conn: ConnId) -> Result<&ConnSlot> {
        self.conns.get(conn).filter(|s| s.app_visible()).ok_or(Error::InvalidHandle)
    }
    fn app_slot_mut(&mut self, conn: ConnId) -> Result<&mut ConnSlot> {
        self.conns.get_mut(conn).filter(|s| s.app_visible()).ok_or(Error::InvalidHandle)
    }

    /// Listen on `local` (address 0.0.0.0 = any local address). Several
    /// listeners on the same address and port need `reuse_port` on all of them;
    /// connections are then spread across the listeners that are accepting.
    pub fn tcp_listen(&mut self, consumer: ConsumerId, local: SocketAddrV4, backlog: usize, reuse_port: bool) -> Result<ListenerId> {
        self.local_ip_for(&local).ok_or(Error::AddrNotAvailable)?;
        if local.port() == 0 {
            return Err(Error::InvalidArgument);
        }
        for addr in [self.config.ip, Ipv4Addr::UNSPECIFIED] {
            for &other in self.listener_table.group(addr, local.port()) {
                let shares = reuse_port && self.listeners.get(other).is_some_and(|l| l.reuse_port && l.local.ip() == local.ip());
                if !shares {
                    return Err(Error::AddrInUse);
                }
            }
        }
        let slot = ListenerSlot {
            local,
            backlog: backlog.clamp(1, MAX_BACKLOG),
            accept_queue: AcceptQueue::default(),
            half_open: 0,
            reuse_port,
            owner: consumer,
            ticket: None,
            accepting: false,
        };
        let id = self.listeners.insert(slot).map_err(|_| Error::NoBuffers)?;
        self.listener_table.insert(*local.ip(), local.port(), id);
        Ok(id)
    }

    /// Take one established connection from the listener's accept queue.
    pub fn tcp_accept(&mut self, listener: ListenerId) -> Result<(ConnId, SocketAddrV4)> {
        let owner = self.listeners.get(listener).ok_or(Error::InvalidHandle)?.owner;
        self.tcp_accept_for(listener, owner)
    }

    /// [`tcp_accept`](Self::tcp_accept), but the connection's events go to
    /// `owner` rather than to the listener's consumer: a listener shared by
    /// several consumers (a listen group) hands each connection to one.
    pub fn tcp_accept_for(&mut self, listener: ListenerId, owner: ConsumerId) -> Result<(ConnId, SocketAddrV4)> {
        let l = self.listeners.get_mut(listener).ok_or(Error::InvalidHandle)?;
        l.accepting = true;
        let conns = &self.conns;
        let queued_here = |id| conns.get(id).is_some_and(|s: &ConnSlot| s.origin == Origin::Queued(listener));
        let id = l.accept_queue.pop(queued_here).ok_or(Error::WouldBlock)?;
        let slot = self.conns.get_mut(id).ok_or(Error::WouldBlock)?;
        slot.origin = Origin::Accepted;
        slot.owner = owner;
        let remote = slot.conn.remote();
        let unreported = slot.unreported.take();
        post(
            &mut self.consumers,
            self.config.event_queue_capacity,
            &mut self.stats,
            owner,
            SocketId::Conn(id),
            unreported,
            &mut slot.ticket,
        );
        Ok((id, remote))
    }

    /// Whether this listener takes part in SO_REUSEPORT distribution: new
    /// connections go only to accepting members (while any exist). The first
    /// `tcp_accept` sets it.
    pub fn tcp_listener_set_accepting(&mut self, listener: ListenerId, accepting: bool) -> Result<()> {
        let l = self.listeners.get_mut(listener).ok_or(Error::InvalidHandle)?;
        l.accepting = accepting;
        Ok(())
    }

    /// Moves a connection's future events to `owner`. An event still unread
    /// in the old owner's queue is dropped, so the caller takes the old
    /// owner's events first (the daemon does, before it hands a connection
    /// from one app worker to another).
    pub fn tcp_set_owner(&mut self, conn: ConnId, owner: ConsumerId) -> Result<()> {
        let slot = self.conns.get_mut(conn).filter(|s| s.app_visible()).ok_or(Error::InvalidHandle)?;
        retract(&mut self.consumers, &mut self.stats, slot.owner, &mut slot.ticket);
        slot.owner = owner;
        Ok(())
    }

    /// The address a listener is bound to.
    pub fn listener_addr(&self, listener: ListenerId) -> Result<SocketAddrV4> {
        self.listeners.get(listener).map(|l| l.local).ok_or(Error::InvalidHandle)
    }

    /// Active open; completion is reported by a CONNECTED (or ERROR) event.
    pub fn tcp_connect(&mut self, now: Instant, consumer: ConsumerId, remote: SocketAddrV4, local: Option<SocketAddrV4>, config: Option<TcpConfig>) -> Result<ConnId> {
        if remote.port() == 0 {
            return Err(Error::InvalidArgument);
        }
        // Loopback to our own address is not served by the interface.
        self.egress.route.next_hop(*remote.ip())?;
        let local_ip = match local {
            Some(addr) => self.local_ip_for(&addr).ok_or(Error::AddrNotAvailable)?,
            None => self.config.ip,
        };
        if !self.make_room_for_connection() {
            self.stats.connection_limit_hit += 1;
            return Err(Error::NoBuffers);
        }
        let port = match local.map_or(0, |l| l.port()) {
            0 => {
                let (conns, listeners) = (&self.conn_table, &self.listener_table);
                self.ports
                    .pick(local_ip, remote, |port| {
                        !conns.contains(&FourTuple { local: SocketAddrV4::new(local_ip, port), remote })
                            && listeners.group(local_ip, port).is_empty()
                            && listeners.group(Ipv4Addr::UNSPECIFIED, port).is_empty()
                    })
                    .ok_or(Error::AddrNotAvailable)?
            }
            port => port,
        };
        let tuple = FourTuple { local: SocketAddrV4::new(local_ip, port), remote };
        if self.conn_table.contains(&tuple) {
            return Err(Error::AddrInUse);
        }
        let params = self.conn_params(now, tuple, config.unwrap_or(self.config.tcp));
        let conn = TcpConn::connect(now, params);
        let id = self.conns.insert(ConnSlot::new(conn, consumer, Origin::Active)).map_err(|_| Error::NoBuffers)?;
        if self.conn_table.insert(tuple, id).is_err() {
            self.conns.remove(id);
            return Err(Error::AddrInUse);
        }
        if let Some(slot) = self.conns.get_mut(id) {
            slot.in_table = true;
            slot.iss = Some(params.iss);
        }
        self.stats.connections_opened += 1;
        self.mark_dirty(id);
        self.settle(now, id);
        Ok(id)
    }

    pub fn tcp_send(&mut self, conn: ConnId, data: &[u8]) -> Result<usize> {
        let sent = self.app_slot_mut(conn)?.conn.send(data)?;
        self.mark_dirty(conn);
        Ok(sent)
    }

    pub fn tcp_recv(&mut self, conn: ConnId, buf: &mut [u8]) -> Result<usize> {
        let read = self.app_slot_mut(conn)?.conn.recv(buf)?;
        // Reading opens the receive window: a window update may be due.
        self.mark_dirty(conn);
        Ok(read)
    }

    pub fn tcp_peek(&self, conn: ConnId, buf: &mut [u8]) -> Result<usize> {
        self.app_slot(conn)?.conn.peek(buf)
    }

    pub fn tcp_shutdown(&mut self, now: Instant, conn: ConnId, how: Shutdown) -> Result<()> {
        let slot = self.app_slot_mut(conn)?;
        if matches!(how, Shutdown::Read | Shutdown::Both) {
            slot.conn.shutdown_read();
        }
        if matches!(how, Shutdown::Write | Shutdown::Both) {
            slot.conn.shutdown_write();
        }
        self.mark_dirty(conn);
        self.settle(now, conn);
        Ok(())
    }

    /// Release the application's handle. The connection finishes in the
    /// background (or is reset, see `TcpConn::close`); the handle stops resolving at once.
    pub fn tcp_close(&mut self, now: Instant, conn: ConnId) -> Result<()> {
        self.app_slot(conn)?;
        let Some(slot) = self.conns.get_mut(conn) else { return Err(Error::InvalidHandle) };
        slot.app_released = true;
        retract(&mut self.consumers, &mut self.stats, slot.owner, &mut slot.ticket);
        slot.conn.close(now);
        self.mark_dirty(conn);
        self.settle(now, conn);
        Ok(())
    }

    /// Abortive close (RST) and release.
    pub fn tcp_abort(&mut self, now: Instant, conn: ConnId) -> Result<()> {
        self.app_slot(conn)?;
        let Some(slot) = self.conns.get_mut(conn) else { return Err(Error::InvalidHandle) };
        slot.app_released = true;
        retract(&mut self.consumers, &mut self.stats, slot.owner, &mut slot.ticket);
        slot.conn.abort(now);
        self.mark_dirty(conn);
        self.settle(now, conn);
        Ok(())
    }

    /// Stop listening; connections not yet accepted are reset (those still
    /// in their handshake when their handshake completes).
    pub fn tcp_unlisten(&mut self, now: Instant, listener: ListenerId) -> Result<()> {
        let mut l = self.listeners.remove(listener).ok_or(Error::InvalidHandle)?;
        retract(&mut self.consumers, &mut self.stats, l.owner, &mut l.ticket);
        self.listener_table.remove(*l.local.ip(), l.local.port(), listener);
        for id in l.accept_queue.drain() {
            if let Some(slot) = self.conns.get_mut(id).filter(|s| s.origin == Origin::Queued(listener)) {
                slot.origin = Origin::Unowned;
                slot.conn.abort(now);
                self.mark_dirty(id);
                self.settle(now, id);
            }
        }
        Ok(())
    }

    pub fn tcp_config(&self, conn: ConnId) -> Result<TcpConfig> {
        Ok(*self.app_slot(conn)?.conn.config())
    }

    pub fn tcp_set_config(&mut self, now: Instant, conn: ConnId, config: TcpConfig) -> Result<()> {
        self.app_slot_mut(conn)?.conn.set_config(now, config);
        self.mark_dirty(conn);
        self.settle(now, conn);
        Ok(())
    }

    pub fn tcp_info(&self, conn: ConnId) -> Result<TcpInfo> {
        Ok(self.app_slot(conn)?.conn.info())
    }

    /// The pending error of a connection (SO_ERROR), cleared by reading.
    pub fn tcp_take_error(&mut self, conn: ConnId) -> Result<Option<Error>> {
        let slot = self.app_slot_mut(conn)?;
        Ok(slot.error.take().or_else(|| slot.conn.take_error()))
    }

    pub fn local_addr(&self, conn: ConnId) -> Result<SocketAddrV4> {
        Ok(self.app_slot(conn)?.conn.local())
    }

    pub fn peer_addr(&self, conn: ConnId) -> Result<SocketAddrV4> {
        Ok(self.app_slot(conn)?.conn.remote())
    }

    /// Takes a connection out of this stack (its handle stops resolving), to
    /// be attached to another stack serving the same address.
    pub fn tcp_detach(&mut self, conn: ConnId) -> Result<DetachedConn> {
        self.app_slot(conn)?;
        if let Some(slot) = self.conns.get_mut(conn) {
            if slot.in_table {
                slot.in_table = false;
                self.conn_table.remove(&FourTuple { local: slot.conn.local(), remote: slot.conn.remote() });
            }
            if let Some((timer, _)) = slot.timer.take() {
                self.timers.cancel(timer);
            }
        }
        let mut slot = self.conns.remove(conn).ok_or(Error::InvalidHandle)?;
        retract(&mut self.consumers, &mut self.stats, slot.owner, &mut slot.ticket);
        Ok(DetachedConn { conn: Box::new(slot.conn) })
    }

    /// Adopts a detached connection for `consumer`. The connection is given
    /// back with the error if this stack cannot serve its tuple.
    pub fn tcp_attach(&mut self, now: Instant, consumer: ConsumerId, detached: DetachedConn) -> core::result::Result<ConnId, (Error, DetachedConn)> {
        let tuple = FourTuple { local: detached.conn.local(), remote: detached.conn.remote() };
        if *tuple.local.ip() != self.config.ip {
            return Err((Error::AddrNotAvailable, detached));
        }
        if self.conn_table.contains(&tuple) {
            return Err((Error::AddrInUse, detached));
        }
        let id = match self.conns.insert(ConnSlot::new(*detached.conn, consumer, Origin::Active)) {
            Ok(id) => id,
            Err(slot) => return Err((Error::NoBuffers, DetachedConn { conn: Box::new(slot.conn) })),
        };
        if self.conn_table.insert(tuple, id).is_ok() {
            if let Some(slot) = self.conns.get_mut(id) {
                slot.in_table = true;
            }
        }
        self.mark_dirty(id);
        self.settle(now, id);
        Ok(id)
    }
}
