//! smoltcp 0.14 behind the harness trait: one `Interface`, a `SocketSet` of TCP
//! sockets, and a `phy::Device` that reads and writes a wire [`Port`].
//!
//! smoltcp has no accept queue: a listening socket turns into the connection.
//! `listen(port, backlog)` therefore opens `backlog` listening sockets up front,
//! and `accept` hands out those that reached ESTABLISHED. Its egress sends at
//! most one segment per socket per `poll_egress`, so `egress` repeats it until
//! nothing more goes out; that matches Sluice's "emit everything due".

use core::net::SocketAddrV4;
use std::sync::atomic::{AtomicU32, Ordering};

use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp::{self, CongestionControl, State};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

use super::endpoint::{Endpoint, EndpointConfig, Micros, RecvOutcome, StackError};
use super::wire::{transmit_into, Port};

/// Ethernet header length: smoltcp's device MTU counts it, the IP MTU does not.
const ETHERNET_HEADER_LEN: usize = 14;

/// Virtual time in milliseconds for TCP timestamps. smoltcp's timestamp
/// generator is a plain `fn() -> u32` and cannot capture the harness clock, so
/// every endpoint publishes the clock here before it polls.
static TSVAL_MILLIS: AtomicU32 = AtomicU32::new(0);

fn virtual_tsval() -> u32 {
    TSVAL_MILLIS.load(Ordering::Relaxed)
}

fn publish_clock(now: Micros) {
    TSVAL_MILLIS.store((now / 1000) as u32, Ordering::Relaxed);
}

fn instant(now: Micros) -> Instant {
    Instant::from_micros(i64::try_from(now).unwrap_or(i64::MAX))
}

/// A smoltcp device over one port of the in-memory wire.
struct PortDevice<'p> {
    port: &'p mut Port,
    mtu: usize,
}

struct PortRxToken<'a> {
    frame: Vec<u8>,
    spent: &'a mut Vec<Vec<u8>>,
}

struct PortTxToken<'a> {
    outbound: &'a mut std::collections::VecDeque<Vec<u8>>,
    free: &'a mut Vec<Vec<u8>>,
}

impl phy::RxToken for PortRxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let result = f(&self.frame);
        self.spent.push(self.frame);
        result
    }
}

impl phy::TxToken for PortTxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        transmit_into(self.outbound, self.free, len, f)
    }
}

impl Device for PortDevice<'_> {
    type RxToken<'a> = PortRxToken<'a> where Self: 'a;
    type TxToken<'a> = PortTxToken<'a> where Self: 'a;

    fn receive(&mut self, _timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let parts = self.port.split();
        let frame = parts.inbound.pop_front()?;
        Some((PortRxToken { frame, spent: parts.spent }, PortTxToken { outbound: parts.outbound, free: parts.free }))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<Self::TxToken<'_>> {
        let parts = self.port.split();
        Some(PortTxToken { outbound: parts.outbound, free: parts.free })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        // Checksums stay at their default (computed and verified in software),
        // as Sluice does.
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu + ETHERNET_HEADER_LEN;
        caps
    }
}

/// smoltcp as a benchmark endpoint.
pub struct SmoltcpEndpoint {
    iface: Interface,
    sockets: SocketSet<'static>,
    mtu: usize,
    send_buffer: usize,
    recv_buffer: usize,
    /// Listening sockets not yet handed out by `accept`.
    listening: Vec<SocketHandle>,
    next_local_port: u16,
}

impl SmoltcpEndpoint {
    pub fn new(config: &EndpointConfig, now: Micros) -> SmoltcpEndpoint {
        let mut iface_config = Config::new(HardwareAddress::Ethernet(EthernetAddress(config.mac)));
        iface_config.random_seed = config.seed;
        // The device is only borrowed for the capabilities here.
        let mut scratch = Port::default();
        let mut device = PortDevice { port: &mut scratch, mtu: config.mtu };
        let mut iface = Interface::new(iface_config, &mut device, instant(now));
        iface.update_ip_addrs(|addrs| {
            // Capacity is at least one address with the features enabled.
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(config.ip), config.prefix_len));
        });
        SmoltcpEndpoint {
            iface,
            sockets: SocketSet::new(Vec::new()),
            mtu: config.mtu,
            send_buffer: config.send_buffer,
            recv_buffer: config.recv_buffer,
            listening: Vec::new(),
            next_local_port: 20_000,
        }
    }

    /// A TCP socket configured like Sluice's connections: CUBIC, no Nagle,
    /// timestamps on, buffers of the configured size allocated up front
    /// (smoltcp cannot grow them).
    fn new_socket(&self) -> tcp::Socket<'static> {
        let rx = tcp::SocketBuffer::new(vec![0u8; self.recv_buffer]);
        let tx = tcp::SocketBuffer::new(vec![0u8; self.send_buffer]);
        let mut socket = tcp::Socket::new(rx, tx);
        socket.set_congestion_control(CongestionControl::Cubic);
        socket.set_nagle_enabled(false);
        socket.set_tsval_generator(Some(virtual_tsval));
        socket
    }

    /// Bytes of one socket's structure (without its buffers).
    pub fn socket_size() -> usize {
        core::mem::size_of::<tcp::Socket<'static>>()
    }
}

