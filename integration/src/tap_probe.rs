//! An engine-free check of the TAP plumbing: answers ARP for one address and
//! counts the ICMP echo requests and TCP segments that then reach it. When this works and the
//! engine's tests fail, the fault is in the engine, not the topology.

use sluice_stack::wire::{
    ipv4_tcp_checksum_ok, ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IcmpPacket,
    IcmpRepr, IpProtocol, Ipv4Addr, Ipv4Packet, Ipv4Repr,
};

/// What the probe saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeCounters {
    pub frames: u64,
    pub arp_requests_for_us: u64,
    pub arp_replies_sent: u64,
    /// Echo requests addressed to our MAC and IP with valid IPv4 and ICMP checksums.
    pub echo_requests_for_us: u64,
    /// TCP segments to our MAC and IP, and how many of them had a wrong
    /// checksum (a kernel that leaves checksums to absent hardware).
    pub tcp_segments_for_us: u64,
    pub tcp_bad_checksum: u64,
    /// Frames for us that failed to parse (bad checksum, truncated...).
    pub malformed_for_us: u64,
}

/// Answers ARP requests for `ip` with `mac`.
pub struct Probe {
    mac: EthernetAddress,
    ip: Ipv4Addr,
    pub counters: ProbeCounters,
}

/// An Ethernet frame carrying an ARP packet (no padding: the kernel pads).
pub const ARP_FRAME_LEN: usize = EthernetFrame::<&[u8]>::HEADER_LEN + ArpRepr::BUFFER_LEN;

impl Probe {
    pub fn new(mac: EthernetAddress, ip: Ipv4Addr) -> Probe {
        Probe { mac, ip, counters: ProbeCounters::default() }
    }

    /// Look at one received frame; if it asks for an answer, write the reply
    /// frame into `reply` and return its length.
    pub fn handle(&mut self, frame: &[u8], reply: &mut [u8; ARP_FRAME_LEN]) -> Option<usize> {
        self.counters.frames += 1;
        let Ok(eth) = EthernetFrame::new_checked(frame) else { return None };
        let Ok(eth_repr) = EthernetRepr::parse(&eth) else { return None };
        match eth_repr.ethertype {
            EthernetProtocol::Arp => self.on_arp(eth.payload(), reply),
            EthernetProtocol::Ipv4 if eth_repr.dst == self.mac => {
                self.on_ipv4(eth.payload());
                None
            }
            _ => None,
        }
    }

    fn on_arp(&mut self, payload: &[u8], reply: &mut [u8; ARP_FRAME_LEN]) -> Option<usize> {
        let packet = ArpPacket::new_checked(payload).ok()?;
        let request = ArpRepr::parse(&packet).ok()?;
        if request.operation != ArpOperation::Request || request.target_protocol_addr != self.ip {
            return None;
        }
        self.counters.arp_requests_for_us += 1;
        let answer = ArpRepr {
            operation: ArpOperation::Reply,
            source_hardware_addr: self.mac,
            source_protocol_addr: self.ip,
            target_hardware_addr: request.source_hardware_addr,
            target_protocol_addr: request.source_protocol_addr,
        };
        let eth = EthernetRepr { src: self.mac, dst: request.source_hardware_addr, ethertype: EthernetProtocol::Arp };
        let mut frame = EthernetFrame::new_unchecked(&mut reply[..]);
        eth.emit(&mut frame);
        answer.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
        self.counters.arp_replies_sent += 1;
        Some(ARP_FRAME_LEN)
    }

