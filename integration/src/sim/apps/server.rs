//! A bulk server: accepts every connection, sends each one its own pattern
//! stream, optionally reads and checks the client's stream, and closes.

use core::net::SocketAddrV4;
use std::collections::BTreeMap;

use sluice_stack::time::Instant;
use sluice_stack::{ConnId, ConsumerId, Error, EventSet, ListenerId, Shutdown, SocketId, Stack};

use super::pattern::{stream_key, Flow};
use super::stream::{PatternReceiver, PatternSender, CHUNK};
use crate::sim::world::App;

#[derive(Clone, Debug)]
pub struct BulkServerConfig {
    pub listen: SocketAddrV4,
    pub backlog: usize,
    pub consumer: ConsumerId,
    /// Bytes of the server-to-client pattern sent on every connection.
    pub send_bytes: u64,
    /// `None`: never read; close as soon as everything is queued (nginx
    /// writing a response and closing at once, seed 003).
    /// `Some(n)`: read and check `n` bytes of the client's stream; after
    /// sending everything shut down the write side, close after the client's EOF.
    pub expect_bytes: Option<u64>,
}

struct ServerConn {
    peer: SocketAddrV4,
    tx: PatternSender,
    rx: Option<PatternReceiver>,
    write_shut: bool,
}

/// What happened to the server's connections.
#[derive(Clone, Debug, Default)]
pub struct ServerTally {
    pub accepted: usize,
    /// Connections that sent (and read, if asked) everything and were closed.
    pub completed: usize,
    /// Completion instants, in order.
    pub completed_at: Vec<Instant>,
    pub failures: Vec<String>,
}

pub struct BulkServer {
    config: BulkServerConfig,
    listener: Option<ListenerId>,
    conns: BTreeMap<ConnId, ServerConn>,
    tally: ServerTally,
    scratch: Vec<u8>,
}

impl BulkServer {
    pub fn new(config: BulkServerConfig) -> BulkServer {
        BulkServer {
            config,
            listener: None,
            conns: BTreeMap::new(),
            tally: ServerTally::default(),
            scratch: vec![0; CHUNK],
        }
    }
    pub fn tally(&self) -> &ServerTally {
        &self.tally
    }
    /// Connections accepted and not yet completed or failed.
    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }
    /// Their handles (e.g. to inspect `tcp_info`).
    pub fn live_connections(&self) -> Vec<ConnId> {
        self.conns.keys().copied().collect()
    }

    fn accept_all(&mut self, now: Instant, stack: &mut Stack, listener: ListenerId) {
        loop {
            match stack.tcp_accept(listener) {
                Ok((conn, peer)) => {
                    self.tally.accepted += 1;
                    let tx = PatternSender::new(
                        stream_key(peer, Flow::ServerToClient),
                        self.config.send_bytes,
                    );
                    let rx = self
                        .config
                        .expect_bytes
                        .map(|n| PatternReceiver::new(stream_key(peer, Flow::ClientToServer), n));
                    self.conns.insert(
                        conn,
                        ServerConn {
                            peer,
                            tx,
                            rx,
                            write_shut: false,
                        },
                    );
                    self.drive(now, stack, conn, EventSet::EMPTY);
                }
                Err(Error::WouldBlock) => return,
                Err(e) => {
                    self.tally.failures.push(format!("accept failed: {e}"));
                    return;
                }
            }
        }
    }

    fn fail(&mut self, now: Instant, stack: &mut Stack, conn: ConnId, why: String) {
        if let Some(c) = self.conns.remove(&conn) {
            self.tally
                .failures
                .push(format!("server conn from {}: {why} at {now:?}", c.peer));
            let _ = stack.tcp_close(now, conn);
        }
    }

    fn drive(&mut self, now: Instant, stack: &mut Stack, conn: ConnId, kinds: EventSet) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if kinds.intersects(EventSet::RESET) {
            return self.fail(now, stack, conn, format!("reset ({kinds:?})"));
        }
        if kinds.intersects(EventSet::ERROR) {
            let err = stack.tcp_take_error(conn);
            return self.fail(now, stack, conn, format!("error {err:?}"));
        }
        if let Err(e) = c.tx.pump(stack, conn) {
            let why = format!("send failed after {} bytes: {e}", c.tx.sent());
            return self.fail(now, stack, conn, why);
        }
        if let Some(rx) = &mut c.rx {
            if let Err(f) = rx.pump(stack, conn, &mut self.scratch, None) {
                return self.fail(now, stack, conn, format!("receive failed: {f:?}"));
            }
        }
        if !c.tx.done() {
            return;
        }
        let finished = match &c.rx {
            None => true,
            Some(rx) => {
                if !c.write_shut {
                    if let Err(e) = stack.tcp_shutdown(now, conn, Shutdown::Write) {
                        return self.fail(now, stack, conn, format!("shutdown failed: {e}"));
                    }
                    c.write_shut = true;
                }
                rx.eof()
            }
        };
        if finished {
            self.conns.remove(&conn);
            match stack.tcp_close(now, conn) {
                Ok(()) => {
                    self.tally.completed += 1;
                    self.tally.completed_at.push(now);
                }
                Err(e) => self.tally.failures.push(format!("close failed: {e}")),
            }
        }
    }
}

impl App for BulkServer {
    fn start(&mut self, _now: Instant, stack: &mut Stack) {
        match stack.tcp_listen(
            self.config.consumer,
            self.config.listen,
            self.config.backlog,
            false,
        ) {
            Ok(l) => self.listener = Some(l),
            Err(e) => self
                .tally
                .failures
                .push(format!("listen on {} failed: {e}", self.config.listen)),
        }
    }

    fn poll(&mut self, now: Instant, stack: &mut Stack) {
        while let Some(event) = stack.poll_event(self.config.consumer) {
            match event.key {
                SocketId::Listener(l) => self.accept_all(now, stack, l),
                SocketId::Conn(c) => self.drive(now, stack, c, event.kinds),
            }
        }
    }
}
