//! Property tests: every `Repr` survives `emit` then `parse` unchanged, and
//! every `parse` returns (never panics) on arbitrary bytes.

use proptest::prelude::*;
use sluice_stack::tcp::seq::SeqNum;
use sluice_stack::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IcmpPacket,
    IcmpRepr, IpProtocol, Ipv4Addr, Ipv4Packet, Ipv4Repr, SackBlocks, TcpFlags, TcpOptions, TcpPacket, TcpRepr,
    UdpPacket, UdpRepr, TCP_MAX_WINDOW_SCALE,
};

fn mac() -> impl Strategy<Value = EthernetAddress> {
    any::<[u8; 6]>().prop_map(EthernetAddress)
}

fn ipv4_addr() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

fn ethernet_repr() -> impl Strategy<Value = EthernetRepr> {
    (mac(), mac(), any::<u16>()).prop_map(|(src, dst, t)| EthernetRepr {
        src,
        dst,
        ethertype: EthernetProtocol::from(t),
    })
}

fn arp_repr() -> impl Strategy<Value = ArpRepr> {
    (any::<u16>(), mac(), ipv4_addr(), mac(), ipv4_addr()).prop_map(|(op, sha, spa, tha, tpa)| ArpRepr {
        operation: ArpOperation::from(op),
        source_hardware_addr: sha,
        source_protocol_addr: spa,
        target_hardware_addr: tha,
        target_protocol_addr: tpa,
    })
}

fn ipv4_repr() -> impl Strategy<Value = Ipv4Repr> {
    (
        ipv4_addr(),
        ipv4_addr(),
        any::<u8>(),
        0..=(u16::MAX as usize - 20),
        any::<u8>(),
        any::<u8>(),
        any::<u16>(),
        any::<bool>(),
    )
        .prop_map(|(src, dst, p, payload_len, ttl, tos, ident, dont_fragment)| Ipv4Repr {
            src,
            dst,
            protocol: IpProtocol::from(p),
            payload_len,
            ttl,
            tos,
            ident,
            dont_fragment,
        })
}

/// An ICMP repr with its data; `Other` never uses a type/code pair that
/// parses as one of the specific variants.
fn icmp_repr() -> impl Strategy<Value = (IcmpRepr, Vec<u8>)> {
    let data = proptest::collection::vec(any::<u8>(), 0..200);
    prop_oneof![
        (any::<u16>(), any::<u16>(), data.clone())
            .prop_map(|(ident, seq_no, d)| { (IcmpRepr::EchoRequest { ident, seq_no, data_len: d.len() }, d) }),
        (any::<u16>(), any::<u16>(), data.clone())
            .prop_map(|(ident, seq_no, d)| { (IcmpRepr::EchoReply { ident, seq_no, data_len: d.len() }, d) }),
        (any::<u8>(), any::<u16>(), data.clone())
            .prop_map(|(code, next_hop_mtu, d)| (IcmpRepr::DestinationUnreachable { code, next_hop_mtu }, d)),
        (any::<u8>(), any::<u8>(), data)
            .prop_filter("specific variants parse differently", |(t, c, _)| match t {
                0 | 8 => *c != 0,
                3 => false,
                _ => true,
            })
            .prop_map(|(msg_type, code, d)| (IcmpRepr::Other { msg_type, code }, d)),
    ]
}

fn tcp_options() -> impl Strategy<Value = TcpOptions> {
    (
        proptest::option::of(any::<u16>()),
        proptest::option::of(0..=TCP_MAX_WINDOW_SCALE),
        any::<bool>(),
        proptest::collection::vec((any::<u32>(), any::<u32>()), 0..=SackBlocks::MAX),
        proptest::option::of((any::<u32>(), any::<u32>())),
    )
        .prop_map(|(mss, window_scale, sack_permitted, blocks, timestamps)| {
            let mut sack = SackBlocks::default();
            for (l, r) in blocks {
                sack.push(SeqNum(l), SeqNum(r));
            }
            let mut options = TcpOptions { mss, window_scale, sack_permitted, sack, timestamps };
            // Keep only the blocks that fit beside the other options, so the
            // repr is one that can exist on the wire.
            options.sack.truncate(options.sack_blocks_emitted());
            options
        })
}

fn tcp_repr_and_payload() -> impl Strategy<Value = (TcpRepr, Vec<u8>)> {
    (
        (any::<u16>(), any::<u16>(), any::<u32>(), any::<u32>(), any::<u8>(), any::<u16>(), any::<u16>()),
        tcp_options(),
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|((src_port, dst_port, seq, ack, flags, window, urgent), options, payload)| {
            let repr = TcpRepr {
                src_port,
                dst_port,
                seq: SeqNum(seq),
                ack: SeqNum(ack),
                flags: TcpFlags(flags),
                window,
                urgent,
                options,
                payload_len: payload.len(),
            };
            (repr, payload)
        })
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..128)
}

