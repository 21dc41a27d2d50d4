//! Frame output: next-hop resolution (routing, then ARP) and the link and
//! network headers of everything the engine sends.

use core::net::SocketAddrV4;

use super::{FrameSink, Stats};
use crate::config::StackConfig;
use crate::iface::arp_cache::{ArpCache, ArpMessage};
use crate::iface::route::Route;
use crate::time::Instant;
use crate::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpProtocol,
    Ipv4Addr, Ipv4Packet, Ipv4Repr, TcpPacket, TcpRepr,
};

/// RFC 1122 §3.2.1.7 recommends 64 as the default TTL.
const DEFAULT_TTL: u8 = 64;
const ETHERNET_HEADER_LEN: usize = EthernetFrame::<&[u8]>::HEADER_LEN;

/// What became of a packet handed to [`Egress::send_ip`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum SendOutcome {
    /// Written to the sink.
    Sent,
    /// Copied into the ARP queue; sent when the neighbour answers.
    Held,
    /// The neighbour is being resolved but its queue is full: dropped.
    QueueFull(Ipv4Addr),
    /// Resolution of the neighbour failed recently: dropped.
    Unresolved,
    /// No route to the destination.
    NoRoute,
    /// The sink is full.
    SinkFull,
}

pub(crate) struct Egress {
    pub mac: EthernetAddress,
    pub ip: Ipv4Addr,
    pub route: Route,
    pub arp: ArpCache,
    /// IPv4 identification for the next datagram (RFC 6864 only needs it
    /// unique for fragmentable datagrams; a counter does that).
    next_ident: u16,
}

impl Egress {
    pub fn new(config: &StackConfig) -> Self {
        Egress {
            mac: config.mac,
            ip: config.ip,
            route: Route::new(config.ip, config.prefix_len, config.gateway),
            arp: ArpCache::new(config.arp, ETHERNET_HEADER_LEN + config.mtu),
            next_ident: 0,
        }
    }

    pub fn next_ident(&mut self) -> u16 {
        let ident = self.next_ident;
        self.next_ident = self.next_ident.wrapping_add(1);
        ident
    }

    /// Sends an IPv4 packet of `ip_len` bytes written by `fill` to `dst`: to
    /// the sink if the next hop is resolved, else into the ARP queue.
    pub fn send_ip(
        &mut self,
        now: Instant,
        stats: &mut Stats,
        sink: &mut dyn FrameSink,
        dst: Ipv4Addr,
        ip_len: usize,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> SendOutcome {
        let Ok(next_hop) = self.route.next_hop(dst) else {
            stats.ip_no_route += 1;
            return SendOutcome::NoRoute;
        };
        let src_mac = self.mac;
        let frame_len = ETHERNET_HEADER_LEN + ip_len;
        match self.arp.lookup(now, next_hop, stats) {
            Some(dst_mac) => {
                let sent = sink.emit(frame_len, &mut |frame| {
                    write_ethernet(frame, src_mac, dst_mac, EthernetProtocol::Ipv4);
                    fill(&mut frame[ETHERNET_HEADER_LEN..]);
                });
                if sent { SendOutcome::Sent } else { SendOutcome::SinkFull }
            }
            None => {
                // The destination MAC is filled in when the reply arrives.
                let held = self.arp.hold(next_hop, frame_len, &mut |frame| {
                    write_ethernet(frame, src_mac, EthernetAddress::BROADCAST, EthernetProtocol::Ipv4);
                    fill(&mut frame[ETHERNET_HEADER_LEN..]);
                });
                if held {
                    SendOutcome::Held
                } else if self.arp.is_resolving(next_hop) {
                    stats.arp_queue_full += 1;
                    SendOutcome::QueueFull(next_hop)
                } else {
                    stats.arp_unresolved_dropped += 1;
                    SendOutcome::Unresolved
                }
            }
        }
    }

    /// Emits an ARP request or reply; false if the sink is full (the message
    /// is then lost: the requester asks again, our own requests repeat).
    pub fn emit_arp(&self, sink: &mut dyn FrameSink, message: ArpMessage, stats: &mut Stats) -> bool {
        let (dst_mac, repr) = match message {
            ArpMessage::Request { target } => (
                EthernetAddress::BROADCAST,
                ArpRepr {
                    operation: ArpOperation::Request,
                    source_hardware_addr: self.mac,
                    source_protocol_addr: self.ip,
                    target_hardware_addr: EthernetAddress([0; 6]),
                    target_protocol_addr: target,
                },
            ),
            ArpMessage::Reply { to_mac, to_ip } => (
                to_mac,
                ArpRepr {
                    operation: ArpOperation::Reply,
                    source_hardware_addr: self.mac,
                    source_protocol_addr: self.ip,
                    target_hardware_addr: to_mac,
                    target_protocol_addr: to_ip,
                },
            ),
        };
        let src_mac = self.mac;
        let sent = sink.emit(ETHERNET_HEADER_LEN + ArpRepr::BUFFER_LEN, &mut |frame| {
            write_ethernet(frame, src_mac, dst_mac, EthernetProtocol::Arp);
            repr.emit(&mut ArpPacket::new_unchecked(&mut frame[ETHERNET_HEADER_LEN..]));
        });
        if sent {
            match message {
                ArpMessage::Request { .. } => stats.arp_requests_out += 1,
                ArpMessage::Reply { .. } => stats.arp_replies_out += 1,
            }
        }
        sent
    }
}

fn write_ethernet(frame: &mut [u8], src: EthernetAddress, dst: EthernetAddress, ethertype: EthernetProtocol) {
    EthernetRepr { src, dst, ethertype }.emit(&mut EthernetFrame::new_unchecked(frame));
}

/// Length of the IPv4 packet carrying `repr` with `payload_len` bytes.
pub(crate) fn tcp_ip_len(repr: &TcpRepr, payload_len: usize) -> usize {
    Ipv4Repr::HEADER_LEN + repr.header_len() + payload_len
}

/// Writes an IPv4 packet (DF set: we size segments to the MTU and never
/// fragment) carrying a TCP segment whose payload is `first` then `second`.
/// `packet` is exactly [`tcp_ip_len`] long.
pub(crate) fn write_tcp_ip(
    packet: &mut [u8],
    local: SocketAddrV4,
    remote: SocketAddrV4,
    ident: u16,
    repr: &TcpRepr,
    first: &[u8],
    second: &[u8],
) {
    let payload_len = first.len() + second.len();
    let repr = TcpRepr { payload_len, ..*repr };
    let header_len = repr.header_len();
    let ip = Ipv4Repr {
        src: *local.ip(),
        dst: *remote.ip(),
        protocol: IpProtocol::Tcp,
        payload_len: header_len + payload_len,
        ttl: DEFAULT_TTL,
        tos: 0,
        ident,
        dont_fragment: true,
    };
    let (ip_header, segment) = packet.split_at_mut(Ipv4Repr::HEADER_LEN);
    ip.emit(&mut Ipv4Packet::new_unchecked(ip_header));
    // The checksum covers the payload, so it goes in before the header is emitted.
    let (head, tail) = segment[header_len..].split_at_mut(first.len());
    head.copy_from_slice(first);
    tail[..second.len()].copy_from_slice(second);
    repr.emit(&mut TcpPacket::new_unchecked(segment), local.ip(), remote.ip());
}
