//! The test application on top of the engine: opens the listener or the
//! connection the mode asks for, accepts, reacts to events, and collects a
//! report per finished connection.

use std::net::{Ipv4Addr, SocketAddrV4};

use sluice_stack::{ConnId, ConsumerId, Error, EventSet, Instant, ListenerId, SocketId, Stack};

use super::args::Mode;
use super::transfer::{Role, Transfer, TransferReport};

/// The one event consumer the driver uses.
const CONSUMER: ConsumerId = ConsumerId(0);
/// Pending connections the listener may queue.
const BACKLOG: usize = 128;
/// Size of the buffer reads and pattern writes go through.
const SCRATCH: usize = 64 * 1024;

pub struct App {
    mode: Mode,
    listener: Option<ListenerId>,
    active: Vec<Transfer>,
    finished: Vec<TransferReport>,
    exit_after: Option<usize>,
    scratch: Vec<u8>,
    /// Connections touched by the events of one turn (kept to reuse its allocation).
    touched: Vec<ConnId>,
    /// Set when the application itself cannot go on (listen or accept failed).
    fatal: Option<String>,
}

impl App {
    pub fn new(mode: Mode, exit_after: Option<usize>) -> App {
        App {
            mode,
            listener: None,
            active: Vec::new(),
            finished: Vec::new(),
            exit_after,
            scratch: vec![0; SCRATCH],
            touched: Vec::new(),
            fatal: None,
        }
    }

    /// Listen, or start the active open.
    pub fn start(&mut self, stack: &mut Stack, now: Instant) -> Result<(), String> {
        match self.mode {
            Mode::ServeEcho { port } | Mode::ServeBulk { port, .. } | Mode::ServeSink { port } => {
                let local = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
                let listener = stack
                    .tcp_listen(CONSUMER, local, BACKLOG, false)
                    .map_err(|e| format!("listen on port {port}: {e}"))?;
                self.listener = Some(listener);
            }
            Mode::ConnectBulk { remote, bytes } => {
                let conn = stack
                    .tcp_connect(now, CONSUMER, remote, None, None)
                    .map_err(|e| format!("connect to {remote}: {e}"))?;
                self.active.push(Transfer::new(conn, remote, Role::Bulk { bytes }, false, now));
            }
        }
        Ok(())
    }

    fn role(&self) -> Role {
        match self.mode {
            Mode::ServeEcho { .. } => Role::Echo,
            Mode::ServeBulk { bytes, .. } | Mode::ConnectBulk { bytes, .. } => Role::Bulk { bytes },
            Mode::ServeSink { .. } => Role::Sink,
        }
    }

    /// Drain the event queue, then move data on every connection an event
    /// touched. Connections that failed are closed and recorded.
    pub fn on_events(&mut self, stack: &mut Stack, now: Instant) {
        let mut touched = std::mem::take(&mut self.touched);
        touched.clear();
        while let Some(event) = stack.poll_event(CONSUMER) {
            match event.key {
                SocketId::Listener(listener) => {
                    if event.kinds.contains(EventSet::ACCEPTABLE) {
                        self.accept_all(stack, listener, now, &mut touched);
                    }
                }
                SocketId::Conn(conn) => {
                    if let Some(t) = self.active.iter_mut().find(|t| t.conn() == conn) {
                        if event.kinds.contains(EventSet::CONNECTED) {
                            t.mark_connected(now);
                        }
                        if event.kinds.contains(EventSet::ERROR) {
                            let reason = match stack.tcp_take_error(conn) {
                                Ok(Some(e)) => e.to_string(),
                                Ok(None) => "ERROR event without a pending error".to_string(),
                                Err(e) => format!("ERROR event, reading the error failed: {e}"),
                            };
                            self.fail(stack, now, conn, reason);
                            continue;
                        }
                        if !touched.contains(&conn) {
                            touched.push(conn);
                        }
                    }
                }
            }
        }
        for &conn in &touched {
            self.pump(stack, now, conn);
        }
        self.touched = touched;
    }

    fn accept_all(&mut self, stack: &mut Stack, listener: ListenerId, now: Instant, touched: &mut Vec<ConnId>) {
        let role = self.role();
        loop {
            match stack.tcp_accept(listener) {
                Ok((conn, peer)) => {
                    self.active.push(Transfer::new(conn, peer, role, true, now));
                    // Data may have arrived before the accept: look at once.
                    touched.push(conn);
                }
                Err(Error::WouldBlock) => return,
                Err(e) => {
                    self.fatal = Some(format!("accept: {e}"));
                    return;
                }
            }
        }
    }

    fn pump(&mut self, stack: &mut Stack, now: Instant, conn: ConnId) {
        let Some(transfer) = self.active.iter_mut().find(|t| t.conn() == conn) else { return };
        if let Err(e) = transfer.pump(stack, now, &mut self.scratch) {
            self.fail(stack, now, conn, e.to_string());
        }
    }

    /// Close and record the connections whose streams are done and whose last
    /// byte and FIN the peer has acknowledged. Checked every turn: the ACK of
    /// a FIN need not raise an event, and closing earlier would hand unsent
    /// data to an orphan the driver might exit before finishing.
    pub fn reap_acknowledged(&mut self, stack: &mut Stack, now: Instant) {
        let mut index = 0;
        while index < self.active.len() {
            let transfer = &self.active[index];
            if !transfer.streams_done() {
                index += 1;
                continue;
            }
            match transfer.is_acknowledged(stack) {
                Ok(false) => index += 1,
                Ok(true) => {
                    let transfer = self.active.swap_remove(index);
                    self.finished.push(transfer.finish(stack, now, None));
                }
                Err(e) => {
                    let conn = transfer.conn();
                    self.fail(stack, now, conn, format!("connection lost after its streams ended: {e}"));
                }
            }
        }
    }

    fn fail(&mut self, stack: &mut Stack, now: Instant, conn: ConnId, reason: String) {
        if let Some(index) = self.active.iter().position(|t| t.conn() == conn) {
            let transfer = self.active.swap_remove(index);
            self.finished.push(transfer.finish(stack, now, Some(reason)));
        }
    }

    /// The requested number of connections finished, or the app gave up.
    pub fn is_done(&self) -> bool {
        self.fatal.is_some() || self.exit_after.is_some_and(|n| self.finished.len() >= n)
    }

    pub fn fatal(&self) -> Option<&str> {
        self.fatal.as_deref()
    }

    pub fn finished(&self) -> &[TransferReport] {
        &self.finished
    }

    /// Connections still open (reported as unfinished if the run ends now).
    pub fn unfinished(&self) -> usize {
        self.active.len()
    }

    pub fn exit_after(&self) -> Option<usize> {
        self.exit_after
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }
}
