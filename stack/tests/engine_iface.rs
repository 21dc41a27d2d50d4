//! The engine below TCP, through the public API only: ARP, ICMP echo,
//! reassembly, RSTs for closed ports, SYN cookies, malformed input.

mod engine_common;

use core::net::{Ipv4Addr, SocketAddrV4};

use engine_common::*;
use sluice_stack::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IcmpPacket,
    IcmpRepr, IpProtocol, Ipv4Packet, Ipv4Repr, TcpFlags, TcpOptions,
};
use sluice_stack::{Instant, Stack};

const MAC_H: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x99]);
const IP_H: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 9);

fn stack() -> Stack {
    Stack::new(config(MAC_A, IP_A), Instant::from_secs(1))
}

fn arp_frame(op: ArpOperation, src_mac: EthernetAddress, src_ip: Ipv4Addr, dst_mac: EthernetAddress, target_ip: Ipv4Addr) -> Vec<u8> {
    let mut frame = vec![0u8; 14 + ArpRepr::BUFFER_LEN];
    EthernetRepr { src: src_mac, dst: dst_mac, ethertype: EthernetProtocol::Arp }
        .emit(&mut EthernetFrame::new_unchecked(&mut frame[..]));
    ArpRepr {
        operation: op,
        source_hardware_addr: src_mac,
        source_protocol_addr: src_ip,
        target_hardware_addr: if op == ArpOperation::Reply { dst_mac } else { EthernetAddress([0; 6]) },
        target_protocol_addr: target_ip,
    }
    .emit(&mut ArpPacket::new_unchecked(&mut frame[14..]));
    frame
}

fn parse_arp(frame: &[u8]) -> Option<(EthernetAddress, ArpRepr)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Arp {
        return None;
    }
    let repr = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).ok()?).ok()?;
    Some((eth.dst_addr(), repr))
}

fn echo_request(ident: u16, seq_no: u16, data: &[u8]) -> Vec<u8> {
    let repr = IcmpRepr::EchoRequest { ident, seq_no, data_len: data.len() };
    let mut message = vec![0u8; repr.buffer_len()];
    repr.emit(&mut IcmpPacket::new_unchecked(&mut message[..]), data);
    message
}

/// (destination MAC, IPv4 header, ICMP repr, echo data) of an ICMP frame.
fn parse_icmp(frame: &[u8]) -> Option<(EthernetAddress, Ipv4Repr, IcmpRepr, Vec<u8>)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let packet = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let ip = Ipv4Repr::parse(&packet, true).ok()?;
    if ip.protocol != IpProtocol::Icmp {
        return None;
    }
    let icmp = IcmpPacket::new_checked(packet.payload()).ok()?;
    let repr = IcmpRepr::parse(&icmp).ok()?;
    Some((eth.dst_addr(), ip, repr, icmp.data().to_vec()))
}

/// Teaches the stack H's MAC (an ARP request from H for our address).
fn introduce_h(stack: &mut Stack, now: Instant) {
    stack.handle_frame(now, &arp_frame(ArpOperation::Request, MAC_H, IP_H, EthernetAddress::BROADCAST, IP_A));
    let mut out = Vec::new();
    stack.poll_transmit(now, &mut out);
    assert_eq!(out.len(), 1, "one ARP reply");
    let (dst, reply) = parse_arp(&out[0]).expect("an ARP frame");
    assert_eq!(dst, MAC_H);
    assert_eq!(reply.operation, ArpOperation::Reply);
    assert_eq!(reply.source_hardware_addr, MAC_A);
    assert_eq!(reply.source_protocol_addr, IP_A);
    assert_eq!(reply.target_protocol_addr, IP_H);
}

#[test]
fn arp_request_for_us_is_answered_and_others_are_not() {
    let mut s = stack();
    let now = Instant::from_secs(1);
    introduce_h(&mut s, now);
    s.handle_frame(now, &arp_frame(ArpOperation::Request, MAC_H, IP_H, EthernetAddress::BROADCAST, Ipv4Addr::new(10, 0, 0, 77)));
    let mut out = Vec::new();
    assert_eq!(s.poll_transmit(now, &mut out), 0, "not our address: no reply");
    assert_eq!(s.stats().arp_replies_out, 1);
}

