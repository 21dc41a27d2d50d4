//! Dissects an arbitrary byte string as an Ethernet frame, layer by layer,
//! and checks the wire module's contracts on every layer that parses:
//!
//! * nothing panics, whatever the bytes;
//! * a `Repr` that parsed emits into a buffer of its `buffer_len` and the
//!   emitted bytes parse back to the same `Repr`, with checksums verified.
//!
//! Random bytes almost never carry valid checksums, so the upper layers are
//! parsed without verification (or with the checksum fixed up first) to let
//! the fuzzer reach the option and length logic behind them.

use sluice_stack::wire::{
    ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol, EthernetRepr, IcmpPacket, IcmpRepr, IpProtocol, Ipv4Addr,
    Ipv4Packet, Ipv4Repr, TcpPacket, TcpRepr, UdpPacket, UdpRepr,
};

/// Runs every check on `data` as an Ethernet frame; panics on a violation.
pub fn check_frame(data: &[u8]) {
    let parsed = EthernetRepr::parse(&EthernetFrame::new_unchecked(data));
    let Ok(frame) = EthernetFrame::new_checked(data) else {
        assert!(parsed.is_err(), "parse accepted a frame new_checked rejected");
        return;
    };
    let eth = parsed.expect("parse rejected a frame new_checked accepted");
    let payload = frame.payload();

    let mut out = vec![0u8; eth.buffer_len(payload.len())];
    out[EthernetFrame::<&[u8]>::HEADER_LEN..].copy_from_slice(payload);
    eth.emit(&mut EthernetFrame::new_unchecked(&mut out[..]));
    assert_eq!(out, data, "ethernet header did not round-trip");

    match eth.ethertype {
        EthernetProtocol::Arp => check_arp(payload),
        EthernetProtocol::Ipv4 => check_ipv4(payload),
        EthernetProtocol::Unknown(_) => {}
    }
}

pub fn check_arp(data: &[u8]) {
    let Ok(repr) = ArpRepr::parse(&ArpPacket::new_unchecked(data)) else { return };
    assert!(ArpPacket::new_checked(data).is_ok());
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut ArpPacket::new_unchecked(&mut out[..]));
    assert_eq!(ArpRepr::parse(&ArpPacket::new_unchecked(&out[..])), Ok(repr));
}

pub fn check_ipv4(data: &[u8]) {
    let verified = Ipv4Repr::parse(&Ipv4Packet::new_unchecked(data), true);
    let Ok(repr) = Ipv4Repr::parse(&Ipv4Packet::new_unchecked(data), false) else {
        assert!(verified.is_err());
        return;
    };
    let packet = Ipv4Packet::new_checked(data).expect("parse accepted a packet new_checked rejects");
    assert_eq!(verified.is_ok(), packet.verify_checksum());
    let payload = packet.payload();
    assert_eq!(payload.len(), repr.payload_len);

    let mut out = vec![0u8; repr.buffer_len()];
    out[Ipv4Repr::HEADER_LEN..].copy_from_slice(payload);
    repr.emit(&mut Ipv4Packet::new_unchecked(&mut out[..]));
    let emitted = Ipv4Packet::new_checked(&out[..]).expect("emitted packet does not check");
    assert_eq!(Ipv4Repr::parse(&emitted, true), Ok(repr));
    assert_eq!(emitted.payload(), payload);
    assert!(!emitted.is_fragment());

    // A fragment's payload is not a complete upper-layer packet.
    if packet.is_fragment() {
        return;
    }
    let (src, dst) = (repr.src, repr.dst);
    match repr.protocol {
        IpProtocol::Icmp => check_icmp(payload),
        IpProtocol::Tcp => check_tcp(payload, src, dst),
        IpProtocol::Udp => check_udp(payload, src, dst),
        IpProtocol::Unknown(_) => {}
    }
}

pub fn check_icmp(data: &[u8]) {
    let _ = IcmpRepr::parse(&IcmpPacket::new_unchecked(data));
    if IcmpPacket::new_checked(data).is_err() {
        return;
    }
    // Fix the checksum so the message itself gets parsed.
    let mut fixed = data.to_vec();
    IcmpPacket::new_unchecked(&mut fixed[..]).fill_checksum();
    let packet = IcmpPacket::new_unchecked(&fixed[..]);
    let repr = IcmpRepr::parse(&packet).expect("a message with a fixed checksum must parse");
    let body = packet.data();

    let mut out = vec![0u8; IcmpPacket::<&[u8]>::HEADER_LEN + body.len()];
    repr.emit(&mut IcmpPacket::new_unchecked(&mut out[..]), body);
    let emitted = IcmpPacket::new_unchecked(&out[..]);
    assert_eq!(IcmpRepr::parse(&emitted), Ok(repr));
    assert_eq!(emitted.data(), body);
    if let IcmpRepr::EchoRequest { .. } | IcmpRepr::EchoReply { .. } = repr {
        assert_eq!(repr.buffer_len(), out.len());
    }
}

pub fn check_tcp(data: &[u8], src: Ipv4Addr, dst: Ipv4Addr) {
    let verified = TcpRepr::parse(&TcpPacket::new_unchecked(data), &src, &dst, true);
    let Ok(repr) = TcpRepr::parse(&TcpPacket::new_unchecked(data), &src, &dst, false) else {
        assert!(verified.is_err());
        return;
    };
    let packet = TcpPacket::new_checked(data).expect("parse accepted a segment new_checked rejects");
    assert_eq!(verified.is_ok(), packet.verify_checksum(&src, &dst));
    let payload = packet.payload();
    assert_eq!(payload.len(), repr.payload_len);

    let mut out = vec![0u8; repr.buffer_len()];
    out[repr.header_len()..].copy_from_slice(payload);
    repr.emit(&mut TcpPacket::new_unchecked(&mut out[..]), &src, &dst);
    let reparsed = TcpRepr::parse(&TcpPacket::new_unchecked(&out[..]), &src, &dst, true);

    // Options packed without NOP padding may hold more SACK blocks than the
    // padded layout emit uses has room for; emit keeps the first ones.
    let mut expected = repr;
    expected.options.sack.truncate(repr.options.sack_blocks_emitted());
    assert_eq!(reparsed, Ok(expected));
    assert_eq!(TcpPacket::new_unchecked(&out[..]).payload(), payload);
}

pub fn check_udp(data: &[u8], src: Ipv4Addr, dst: Ipv4Addr) {
    let verified = UdpRepr::parse(&UdpPacket::new_unchecked(data), &src, &dst, true);
    let Ok(repr) = UdpRepr::parse(&UdpPacket::new_unchecked(data), &src, &dst, false) else {
        assert!(verified.is_err());
        return;
    };
    let packet = UdpPacket::new_checked(data).expect("parse accepted a datagram new_checked rejects");
    assert_eq!(verified.is_ok(), packet.verify_checksum(&src, &dst));
    let payload = packet.payload();

    let mut out = vec![0u8; repr.buffer_len()];
    out[repr.header_len()..].copy_from_slice(payload);
    repr.emit(&mut UdpPacket::new_unchecked(&mut out[..]), &src, &dst);
    let emitted = UdpPacket::new_unchecked(&out[..]);
    assert_ne!(emitted.checksum(), 0, "emit must always send a checksum");
    assert_eq!(UdpRepr::parse(&emitted, &src, &dst, true), Ok(repr));
    assert_eq!(emitted.payload(), payload);
}
