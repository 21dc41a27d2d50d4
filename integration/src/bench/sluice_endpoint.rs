//! Sluice's sans-IO `Stack` behind the harness trait.
//!
//! Frames go straight from the wire buffer into `handle_frame` and out through
//! the `FrameSink` implementation below; the application side drains the event
//! queue the way an event-loop application would and uses ACCEPTABLE to decide
//! when to call `tcp_accept`.

use core::net::SocketAddrV4;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sluice_stack::tcp::conn::TcpState;
use sluice_stack::wire::EthernetAddress;
use sluice_stack::{ConnId, ConsumerId, Error, EventSet, FrameSink, Instant, ListenerId, SocketId, Stack, StackConfig};

use super::endpoint::{Endpoint, EndpointConfig, Micros, RecvOutcome, StackError};
use super::wire::Port;

const CONSUMER: ConsumerId = ConsumerId(0);

impl FrameSink for Port {
    fn emit(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        self.transmit(len, |frame| fill(frame));
        true
    }
}

fn err(what: &str, e: Error) -> StackError {
    StackError(format!("sluice {what}: {e}"))
}

/// Sluice as a benchmark endpoint.
pub struct SluiceEndpoint {
    stack: Stack,
    listener: Option<ListenerId>,
    /// An ACCEPTABLE event arrived since the accept queue was last emptied.
    acceptable: bool,
}

impl SluiceEndpoint {
    pub fn new(config: &EndpointConfig, now: Micros) -> SluiceEndpoint {
        let mut secret = [0u8; 32];
        ChaCha8Rng::seed_from_u64(config.seed).fill_bytes(&mut secret);
        let mut stack_config = StackConfig::new(EthernetAddress(config.mac), config.ip, config.prefix_len, secret);
        stack_config.mtu = config.mtu;
        stack_config.tcp.send_buffer = config.send_buffer;
        stack_config.tcp.recv_buffer = config.recv_buffer;
        // Same as the smoltcp side: request/response must not wait on Nagle.
        stack_config.tcp.nodelay = true;
        SluiceEndpoint { stack: Stack::new(stack_config, Instant::from_micros(now)), listener: None, acceptable: false }
    }

    /// Drain the consumer's event queue, remembering what the app acts on.
    fn pump_events(&mut self) {
        while let Some(event) = self.stack.poll_event(CONSUMER) {
            if matches!(event.key, SocketId::Listener(_)) && event.kinds.contains(EventSet::ACCEPTABLE) {
                self.acceptable = true;
            }
        }
    }

    /// Bytes of one connection's state machine (without buffers).
    pub fn conn_size() -> usize {
        core::mem::size_of::<sluice_stack::tcp::conn::TcpConn>()
    }

    /// Bytes of the engine's arena slot for one connection (state machine plus
    /// what the engine keeps beside it).
    pub fn slot_size() -> usize {
        core::mem::size_of::<sluice_stack::engine::ConnSlot>()
    }
}

impl Endpoint for SluiceEndpoint {
    type Conn = ConnId;

    fn ingress(&mut self, now: Micros, port: &mut Port) {
        let now = Instant::from_micros(now);
        while let Some(frame) = port.next_inbound() {
            self.stack.handle_frame(now, &frame);
            port.recycle(frame);
        }
        self.pump_events();
    }

    fn egress(&mut self, now: Micros, port: &mut Port) {
        let now = Instant::from_micros(now);
        if self.stack.poll_timeout().is_some_and(|deadline| deadline <= now) {
            self.stack.handle_timeout(now);
        }
        self.stack.poll_transmit(now, port);
        self.pump_events();
    }

    fn next_deadline(&mut self, _now: Micros) -> Option<Micros> {
        self.stack.poll_timeout().map(Instant::total_micros)
    }

    fn listen(&mut self, _now: Micros, port: u16, backlog: usize) -> Result<(), StackError> {
        let local = SocketAddrV4::new(core::net::Ipv4Addr::UNSPECIFIED, port);
        self.listener = Some(self.stack.tcp_listen(CONSUMER, local, backlog, false).map_err(|e| err("listen", e))?);
        Ok(())
    }

    fn accept(&mut self, out: &mut Vec<ConnId>) -> Result<(), StackError> {
        let Some(listener) = self.listener else {
            return Err(StackError("sluice accept without listen".into()));
        };
        if !self.acceptable {
            return Ok(());
        }
        loop {
            match self.stack.tcp_accept(listener) {
                Ok((conn, _peer)) => out.push(conn),
                Err(Error::WouldBlock) => break,
                Err(e) => return Err(err("accept", e)),
            }
        }
        self.acceptable = false;
        Ok(())
    }

    fn connect(&mut self, now: Micros, remote: SocketAddrV4) -> Result<ConnId, StackError> {
        self.stack.tcp_connect(Instant::from_micros(now), CONSUMER, remote, None, None).map_err(|e| err("connect", e))
    }

    fn is_established(&mut self, conn: ConnId) -> Result<bool, StackError> {
        if let Some(e) = self.stack.tcp_take_error(conn).map_err(|e| err("take_error", e))? {
            return Err(err("connect failed", e));
        }
        match self.stack.tcp_info(conn).map_err(|e| err("info", e))?.state {
            Some(TcpState::Established) => Ok(true),
            Some(TcpState::SynSent | TcpState::SynReceived) => Ok(false),
            other => Err(StackError(format!("sluice connection in state {other:?} while connecting"))),
        }
    }

    fn send(&mut self, conn: ConnId, data: &[u8]) -> Result<usize, StackError> {
        match self.stack.tcp_send(conn, data) {
            Ok(n) => Ok(n),
            Err(Error::WouldBlock) => Ok(0),
            Err(e) => Err(err("send", e)),
        }
    }

    fn recv(&mut self, conn: ConnId, buf: &mut [u8]) -> Result<RecvOutcome, StackError> {
        match self.stack.tcp_recv(conn, buf) {
            Ok(0) => Ok(RecvOutcome::Eof),
            Ok(n) => Ok(RecvOutcome::Data(n)),
            Err(Error::WouldBlock) => Ok(RecvOutcome::WouldBlock),
            Err(e) => Err(err("recv", e)),
        }
    }

    fn close(&mut self, now: Micros, conn: ConnId) -> Result<(), StackError> {
        self.stack.tcp_close(Instant::from_micros(now), conn).map_err(|e| err("close", e))
    }
}