impl Endpoint for SmoltcpEndpoint {
    type Conn = SocketHandle;

    fn ingress(&mut self, now: Micros, port: &mut Port) {
        publish_clock(now);
        let mut device = PortDevice { port, mtu: self.mtu };
        while !device.port.inbound.is_empty() {
            self.iface.poll_ingress_single(instant(now), &mut device, &mut self.sockets);
        }
    }

    fn egress(&mut self, now: Micros, port: &mut Port) {
        publish_clock(now);
        let mut device = PortDevice { port, mtu: self.mtu };
        while self.iface.poll_egress(instant(now), &mut device, &mut self.sockets) == PollResult::SocketStateChanged {}
    }

    fn next_deadline(&mut self, now: Micros) -> Option<Micros> {
        self.iface.poll_at(instant(now), &self.sockets).map(|at| u64::try_from(at.total_micros()).unwrap_or(0))
    }

    fn listen(&mut self, _now: Micros, port: u16, backlog: usize) -> Result<(), StackError> {
        for _ in 0..backlog {
            let mut socket = self.new_socket();
            socket.listen(port).map_err(|e| StackError(format!("smoltcp listen: {e:?}")))?;
            let handle = self.sockets.add(socket);
            self.listening.push(handle);
        }
        Ok(())
    }

    fn accept(&mut self, out: &mut Vec<SocketHandle>) -> Result<(), StackError> {
        let sockets = &self.sockets;
        self.listening.retain(|&handle| {
            let established = sockets.get::<tcp::Socket>(handle).state() == State::Established;
            if established {
                out.push(handle);
            }
            !established
        });
        Ok(())
    }

    fn connect(&mut self, _now: Micros, remote: SocketAddrV4) -> Result<SocketHandle, StackError> {
        let local_port = self.next_local_port;
        self.next_local_port = self.next_local_port.checked_add(1).ok_or_else(|| StackError("out of local ports".into()))?;
        let mut socket = self.new_socket();
        socket
            .connect(self.iface.context(), remote, local_port)
            .map_err(|e| StackError(format!("smoltcp connect: {e:?}")))?;
        Ok(self.sockets.add(socket))
    }

    fn is_established(&mut self, conn: SocketHandle) -> Result<bool, StackError> {
        match self.sockets.get::<tcp::Socket>(conn).state() {
            State::Established => Ok(true),
            State::SynSent | State::SynReceived => Ok(false),
            other => Err(StackError(format!("smoltcp connection in state {other} while connecting"))),
        }
    }

    fn send(&mut self, conn: SocketHandle, data: &[u8]) -> Result<usize, StackError> {
        self.sockets
            .get_mut::<tcp::Socket>(conn)
            .send_slice(data)
            .map_err(|e| StackError(format!("smoltcp send: {e}")))
    }

    fn recv(&mut self, conn: SocketHandle, buf: &mut [u8]) -> Result<RecvOutcome, StackError> {
        let socket = self.sockets.get_mut::<tcp::Socket>(conn);
        match socket.recv_slice(buf) {
            Ok(0) => Ok(RecvOutcome::WouldBlock),
            Ok(n) => Ok(RecvOutcome::Data(n)),
            Err(tcp::RecvError::Finished) => Ok(RecvOutcome::Eof),
            Err(e) => Err(StackError(format!("smoltcp recv in state {}: {e}", socket.state()))),
        }
    }

    fn close(&mut self, _now: Micros, conn: SocketHandle) -> Result<(), StackError> {
        self.sockets.get_mut::<tcp::Socket>(conn).close();
        Ok(())
    }
}
