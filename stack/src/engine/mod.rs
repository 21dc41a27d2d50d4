//! The sans-IO engine: one network interface (Ethernet, ARP, IPv4, ICMP) and
//! its TCP sockets, driven entirely by the caller.
//!
//! Verbs (after quinn-proto): `handle_frame` for each received frame,
//! `poll_transmit` to drain frames to send, `poll_timeout`/`handle_timeout` for
//! timers, and socket calls (`tcp_listen`, `tcp_connect`, `tcp_accept`,
//! `tcp_send`, `tcp_recv`, `tcp_close`, ...) whose effects show up as events in
//! the consumer's queue (`poll_event`). No syscalls, no clock reads.
//!
//! The engine's files, one job each:
//! * `slots` — what the engine keeps per connection and per listener;
//! * `accept_queue` — a listener's queue of connections awaiting `tcp_accept`;
//! * `receive` — Ethernet, ARP and IPv4 input (with reassembly and ICMP);
//! * `tcp_input` — segment demultiplexing, passive opens, SYN cookies, RSTs;
//! * `lifecycle` — bookkeeping after every connection interaction: events,
//!   the accept queue, the timer, unlinking finished connections;
//! * `transmit` — `poll_transmit`: ARP/ICMP/control first, then the postponed
//!   fast-retransmit list, then connections touched since the last poll;
//! * `egress` — building Ethernet/IPv4 frames and resolving next hops;
//! * `neighbour_wait` — SYNs waiting for a neighbour's resolution to settle;
//! * `control` — RSTs and SYN-cookie SYN-ACKs waiting to be sent;
//! * `timers` — `poll_timeout`/`handle_timeout`;
//! * `time_wait` — recycling TIME-WAIT connections when the table is full;
//! * `sockets` — the socket calls; `ports` — ephemeral port choice;
//! * `events` — per-consumer event queues;
//! * `unreachable` — ICMP and ARP failures failing connection attempts.

use core::net::SocketAddrV4;
use std::collections::VecDeque;

use crate::config::StackConfig;
use crate::handle::{Arena, Handle};
use crate::iface::icmp::IcmpResponder;
use crate::iface::reassembly::Reassembler;
use crate::session::demux::{ConnTable, ListenerTable};
use crate::session::timer_wheel::TimerWheel;
use crate::tcp::isn::IsnGenerator;
use crate::tcp::syncookie::SynCookies;
use crate::time::{Duration, Instant};

mod accept_queue;
mod control;
mod egress;
mod events;
mod lifecycle;
mod neighbour_wait;
mod ports;
mod receive;
mod slots;
mod sockets;
mod stats;
mod tcp_input;
#[cfg(test)]
mod tests;
mod time_wait;
mod timers;
mod transmit;
mod unreachable;

pub use slots::{ConnSlot, ListenerSlot};
pub use sockets::DetachedConn;
pub use stats::Stats;

use control::ControlQueue;
use egress::Egress;
use ports::EphemeralPorts;

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

/// How `tcp_shutdown` closes a direction.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Shutdown {
    Read,
    Write,
    Both,
}

/// Resolution of the connection timer wheel (RFC 6298 timers are in the
/// hundreds of milliseconds; delayed ACKs in tens).
const TIMER_TICK: Duration = Duration::from_millis(1);

/// The engine: one interface and its sockets. See the module documentation.
pub struct Stack {
    config: StackConfig,
    /// Link-layer output: addresses, routing, ARP, IPv4 identification.
    egress: Egress,
    reassembler: Reassembler,
    icmp: IcmpResponder,
    /// RSTs and SYN-cookie SYN-ACKs, which belong to no connection.
    control: ControlQueue,
    conns: Arena<ConnSlot>,
    listeners: Arena<ListenerSlot>,
    conn_table: ConnTable<ConnId>,
    listener_table: ListenerTable<ListenerId>,
    isn: IsnGenerator,
    cookies: SynCookies,
    /// When the last SYN cookie was sent: cookie ACKs are honoured only
    /// shortly after (Linux's `tcp_synq_no_recent_overflow`), so nobody can
    /// open connections by guessing cookies while we are not flooded.
    last_cookie_sent: Option<Instant>,
    timers: TimerWheel<ConnId>,
    /// One event queue per consumer.
    consumers: events::ConsumerQueues,
    /// Connections touched since the last `poll_transmit`, deduplicated by
    /// `ConnSlot::dirty`, so a poll costs O(active) rather than O(all).
    dirty: VecDeque<ConnId>,
    /// Connections whose fast retransmits the per-poll budget postponed; the
    /// next poll serves them first. Entries are handles: one whose connection
    /// was freed in between no longer resolves and is dropped (seed 003).
    postponed: VecDeque<ConnId>,
    /// Released connections in TIME-WAIT, oldest first, recycled when the
    /// table is full (see `time_wait`); stale handles are skipped.
    time_wait: VecDeque<ConnId>,
    /// Connection attempts whose SYN waits for a neighbour's resolution
    /// (see `neighbour_wait`): next hop and handle.
    neighbour_waiters: Vec<(core::net::Ipv4Addr, ConnId)>,
    /// Half-open connections across all listeners.
    half_open: usize,
    ports: EphemeralPorts,
    /// Scratch buffer for expired timers (kept so expiry does not allocate).
    expired: Vec<ConnId>,
    stats: Stats,
}

impl Stack {
    pub fn new(config: StackConfig, now: Instant) -> Stack {
        let secret = config.secret;
        Stack {
            egress: Egress::new(&config),
            reassembler: Reassembler::new(config.reassembly_buffer, config.reassembly_timeout),
            icmp: IcmpResponder::new(config.ip, config.mtu),
            control: ControlQueue::new(),
            conns: Arena::with_limit(config.max_connections),
            listeners: Arena::with_limit(config.max_listeners),
            conn_table: ConnTable::new(&secret),
            listener_table: ListenerTable::new(&secret),
            isn: IsnGenerator::new(&secret),
            cookies: SynCookies::new(&secret),
            last_cookie_sent: None,
            timers: TimerWheel::new(now, TIMER_TICK),
            consumers: events::ConsumerQueues::default(),
            dirty: VecDeque::new(),
            postponed: VecDeque::new(),
            time_wait: VecDeque::new(),
            neighbour_waiters: Vec::new(),
            half_open: 0,
            ports: EphemeralPorts::new(&secret, config.ephemeral_ports),
            expired: Vec::new(),
            stats: Stats::default(),
            config,
        }
    }

    pub fn config(&self) -> &StackConfig {
        &self.config
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Live connections (half-open, established, orphaned, TIME-WAIT).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Our address for a listener or connection bound to `addr` (0.0.0.0 = ours).
    fn local_ip_for(&self, addr: &SocketAddrV4) -> Option<core::net::Ipv4Addr> {
        if addr.ip().is_unspecified() || *addr.ip() == self.config.ip {
            Some(self.config.ip)
        } else {
            None
        }
    }
}
