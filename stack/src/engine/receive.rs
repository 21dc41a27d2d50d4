//! Frame input: Ethernet, ARP and IPv4 (with reassembly), dispatched to ICMP
//! and TCP. Every frame that is not used is counted under one reason.

use super::Stack;
use crate::iface::arp_cache::ArpInput;
use crate::iface::reassembly::{Fragment, FragmentKey};
use crate::time::Instant;
use crate::wire::{
    self, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Addr, Ipv4Packet, Ipv4Repr,
};

impl Stack {
    /// Process one received Ethernet frame.
    pub fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        self.stats.frames_in += 1;
        self.stats.bytes_in += frame.len() as u64;
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            self.stats.drop_malformed_ethernet += 1;
            return;
        };
        let dst = eth.dst_addr();
        if dst != self.config.mac && !dst.is_broadcast() {
            self.stats.drop_not_for_us += 1;
            return;
        }
        match eth.ethertype() {
            EthernetProtocol::Arp => self.receive_arp(now, eth.payload()),
            EthernetProtocol::Ipv4 => self.receive_ipv4(now, eth.src_addr(), eth.payload()),
            EthernetProtocol::Unknown(_) => self.stats.drop_unsupported += 1,
        }
    }

    /// Process a batch of received frames, in order. The batch is the unit a
    /// later classifier (priority, seeds 000/002) will sort before TCP runs.
    pub fn handle_frames(&mut self, now: Instant, frames: &[&[u8]]) {
        for frame in frames {
            self.handle_frame(now, frame);
        }
    }

    fn receive_arp(&mut self, now: Instant, payload: &[u8]) {
        let repr = match ArpPacket::new_checked(payload).and_then(|p| ArpRepr::parse(&p)) {
            Ok(repr) => repr,
            Err(wire::Error::Unsupported) => {
                self.stats.drop_unsupported += 1;
                return;
            }
            Err(_) => {
                self.stats.drop_malformed_arp += 1;
                return;
            }
        };
        let input = ArpInput {
            operation: repr.operation,
            sender_mac: repr.source_hardware_addr,
            sender_ip: repr.source_protocol_addr,
            target_ip: repr.target_protocol_addr,
        };
        if !self.egress.arp.on_arp(now, self.config.ip, &input, &mut self.stats) {
            self.stats.drop_not_for_us += 1;
        }
        self.wake_neighbour_waiters();
    }

    fn receive_ipv4(&mut self, now: Instant, src_mac: EthernetAddress, payload: &[u8]) {
        let packet = match Ipv4Packet::new_checked(payload) {
            Ok(p) => p,
            Err(_) => {
                self.stats.drop_malformed_ipv4 += 1;
                return;
            }
        };
        // Borrowed, not moved out of the Result (see `receive_tcp`).
        let parsed = Ipv4Repr::parse(&packet, true);
        let repr = match &parsed {
            Ok(repr) => repr,
            Err(wire::Error::Checksum) => {
                self.stats.drop_bad_checksum += 1;
                return;
            }
            Err(wire::Error::Unsupported) => {
                self.stats.drop_unsupported += 1;
                return;
            }
            Err(_) => {
                self.stats.drop_malformed_ipv4 += 1;
                return;
            }
        };
        if repr.dst != self.config.ip {
            self.stats.drop_not_for_us += 1;
            return;
        }
        // RFC 1122 §3.2.1.3: a source that cannot be a host is discarded.
        if !is_host_address(repr.src) || repr.src == self.config.ip || repr.src == self.egress.route.subnet_broadcast() {
            self.stats.drop_bad_source += 1;
            return;
        }
        if let Ok(next_hop) = self.egress.route.next_hop(repr.src) {
            self.egress.arp.confirm(now, next_hop, src_mac);
        }
        if packet.is_fragment() {
            self.stats.ipv4_fragments_in += 1;
            let fragment = Fragment {
                key: FragmentKey { src: repr.src, dst: repr.dst, protocol: u8::from(repr.protocol), ident: repr.ident },
                offset: packet.frag_offset(),
                more: packet.more_frags(),
                data: packet.payload(),
            };
            if let Some(datagram) = self.reassembler.push(now, &fragment, &mut self.stats) {
                let protocol = IpProtocol::from(datagram.key.protocol);
                self.receive_ip_payload(now, repr.src, repr.dst, protocol, &datagram.payload);
                self.reassembler.recycle(datagram.payload);
            }
            return;
        }
        self.receive_ip_payload(now, repr.src, repr.dst, repr.protocol, packet.payload());
    }

    fn receive_ip_payload(&mut self, now: Instant, src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, payload: &[u8]) {
        match protocol {
            IpProtocol::Tcp => self.receive_tcp(now, src, dst, payload),
            IpProtocol::Icmp => {
                let ident = self.egress.next_ident();
                if let Some(unreachable) = self.icmp.on_message(src, payload, ident, &mut self.stats) {
                    self.on_icmp_unreachable(now, unreachable);
                }
            }
            IpProtocol::Udp | IpProtocol::Unknown(_) => self.stats.drop_unsupported += 1,
        }
    }
}

/// Not unspecified, broadcast, multicast, loopback or class E (RFC 1122 §3.2.1.3, RFC 1112 §4).
fn is_host_address(addr: Ipv4Addr) -> bool {
    !(addr.is_unspecified() || addr.is_broadcast() || addr.is_multicast() || addr.is_loopback() || addr.octets()[0] >= 240)
}
