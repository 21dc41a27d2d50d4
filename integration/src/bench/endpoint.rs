//! The harness trait: what the benchmark driver and workloads need from a TCP
//! stack. Both Sluice and smoltcp implement it, so every workload runs the same
//! code against either stack.

use core::fmt;
use core::net::SocketAddrV4;

use super::wire::Port;

/// Virtual time in microseconds, owned by the driver.
pub type Micros = u64;

/// Outcome of a non-blocking read.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RecvOutcome {
    /// This many bytes (> 0) were copied out.
    Data(usize),
    /// Nothing buffered right now.
    WouldBlock,
    /// The peer closed its direction and everything was read.
    Eof,
}

/// A stack call failed in a way the workload cannot recover from.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StackError(pub String);

impl fmt::Display for StackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Settings both stacks are built with, so they are compared like for like.
#[derive(Clone, Copy, Debug)]
pub struct EndpointConfig {
    pub mac: [u8; 6],
    pub ip: core::net::Ipv4Addr,
    pub prefix_len: u8,
    /// IP MTU (the Ethernet frame is 14 bytes longer).
    pub mtu: usize,
    pub send_buffer: usize,
    pub recv_buffer: usize,
    /// Seed for the stack's own randomness (ISNs, secrets).
    pub seed: u64,
}

/// One TCP/IP stack attached to one port of the wire.
pub trait Endpoint {
    /// A connection handle, as the application holds it.
    type Conn: Copy;

    /// Process every frame waiting in `port.inbound`.
    fn ingress(&mut self, now: Micros, port: &mut Port);
    /// Run due timers and transmit everything due into `port.outbound`.
    fn egress(&mut self, now: Micros, port: &mut Port);
    /// When the stack next needs `egress` with nothing received; `None` if never.
    fn next_deadline(&mut self, now: Micros) -> Option<Micros>;

    /// Listen on `port`, ready to take `backlog` connections at once.
    fn listen(&mut self, now: Micros, port: u16, backlog: usize) -> Result<(), StackError>;
    /// Move connections that completed their handshake on the listener into `out`.
    fn accept(&mut self, out: &mut Vec<Self::Conn>) -> Result<(), StackError>;
    /// Start an active open to `remote`.
    fn connect(&mut self, now: Micros, remote: SocketAddrV4) -> Result<Self::Conn, StackError>;
    /// Whether the handshake of `conn` has completed (and it has not failed).
    fn is_established(&mut self, conn: Self::Conn) -> Result<bool, StackError>;
    /// Queue as much of `data` as fits; returns the bytes taken (0 if the buffer is full).
    fn send(&mut self, conn: Self::Conn, data: &[u8]) -> Result<usize, StackError>;
    fn recv(&mut self, conn: Self::Conn, buf: &mut [u8]) -> Result<RecvOutcome, StackError>;
    /// Graceful close of the sending direction.
    fn close(&mut self, now: Micros, conn: Self::Conn) -> Result<(), StackError>;
}
