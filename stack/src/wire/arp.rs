//! ARP for IPv4 over Ethernet (RFC 826).

use super::view::{be16, packet_view};
use super::{Error, EthernetAddress, Ipv4Addr, Result};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ArpOperation {
    Request,
    Reply,
    Unknown(u16),
}

impl From<u16> for ArpOperation {
    fn from(v: u16) -> Self {
        match v {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            other => ArpOperation::Unknown(other),
        }
    }
}
impl From<ArpOperation> for u16 {
    fn from(op: ArpOperation) -> u16 {
        match op {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Unknown(v) => v,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ArpRepr {
    pub operation: ArpOperation,
    pub source_hardware_addr: EthernetAddress,
    pub source_protocol_addr: Ipv4Addr,
    pub target_hardware_addr: EthernetAddress,
    pub target_protocol_addr: Ipv4Addr,
}

/// Hardware type 1 is Ethernet; protocol type 0x0800 is IPv4 (RFC 826, IANA).
const HTYPE_ETHERNET: u16 = 1;
const PTYPE_IPV4: u16 = 0x0800;

mod field {
    use core::ops::Range;
    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    /// Start of the variable-length address fields.
    pub const ADDRS: usize = 8;
}

packet_view! {
    /// A zero-copy view of an ARP packet with any hardware/protocol address sizes.
    ArpPacket
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// The fixed part before the addresses.
    pub const FIXED_LEN: usize = field::ADDRS;

    /// The buffer holds the fixed part and both address pairs its length fields announce.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < field::ADDRS || len < field::ADDRS + 2 * (self.hardware_len() + self.protocol_len()) {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn hardware_type(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::HTYPE])
    }
    pub fn protocol_type(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::PTYPE])
    }
    pub fn hardware_len(&self) -> usize {
        self.buffer.as_ref()[field::HLEN] as usize
    }
    pub fn protocol_len(&self) -> usize {
        self.buffer.as_ref()[field::PLEN] as usize
    }
    pub fn operation(&self) -> ArpOperation {
        ArpOperation::from(be16(&self.buffer.as_ref()[field::OPER]))
    }

    fn sha_start(&self) -> usize {
        field::ADDRS
    }
    fn spa_start(&self) -> usize {
        self.sha_start() + self.hardware_len()
    }
    fn tha_start(&self) -> usize {
        self.spa_start() + self.protocol_len()
    }
    fn tpa_start(&self) -> usize {
        self.tha_start() + self.hardware_len()
    }

    pub fn source_hardware_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.sha_start()..self.spa_start()]
    }
    pub fn source_protocol_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.spa_start()..self.tha_start()]
    }
    pub fn target_hardware_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.tha_start()..self.tpa_start()]
    }
    pub fn target_protocol_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.tpa_start()..self.tpa_start() + self.protocol_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    pub fn set_hardware_type(&mut self, v: u16) {
        self.buffer.as_mut()[field::HTYPE].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_protocol_type(&mut self, v: u16) {
        self.buffer.as_mut()[field::PTYPE].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_hardware_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::HLEN] = v;
    }
    pub fn set_protocol_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::PLEN] = v;
    }
    pub fn set_operation(&mut self, op: ArpOperation) {
        self.buffer.as_mut()[field::OPER].copy_from_slice(&u16::from(op).to_be_bytes());
    }
    /// The address setters use the length fields, so set those first.
    pub fn set_source_hardware_addr(&mut self, addr: &[u8]) {
        let (s, e) = (self.sha_start(), self.spa_start());
        self.buffer.as_mut()[s..e].copy_from_slice(addr);
    }
    pub fn set_source_protocol_addr(&mut self, addr: &[u8]) {
        let (s, e) = (self.spa_start(), self.tha_start());
        self.buffer.as_mut()[s..e].copy_from_slice(addr);
    }
    pub fn set_target_hardware_addr(&mut self, addr: &[u8]) {
        let (s, e) = (self.tha_start(), self.tpa_start());
        self.buffer.as_mut()[s..e].copy_from_slice(addr);
    }
    pub fn set_target_protocol_addr(&mut self, addr: &[u8]) {
        let s = self.tpa_start();
        let e = s + self.protocol_len();
        self.buffer.as_mut()[s..e].copy_from_slice(addr);
    }
}

