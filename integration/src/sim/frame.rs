//! Just enough Ethernet/ARP/IPv4/TCP for the harness: building raw frames
//! (spoofed SYNs, ARP replies) and reading headers back (traces, window probes).
//!
//! Deliberately independent of `sluice_stack::wire`: the harness checks the
//! engine's frames with its own reading of RFC 791/826/9293, so a bug in the
//! engine's wire code cannot hide itself by being shared with its checker.
//! Parsing never panics: every field is read with bounds-checked `get`.

use core::net::Ipv4Addr;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERNET_HEADER_LEN: usize = 14;
const IPV4_HEADER_LEN: usize = 20;
const IP_PROTO_TCP: u8 = 6;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;

pub type Mac = [u8; 6];
pub const BROADCAST_MAC: Mac = [0xff; 6];

/// The Internet checksum (RFC 1071) over `data`, continuing from `initial`
/// (an unfolded 32-bit sum, e.g. of a pseudo-header).
pub fn internet_checksum(initial: u32, data: &[u8]) -> u16 {
    let mut sum = initial;
    let mut chunks = data.chunks_exact(2);
    for pair in &mut chunks {
        sum = sum.wrapping_add(u32::from(u16::from_be_bytes([pair[0], pair[1]])));
    }
    if let [last] = chunks.remainder() {
        sum = sum.wrapping_add(u32::from(*last) << 8);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The unfolded sum of the TCP/UDP pseudo-header (RFC 9293 §3.1).
fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: usize) -> u32 {
    let words = [src.octets(), dst.octets()];
    let mut sum = 0u32;
    for o in words {
        sum += u32::from(u16::from_be_bytes([o[0], o[1]]))
            + u32::from(u16::from_be_bytes([o[2], o[3]]));
    }
    sum + u32::from(protocol) + len as u32
}

/// A TCP segment to build from scratch (e.g. a spoofed SYN).
#[derive(Clone, Copy, Debug)]
pub struct TcpSegmentSpec {
    pub src_mac: Mac,
    pub dst_mac: Mac,
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// MSS option (only meaningful on SYN).
    pub mss: Option<u16>,
}

/// Builds an Ethernet + IPv4 + TCP frame without payload, checksums filled.
pub fn build_tcp_frame(spec: &TcpSegmentSpec) -> Vec<u8> {
    let options_len = if spec.mss.is_some() { 4 } else { 0 };
    let tcp_len = 20 + options_len;
    let ip_total = IPV4_HEADER_LEN + tcp_len;
    let mut frame = vec![0u8; ETHERNET_HEADER_LEN + ip_total];
    write_ethernet(&mut frame, spec.dst_mac, spec.src_mac, ETHERTYPE_IPV4);

    let ip = &mut frame[ETHERNET_HEADER_LEN..ETHERNET_HEADER_LEN + IPV4_HEADER_LEN];
    ip[0] = 0x45; // version 4, IHL 5
    ip[2..4].copy_from_slice(&(ip_total as u16).to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64; // TTL
    ip[9] = IP_PROTO_TCP;
    ip[12..16].copy_from_slice(&spec.src_ip.octets());
    ip[16..20].copy_from_slice(&spec.dst_ip.octets());
    let ip_checksum = internet_checksum(0, ip);
    ip[10..12].copy_from_slice(&ip_checksum.to_be_bytes());

    let tcp = &mut frame[ETHERNET_HEADER_LEN + IPV4_HEADER_LEN..];
    tcp[0..2].copy_from_slice(&spec.src_port.to_be_bytes());
    tcp[2..4].copy_from_slice(&spec.dst_port.to_be_bytes());
    tcp[4..8].copy_from_slice(&spec.seq.to_be_bytes());
    tcp[8..12].copy_from_slice(&spec.ack.to_be_bytes());
    tcp[12] = ((tcp_len / 4) as u8) << 4;
    tcp[13] = spec.flags;
    tcp[14..16].copy_from_slice(&spec.window.to_be_bytes());
    if let Some(mss) = spec.mss {
        tcp[20] = 2; // kind MSS (RFC 9293 §3.2)
        tcp[21] = 4;
        tcp[22..24].copy_from_slice(&mss.to_be_bytes());
    }
    let sum = pseudo_header_sum(spec.src_ip, spec.dst_ip, IP_PROTO_TCP, tcp_len);
    let tcp_checksum = internet_checksum(sum, tcp);
    tcp[16..18].copy_from_slice(&tcp_checksum.to_be_bytes());
    frame
}

/// Builds an ARP reply (RFC 826) telling `target` that `sender_ip` is at `sender_mac`.
pub fn build_arp_reply(
    sender_mac: Mac,
    sender_ip: Ipv4Addr,
    target_mac: Mac,
    target_ip: Ipv4Addr,
) -> Vec<u8> {
    let mut frame = vec![0u8; ETHERNET_HEADER_LEN + 28];
    write_ethernet(&mut frame, target_mac, sender_mac, ETHERTYPE_ARP);
    let arp = &mut frame[ETHERNET_HEADER_LEN..];
    arp[0..2].copy_from_slice(&1u16.to_be_bytes()); // hardware: Ethernet
    arp[2..4].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    arp[4] = 6;
    arp[5] = 4;
    arp[6..8].copy_from_slice(&2u16.to_be_bytes()); // reply
    arp[8..14].copy_from_slice(&sender_mac);
    arp[14..18].copy_from_slice(&sender_ip.octets());
    arp[18..24].copy_from_slice(&target_mac);
    arp[24..28].copy_from_slice(&target_ip.octets());
    frame
}

fn write_ethernet(frame: &mut [u8], dst: Mac, src: Mac, ethertype: u16) {
    frame[0..6].copy_from_slice(&dst);
    frame[6..12].copy_from_slice(&src);
    frame[12..14].copy_from_slice(&ethertype.to_be_bytes());
}

/// The Ethernet destination of a frame, if it has a header.
pub fn dst_mac(frame: &[u8]) -> Option<Mac> {
    frame.get(0..6)?.try_into().ok()
}

/// The Ethernet source of a frame, if it has a header.
pub fn src_mac(frame: &[u8]) -> Option<Mac> {
    frame.get(6..12)?.try_into().ok()
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

fn ipv4_at(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    Some(Ipv4Addr::new(
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ))
}

/// An ARP packet's addresses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ArpHeader {
    pub operation: u16,
    pub sender_mac: Mac,
    pub sender_ip: Ipv4Addr,
    pub target_ip: Ipv4Addr,
}

/// Reads an Ethernet frame carrying ARP for IPv4.
pub fn parse_arp(frame: &[u8]) -> Option<ArpHeader> {
    if be16(frame, 12)? != ETHERTYPE_ARP {
        return None;
    }
    let arp = frame.get(ETHERNET_HEADER_LEN..)?;
    Some(ArpHeader {
        operation: be16(arp, 6)?,
        sender_mac: arp.get(8..14)?.try_into().ok()?,
        sender_ip: ipv4_at(arp, 14)?,
        target_ip: ipv4_at(arp, 24)?,
    })
}

/// The fields of a TCP/IPv4 frame the harness looks at. Checksums are not
/// verified here (a corrupted frame is still summarised, so traces show it).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TcpHeader {
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    /// Raw window field (unscaled).
    pub window: u16,
    pub payload_len: usize,
}

impl TcpHeader {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag == flag
    }
}

