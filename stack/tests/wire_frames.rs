//! Whole-frame dissection: the fuzz target's checks (`stack/fuzz/src/frame_check.rs`,
//! included here by path so both run the same code) under proptest, on random
//! bytes and on corrupted valid frames, which random bytes rarely reach.

#[path = "../fuzz/src/frame_check.rs"]
mod frame_check;

use proptest::prelude::*;
use sluice_stack::tcp::seq::SeqNum;
use sluice_stack::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IcmpPacket, IcmpRepr, IpProtocol, Ipv4Addr,
    Ipv4Packet, Ipv4Repr, TcpFlags, TcpOptions, TcpPacket, TcpRepr, UdpPacket, UdpRepr,
};

const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const ETH: usize = 14;
const IP: usize = 20;

/// Ethernet + IPv4 around an upper-layer packet that `fill` writes into the
/// slice it is given (of length `upper_len`).
fn frame(protocol: IpProtocol, upper_len: usize, fill: impl FnOnce(&mut [u8])) -> Vec<u8> {
    let mut buf = vec![0u8; ETH + IP + upper_len];
    fill(&mut buf[ETH + IP..]);
    let ip = Ipv4Repr {
        src: SRC,
        dst: DST,
        protocol,
        payload_len: upper_len,
        ttl: 64,
        tos: 0,
        ident: 1,
        dont_fragment: true,
    };
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut buf[ETH..]));
    let eth = EthernetRepr {
        src: EthernetAddress([2, 0, 0, 0, 0, 1]),
        dst: EthernetAddress([2, 0, 0, 0, 0, 2]),
        ethertype: EthernetProtocol::Ipv4,
    };
    eth.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    buf
}

fn tcp_frame(payload: &[u8], sack_blocks: usize) -> Vec<u8> {
    let mut options = TcpOptions {
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamps: Some((1, 2)),
        ..Default::default()
    };
    for i in 0..sack_blocks as u32 {
        options.sack.push(SeqNum(i * 100), SeqNum(i * 100 + 50));
    }
    let repr = TcpRepr {
        src_port: 1234,
        dst_port: 80,
        seq: SeqNum(7),
        ack: SeqNum(9),
        flags: TcpFlags(TcpFlags::ACK | TcpFlags::PSH),
        window: 1000,
        urgent: 0,
        options,
        payload_len: payload.len(),
    };
    frame(IpProtocol::Tcp, repr.buffer_len(), |buf| {
        buf[repr.header_len()..].copy_from_slice(payload);
        repr.emit(&mut TcpPacket::new_unchecked(buf), &SRC, &DST);
    })
}

fn udp_frame(payload: &[u8]) -> Vec<u8> {
    let repr = UdpRepr { src_port: 53, dst_port: 5353, payload_len: payload.len() };
    frame(IpProtocol::Udp, repr.buffer_len(), |buf| {
        buf[repr.header_len()..].copy_from_slice(payload);
        repr.emit(&mut UdpPacket::new_unchecked(buf), &SRC, &DST);
    })
}

fn icmp_frame(payload: &[u8]) -> Vec<u8> {
    let repr = IcmpRepr::EchoRequest { ident: 3, seq_no: 4, data_len: payload.len() };
    frame(IpProtocol::Icmp, repr.buffer_len(), |buf| repr.emit(&mut IcmpPacket::new_unchecked(buf), payload))
}

#[test]
fn valid_frames_pass_every_check() {
    for blocks in 0..=4 {
        frame_check::check_frame(&tcp_frame(b"payload", blocks));
    }
    frame_check::check_frame(&udp_frame(b"payload"));
    frame_check::check_frame(&icmp_frame(b"payload"));
}

fn valid_frame() -> impl Strategy<Value = Vec<u8>> {
    let payload = proptest::collection::vec(any::<u8>(), 0..64);
    prop_oneof![
        (payload.clone(), 0..=4usize).prop_map(|(p, blocks)| tcp_frame(&p, blocks)),
        payload.clone().prop_map(|p| udp_frame(&p)),
        payload.prop_map(|p| icmp_frame(&p)),
    ]
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_break_dissection(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        frame_check::check_frame(&data);
    }

    #[test]
    fn corrupted_frames_never_break_dissection(
        mut data in valid_frame(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        for (at, value) in edits {
            let i = at.index(data.len());
            data[i] = value;
        }
        if truncate {
            data.truncate(cut.index(data.len()));
        }
        frame_check::check_frame(&data);
    }
}