impl ArpRepr {
    /// An Ethernet/IPv4 ARP packet: 8 fixed bytes, two 6-byte MACs, two 4-byte addresses.
    pub const BUFFER_LEN: usize = field::ADDRS + 2 * (6 + 4);

    /// Parses an Ethernet/IPv4 ARP packet; any other hardware or protocol
    /// type is [`Error::Unsupported`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &ArpPacket<&T>) -> Result<ArpRepr> {
        packet.check_len()?;
        if packet.hardware_type() != HTYPE_ETHERNET
            || packet.protocol_type() != PTYPE_IPV4
            || packet.hardware_len() != 6
            || packet.protocol_len() != 4
        {
            return Err(Error::Unsupported);
        }
        Ok(ArpRepr {
            operation: packet.operation(),
            source_hardware_addr: mac(packet.source_hardware_addr()),
            source_protocol_addr: ipv4(packet.source_protocol_addr()),
            target_hardware_addr: mac(packet.target_hardware_addr()),
            target_protocol_addr: ipv4(packet.target_protocol_addr()),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        Self::BUFFER_LEN
    }

    /// Writes the packet; the buffer must be at least [`Self::BUFFER_LEN`] long.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut ArpPacket<&mut T>) {
        packet.set_hardware_type(HTYPE_ETHERNET);
        packet.set_protocol_type(PTYPE_IPV4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation);
        packet.set_source_hardware_addr(&self.source_hardware_addr.0);
        packet.set_source_protocol_addr(&self.source_protocol_addr.octets());
        packet.set_target_hardware_addr(&self.target_hardware_addr.0);
        packet.set_target_protocol_addr(&self.target_protocol_addr.octets());
    }
}

/// Callers pass slices whose length `parse` has checked to be 6.
fn mac(bytes: &[u8]) -> EthernetAddress {
    let mut out = [0u8; 6];
    out.copy_from_slice(bytes);
    EthernetAddress(out)
}

/// Callers pass slices whose length `parse` has checked to be 4.
fn ipv4(bytes: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    // "Who has 10.0.0.1? Tell 10.0.0.2", as Linux sends it.
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // eth/ipv4, request
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 10, 0, 0, 2, // sender
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 10, 0, 0, 1, // target
    ];

    fn request_repr() -> ArpRepr {
        ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]),
            source_protocol_addr: Ipv4Addr::new(10, 0, 0, 2),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: Ipv4Addr::new(10, 0, 0, 1),
        }
    }

    #[test]
    fn parses_request() {
        let packet = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(ArpRepr::parse(&packet), Ok(request_repr()));
    }

    #[test]
    fn emits_request() {
        let mut out = [0u8; ArpRepr::BUFFER_LEN];
        request_repr().emit(&mut ArpPacket::new_unchecked(&mut out[..]));
        assert_eq!(out, REQUEST);
    }

    #[test]
    fn truncated_packets_are_rejected() {
        for len in 0..REQUEST.len() {
            let packet = ArpPacket::new_unchecked(&REQUEST[..len]);
            assert_eq!(ArpRepr::parse(&packet), Err(Error::Truncated), "len {len}");
        }
    }

    #[test]
    fn other_address_families_are_unsupported() {
        let mut bytes = REQUEST;
        bytes[1] = 6; // IEEE 802 hardware
        assert_eq!(ArpRepr::parse(&ArpPacket::new_unchecked(&bytes[..])), Err(Error::Unsupported));
        let mut bytes = REQUEST;
        bytes[2..4].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(ArpRepr::parse(&ArpPacket::new_unchecked(&bytes[..])), Err(Error::Unsupported));
        // Larger declared addresses than the buffer holds are truncated, not out of bounds.
        let mut bytes = REQUEST;
        bytes[4] = 255;
        assert_eq!(ArpRepr::parse(&ArpPacket::new_unchecked(&bytes[..])), Err(Error::Truncated));
    }

    #[test]
    fn unknown_operation_is_kept() {
        let mut bytes = REQUEST;
        bytes[7] = 9;
        let repr = ArpRepr::parse(&ArpPacket::new_unchecked(&bytes[..])).unwrap();
        assert_eq!(repr.operation, ArpOperation::Unknown(9));
    }
}