/// Reads an Ethernet + IPv4 + TCP frame; `None` for anything else or truncated.
pub fn parse_tcp(frame: &[u8]) -> Option<TcpHeader> {
    if be16(frame, 12)? != ETHERTYPE_IPV4 {
        return None;
    }
    let ip = frame.get(ETHERNET_HEADER_LEN..)?;
    let version_ihl = *ip.first()?;
    let ihl = usize::from(version_ihl & 0x0f) * 4;
    if version_ihl >> 4 != 4 || ihl < IPV4_HEADER_LEN || *ip.get(9)? != IP_PROTO_TCP {
        return None;
    }
    let total = usize::from(be16(ip, 2)?);
    let tcp = ip.get(ihl..total)?;
    let data_offset = usize::from(*tcp.get(12)? >> 4) * 4;
    if data_offset < 20 || data_offset > tcp.len() {
        return None;
    }
    Some(TcpHeader {
        src_ip: ipv4_at(ip, 12)?,
        dst_ip: ipv4_at(ip, 16)?,
        src_port: be16(tcp, 0)?,
        dst_port: be16(tcp, 2)?,
        seq: be32(tcp, 4)?,
        ack: be32(tcp, 8)?,
        flags: *tcp.get(13)?,
        window: be16(tcp, 14)?,
        payload_len: tcp.len() - data_offset,
    })
}