#[test]
fn ping_resolves_the_requester_then_replies() {
    let mut s = stack();
    let mut now = Instant::from_secs(1);
    let data: Vec<u8> = (0..56u8).collect();
    s.handle_frame(now, &ipv4_frame(MAC_H, MAC_A, ip_repr(IP_H, IP_A, IpProtocol::Icmp), None, &echo_request(7, 1, &data)));

    // The reply waits for ARP: first out is a broadcast request for H.
    let mut out = Vec::new();
    s.poll_transmit(now, &mut out);
    assert_eq!(out.len(), 1);
    let (dst, request) = parse_arp(&out[0]).expect("ARP request");
    assert_eq!(dst, EthernetAddress::BROADCAST);
    assert_eq!(request.operation, ArpOperation::Request);
    assert_eq!(request.target_protocol_addr, IP_H);

    now += sluice_stack::Duration::from_millis(3);
    s.handle_frame(now, &arp_frame(ArpOperation::Reply, MAC_H, IP_H, MAC_A, IP_A));
    out.clear();
    s.poll_transmit(now, &mut out);
    assert_eq!(out.len(), 1, "the held echo reply");
    let (dst, ip, icmp, echoed) = parse_icmp(&out[0]).expect("ICMP reply");
    assert_eq!(dst, MAC_H);
    assert_eq!((ip.src, ip.dst), (IP_A, IP_H));
    assert_eq!(icmp, IcmpRepr::EchoReply { ident: 7, seq_no: 1, data_len: data.len() });
    assert_eq!(echoed, data);
    assert_eq!(s.stats().icmp_echo_replies, 1);

    // Now resolved: the next ping is answered at once.
    s.handle_frame(now, &ipv4_frame(MAC_H, MAC_A, ip_repr(IP_H, IP_A, IpProtocol::Icmp), None, &echo_request(7, 2, &data)));
    out.clear();
    s.poll_transmit(now, &mut out);
    assert_eq!(out.len(), 1);
    assert!(matches!(parse_icmp(&out[0]), Some((_, _, IcmpRepr::EchoReply { seq_no: 2, .. }, _))));
}

#[test]
fn unanswered_arp_gives_up_and_drops_the_held_reply() {
    let mut s = stack();
    let mut now = Instant::from_secs(1);
    s.handle_frame(now, &ipv4_frame(MAC_H, MAC_A, ip_repr(IP_H, IP_A, IpProtocol::Icmp), None, &echo_request(1, 1, b"x")));
    let mut requests = 0;
    for _ in 0..20 {
        let mut out = Vec::new();
        s.poll_transmit(now, &mut out);
        requests += out.iter().filter(|f| parse_arp(f).is_some()).count();
        assert!(out.iter().all(|f| parse_icmp(f).is_none()), "no reply without a MAC");
        match s.poll_timeout() {
            Some(t) => {
                now = t;
                s.handle_timeout(now);
            }
            None => break,
        }
    }
    assert_eq!(requests, 3, "max_requests requests, rate limited");
    assert_eq!(s.stats().arp_pending_dropped, 1);
    assert_eq!(s.stats().arp_failed, 1);
}

fn fragment_frames(ident: u16, message: &[u8], pieces: &[(usize, usize)]) -> Vec<Vec<u8>> {
    pieces
        .iter()
        .map(|&(offset, len)| {
            let more = offset + len < message.len();
            let ip = Ipv4Repr { ident, ..ip_repr(IP_H, IP_A, IpProtocol::Icmp) };
            ipv4_frame(MAC_H, MAC_A, ip, Some((more, offset)), &message[offset..offset + len])
        })
        .collect()
}

#[test]
fn fragmented_echo_is_reassembled_and_answered() {
    let mut s = stack();
    let now = Instant::from_secs(1);
    introduce_h(&mut s, now);
    let data: Vec<u8> = (0..1200u32).map(|i| (i * 13) as u8).collect();
    let message = echo_request(0x4242, 9, &data);
    // Out of order, each a multiple of 8 bytes except the last.
    let frames = fragment_frames(555, &message, &[(800, message.len() - 800), (0, 400), (400, 400)]);
    for f in &frames {
        s.handle_frame(now, f);
    }
    let mut out = Vec::new();
    s.poll_transmit(now, &mut out);
    assert_eq!(out.len(), 1);
    let (_, ip, icmp, echoed) = parse_icmp(&out[0]).expect("reply to the reassembled echo");
    assert_eq!(ip.dst, IP_H);
    assert_eq!(icmp, IcmpRepr::EchoReply { ident: 0x4242, seq_no: 9, data_len: data.len() });
    assert_eq!(echoed, data);
    assert_eq!(s.stats().ipv4_fragments_in, 3);
    assert_eq!(s.stats().ipv4_reassembled, 1);
}

