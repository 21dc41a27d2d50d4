//! An echo server: writes back everything it reads, closes after the
//! client's EOF once all of it is echoed. Holds at most one chunk per
//! connection: when the engine will not take more, it stops reading
//! (backpressure travels back to the client as a closing window).

use core::net::SocketAddrV4;
use std::collections::BTreeMap;

use sluice_stack::time::Instant;
use sluice_stack::{ConnId, ConsumerId, Error, EventSet, ListenerId, SocketId, Stack};

use super::stream::CHUNK;
use crate::sim::world::App;

struct EchoConn {
    peer: SocketAddrV4,
    /// Read but not yet accepted by `tcp_send`.
    pending: Vec<u8>,
    echoed: u64,
    eof: bool,
}

#[derive(Clone, Debug, Default)]
pub struct EchoTally {
    pub accepted: usize,
    pub completed: usize,
    pub bytes_echoed: u64,
    pub failures: Vec<String>,
}

pub struct EchoServer {
    listen: SocketAddrV4,
    consumer: ConsumerId,
    conns: BTreeMap<ConnId, EchoConn>,
    tally: EchoTally,
    scratch: Vec<u8>,
}

impl EchoServer {
    pub fn new(listen: SocketAddrV4, consumer: ConsumerId) -> EchoServer {
        EchoServer {
            listen,
            consumer,
            conns: BTreeMap::new(),
            tally: EchoTally::default(),
            scratch: vec![0; CHUNK],
        }
    }
    pub fn tally(&self) -> &EchoTally {
        &self.tally
    }

    fn accept_all(&mut self, now: Instant, stack: &mut Stack, listener: ListenerId) {
        loop {
            match stack.tcp_accept(listener) {
                Ok((conn, peer)) => {
                    self.tally.accepted += 1;
                    self.conns.insert(
                        conn,
                        EchoConn {
                            peer,
                            pending: Vec::new(),
                            echoed: 0,
                            eof: false,
                        },
                    );
                    self.drive(now, stack, conn, EventSet::EMPTY);
                }
                Err(Error::WouldBlock) => return,
                Err(e) => return self.tally.failures.push(format!("accept failed: {e}")),
            }
        }
    }

    fn fail(&mut self, now: Instant, stack: &mut Stack, conn: ConnId, why: String) {
        if let Some(c) = self.conns.remove(&conn) {
            self.tally
                .failures
                .push(format!("echo conn from {}: {why} at {now:?}", c.peer));
            let _ = stack.tcp_close(now, conn);
        }
    }

    /// Sends what is pending; true when nothing is left.
    fn flush(stack: &mut Stack, conn: ConnId, c: &mut EchoConn) -> Result<bool, Error> {
        while !c.pending.is_empty() {
            match stack.tcp_send(conn, &c.pending) {
                Ok(0) | Err(Error::WouldBlock) => return Ok(false),
                Ok(n) => {
                    c.pending.drain(..n);
                    c.echoed += n as u64;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    fn drive(&mut self, now: Instant, stack: &mut Stack, conn: ConnId, kinds: EventSet) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if kinds.intersects(EventSet::RESET | EventSet::ERROR) {
            let err = stack.tcp_take_error(conn);
            return self.fail(now, stack, conn, format!("{kinds:?} {err:?}"));
        }
        loop {
            match Self::flush(stack, conn, c) {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => return self.fail(now, stack, conn, format!("send failed: {e}")),
            }
            if c.eof {
                break;
            }
            match stack.tcp_recv(conn, &mut self.scratch) {
                Ok(0) => c.eof = true,
                Ok(n) => c.pending.extend_from_slice(&self.scratch[..n]),
                Err(Error::WouldBlock) => return,
                Err(e) => return self.fail(now, stack, conn, format!("receive failed: {e}")),
            }
        }
        let c = self.conns.remove(&conn).expect("present above");
        self.tally.bytes_echoed += c.echoed;
        match stack.tcp_close(now, conn) {
            Ok(()) => self.tally.completed += 1,
            Err(e) => self.tally.failures.push(format!("close failed: {e}")),
        }
    }
}

impl App for EchoServer {
    fn start(&mut self, _now: Instant, stack: &mut Stack) {
        if let Err(e) = stack.tcp_listen(self.consumer, self.listen, 1024, false) {
            self.tally
                .failures
                .push(format!("listen on {} failed: {e}", self.listen));
        }
    }

    fn poll(&mut self, now: Instant, stack: &mut Stack) {
        while let Some(event) = stack.poll_event(self.consumer) {
            match event.key {
                SocketId::Listener(l) => self.accept_all(now, stack, l),
                SocketId::Conn(c) => self.drive(now, stack, c, event.kinds),
            }
        }
    }
}
