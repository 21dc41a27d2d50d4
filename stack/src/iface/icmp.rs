//! ICMP (RFC 792): answers echo requests and reads "fragmentation needed"
//! (RFC 1191 §4). Replies are built at once into a small preallocated pool and
//! sent by the next `poll_transmit`, so a ping flood holds a fixed amount of
//! memory: requests beyond what the pool holds are dropped and counted.

use super::packet_pool::{PacketList, PacketPool};
use crate::engine::Stats;
use crate::wire::{IcmpPacket, IcmpRepr, IpProtocol, Ipv4Addr, Ipv4Packet, Ipv4Repr};

/// Replies held between two polls, at the most.
const MAX_QUEUED_REPLIES: usize = 16;
/// RFC 1122 §3.2.1.7 recommends 64 as the default TTL.
const DEFAULT_TTL: u8 = 64;

/// A destination-unreachable message (RFC 792): its code and the quoted
/// datagram (our IPv4 header and at least the first 8 bytes of its payload).
#[derive(Clone, Copy, Debug)]
pub struct Unreachable<'a> {
    pub code: u8,
    pub quoted: &'a [u8],
}

pub struct IcmpResponder {
    local: Ipv4Addr,
    /// IPv4 packets (no link header) ready to be routed and sent.
    pool: PacketPool,
    queue: PacketList,
}

impl IcmpResponder {
    /// `mtu` bounds a reply: an echo whose reply would need fragmenting is not answered.
    pub fn new(local: Ipv4Addr, mtu: usize) -> Self {
        IcmpResponder { local, pool: PacketPool::new(MAX_QUEUED_REPLIES, mtu), queue: PacketList::default() }
    }

    /// An ICMP message for us from `src`; `ident` is the IPv4 identification
    /// the reply will carry. A destination-unreachable error (other than
    /// "fragmentation needed") is returned for the engine to report to the
    /// connection whose datagram it quotes.
    pub fn on_message<'a>(
        &mut self,
        src: Ipv4Addr,
        message: &'a [u8],
        ident: u16,
        stats: &mut Stats,
    ) -> Option<Unreachable<'a>> {
        let Ok(packet) = IcmpPacket::new_checked(message) else {
            stats.drop_malformed_icmp += 1;
            return None;
        };
        let repr = match IcmpRepr::parse(&packet) {
            Ok(repr) => repr,
            Err(crate::wire::Error::Checksum) => {
                stats.drop_bad_checksum += 1;
                return None;
            }
            Err(_) => {
                stats.drop_malformed_icmp += 1;
                return None;
            }
        };
        match repr {
            IcmpRepr::EchoRequest { ident: echo_ident, seq_no, .. } => {
                self.queue_echo_reply(src, echo_ident, seq_no, packet.data(), ident, stats)
            }
            IcmpRepr::DestinationUnreachable { code: crate::wire::icmp::CODE_FRAG_NEEDED, .. } => {
                // Path MTU discovery is not implemented: we send with DF and
                // MSS from our own MTU; the message is only counted.
                stats.icmp_frag_needed_in += 1;
            }
            IcmpRepr::DestinationUnreachable { code, .. } => {
                stats.icmp_unreachable_in += 1;
                // The quoted datagram follows the 8-byte ICMP header.
                return message.get(8..).map(|quoted| Unreachable { code, quoted });
            }
            _ => stats.icmp_ignored += 1,
        }
        None
    }

    /// The next reply (a whole IPv4 packet) and its destination.
    pub fn front(&self) -> Option<(Ipv4Addr, &[u8])> {
        let packet = self.pool.front(&self.queue)?;
        let dst = Ipv4Packet::new_checked(packet).ok()?.dst_addr();
        Some((dst, packet))
    }
    /// Drops the reply `front` returned.
    pub fn pop(&mut self) {
        self.pool.pop_front(&mut self.queue);
    }
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    fn queue_echo_reply(&mut self, dst: Ipv4Addr, echo_ident: u16, seq_no: u16, data: &[u8], ident: u16, stats: &mut Stats) {
        let reply = IcmpRepr::EchoReply { ident: echo_ident, seq_no, data_len: data.len() };
        let ip = Ipv4Repr {
            src: self.local,
            dst,
            protocol: IpProtocol::Icmp,
            payload_len: reply.buffer_len(),
            ttl: DEFAULT_TTL,
            tos: 0,
            ident,
            dont_fragment: false,
        };
        let len = ip.buffer_len();
        let queued = self.pool.push_with(&mut self.queue, len, &mut |buf| {
            let (header, body) = buf.split_at_mut(Ipv4Repr::HEADER_LEN);
            reply.emit(&mut IcmpPacket::new_unchecked(body), data);
            ip.emit(&mut Ipv4Packet::new_unchecked(header));
        });
        if queued {
            stats.icmp_echo_replies += 1;
        } else {
            stats.icmp_dropped += 1;
        }
    }
}
