//! UDP (RFC 768).

use super::view::{be16, packet_view};
use super::{checksum, Error, Ipv4Addr, Result};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct UdpRepr {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload_len: usize,
}

const PROTOCOL: u8 = 17;

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
    pub const PAYLOAD: usize = 8;
}

packet_view! {
    /// A zero-copy view of a UDP datagram (the IPv4 payload).
    UdpPacket
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    pub const HEADER_LEN: usize = field::PAYLOAD;

    /// The length field covers the header and lies within the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < Self::HEADER_LEN {
            return Err(Error::Truncated);
        }
        let field_len = self.length() as usize;
        if field_len < Self::HEADER_LEN {
            Err(Error::Malformed)
        } else if field_len > len {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn src_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::SRC_PORT])
    }
    pub fn dst_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::DST_PORT])
    }
    /// The length field: header plus payload.
    pub fn length(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::LENGTH])
    }
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }
    /// The payload up to the length field.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..self.length() as usize]
    }
    /// A zero checksum means the sender computed none (RFC 768).
    pub fn verify_checksum(&self, src: &Ipv4Addr, dst: &Ipv4Addr) -> bool {
        self.checksum() == 0
            || checksum::upper_layer_ok(src, dst, PROTOCOL, &self.buffer.as_ref()[..self.length() as usize])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    pub fn set_src_port(&mut self, v: u16) {
        self.buffer.as_mut()[field::SRC_PORT].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_dst_port(&mut self, v: u16) {
        self.buffer.as_mut()[field::DST_PORT].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_length(&mut self, v: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.length() as usize;
        &mut self.buffer.as_mut()[field::PAYLOAD..end]
    }
    /// Computes the checksum over the pseudo-header and the datagram up to the
    /// length field. A computed zero is sent as 0xffff, since zero means "none"
    /// (RFC 768).
    pub fn fill_checksum(&mut self, src: &Ipv4Addr, dst: &Ipv4Addr) {
        self.set_checksum(0);
        let end = self.length() as usize;
        let value = checksum::upper_layer_value(src, dst, PROTOCOL, &self.buffer.as_ref()[..end]);
        self.set_checksum(if value == 0 { 0xffff } else { value });
    }
}

impl UdpRepr {
    /// Parses the header, verifying a non-zero checksum when asked.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &UdpPacket<&T>,
        src: &Ipv4Addr,
        dst: &Ipv4Addr,
        verify_checksum: bool,
    ) -> Result<UdpRepr> {
        packet.check_len()?;
        if verify_checksum && !packet.verify_checksum(src, dst) {
            return Err(Error::Checksum);
        }
        Ok(UdpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: packet.length() as usize - UdpPacket::<&[u8]>::HEADER_LEN,
        })
    }

    pub const fn header_len(&self) -> usize {
        UdpPacket::<&[u8]>::HEADER_LEN
    }

    pub const fn buffer_len(&self) -> usize {
        self.header_len() + self.payload_len
    }

    /// Writes the header and the checksum over header and the `payload_len`
    /// bytes **already in the buffer after the header**, so put the payload
    /// there first: copy it to `buffer[repr.header_len()..]` (or call
    /// `packet.set_length(repr.buffer_len() as u16)` and use `payload_mut()`),
    /// then call `emit`. The buffer must be at least [`Self::buffer_len`]
    /// long, and that must fit 16 bits.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut UdpPacket<&mut T>,
        src: &Ipv4Addr,
        dst: &Ipv4Addr,
    ) {
        debug_assert!(self.buffer_len() <= u16::MAX as usize, "UDP payload too long");
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_length(self.buffer_len() as u16);
        packet.fill_checksum(src, dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
    const DST: Ipv4Addr = Ipv4Addr::new(8, 8, 8, 8);

    // A DNS-sized toy datagram 40000 -> 53 carrying "hi!", checksum worked out
    // by hand from the pseudo-header: 0x0837.
    const DATAGRAM: [u8; 11] = [0x9c, 0x40, 0x00, 0x35, 0x00, 0x0b, 0x08, 0x37, b'h', b'i', b'!'];

    #[test]
    fn parses_and_verifies() {
        let packet = UdpPacket::new_checked(&DATAGRAM[..]).unwrap();
        assert!(packet.verify_checksum(&SRC, &DST));
        let repr = UdpRepr::parse(&packet, &SRC, &DST, true).unwrap();
        assert_eq!(repr, UdpRepr { src_port: 40000, dst_port: 53, payload_len: 3 });
        assert_eq!(packet.payload(), b"hi!");
    }

    #[test]
    fn emit_reproduces_bytes() {
        let mut out = [0u8; 11];
        out[8..].copy_from_slice(b"hi!");
        UdpRepr { src_port: 40000, dst_port: 53, payload_len: 3 }.emit(
            &mut UdpPacket::new_unchecked(&mut out[..]),
            &SRC,
            &DST,
        );
        assert_eq!(out, DATAGRAM);
    }

    #[test]
    fn zero_checksum_means_none() {
        let mut bytes = DATAGRAM;
        bytes[6..8].copy_from_slice(&[0, 0]);
        bytes[10] = b'?';
        assert!(UdpRepr::parse(&UdpPacket::new_unchecked(&bytes[..]), &SRC, &DST, true).is_ok());
    }

    #[test]
    fn bad_checksum_and_lengths() {
        let mut bytes = DATAGRAM;
        bytes[10] = b'?';
        assert_eq!(UdpRepr::parse(&UdpPacket::new_unchecked(&bytes[..]), &SRC, &DST, true), Err(Error::Checksum));
        // A wrong destination is a wrong pseudo-header.
        assert_eq!(UdpRepr::parse(&UdpPacket::new_unchecked(&DATAGRAM[..]), &SRC, &SRC, true), Err(Error::Checksum));
        for len in 0..DATAGRAM.len() {
            let packet = UdpPacket::new_unchecked(&DATAGRAM[..len]);
            assert_eq!(UdpRepr::parse(&packet, &SRC, &DST, false), Err(Error::Truncated), "len {len}");
        }
        let mut bytes = DATAGRAM;
        bytes[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(UdpRepr::parse(&UdpPacket::new_unchecked(&bytes[..]), &SRC, &DST, false), Err(Error::Malformed));
    }
}