    fn on_ipv4(&mut self, payload: &[u8]) {
        let parsed = Ipv4Packet::new_checked(payload).and_then(|ip| {
            let repr = Ipv4Repr::parse(&ip, true)?;
            Ok((repr, ip))
        });
        let Ok((repr, ip)) = parsed else {
            self.counters.malformed_for_us += 1;
            return;
        };
        if repr.dst != self.ip {
            return;
        }
        if repr.protocol == IpProtocol::Tcp {
            self.counters.tcp_segments_for_us += 1;
            if !ipv4_tcp_checksum_ok(&repr.src, &repr.dst, ip.payload()) {
                self.counters.tcp_bad_checksum += 1;
            }
            return;
        }
        if repr.protocol != IpProtocol::Icmp {
            return;
        }
        match IcmpPacket::new_checked(ip.payload()).and_then(|icmp| IcmpRepr::parse(&icmp)) {
            Ok(IcmpRepr::EchoRequest { .. }) => self.counters.echo_requests_for_us += 1,
            Ok(_) => {}
            Err(_) => self.counters.malformed_for_us += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUR_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0x77, 0, 2]);
    const OUR_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
    const PEER_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0x77, 0, 1]);
    const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

    fn arp_request(target: Ipv4Addr) -> Vec<u8> {
        let mut frame = vec![0u8; ARP_FRAME_LEN];
        let eth = EthernetRepr { src: PEER_MAC, dst: EthernetAddress::BROADCAST, ethertype: EthernetProtocol::Arp };
        let mut view = EthernetFrame::new_unchecked(&mut frame[..]);
        eth.emit(&mut view);
        ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: PEER_MAC,
            source_protocol_addr: PEER_IP,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: target,
        }
        .emit(&mut ArpPacket::new_unchecked(view.payload_mut()));
        frame
    }

    fn echo_request(dst_mac: EthernetAddress) -> Vec<u8> {
        let data = [0xabu8; 56];
        let icmp = IcmpRepr::EchoRequest { ident: 7, seq_no: 1, data_len: data.len() };
        let icmp_len = icmp.buffer_len();
        let ip = Ipv4Repr {
            src: PEER_IP,
            dst: OUR_IP,
            protocol: IpProtocol::Icmp,
            payload_len: icmp_len,
            ttl: 64,
            tos: 0,
            ident: 1,
            dont_fragment: true,
        };
        let eth = EthernetRepr { src: PEER_MAC, dst: dst_mac, ethertype: EthernetProtocol::Ipv4 };
        let mut frame = vec![0u8; eth.buffer_len(ip.buffer_len())];
        let mut view = EthernetFrame::new_unchecked(&mut frame[..]);
        eth.emit(&mut view);
        let mut packet = Ipv4Packet::new_unchecked(view.payload_mut());
        ip.emit(&mut packet);
        let payload = &mut view.payload_mut()[Ipv4Repr::HEADER_LEN..];
        icmp.emit(&mut IcmpPacket::new_unchecked(payload), &data);
        frame
    }

    #[test]
    fn answers_arp_for_its_address_only() {
        let mut probe = Probe::new(OUR_MAC, OUR_IP);
        let mut reply = [0u8; ARP_FRAME_LEN];
        assert_eq!(probe.handle(&arp_request(Ipv4Addr::new(10, 77, 0, 9)), &mut reply), None);
        assert_eq!(probe.handle(&arp_request(OUR_IP), &mut reply), Some(ARP_FRAME_LEN));

        let eth = EthernetFrame::new_checked(&reply[..]).unwrap();
        assert_eq!(EthernetRepr::parse(&eth).unwrap(), EthernetRepr { src: OUR_MAC, dst: PEER_MAC, ethertype: EthernetProtocol::Arp });
        let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
        assert_eq!(arp.operation, ArpOperation::Reply);
        assert_eq!((arp.source_hardware_addr, arp.source_protocol_addr), (OUR_MAC, OUR_IP));
        assert_eq!((arp.target_hardware_addr, arp.target_protocol_addr), (PEER_MAC, PEER_IP));
        assert_eq!(probe.counters.arp_requests_for_us, 1);
        assert_eq!(probe.counters.arp_replies_sent, 1);
    }

    #[test]
    fn counts_valid_echo_requests_to_its_mac_and_rejects_corrupted_ones() {
        let mut probe = Probe::new(OUR_MAC, OUR_IP);
        let mut reply = [0u8; ARP_FRAME_LEN];
        assert_eq!(probe.handle(&echo_request(OUR_MAC), &mut reply), None);
        assert_eq!(probe.counters.echo_requests_for_us, 1);

        // Another MAC: not ours even though the IP matches.
        probe.handle(&echo_request(PEER_MAC), &mut reply);
        assert_eq!(probe.counters.echo_requests_for_us, 1);

        // A flipped data byte breaks the ICMP checksum (what a partial checksum from a veth looks like).
        let mut corrupted = echo_request(OUR_MAC);
        let last = corrupted.len() - 1;
        corrupted[last] ^= 0xff;
        probe.handle(&corrupted, &mut reply);
        assert_eq!(probe.counters.echo_requests_for_us, 1);
        assert_eq!(probe.counters.malformed_for_us, 1);

        // Truncated frames are counted, never a panic.
        for len in 0..corrupted.len() {
            probe.handle(&corrupted[..len], &mut reply);
        }
        assert_eq!(probe.counters.frames, 3 + corrupted.len() as u64);
    }
}