#[test]
fn overlapping_fragments_drop_the_datagram() {
    let mut s = stack();
    let now = Instant::from_secs(1);
    introduce_h(&mut s, now);
    let message = echo_request(1, 1, &[0xab; 1200]);
    let frames = fragment_frames(556, &message, &[(0, 800), (400, 800), (800, message.len() - 800)]);
    for f in &frames {
        s.handle_frame(now, f);
    }
    let mut out = Vec::new();
    assert_eq!(s.poll_transmit(now, &mut out), 0, "no reply to an overlapped datagram");
    assert_eq!(s.stats().ipv4_reassembly_overlaps, 1);
    assert_eq!(s.stats().ipv4_reassembled, 0);
    // The leftover tail times out.
    let deadline = s.poll_timeout().expect("reassembly timer");
    s.handle_timeout(deadline);
    assert_eq!(s.stats().ipv4_reassembly_timeouts, 1);
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn closed_port_answers_with_rfc9293_resets() {
    let mut s = stack();
    let now = Instant::from_secs(1);
    introduce_h(&mut s, now);
    let h = SocketAddrV4::new(IP_H, 40000);
    let a = SocketAddrV4::new(IP_A, 9);
    let mut out = Vec::new();

    s.handle_frame(now, &tcp_frame(MAC_H, MAC_A, h, a, 1000, 0, TcpFlags::SYN, TcpOptions::default()));
    s.poll_transmit(now, &mut out);
    let (_, rst) = parse_tcp(&out[0]).expect("RST for the SYN");
    assert_eq!(rst.flags, TcpFlags(TcpFlags::RST | TcpFlags::ACK));
    assert_eq!((rst.seq.0, rst.ack.0), (0, 1001));
    assert_eq!((rst.src_port, rst.dst_port), (9, 40000));

    out.clear();
    s.handle_frame(now, &tcp_frame(MAC_H, MAC_A, h, a, 1000, 5555, TcpFlags::ACK, TcpOptions::default()));
    s.poll_transmit(now, &mut out);
    let (_, rst) = parse_tcp(&out[0]).expect("RST for the ACK");
    assert_eq!(rst.flags, TcpFlags(TcpFlags::RST));
    assert_eq!(rst.seq.0, 5555);

    out.clear();
    s.handle_frame(now, &tcp_frame(MAC_H, MAC_A, h, a, 1000, 0, TcpFlags::RST, TcpOptions::default()));
    assert_eq!(s.poll_transmit(now, &mut out), 0, "never a RST for a RST");
    assert_eq!(s.stats().tcp_no_socket, 3);
    assert_eq!(s.stats().tcp_rst_out, 2);
}

#[test]
fn syn_beyond_the_half_open_limit_gets_a_cookie_and_bad_acks_a_reset() {
    let mut cfg = config(MAC_A, IP_A);
    cfg.max_half_open = 0;
    let mut s = Stack::new(cfg, Instant::from_secs(1));
    let now = Instant::from_secs(1);
    introduce_h(&mut s, now);
    s.tcp_listen(APP, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), 16, false).unwrap();
    let h = SocketAddrV4::new(IP_H, 40001);
    let a = SocketAddrV4::new(IP_A, 80);
    let options = TcpOptions { mss: Some(1460), window_scale: Some(7), sack_permitted: true, timestamps: Some((777, 0)), ..TcpOptions::default() };
    s.handle_frame(now, &tcp_frame(MAC_H, MAC_A, h, a, 5000, 0, TcpFlags::SYN, options));
    let mut out = Vec::new();
    s.poll_transmit(now, &mut out);
    assert_eq!(out.len(), 1);
    let (_, synack) = parse_tcp(&out[0]).expect("cookie SYN-ACK");
    assert_eq!(synack.flags, TcpFlags(TcpFlags::SYN | TcpFlags::ACK));
    assert_eq!(synack.ack.0, 5001);
    assert_eq!(synack.options.mss, Some(1460));
    assert!(synack.options.window_scale.is_some(), "wscale rides in the timestamp");
    assert!(synack.options.sack_permitted);
    assert_eq!(synack.options.timestamps.map(|t| t.1), Some(777));
    assert_eq!(s.stats().syn_cookies_sent, 1);
    assert_eq!(s.connection_count(), 0, "no state kept for a cookie");

    // An ACK that does not echo the cookie is refused with a RST.
    out.clear();
    let bad = synack.seq.0.wrapping_add(1000);
    s.handle_frame(now, &tcp_frame(MAC_H, MAC_A, h, a, 5001, bad, TcpFlags::ACK, TcpOptions::default()));
    s.poll_transmit(now, &mut out);
    let (_, rst) = parse_tcp(&out[0]).expect("RST");
    assert!(rst.flags.rst());
    assert_eq!(rst.seq.0, bad);
    assert_eq!(s.stats().syn_cookies_rejected, 1);
    assert_eq!(s.connection_count(), 0);
}

