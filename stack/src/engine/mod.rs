//! The sans-IO engine: one network interface (Ethernet, ARP, IPv4, ICMP) and
//! its TCP sockets, driven entirely by the caller.
//!
//! Verbs (after quinn-proto): `handle_frame` for each received frame,
//! `poll_transmit` to drain frames to send, `poll_timeout`/`handle_timeout` for
//! timers, and socket calls (`tcp_listen`, `tcp_connect`, `tcp_accept`,
//! `tcp_send`, `tcp_recv`, `tcp_close`, ...) whose effects show up as events in
//! the consumer's queue (`poll_event`). No syscalls, no clock reads.

use core::net::SocketAddrV4;

use crate::config::{StackConfig, TcpConfig};
use crate::error::Result;
use crate::handle::Handle;
use crate::session::event::Event;
use crate::tcp::conn::TcpInfo;
use crate::time::Instant;

mod stats;
pub use stats::Stats;

/// Something that takes outgoing frames (a device TX ring, a simulated wire).
pub trait FrameSink {
    /// Hand out a buffer of exactly `len` bytes, let `fill` write the frame,
    /// and queue it. Returns false without calling `fill` when no room is left;
    /// the engine then stops transmitting and keeps its state for the next poll.
    fn emit(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool;
}

/// Collects frames in memory (tests and simulations).
impl FrameSink for Vec<Vec<u8>> {
    fn emit(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        let mut frame = vec![0u8; len];
        fill(&mut frame);
        self.push(frame);
        true
    }
}

/// Who receives a socket's events: one event queue per consumer (an app worker).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct ConsumerId(pub u32);

/// Handle of a TCP connection socket.
pub type ConnId = Handle<ConnSlot>;
/// Handle of a listening socket.
pub type ListenerId = Handle<ListenerSlot>;

/// What an event is about.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum SocketId {
    Conn(ConnId),
    Listener(ListenerId),
}

/// Arena slot types (internal contents; public only as handle type tags).
pub struct ConnSlot {
    _todo: (),
}
pub struct ListenerSlot {
    _todo: (),
}

/// How `tcp_shutdown` closes a direction.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Shutdown {
    Read,
    Write,
    Both,
}

pub struct Stack {
    _todo: (),
}

impl Stack {
    pub fn new(config: StackConfig, now: Instant) -> Stack {
        let _ = (config, now);
        todo!()
    }
    pub fn config(&self) -> &StackConfig {
        todo!()
    }

    // ----- driving -----

    /// Process one received Ethernet frame.
    pub fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        let _ = (now, frame);
        todo!()
    }
    /// Emit every frame that is due into `sink` (ARP, ICMP replies, TCP), until
    /// nothing is due or the sink is full. Returns the number of frames emitted.
    pub fn poll_transmit(&mut self, now: Instant, sink: &mut dyn FrameSink) -> usize {
        let _ = (now, sink);
        todo!()
    }
    /// When `handle_timeout` should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
        todo!()
    }

    // ----- sockets -----

    /// Listen on `local` (address 0.0.0.0 = any local address). Several
    /// listeners on the same address and port need `reuse_port` on all of them;
    /// connections are then spread across the listeners that are accepting.
    pub fn tcp_listen(&mut self, consumer: ConsumerId, local: SocketAddrV4, backlog: usize, reuse_port: bool) -> Result<ListenerId> {
        let _ = (consumer, local, backlog, reuse_port);
        todo!()
    }
    /// Take one established connection from the listener's accept queue.
    pub fn tcp_accept(&mut self, listener: ListenerId) -> Result<(ConnId, SocketAddrV4)> {
        let _ = listener;
        todo!()
    }
    /// Active open; completion is reported by a CONNECTED (or ERROR) event.
    pub fn tcp_connect(&mut self, now: Instant, consumer: ConsumerId, remote: SocketAddrV4, local: Option<SocketAddrV4>, config: Option<TcpConfig>) -> Result<ConnId> {
        let _ = (now, consumer, remote, local, config);
        todo!()
    }
    pub fn tcp_send(&mut self, conn: ConnId, data: &[u8]) -> Result<usize> {
        let _ = (conn, data);
        todo!()
    }
    pub fn tcp_recv(&mut self, conn: ConnId, buf: &mut [u8]) -> Result<usize> {
        let _ = (conn, buf);
        todo!()
    }
    pub fn tcp_peek(&self, conn: ConnId, buf: &mut [u8]) -> Result<usize> {
        let _ = (conn, buf);
        todo!()
    }
    pub fn tcp_shutdown(&mut self, now: Instant, conn: ConnId, how: Shutdown) -> Result<()> {
        let _ = (now, conn, how);
        todo!()
    }
    /// Release the application's handle. The connection finishes in the
    /// background (or is reset, see `TcpConn::close`); the handle stops resolving at once.
    pub fn tcp_close(&mut self, now: Instant, conn: ConnId) -> Result<()> {
        let _ = (now, conn);
        todo!()
    }
    /// Abortive close (RST) and release.
    pub fn tcp_abort(&mut self, now: Instant, conn: ConnId) -> Result<()> {
        let _ = (now, conn);
        todo!()
    }
    /// Stop listening; connections not yet accepted are reset.
    pub fn tcp_unlisten(&mut self, now: Instant, listener: ListenerId) -> Result<()> {
        let _ = (now, listener);
        todo!()
    }
    pub fn tcp_config(&self, conn: ConnId) -> Result<TcpConfig> {
        let _ = conn;
        todo!()
    }
    pub fn tcp_set_config(&mut self, now: Instant, conn: ConnId, config: TcpConfig) -> Result<()> {
        let _ = (now, conn, config);
        todo!()
    }
    pub fn tcp_info(&self, conn: ConnId) -> Result<TcpInfo> {
        let _ = conn;
        todo!()
    }
    /// The pending error of a connection (SO_ERROR), cleared by reading.
    pub fn tcp_take_error(&mut self, conn: ConnId) -> Result<Option<crate::error::Error>> {
        let _ = conn;
        todo!()
    }
    pub fn local_addr(&self, conn: ConnId) -> Result<SocketAddrV4> {
        let _ = conn;
        todo!()
    }
    pub fn peer_addr(&self, conn: ConnId) -> Result<SocketAddrV4> {
        let _ = conn;
        todo!()
    }

    // ----- events and observability -----

    /// The next event for `consumer`. Events whose socket was released in the
    /// meantime are dropped (and counted), never returned.
    pub fn poll_event(&mut self, consumer: ConsumerId) -> Option<Event<SocketId>> {
        let _ = consumer;
        todo!()
    }
    pub fn stats(&self) -> &Stats {
        todo!()
    }
    /// Live connections.
    pub fn connection_count(&self) -> usize {
        todo!()
    }
}
