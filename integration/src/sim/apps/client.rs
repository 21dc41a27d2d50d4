//! A bulk client: opens connections to a server (spaced in time), sends each
//! its pattern stream, reads and checks everything the server sends until
//! EOF, then closes. Records per-connection outcomes and completion times.

use core::net::SocketAddrV4;
use std::collections::BTreeMap;

use sluice_stack::config::TcpConfig;
use sluice_stack::time::{Duration, Instant};
use sluice_stack::{ConnId, ConsumerId, EventSet, Shutdown, SocketId, Stack};

use super::pattern::{stream_key, Flow};
use super::stream::{PatternReceiver, PatternSender, CHUNK};
use crate::sim::world::App;

/// What the client expects to read back.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Expect {
    /// This many bytes of the server-to-client pattern (a [`super::BulkServer`]).
    ServerPattern(u64),
    /// Its own stream echoed back (an [`super::EchoServer`]).
    Echo,
}

/// Stop reading for a while once a connection has received `after_bytes`
/// (the receive window fills and closes: zero-window probing).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ReadPause {
    pub after_bytes: u64,
    pub duration: Duration,
}

#[derive(Clone, Debug)]
pub struct BulkClientConfig {
    pub server: SocketAddrV4,
    pub connections: usize,
    pub consumer: ConsumerId,
    /// Bytes of the client-to-server pattern sent on each connection, then
    /// the write side is shut down (if nonzero).
    pub send_bytes: u64,
    pub expect: Expect,
    /// Gap between successive connects (zero: all at once).
    pub connect_interval: Duration,
    /// Per-connection TCP settings (`None`: the stack's defaults).
    pub tcp: Option<TcpConfig>,
    pub read_pause: Option<ReadPause>,
    /// Abort (RST) each connection once it has received this many bytes: a
    /// client that gives up mid-download while the server still has data
    /// (and retransmissions) queued.
    pub abort_after: Option<u64>,
}

impl BulkClientConfig {
    /// `connections` connections to `server`, sending and expecting nothing yet.
    pub fn new(server: SocketAddrV4, connections: usize) -> BulkClientConfig {
        BulkClientConfig {
            server,
            connections,
            consumer: ConsumerId(0),
            send_bytes: 0,
            expect: Expect::ServerPattern(0),
            connect_interval: Duration::ZERO,
            tcp: None,
            read_pause: None,
            abort_after: None,
        }
    }
}

/// The fate of one connection.
#[derive(Clone, Debug, Default)]
pub struct ClientOutcome {
    pub local: Option<SocketAddrV4>,
    pub connected_at: Option<Instant>,
    pub sent: u64,
    pub received: u64,
    pub eof: bool,
    pub completed_at: Option<Instant>,
    /// Aborted on purpose (`abort_after`).
    pub aborted_at: Option<Instant>,
    pub failure: Option<String>,
}

struct ClientConn {
    index: usize,
    connected: bool,
    tx: PatternSender,
    rx: PatternReceiver,
    write_shut: bool,
    paused_until: Option<Instant>,
    pause_used: bool,
}

pub struct BulkClient {
    config: BulkClientConfig,
    opened: usize,
    next_connect: Instant,
    conns: BTreeMap<ConnId, ClientConn>,
    outcomes: Vec<ClientOutcome>,
    completed: usize,
    failed: usize,
    aborted: usize,
    scratch: Vec<u8>,
}

impl BulkClient {
    pub fn new(config: BulkClientConfig) -> BulkClient {
        BulkClient {
            config,
            opened: 0,
            next_connect: Instant::ZERO,
            conns: BTreeMap::new(),
            outcomes: Vec::new(),
            completed: 0,
            failed: 0,
            aborted: 0,
            scratch: vec![0; CHUNK],
        }
    }

    pub fn outcomes(&self) -> &[ClientOutcome] {
        &self.outcomes
    }
    pub fn completed(&self) -> usize {
        self.completed
    }
    pub fn failed(&self) -> usize {
        self.failed
    }
    pub fn aborted(&self) -> usize {
        self.aborted
    }
    /// Every connection has completed, failed or been aborted on purpose.
    pub fn finished(&self) -> bool {
        self.completed + self.failed + self.aborted == self.config.connections
    }
    pub fn failures(&self) -> Vec<&str> {
        self.outcomes
            .iter()
            .filter_map(|o| o.failure.as_deref())
            .collect()
    }
    /// The live connections' handles (e.g. to inspect `tcp_info`).
    pub fn live_connections(&self) -> Vec<ConnId> {
        self.conns.keys().copied().collect()
    }
    /// Bytes received so far over all connections.
    pub fn bytes_received(&self) -> u64 {
        self.outcomes.iter().map(|o| o.received).sum::<u64>()
    }

    fn expected_bytes(&self) -> u64 {
        match self.config.expect {
            Expect::ServerPattern(n) => n,
            Expect::Echo => self.config.send_bytes,
        }
    }

