//! Destination unreachable, reported to the connection attempt it concerns:
//! an ICMP destination unreachable quoting one of our segments (RFC 792), or
//! the ARP cache giving up on the next hop of frames we held (which Linux
//! turns into a local ICMP host unreachable, `arp_error_report`).
//!
//! RFC 1122 §4.2.3.9 lets TCP abort on hard errors; RFC 5461 §4.1 keeps
//! established connections alive through them (routes flap), so, like Linux
//! (`tcp_v4_err`), only a connection still in SYN-SENT fails, at once and
//! with the error `connect` reports, instead of waiting out its SYN
//! retransmissions. The quoted sequence number must be our ISN (RFC 5927
//! §4.1), so an off-path attacker has to guess it to abort a connect.
//!
//! ARP failing is given one more chance than Linux gives it: a connection
//! fails at the second resolution that fails (the SYN retransmission starts
//! a new one), since on a lossy link three lost requests in a row are not
//! rare (5% at 20% loss each way) while six are (0.2%); that is still far
//! sooner than the SYN retransmissions running out.

use core::net::{Ipv4Addr, SocketAddrV4};

use super::events::post;
use super::{SocketId, Stack};
use crate::error::Error;
use crate::iface::icmp::Unreachable;
use crate::session::demux::FourTuple;
use crate::session::event::EventSet;
use crate::tcp::conn::TcpState;
use crate::tcp::seq::SeqNum;
use crate::time::Instant;

/// Resolutions that must fail (at distinct times) before a connect does.
const LINK_FAILURES_TO_FAIL: u8 = 2;

/// RFC 792 destination-unreachable codes that mean "refused" rather than "no way there".
const CODE_PROTOCOL_UNREACHABLE: u8 = 2;
const CODE_PORT_UNREACHABLE: u8 = 3;
const ETHERNET_HEADER_LEN: usize = 14;
const IPV4_PROTOCOL_TCP: u8 = 6;

/// The part of one of our TCP segments quoted back to us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct QuotedSegment {
    tuple: FourTuple,
    seq: SeqNum,
}

impl QuotedSegment {
    /// Reads an IPv4 header and the first 8 bytes of TCP (ports, sequence
    /// number) sent by us; None if it is not that (truncated, not TCP).
    fn parse(ip: &[u8]) -> Option<QuotedSegment> {
        let ver_ihl = *ip.first()?;
        let header_len = usize::from(ver_ihl & 0x0f) * 4;
        if ver_ihl >> 4 != 4 || header_len < 20 || *ip.get(9)? != IPV4_PROTOCOL_TCP {
            return None;
        }
        let addr = |at: usize| -> Option<Ipv4Addr> {
            let octets: [u8; 4] = ip.get(at..at + 4)?.try_into().ok()?;
            Some(Ipv4Addr::from(octets))
        };
        let (src, dst) = (addr(12)?, addr(16)?);
        let tcp: [u8; 8] = ip.get(header_len..header_len + 8)?.try_into().ok()?;
        let port = |at: usize| u16::from_be_bytes([tcp[at], tcp[at + 1]]);
        let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
        Some(QuotedSegment {
            tuple: FourTuple { local: SocketAddrV4::new(src, port(0)), remote: SocketAddrV4::new(dst, port(2)) },
            seq: SeqNum(seq),
        })
    }
}

impl Stack {
    /// An ICMP destination unreachable from the network.
    pub(crate) fn on_icmp_unreachable(&mut self, now: Instant, message: Unreachable<'_>) {
        let Some(segment) = QuotedSegment::parse(message.quoted) else { return };
        let error = match message.code {
            CODE_PROTOCOL_UNREACHABLE | CODE_PORT_UNREACHABLE => Error::ConnectionRefused,
            _ => Error::Unreachable,
        };
        self.fail_connect(now, segment, error);
    }

    /// Frames the ARP cache gave up on: each reports host unreachable to the
    /// connection that sent it.
    pub(crate) fn report_link_failures(&mut self, now: Instant) {
        while let Some(frame) = self.egress.arp.failed_frame() {
            let segment = frame.get(ETHERNET_HEADER_LEN..).and_then(QuotedSegment::parse);
            self.egress.arp.pop_failed_frame();
            if let Some(segment) = segment {
                if self.count_link_failure(now, segment) {
                    self.fail_connect(now, segment, Error::Unreachable);
                }
            }
        }
    }

    /// Records a failed resolution for the connection `segment` belongs to
    /// (several of its frames failing together count once); true once
    /// enough have failed.
    fn count_link_failure(&mut self, now: Instant, segment: QuotedSegment) -> bool {
        let Some(id) = self.conn_table.get(&segment.tuple) else { return false };
        let Some(slot) = self.conns.get_mut(id) else { return false };
        let (count, last) = slot.link_failures;
        if last != Some(now) {
            slot.link_failures = (count.saturating_add(1), Some(now));
        }
        slot.link_failures.0 >= LINK_FAILURES_TO_FAIL
    }

    /// Fails the connection attempt `segment` belongs to, if it is one.
    fn fail_connect(&mut self, now: Instant, segment: QuotedSegment, error: Error) {
        let Some(id) = self.conn_table.get(&segment.tuple) else { return };
        let Some(slot) = self.conns.get_mut(id) else { return };
        if slot.conn.state() != TcpState::SynSent || slot.iss != Some(segment.seq) {
            return;
        }
        // In SYN-SENT the peer holds nothing for us: no RST, just CLOSED.
        slot.conn.abort(now);
        slot.error = Some(error);
        self.stats.tcp_connect_unreachable += 1;
        if slot.app_visible() {
            post(
                &mut self.consumers,
                self.config.event_queue_capacity,
                &mut self.stats,
                slot.owner,
                SocketId::Conn(id),
                EventSet::ERROR,
                &mut slot.ticket,
            );
        }
        self.mark_dirty(id);
        self.settle(now, id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_segment_reads_addresses_ports_and_sequence() {
        let mut ip = [0u8; 28];
        ip[0] = 0x45;
        ip[9] = IPV4_PROTOCOL_TCP;
        ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
        ip[20..28].copy_from_slice(&[0x9c, 0x40, 0, 80, 0, 0, 1, 2]);
        let q = QuotedSegment::parse(&ip).unwrap();
        assert_eq!(q.tuple.local, SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 40000));
        assert_eq!(q.tuple.remote, SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80));
        assert_eq!(q.seq, SeqNum(0x0102));
        assert_eq!(QuotedSegment::parse(&ip[..27]), None, "truncated TCP");
        ip[9] = 17;
        assert_eq!(QuotedSegment::parse(&ip), None, "not TCP");
        ip[9] = IPV4_PROTOCOL_TCP;
        ip[0] = 0x44;
        assert_eq!(QuotedSegment::parse(&ip), None, "bad header length");
    }
}
