//! Cut-through sessions (design §3.7): a connection between two apps served
//! by this worker, to the stack's own address or (with `--loopback on`) to
//! 127.0.0.0/8, is a pair of sessions with no engine connection and no
//! frame on the NIC. Each end has its own fifos in its own app's segment;
//! the worker copies `min(readable, free)` from one end's TX fifo into the
//! other's RX fifo through its private bounce buffer, so apps never map
//! each other's memory and flow control is the fifo fill level, with the
//! same shared words as an engine connection (`sluice_shm::protocol`).
//! FIN and RST become `PEER_CLOSED` and `RESET` on the other end.
//!
//! The work is split because one app's turn cannot reach another app:
//! * `local` — what a request does to its own end (in the app's turn):
//!   CONNECT opens the client end, TX_READY/RX_SPACE/SHUTDOWN/CLOSE/ABORT
//!   update the end and queue the pair here;
//! * `connect` — after every app's turn: queued connects find their
//!   listener and become pairs (`ACCEPTED` onto the listener's credit);
//! * `pump` — after every app's turn: queued pairs move bytes both ways,
//!   finish shutdowns and closes, and deliver resets.
//!
//! Ports: a client end takes a local port from the engine's ephemeral range,
//! kept unique per local address in [`CutThrough`]. The engine does not
//! need to avoid these ports: its connections never have the stack's own
//! address or 127/8 as their remote, so no engine four-tuple can equal a
//! cut-through one.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4};

use sluice_shm::protocol::SockOption;
use sluice_shm::{FifoConsumer, FifoProducer, SessionHandle};
use sluice_stack::Instant;

use super::session::Finish;
use super::AppId;

mod connect;
mod local;
mod pump;

pub(super) use pump::run;

/// `connect(2)` to a listener whose accept queue stays full fails after
/// the SYN retries: `tcp_syn_retries` = 6 gives 1 + 2 + ... + 64 = 127 s
/// (`tcp(7)`), the kernel's behaviour at backlog overflow on loopback.
const CONNECT_TIMEOUT_SECS: u64 = 127;

/// One end of a pair: an app worker and a generation-checked handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Endpoint {
    pub app: AppId,
    pub handle: SessionHandle,
}

/// Where an end is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// A client end waiting for a listener's credit (the SYN retries).
    Connecting {
        remote: SocketAddrV4,
        deadline: Instant,
    },
    Open,
    /// The connect failed (refused or timed out); only CLOSE is left.
    Failed,
}

/// What the daemon keeps for one end of a pair.
pub(super) struct CutEnd {
    /// RX fifo: the daemon produces (peer → this app).
    pub rx: FifoProducer,
    /// TX fifo: the daemon consumes (this app → peer).
    pub tx: FifoConsumer,
    pub phase: Phase,
    /// The other end, once connected. Its handle stops resolving when the
    /// peer's slot is freed: the peer is then gone.
    pub peer: Option<Endpoint>,
    /// A shutdown or close waiting for `remaining` TX bytes to reach the peer.
    pub finish: Option<Finish>,
    /// Our FIN has reached the peer.
    pub write_shut: bool,
    /// The peer's FIN has reached us (`PEER_CLOSED` sent).
    pub peer_fin: bool,
    /// The peer reset the pair: what this end writes is dropped.
    pub reset: bool,
    /// The app closed the handle: no events for it, the slot only drains.
    pub released: bool,
    /// `SO_LINGER` 0: close resets the pair.
    pub linger_zero: bool,
    /// The local address a client end holds in [`CutThrough::ports`].
    pub port: Option<SocketAddrV4>,
}

impl CutEnd {
    fn new(rx: FifoProducer, tx: FifoConsumer, phase: Phase) -> CutEnd {
        CutEnd {
            rx,
            tx,
            phase,
            peer: None,
            finish: None,
            write_shut: false,
            peer_fin: false,
            reset: false,
            released: false,
            linger_zero: false,
            port: None,
        }
    }

    /// `SET_OPTION` (already range-checked): only `SO_LINGER` 0 changes what
    /// a pair does; the TCP options have nothing to act on without an engine
    /// connection, and succeed as they would on a kernel loopback socket.
    pub fn set_option(&mut self, option: SockOption, value: u64) {
        if option == SockOption::LingerZero {
            self.linger_zero = value != 0;
        }
    }

    /// The state as `ss` would print it for the kernel's loopback socket.
    pub fn state_name(&self) -> &'static str {
        match self.phase {
            Phase::Connecting { .. } => "SYN-SENT",
            Phase::Failed => "CLOSED",
            Phase::Open if self.reset => "CLOSED",
            Phase::Open if self.released => "FIN-WAIT-1",
            Phase::Open => match (self.write_shut, self.peer_fin) {
                (false, false) => "ESTABLISHED",
                (true, false) => "FIN-WAIT-2",
                (false, true) => "CLOSE-WAIT",
                (true, true) => "TIME-WAIT",
            },
        }
    }
}

/// Cut-through state that spans the apps of one worker.
#[derive(Default)]
pub(in crate::app) struct CutThrough {
    /// Local addresses held by client ends.
    ports: HashSet<SocketAddrV4>,
    /// Where the next ephemeral port search starts.
    port_cursor: u32,
    /// Client ends whose connect is still to be completed.
    pending: Vec<Endpoint>,
    /// Ends whose pair has bytes or a close to move.
    kicked: Vec<Endpoint>,
    /// Ends whose peer reset the pair.
    resets: Vec<Endpoint>,
}

impl CutThrough {
    /// Takes a free ephemeral port on `ip` from `range` (inclusive).
    fn take_ephemeral(&mut self, ip: Ipv4Addr, range: (u16, u16)) -> Option<SocketAddrV4> {
        let (low, high) = if range.0 <= range.1 { range } else { (range.1, range.0) };
        let low = low.max(1);
        let span = u32::from(high.max(low) - low) + 1;
        for i in 0..span {
            let offset = (self.port_cursor.wrapping_add(i)) % span;
            let addr = SocketAddrV4::new(ip, low + offset as u16);
            if self.ports.insert(addr) {
                self.port_cursor = offset + 1;
                return Some(addr);
            }
        }
        None
    }

    /// Takes `addr` (an explicit `bind(2)` before `connect(2)`); false if
    /// another cut-through client holds it.
    fn take(&mut self, addr: SocketAddrV4) -> bool {
        self.ports.insert(addr)
    }

    fn release(&mut self, addr: SocketAddrV4) {
        self.ports.remove(&addr);
    }

    /// Whether connects wait for a listener's credit (or their deadline).
    pub(in crate::app) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    fn kick(&mut self, end: Endpoint) {
        self.kicked.push(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ephemeral_ports_are_unique_per_address_until_released() {
        let mut cut = CutThrough::default();
        let ip = Ipv4Addr::new(127, 0, 0, 1);
        let a = cut.take_ephemeral(ip, (50000, 50001)).unwrap();
        let b = cut.take_ephemeral(ip, (50000, 50001)).unwrap();
        assert_ne!(a, b);
        assert_eq!(cut.take_ephemeral(ip, (50000, 50001)), None, "range exhausted");
        let other = cut.take_ephemeral(Ipv4Addr::new(127, 0, 0, 2), (50000, 50001));
        assert!(other.is_some(), "another local address has its own ports");
        cut.release(a);
        assert_eq!(cut.take_ephemeral(ip, (50000, 50001)), Some(a));
        assert!(!cut.take(b), "held");
    }
}
