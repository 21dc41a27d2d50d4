//! ICMPv4 (RFC 792): echo, plus the errors the stack needs to read.

use super::view::{be16, packet_view};
use super::{checksum, Error, Result};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IcmpRepr {
    EchoRequest {
        ident: u16,
        seq_no: u16,
        data_len: usize,
    },
    EchoReply {
        ident: u16,
        seq_no: u16,
        data_len: usize,
    },
    /// Destination unreachable; code 4 is "fragmentation needed" with `next_hop_mtu`.
    DestinationUnreachable {
        code: u8,
        next_hop_mtu: u16,
    },
    Other {
        msg_type: u8,
        code: u8,
    },
}

/// ICMP message types (RFC 792).
pub mod msg_type {
    pub const ECHO_REPLY: u8 = 0;
    pub const DESTINATION_UNREACHABLE: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
}

/// Destination-unreachable code "fragmentation needed and DF set" (RFC 792,
/// with the next-hop MTU of RFC 1191 §4).
pub const CODE_FRAG_NEEDED: u8 = 4;

mod field {
    use core::ops::Range;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    /// Echo identifier; unused in destination unreachable.
    pub const IDENT: Range<usize> = 4..6;
    /// Echo sequence number; next-hop MTU in destination unreachable.
    pub const SEQ_OR_MTU: Range<usize> = 6..8;
    pub const DATA: usize = 8;
}

packet_view! {
    /// A zero-copy view of an ICMP message (the whole IPv4 payload).
    IcmpPacket
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    pub const HEADER_LEN: usize = field::DATA;

    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < Self::HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }
    pub fn echo_ident(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::IDENT])
    }
    pub fn echo_seq_no(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::SEQ_OR_MTU])
    }
    pub fn next_hop_mtu(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::SEQ_OR_MTU])
    }
    /// Echo data, or for errors the quoted IP header and first 8 payload bytes.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }
    /// The checksum covers the whole message (RFC 792).
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }
    pub fn set_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_echo_ident(&mut self, v: u16) {
        self.buffer.as_mut()[field::IDENT].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_echo_seq_no(&mut self, v: u16) {
        self.buffer.as_mut()[field::SEQ_OR_MTU].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_next_hop_mtu(&mut self, v: u16) {
        self.buffer.as_mut()[field::SEQ_OR_MTU].copy_from_slice(&v.to_be_bytes());
    }
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }
    /// Recomputes the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(self.buffer.as_ref());
        self.set_checksum(!sum);
    }
}

