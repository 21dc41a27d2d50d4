//! Shared harness for the engine tests: two stacks on a simulated Ethernet
//! segment (in-memory frame vectors, optional deterministic loss), a driver
//! that advances virtual time to the next deadline, and small apps.
#![allow(dead_code)]

use core::net::{Ipv4Addr, SocketAddrV4};

use sluice_stack::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr, TcpFlags,
    TcpOptions, TcpPacket, TcpRepr,
};
use sluice_stack::{ConnId, ConsumerId, Duration, Error, EventSet, Instant, SocketId, Stack, StackConfig};

pub const MAC_A: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x0a]);
pub const MAC_B: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x0b]);
pub const IP_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const IP_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
pub const APP: ConsumerId = ConsumerId(1);

pub fn config(mac: EthernetAddress, ip: Ipv4Addr) -> StackConfig {
    let mut secret = [0u8; 32];
    secret[0] = ip.octets()[3];
    secret[31] = 0x5a;
    StackConfig::new(mac, ip, 24, secret)
}

/// A tiny deterministic PRNG (xorshift64*), so lossy runs are reproducible.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Two stacks, `a` and `b`, on one link.
pub struct Pair {
    pub a: Stack,
    pub b: Stack,
    pub now: Instant,
    /// Percentage of frames dropped in each direction.
    pub loss_percent: u64,
    pub rng: Rng,
    pub frames_delivered: u64,
    pub frames_lost: u64,
    /// Called on every frame in flight; returning false drops it.
    pub filter: Option<FrameFilter>,
    /// Frames each stack may emit per `poll_transmit` (a small device ring).
    pub ring_size: Option<usize>,
}

/// A transmit ring that takes at most `room` more frames.
pub struct Ring {
    pub frames: Vec<Vec<u8>>,
    pub room: usize,
}

impl sluice_stack::FrameSink for Ring {
    fn emit(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        if self.room == 0 {
            return false;
        }
        self.room -= 1;
        self.frames.emit(len, fill)
    }
}

pub type FrameFilter = Box<dyn FnMut(Direction, &[u8]) -> bool>;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Direction {
    AtoB,
    BtoA,
}

impl Pair {
    pub fn new(a: StackConfig, b: StackConfig) -> Pair {
        let now = Instant::from_secs(1);
        Pair {
            a: Stack::new(a, now),
            b: Stack::new(b, now),
            now,
            loss_percent: 0,
            rng: Rng::new(0x1234_5678),
            frames_delivered: 0,
            frames_lost: 0,
            filter: None,
            ring_size: None,
        }
    }

    pub fn default_pair() -> Pair {
        Pair::new(config(MAC_A, IP_A), config(MAC_B, IP_B))
    }

    fn deliver(&mut self, direction: Direction, frames: Vec<Vec<u8>>) {
        for frame in frames {
            if let Some(filter) = self.filter.as_mut() {
                if !filter(direction, &frame) {
                    self.frames_lost += 1;
                    continue;
                }
            }
            if self.loss_percent > 0 && self.rng.below(100) < self.loss_percent {
                self.frames_lost += 1;
                continue;
            }
            self.frames_delivered += 1;
            match direction {
                Direction::AtoB => self.b.handle_frame(self.now, &frame),
                Direction::BtoA => self.a.handle_frame(self.now, &frame),
            }
        }
    }

    /// Exchanges frames at the current time until neither stack has any to
    /// send. Returns the number of frames that were emitted.
    pub fn flush(&mut self) -> usize {
        let mut total = 0;
        for _ in 0..100_000 {
            let room = self.ring_size.unwrap_or(usize::MAX);
            let mut from_a = Ring { frames: Vec::new(), room };
            let mut from_b = Ring { frames: Vec::new(), room };
            self.a.poll_transmit(self.now, &mut from_a);
            self.b.poll_transmit(self.now, &mut from_b);
            let (from_a, from_b) = (from_a.frames, from_b.frames);
            if from_a.is_empty() && from_b.is_empty() {
                return total;
            }
            total += from_a.len() + from_b.len();
            self.deliver(Direction::AtoB, from_a);
            self.deliver(Direction::BtoA, from_b);
        }
        panic!("the stacks never stopped transmitting at {:?}", self.now);
    }

    /// Advances virtual time to the next deadline of either stack (at most
    /// `limit`) and fires it. False if no deadline is pending before `limit`.
    pub fn advance(&mut self, limit: Instant) -> bool {
        let next = [self.a.poll_timeout(), self.b.poll_timeout()].into_iter().flatten().min();
        let Some(next) = next else { return false };
        if next > limit {
            return false;
        }
        if next > self.now {
            self.now = next;
        }
        self.a.handle_timeout(self.now);
        self.b.handle_timeout(self.now);
        true
    }

    /// Runs the link and the apps (`step`, called after every exchange) until
    /// `step` returns true or `max` of virtual time has passed. Returns
    /// whether `step` finished.
    pub fn run_until(&mut self, max: Duration, mut step: impl FnMut(&mut Pair) -> bool) -> bool {
        let limit = self.now + max;
        loop {
            self.flush();
            if step(self) {
                return true;
            }
            if self.flush() > 0 {
                continue;
            }
            if !self.advance(limit) {
                // Nothing pending: one last chance for the apps, then give up.
                self.flush();
                return step(self);
            }
        }
    }

    /// Runs until neither stack has anything scheduled before `max` passes.
    pub fn run_idle(&mut self, max: Duration) {
        let limit = self.now + max;
        loop {
            self.flush();
            if !self.advance(limit) {
                break;
            }
        }
        self.flush();
    }
}

/// Deterministic test data for connection `n`.
pub fn pattern(n: usize, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15 ^ (n as u64 + 1));
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