/// Whether the IPv4 header checksum and the TCP checksum of a frame verify.
pub fn tcp_checksums_ok(frame: &[u8]) -> bool {
    let Some(ip) = frame.get(ETHERNET_HEADER_LEN..) else {
        return false;
    };
    let Some(h) = parse_tcp(frame) else {
        return false;
    };
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let Some(total) = be16(ip, 2).map(usize::from) else {
        return false;
    };
    let (Some(header), Some(segment)) = (ip.get(..ihl), ip.get(ihl..total)) else {
        return false;
    };
    let pseudo = pseudo_header_sum(h.src_ip, h.dst_ip, IP_PROTO_TCP, segment.len());
    internet_checksum(0, header) == 0 && internet_checksum(pseudo, segment) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syn() -> TcpSegmentSpec {
        TcpSegmentSpec {
            src_mac: [2, 0, 0, 0, 0, 9],
            dst_mac: [2, 0, 0, 0, 0, 1],
            src_ip: Ipv4Addr::new(198, 18, 0, 7),
            dst_ip: Ipv4Addr::new(10, 0, 0, 1),
            src_port: 40_001,
            dst_port: 80,
            seq: 0xdead_beef,
            ack: 0,
            flags: TCP_SYN,
            window: 65_535,
            mss: Some(1460),
        }
    }

    #[test]
    fn checksum_of_rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum (folded) to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(internet_checksum(0, &data), !0xddf2);
    }

    #[test]
    fn built_syn_parses_back_with_valid_checksums() {
        let frame = build_tcp_frame(&syn());
        assert_eq!(frame.len(), 14 + 20 + 24);
        let h = parse_tcp(&frame).expect("a TCP frame");
        assert_eq!(
            (h.src_port, h.dst_port, h.seq, h.flags, h.window),
            (40_001, 80, 0xdead_beef, TCP_SYN, 65_535)
        );
        assert_eq!(
            (h.src_ip, h.dst_ip, h.payload_len),
            (Ipv4Addr::new(198, 18, 0, 7), Ipv4Addr::new(10, 0, 0, 1), 0)
        );
        assert!(tcp_checksums_ok(&frame));
    }

    #[test]
    fn any_single_bit_flip_after_the_ethernet_header_breaks_a_checksum_or_the_parse() {
        let frame = build_tcp_frame(&syn());
        for bit in ETHERNET_HEADER_LEN * 8..frame.len() * 8 {
            let mut f = frame.clone();
            f[bit / 8] ^= 1 << (bit % 8);
            assert!(!tcp_checksums_ok(&f), "flip of bit {bit} went unnoticed");
        }
    }

    #[test]
    fn arp_reply_round_trips() {
        let f = build_arp_reply(
            [2, 0, 0, 0, 0, 0xfe],
            Ipv4Addr::new(10, 0, 0, 254),
            [2, 0, 0, 0, 0, 1],
            Ipv4Addr::new(10, 0, 0, 1),
        );
        let a = parse_arp(&f).unwrap();
        assert_eq!(a.operation, 2);
        assert_eq!(a.sender_ip, Ipv4Addr::new(10, 0, 0, 254));
        assert_eq!(a.sender_mac, [2, 0, 0, 0, 0, 0xfe]);
        assert_eq!(dst_mac(&f), Some([2, 0, 0, 0, 0, 1]));
        assert!(parse_tcp(&f).is_none());
    }

    /// The engine's own parser agrees with the harness's builder.
    #[test]
    fn engine_wire_parses_harness_frames() {
        use sluice_stack::wire::arp::ArpPacket;
        use sluice_stack::wire::ethernet::EthernetFrame;
        use sluice_stack::wire::ipv4::Ipv4Packet;
        use sluice_stack::wire::tcp::TcpPacket;
        use sluice_stack::wire::{ArpOperation, ArpRepr, EthernetProtocol, Ipv4Repr, TcpRepr};

        let spec = syn();
        let frame = build_tcp_frame(&spec);
        let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
        assert_eq!(eth.ethertype(), EthernetProtocol::Ipv4);
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        let ip_repr = Ipv4Repr::parse(&ip, true).unwrap();
        assert_eq!((ip_repr.src, ip_repr.dst), (spec.src_ip, spec.dst_ip));
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        let repr = TcpRepr::parse(&tcp, &spec.src_ip, &spec.dst_ip, true).unwrap();
        assert!(repr.flags.syn() && !repr.flags.ack());
        assert_eq!(
            (repr.src_port, repr.seq.0, repr.options.mss),
            (spec.src_port, spec.seq, Some(1460))
        );

        let reply = build_arp_reply(
            [2, 0, 0, 0, 0, 0xfe],
            Ipv4Addr::new(10, 0, 0, 254),
            [2, 0, 0, 0, 0, 1],
            Ipv4Addr::new(10, 0, 0, 1),
        );
        let eth = EthernetFrame::new_checked(&reply[..]).unwrap();
        let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
        assert_eq!(arp.operation, ArpOperation::Reply);
        assert_eq!(arp.source_protocol_addr, Ipv4Addr::new(10, 0, 0, 254));
    }

    #[test]
    fn truncated_frames_do_not_parse() {
        let frame = build_tcp_frame(&syn());
        for len in 0..frame.len() {
            assert!(parse_tcp(&frame[..len]).is_none(), "len {len}");
        }
        assert!(parse_arp(&[0u8; 20]).is_none());
    }
}
