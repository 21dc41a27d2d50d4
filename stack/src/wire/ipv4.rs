//! IPv4 (RFC 791). Options are skipped; fragments are reported to the caller,
//! which reassembles or drops them.

use super::Ipv4Addr;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IpProtocol {
    Icmp,
    Tcp,
    Udp,
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> Self {
        match v {
            1 => IpProtocol::Icmp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            other => IpProtocol::Unknown(other),
        }
    }
}
impl From<IpProtocol> for u8 {
    fn from(p: IpProtocol) -> u8 {
        match p {
            IpProtocol::Icmp => 1,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Unknown(v) => v,
        }
    }
}

/// A parsed IPv4 header of an unfragmented (or reassembled) datagram.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Ipv4Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: IpProtocol,
    /// Length of the payload (after the header and any options).
    pub payload_len: usize,
    pub ttl: u8,
    /// DSCP and ECN (the old TOS byte).
    pub tos: u8,
    pub ident: u16,
    pub dont_fragment: bool,
}