/// Drains every event for `consumer`, returning (socket, kinds) pairs.
pub fn drain_events(stack: &mut Stack, consumer: ConsumerId) -> Vec<(SocketId, EventSet)> {
    let mut out = Vec::new();
    while let Some(ev) = stack.poll_event(consumer) {
        out.push((ev.key, ev.kinds));
    }
    out
}

/// A connection driven by a test app: bytes to send, bytes received.
pub struct Flow {
    pub id: ConnId,
    pub to_send: Vec<u8>,
    pub sent: usize,
    pub received: Vec<u8>,
    pub eof: bool,
    pub closed: bool,
    pub error: Option<Error>,
}

impl Flow {
    pub fn new(id: ConnId, to_send: Vec<u8>) -> Self {
        Flow { id, to_send, sent: 0, received: Vec::new(), eof: false, closed: false, error: None }
    }

    /// Sends what fits; reads what is there.
    pub fn pump(&mut self, stack: &mut Stack) {
        if self.closed {
            return;
        }
        while self.sent < self.to_send.len() {
            match stack.tcp_send(self.id, &self.to_send[self.sent..]) {
                Ok(n) => self.sent += n,
                Err(Error::WouldBlock) => break,
                Err(e) => {
                    self.error = Some(e);
                    break;
                }
            }
        }
        let mut buf = [0u8; 16384];
        loop {
            match stack.tcp_recv(self.id, &mut buf) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.received.extend_from_slice(&buf[..n]),
                Err(Error::WouldBlock) => break,
                Err(e) => {
                    self.error = Some(e);
                    break;
                }
            }
        }
    }

    pub fn all_sent(&self) -> bool {
        self.sent == self.to_send.len()
    }
}

/// An echo server's app: accepts everything, echoes every byte, closes after
/// the peer's FIN once everything is echoed.
pub struct EchoServer {
    pub listener: sluice_stack::ListenerId,
    pub flows: Vec<Flow>,
    pub accepted: usize,
}

impl EchoServer {
    pub fn new(stack: &mut Stack, port: u16, backlog: usize) -> Self {
        let listener = stack.tcp_listen(APP, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port), backlog, false).unwrap();
        EchoServer { listener, flows: Vec::new(), accepted: 0 }
    }

    pub fn service(&mut self, stack: &mut Stack, now: Instant) {
        drain_events(stack, APP);
        while let Ok((id, _peer)) = stack.tcp_accept(self.listener) {
            self.accepted += 1;
            self.flows.push(Flow::new(id, Vec::new()));
        }
        for flow in &mut self.flows {
            if flow.closed {
                continue;
            }
            flow.pump(stack);
            let pending = flow.received.len() - flow.sent;
            if pending > 0 {
                let start = flow.sent;
                match stack.tcp_send(flow.id, &flow.received[start..]) {
                    Ok(n) => flow.sent += n,
                    Err(Error::WouldBlock) => {}
                    Err(e) => flow.error = Some(e),
                }
            }
            if (flow.eof && flow.sent == flow.received.len()) || flow.error.is_some() {
                stack.tcp_close(now, flow.id).unwrap();
                flow.closed = true;
            }
        }
    }
}

/// Builds an Ethernet/IPv4 frame around `ip_payload`.
pub fn ipv4_frame(
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    ip: Ipv4Repr,
    fragment: Option<(bool, usize)>,
    ip_payload: &[u8],
) -> Vec<u8> {
    let mut frame = vec![0u8; 14 + 20 + ip_payload.len()];
    EthernetRepr { src: src_mac, dst: dst_mac, ethertype: EthernetProtocol::Ipv4 }
        .emit(&mut EthernetFrame::new_unchecked(&mut frame[..]));
    let ip = Ipv4Repr { payload_len: ip_payload.len(), ..ip };
    frame[34..].copy_from_slice(ip_payload);
    let mut packet = Ipv4Packet::new_unchecked(&mut frame[14..]);
    ip.emit(&mut packet);
    if let Some((more, offset)) = fragment {
        packet.set_flags_and_frag_offset(false, more, offset);
        packet.fill_checksum();
    }
    frame
}

pub fn ip_repr(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol) -> Ipv4Repr {
    Ipv4Repr { src, dst, protocol, payload_len: 0, ttl: 64, tos: 0, ident: 99, dont_fragment: false }
}

/// Builds a TCP segment frame (no payload) from `src` to `dst`.
#[allow(clippy::too_many_arguments)]
pub fn tcp_frame(
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    seq: u32,
    ack: u32,
    flags: u8,
    options: TcpOptions,
) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: src.port(),
        dst_port: dst.port(),
        seq: sluice_stack::tcp::seq::SeqNum(seq),
        ack: sluice_stack::tcp::seq::SeqNum(ack),
        flags: TcpFlags(flags),
        window: 65535,
        options,
        ..TcpRepr::default()
    };
    let mut segment = vec![0u8; repr.header_len()];
    repr.emit(&mut TcpPacket::new_unchecked(&mut segment[..]), src.ip(), dst.ip());
    ipv4_frame(src_mac, dst_mac, ip_repr(*src.ip(), *dst.ip(), IpProtocol::Tcp), None, &segment)
}

/// The TCP segment in `frame`, if it is one (checksum verified).
pub fn parse_tcp(frame: &[u8]) -> Option<(Ipv4Repr, TcpRepr)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let packet = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let ip = Ipv4Repr::parse(&packet, true).ok()?;
    if ip.protocol != IpProtocol::Tcp {
        return None;
    }
    let tcp = TcpPacket::new_checked(packet.payload()).ok()?;
    let repr = TcpRepr::parse(&tcp, &ip.src, &ip.dst, true).ok()?;
    Some((ip, repr))
}
