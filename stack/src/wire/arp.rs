//! ARP for IPv4 over Ethernet (RFC 826).

use super::{EthernetAddress, Ipv4Addr};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ArpOperation {
    Request,
    Reply,
    Unknown(u16),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ArpRepr {
    pub operation: ArpOperation,
    pub source_hardware_addr: EthernetAddress,
    pub source_protocol_addr: Ipv4Addr,
    pub target_hardware_addr: EthernetAddress,
    pub target_protocol_addr: Ipv4Addr,
}