proptest! {
    #[test]
    fn ethernet_round_trips(repr in ethernet_repr(), payload in bytes()) {
        let mut buf = vec![0u8; repr.buffer_len(payload.len())];
        buf[EthernetFrame::<&[u8]>::HEADER_LEN..].copy_from_slice(&payload);
        repr.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
        let frame = EthernetFrame::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(EthernetRepr::parse(&frame), Ok(repr));
        prop_assert_eq!(frame.payload(), &payload[..]);
    }

    #[test]
    fn arp_round_trips(repr in arp_repr()) {
        let mut buf = [0u8; ArpRepr::BUFFER_LEN];
        repr.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
        prop_assert_eq!(ArpRepr::parse(&ArpPacket::new_unchecked(&buf[..])), Ok(repr));
    }

    #[test]
    fn ipv4_round_trips(repr in ipv4_repr()) {
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
        let packet = Ipv4Packet::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(Ipv4Repr::parse(&packet, true), Ok(repr));
        prop_assert!(!packet.is_fragment());
        prop_assert_eq!(packet.dont_frag(), repr.dont_fragment);
    }

    #[test]
    fn icmp_round_trips((repr, data) in icmp_repr()) {
        let mut buf = vec![0u8; IcmpPacket::<&[u8]>::HEADER_LEN + data.len()];
        repr.emit(&mut IcmpPacket::new_unchecked(&mut buf[..]), &data);
        let packet = IcmpPacket::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(IcmpRepr::parse(&packet), Ok(repr));
        prop_assert_eq!(packet.data(), &data[..]);
    }

    #[test]
    fn tcp_round_trips((repr, payload) in tcp_repr_and_payload(), src in ipv4_addr(), dst in ipv4_addr()) {
        let mut buf = vec![0u8; repr.buffer_len()];
        buf[repr.header_len()..].copy_from_slice(&payload);
        repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), &src, &dst);
        prop_assert_eq!(repr.header_len() % 4, 0);
        prop_assert!(repr.header_len() <= 60);
        let packet = TcpPacket::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(TcpRepr::parse(&packet, &src, &dst, true), Ok(repr));
        prop_assert_eq!(packet.payload(), &payload[..]);
    }

    #[test]
    fn tcp_checksum_catches_any_single_byte_change(
        (repr, payload) in tcp_repr_and_payload(),
        src in ipv4_addr(),
        dst in ipv4_addr(),
        at in any::<prop::sample::Index>(),
        delta in 1..=255u8,
    ) {
        let mut buf = vec![0u8; repr.buffer_len()];
        buf[repr.header_len()..].copy_from_slice(&payload);
        repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), &src, &dst);
        let i = at.index(buf.len());
        buf[i] = buf[i].wrapping_add(delta);
        let parsed = TcpRepr::parse(&TcpPacket::new_unchecked(&buf[..]), &src, &dst, true);
        // A single changed byte always changes a ones-complement sum, except
        // 0x00 <-> 0xff in the same position (both are zero mod 0xff).
        let old = buf[i].wrapping_sub(delta);
        if !((old == 0 && buf[i] == 0xff) || (old == 0xff && buf[i] == 0)) {
            prop_assert!(parsed.is_err(), "byte {} changed and parse still succeeded", i);
        }
    }

    #[test]
    fn udp_round_trips(src_port in any::<u16>(), dst_port in any::<u16>(), payload in bytes(), src in ipv4_addr(), dst in ipv4_addr()) {
        let repr = UdpRepr { src_port, dst_port, payload_len: payload.len() };
        let mut buf = vec![0u8; repr.buffer_len()];
        buf[repr.header_len()..].copy_from_slice(&payload);
        repr.emit(&mut UdpPacket::new_unchecked(&mut buf[..]), &src, &dst);
        let packet = UdpPacket::new_checked(&buf[..]).unwrap();
        prop_assert_ne!(packet.checksum(), 0);
        prop_assert_eq!(UdpRepr::parse(&packet, &src, &dst, true), Ok(repr));
        prop_assert_eq!(packet.payload(), &payload[..]);
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(data in bytes(), verify in any::<bool>(), src in ipv4_addr(), dst in ipv4_addr()) {
        let d = &data[..];
        let _ = EthernetRepr::parse(&EthernetFrame::new_unchecked(d));
        let _ = ArpRepr::parse(&ArpPacket::new_unchecked(d));
        let _ = Ipv4Repr::parse(&Ipv4Packet::new_unchecked(d), verify);
        let _ = IcmpRepr::parse(&IcmpPacket::new_unchecked(d));
        let _ = TcpRepr::parse(&TcpPacket::new_unchecked(d), &src, &dst, verify);
        let _ = UdpRepr::parse(&UdpPacket::new_unchecked(d), &src, &dst, verify);
        let _ = TcpOptions::parse(d);
        // `new_checked` success must make every accessor safe.
        if let Ok(p) = Ipv4Packet::new_checked(d) {
            let _ = (p.payload(), p.verify_checksum(), p.frag_offset(), p.src_addr());
        }
        if let Ok(p) = TcpPacket::new_checked(d) {
            let _ = (p.options(), p.payload(), p.verify_checksum(&src, &dst), p.urgent_at());
        }
        if let Ok(p) = UdpPacket::new_checked(d) {
            let _ = (p.payload(), p.verify_checksum(&src, &dst));
        }
        if let Ok(p) = ArpPacket::new_checked(d) {
            let _ = (p.source_hardware_addr(), p.target_protocol_addr());
        }
        if let Ok(p) = IcmpPacket::new_checked(d) {
            let _ = (p.data(), p.next_hop_mtu());
        }
    }
}