#[test]
fn frames_not_for_us_are_counted() {
    let mut s = stack();
    let now = Instant::from_secs(1);
    let other_mac = EthernetAddress([0x02, 1, 2, 3, 4, 5]);
    s.handle_frame(now, &ipv4_frame(MAC_H, other_mac, ip_repr(IP_H, IP_A, IpProtocol::Icmp), None, &echo_request(1, 1, b"")));
    s.handle_frame(now, &ipv4_frame(MAC_H, MAC_A, ip_repr(IP_H, Ipv4Addr::new(10, 0, 0, 50), IpProtocol::Icmp), None, &echo_request(1, 1, b"")));
    s.handle_frame(now, &ipv4_frame(MAC_H, MAC_A, ip_repr(IP_H, IP_A, IpProtocol::Udp), None, &[0u8; 8]));
    s.handle_frame(now, &ipv4_frame(MAC_H, MAC_A, ip_repr(Ipv4Addr::BROADCAST, IP_A, IpProtocol::Icmp), None, &echo_request(1, 1, b"")));
    let mut bad_checksum = ipv4_frame(MAC_H, MAC_A, ip_repr(IP_H, IP_A, IpProtocol::Icmp), None, &echo_request(1, 1, b"abc"));
    bad_checksum[14 + 8] ^= 0xff; // TTL, covered by the header checksum
    s.handle_frame(now, &bad_checksum);
    let st = s.stats();
    assert_eq!(st.frames_in, 5);
    assert_eq!(st.drop_not_for_us, 2);
    assert_eq!(st.drop_unsupported, 1);
    assert_eq!(st.drop_bad_source, 1);
    assert_eq!(st.drop_bad_checksum, 1);
    let mut out = Vec::new();
    assert_eq!(s.poll_transmit(now, &mut out), 0);
}

#[test]
fn random_frames_never_panic_and_are_counted() {
    let mut s = stack();
    let mut now = Instant::from_secs(1);
    s.tcp_listen(APP, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), 16, false).unwrap();
    let mut rng = Rng::new(42);
    let mut out = Vec::new();
    let templates = [
        ipv4_frame(MAC_H, MAC_A, ip_repr(IP_H, IP_A, IpProtocol::Tcp), None, &[0u8; 40]),
        ipv4_frame(MAC_H, MAC_A, ip_repr(IP_H, IP_A, IpProtocol::Icmp), None, &[0u8; 40]),
        ipv4_frame(MAC_H, MAC_A, ip_repr(IP_H, IP_A, IpProtocol::Icmp), Some((true, 8)), &[0u8; 40]),
        arp_frame(ArpOperation::Request, MAC_H, IP_H, EthernetAddress::BROADCAST, IP_A),
    ];
    let n = 20_000;
    for i in 0..n {
        let frame: Vec<u8> = match rng.below(3) {
            // Pure noise.
            0 => (0..rng.below(120)).map(|_| rng.next_u64() as u8).collect(),
            // A valid frame with some bytes flipped past the Ethernet header.
            _ => {
                let mut f = templates[rng.below(templates.len() as u64) as usize].clone();
                for _ in 0..1 + rng.below(6) {
                    let at = 14 + rng.below((f.len() - 14) as u64) as usize;
                    f[at] = rng.next_u64() as u8;
                }
                let keep = 14 + rng.below((f.len() - 13) as u64) as usize;
                f.truncate(keep);
                f
            }
        };
        s.handle_frame(now, &frame);
        if i % 64 == 0 {
            out.clear();
            s.poll_transmit(now, &mut out);
            now += sluice_stack::Duration::from_millis(1);
            s.handle_timeout(now);
        }
    }
    let st = s.stats().clone();
    assert_eq!(st.frames_in, n);
    let dropped = st.drop_malformed_ethernet
        + st.drop_malformed_arp
        + st.drop_malformed_ipv4
        + st.drop_malformed_tcp
        + st.drop_malformed_icmp
        + st.drop_bad_checksum
        + st.drop_not_for_us
        + st.drop_unsupported
        + st.drop_bad_source;
    assert!(dropped > n / 2, "most noise is dropped and counted: {st:?}");
    assert!(st.drop_malformed_ethernet > 0 && st.drop_bad_checksum > 0, "{st:?}");
    // Still fully functional afterwards.
    out.clear();
    s.poll_transmit(now, &mut out);
    introduce_h(&mut s, now);
}