impl IcmpRepr {
    /// Parses a message and verifies its checksum. Echo data (or the quoted
    /// datagram of an error) is `packet.data()`.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &IcmpPacket<&T>) -> Result<IcmpRepr> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(Error::Checksum);
        }
        let data_len = packet.data().len();
        Ok(match packet.msg_type() {
            msg_type::ECHO_REQUEST if packet.code() == 0 => {
                IcmpRepr::EchoRequest { ident: packet.echo_ident(), seq_no: packet.echo_seq_no(), data_len }
            }
            msg_type::ECHO_REPLY if packet.code() == 0 => {
                IcmpRepr::EchoReply { ident: packet.echo_ident(), seq_no: packet.echo_seq_no(), data_len }
            }
            msg_type::DESTINATION_UNREACHABLE => {
                // Bytes 6..8 are the next-hop MTU for code 4 (RFC 1191 §4) and
                // zero ("unused") otherwise, so reading them is always safe.
                IcmpRepr::DestinationUnreachable { code: packet.code(), next_hop_mtu: packet.next_hop_mtu() }
            }
            msg_type => IcmpRepr::Other { msg_type, code: packet.code() },
        })
    }

    /// Message length for echo (header plus data); the header alone for the
    /// others, whose data (a quoted datagram) the caller sizes.
    pub const fn buffer_len(&self) -> usize {
        match self {
            IcmpRepr::EchoRequest { data_len, .. } | IcmpRepr::EchoReply { data_len, .. } => {
                IcmpPacket::<&[u8]>::HEADER_LEN + *data_len
            }
            _ => IcmpPacket::<&[u8]>::HEADER_LEN,
        }
    }

    /// Writes the header, copies `data` (echo data, or the quoted datagram of
    /// an error) after it and fills the checksum over the whole buffer. The
    /// buffer must be exactly `HEADER_LEN + data.len()` long.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut IcmpPacket<&mut T>, data: &[u8]) {
        let (msg_type, code, rest_hi, rest_lo) = match *self {
            IcmpRepr::EchoRequest { ident, seq_no, .. } => (msg_type::ECHO_REQUEST, 0, ident, seq_no),
            IcmpRepr::EchoReply { ident, seq_no, .. } => (msg_type::ECHO_REPLY, 0, ident, seq_no),
            IcmpRepr::DestinationUnreachable { code, next_hop_mtu } => {
                (msg_type::DESTINATION_UNREACHABLE, code, 0, next_hop_mtu)
            }
            IcmpRepr::Other { msg_type, code } => (msg_type, code, 0, 0),
        };
        packet.set_msg_type(msg_type);
        packet.set_code(code);
        packet.set_echo_ident(rest_hi);
        packet.set_echo_seq_no(rest_lo);
        packet.data_mut()[..data.len()].copy_from_slice(data);
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // `ping -p 61` style echo request: ident 0x1234, seq 1, 8 data bytes 'a',
    // checksum computed by hand: !(0x0800 + 0x1234 + 0x0001 + 4 * 0x6161) = 0x6045.
    const ECHO_REQUEST: [u8; 16] =
        [0x08, 0x00, 0x60, 0x45, 0x12, 0x34, 0x00, 0x01, 0x61, 0x61, 0x61, 0x61, 0x61, 0x61, 0x61, 0x61];

    #[test]
    fn parses_echo_request() {
        let packet = IcmpPacket::new_checked(&ECHO_REQUEST[..]).unwrap();
        assert_eq!(IcmpRepr::parse(&packet), Ok(IcmpRepr::EchoRequest { ident: 0x1234, seq_no: 1, data_len: 8 }));
        assert_eq!(packet.data(), b"aaaaaaaa");
    }

    #[test]
    fn emits_echo_request_with_known_checksum() {
        let repr = IcmpRepr::EchoRequest { ident: 0x1234, seq_no: 1, data_len: 8 };
        let mut out = [0u8; 16];
        repr.emit(&mut IcmpPacket::new_unchecked(&mut out[..]), b"aaaaaaaa");
        assert_eq!(out, ECHO_REQUEST);
        assert_eq!(repr.buffer_len(), 16);
    }

    #[test]
    fn echo_reply_round_trips() {
        let repr = IcmpRepr::EchoReply { ident: 7, seq_no: 0xffff, data_len: 3 };
        let mut out = [0u8; 11];
        repr.emit(&mut IcmpPacket::new_unchecked(&mut out[..]), b"xyz");
        assert_eq!(IcmpRepr::parse(&IcmpPacket::new_unchecked(&out[..])), Ok(repr));
    }

    #[test]
    fn frag_needed_carries_mtu() {
        let repr = IcmpRepr::DestinationUnreachable { code: CODE_FRAG_NEEDED, next_hop_mtu: 1400 };
        let quoted = [0x45u8; 28];
        let mut out = [0u8; 36];
        repr.emit(&mut IcmpPacket::new_unchecked(&mut out[..]), &quoted);
        let packet = IcmpPacket::new_checked(&out[..]).unwrap();
        assert_eq!(&out[6..8], &1400u16.to_be_bytes());
        assert_eq!(IcmpRepr::parse(&packet), Ok(repr));
        assert_eq!(packet.data(), &quoted);
    }

    #[test]
    fn bad_checksum_and_truncation() {
        let mut bytes = ECHO_REQUEST;
        bytes[15] ^= 1;
        assert_eq!(IcmpRepr::parse(&IcmpPacket::new_unchecked(&bytes[..])), Err(Error::Checksum));
        for len in 0..8 {
            assert_eq!(IcmpRepr::parse(&IcmpPacket::new_unchecked(&ECHO_REQUEST[..len])), Err(Error::Truncated));
        }
    }

    #[test]
    fn echo_with_nonzero_code_is_other() {
        let mut out = [0u8; 8];
        IcmpRepr::Other { msg_type: 8, code: 1 }.emit(&mut IcmpPacket::new_unchecked(&mut out[..]), &[]);
        assert_eq!(IcmpRepr::parse(&IcmpPacket::new_unchecked(&out[..])), Ok(IcmpRepr::Other { msg_type: 8, code: 1 }));
    }
}