    fn connect(&mut self, now: Instant, stack: &mut Stack) {
        let index = self.outcomes.len();
        self.outcomes.push(ClientOutcome::default());
        match stack.tcp_connect(
            now,
            self.config.consumer,
            self.config.server,
            None,
            self.config.tcp,
        ) {
            Ok(conn) => {
                let local = match stack.local_addr(conn) {
                    Ok(a) => a,
                    Err(e) => {
                        return self
                            .fail_index(index, format!("no local address after connect: {e}"))
                    }
                };
                self.outcomes[index].local = Some(local);
                let rx_flow = match self.config.expect {
                    Expect::ServerPattern(_) => Flow::ServerToClient,
                    Expect::Echo => Flow::ClientToServer,
                };
                let conn_state = ClientConn {
                    index,
                    connected: false,
                    tx: PatternSender::new(
                        stream_key(local, Flow::ClientToServer),
                        self.config.send_bytes,
                    ),
                    rx: PatternReceiver::new(stream_key(local, rx_flow), self.expected_bytes()),
                    write_shut: false,
                    paused_until: None,
                    pause_used: false,
                };
                self.conns.insert(conn, conn_state);
            }
            Err(e) => self.fail_index(index, format!("connect failed: {e}")),
        }
    }

    fn fail_index(&mut self, index: usize, why: String) {
        let o = &mut self.outcomes[index];
        if o.failure.is_none() && o.completed_at.is_none() {
            o.failure = Some(format!("client conn {index} ({:?}): {why}", o.local));
            self.failed += 1;
        }
    }

    fn fail(&mut self, now: Instant, stack: &mut Stack, conn: ConnId, why: String) {
        if let Some(c) = self.conns.remove(&conn) {
            self.sync_outcome(&c);
            self.fail_index(c.index, format!("{why} at {now:?}"));
            let _ = stack.tcp_close(now, conn);
        }
    }

    fn sync_outcome(&mut self, c: &ClientConn) {
        let o = &mut self.outcomes[c.index];
        o.sent = c.tx.sent();
        o.received = c.rx.received();
        o.eof = c.rx.eof();
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
        if kinds.intersects(EventSet::CONNECTED) && !c.connected {
            c.connected = true;
            self.outcomes[c.index].connected_at = Some(now);
        }
        if !c.connected {
            return;
        }
        if let Err(e) = c.tx.pump(stack, conn) {
            let why = format!("send failed after {} bytes: {e}", c.tx.sent());
            return self.fail(now, stack, conn, why);
        }
        if c.tx.done() && self.config.send_bytes > 0 && !c.write_shut {
            if let Err(e) = stack.tcp_shutdown(now, conn, Shutdown::Write) {
                return self.fail(now, stack, conn, format!("shutdown failed: {e}"));
            }
            c.write_shut = true;
        }
        if c.paused_until.is_some_and(|t| t > now) {
            return;
        }
        c.paused_until = None;
        let pause_at = match self.config.read_pause {
            Some(p) if !c.pause_used => Some(p.after_bytes),
            _ => None,
        };
        let stop_at = match (pause_at, self.config.abort_after) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let pumped = c.rx.pump(stack, conn, &mut self.scratch, stop_at);
        let outcome = &mut self.outcomes[c.index];
        (outcome.sent, outcome.received, outcome.eof) = (c.tx.sent(), c.rx.received(), c.rx.eof());
        if let Err(f) = pumped {
            return self.fail(now, stack, conn, format!("receive failed: {f:?}"));
        }
        if self
            .config
            .abort_after
            .is_some_and(|limit| c.rx.received() >= limit)
        {
            let c = self.conns.remove(&conn).expect("present above");
            match stack.tcp_abort(now, conn) {
                Ok(()) => {
                    self.outcomes[c.index].aborted_at = Some(now);
                    self.aborted += 1;
                }
                Err(e) => self.fail_index(c.index, format!("abort failed: {e}")),
            }
            return;
        }
        if let (Some(limit), Some(pause)) = (pause_at, self.config.read_pause) {
            if c.rx.received() >= limit {
                c.pause_used = true;
                c.paused_until = Some(now + pause.duration);
                return;
            }
        }
        if c.rx.eof() && c.tx.done() {
            let c = self.conns.remove(&conn).expect("present above");
            self.sync_outcome(&c);
            match stack.tcp_close(now, conn) {
                Ok(()) => {
                    self.outcomes[c.index].completed_at = Some(now);
                    self.completed += 1;
                }
                Err(e) => self.fail_index(c.index, format!("close failed: {e}")),
            }
        }
    }
}

impl App for BulkClient {
    fn start(&mut self, now: Instant, _stack: &mut Stack) {
        self.next_connect = now;
    }

    fn poll(&mut self, now: Instant, stack: &mut Stack) {
        while self.opened < self.config.connections && self.next_connect <= now {
            self.opened += 1;
            self.connect(now, stack);
            self.next_connect += self.config.connect_interval;
        }
        if self.config.read_pause.is_some() {
            let resumed: Vec<ConnId> = self
                .conns
                .iter()
                .filter(|(_, c)| c.paused_until.is_some_and(|t| t <= now))
                .map(|(&id, _)| id)
                .collect();
            for conn in resumed {
                self.drive(now, stack, conn, EventSet::EMPTY);
            }
        }
        while let Some(event) = stack.poll_event(self.config.consumer) {
            if let SocketId::Conn(c) = event.key {
                self.drive(now, stack, c, event.kinds);
            }
        }
    }

    fn next_wakeup(&self) -> Option<Instant> {
        let connect = (self.opened < self.config.connections).then_some(self.next_connect);
        let resume = match self.config.read_pause {
            Some(_) => self.conns.values().filter_map(|c| c.paused_until).min(),
            None => None,
        };
        match (connect, resume) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
