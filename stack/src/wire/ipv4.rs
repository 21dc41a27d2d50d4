//! IPv4 (RFC 791). Options are skipped; fragments are reported to the caller,
//! which reassembles or drops them.

use super::view::{be16, packet_view};
use super::{checksum, Error, Ipv4Addr, Result};

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

/// A parsed IPv4 header. Fragment fields are not part of the repr: the
/// caller checks [`Ipv4Packet::is_fragment`] before using it.
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

mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const TOTAL_LEN: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLAGS_FRAG: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

const FLAG_DONT_FRAGMENT: u16 = 0x4000;
const FLAG_MORE_FRAGMENTS: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

packet_view! {
    /// A zero-copy view of an IPv4 datagram. The buffer may extend past the
    /// datagram's total length (Ethernet pads short frames); [`Self::payload`]
    /// stops at the total length.
    Ipv4Packet
}

fn addr(bytes: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// The header without options.
    pub const HEADER_LEN: usize = 20;

    /// Checks the length fields against each other and the buffer (RFC 791
    /// §3.1): IHL at least 5 words, the header inside the total length, the
    /// total length inside the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < Self::HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = self.header_len();
        if header_len < Self::HEADER_LEN {
            return Err(Error::Malformed);
        }
        if header_len > len {
            return Err(Error::Truncated);
        }
        let total_len = self.total_len() as usize;
        if total_len < header_len {
            return Err(Error::Malformed);
        }
        if total_len > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }
    /// Header length in bytes (IHL × 4), options included.
    pub fn header_len(&self) -> usize {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0f) as usize * 4
    }
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }
    pub fn total_len(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::TOTAL_LEN])
    }
    pub fn ident(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::IDENT])
    }
    fn flags_frag(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::FLAGS_FRAG])
    }
    pub fn dont_frag(&self) -> bool {
        self.flags_frag() & FLAG_DONT_FRAGMENT != 0
    }
    pub fn more_frags(&self) -> bool {
        self.flags_frag() & FLAG_MORE_FRAGMENTS != 0
    }
    /// Fragment offset in bytes (the field counts 8-byte units).
    pub fn frag_offset(&self) -> usize {
        (self.flags_frag() & FRAG_OFFSET_MASK) as usize * 8
    }
    /// A fragment has MF set or a non-zero offset (RFC 791 §3.2); it must go to
    /// reassembly rather than straight to the upper layer.
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }
    pub fn src_addr(&self) -> Ipv4Addr {
        addr(&self.buffer.as_ref()[field::SRC])
    }
    pub fn dst_addr(&self) -> Ipv4Addr {
        addr(&self.buffer.as_ref()[field::DST])
    }
    /// Whether the header (options included) sums to zero.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(&self.buffer.as_ref()[..self.header_len()]) == 0xffff
    }
    /// The bytes after the header up to the total length (padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    pub fn set_version_and_header_len(&mut self, version: u8, header_len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = (version << 4) | ((header_len / 4) as u8 & 0x0f);
    }
    pub fn set_tos(&mut self, v: u8) {
        self.buffer.as_mut()[field::TOS] = v;
    }
    pub fn set_total_len(&mut self, v: u16) {
        self.buffer.as_mut()[field::TOTAL_LEN].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_ident(&mut self, v: u16) {
        self.buffer.as_mut()[field::IDENT].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets DF, MF and the offset (in bytes, a multiple of 8) together.
    pub fn set_flags_and_frag_offset(&mut self, dont_frag: bool, more_frags: bool, offset: usize) {
        let mut v = ((offset / 8) as u16) & FRAG_OFFSET_MASK;
        if dont_frag {
            v |= FLAG_DONT_FRAGMENT;
        }
        if more_frags {
            v |= FLAG_MORE_FRAGMENTS;
        }
        self.buffer.as_mut()[field::FLAGS_FRAG].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }
    pub fn set_protocol(&mut self, p: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = u8::from(p);
    }
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a.octets());
    }
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a.octets());
    }
    /// Recomputes the header checksum over the header length the packet declares.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(&self.buffer.as_ref()[..self.header_len()]);
        self.set_checksum(!sum);
    }
    /// The bytes after the header up to the total length.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = (self.header_len(), self.total_len() as usize);
        &mut self.buffer.as_mut()[start..end]
    }
}

impl Ipv4Repr {
    /// Emitted headers carry no options.
    pub const HEADER_LEN: usize = 20;

    /// Parses the header. Version other than 4 is [`Error::Unsupported`];
    /// options are skipped. Fragments parse too (`payload_len` is then the
    /// fragment's length): check [`Ipv4Packet::is_fragment`] and reassemble.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Ipv4Packet<&T>, verify_checksum: bool) -> Result<Ipv4Repr> {
        // Look at the version before the length rules, so an IPv6 packet is
        // reported as unsupported rather than malformed.
        match packet.buffer.as_ref().first() {
            None => return Err(Error::Truncated),
            Some(b) if b >> 4 != 4 => return Err(Error::Unsupported),
            Some(_) => {}
        }
        packet.check_len()?;
        if verify_checksum && !packet.verify_checksum() {
            return Err(Error::Checksum);
        }
        Ok(Ipv4Repr {
            src: packet.src_addr(),
            dst: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: packet.total_len() as usize - packet.header_len(),
            ttl: packet.ttl(),
            tos: packet.tos(),
            ident: packet.ident(),
            dont_fragment: packet.dont_frag(),
        })
    }

    pub const fn header_len(&self) -> usize {
        Self::HEADER_LEN
    }

    pub const fn buffer_len(&self) -> usize {
        Self::HEADER_LEN + self.payload_len
    }

    /// Writes a 20-byte header (no options, not a fragment) and its checksum.
    /// The buffer must be at least [`Self::HEADER_LEN`] long; `payload_len`
    /// must fit the 16-bit total length.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut Ipv4Packet<&mut T>) {
        debug_assert!(self.payload_len <= u16::MAX as usize - Self::HEADER_LEN, "IPv4 payload too long");
        // The header is built as 16-bit words in registers and summed there,
        // then stored once. Storing the fields one by one and summing the
        // bytes back made every wide load straddle several narrow stores,
        // which the store buffer cannot forward: the stall was a third of
        // this function's time on small packets.
        let flags_frag = if self.dont_fragment { FLAG_DONT_FRAGMENT } else { 0 };
        let [src_hi, src_lo] = split_words(self.src);
        let [dst_hi, dst_lo] = split_words(self.dst);
        let mut words: [u16; Self::HEADER_LEN / 2] = [
            (4 << 12) | ((Self::HEADER_LEN as u16 / 4) << 8) | self.tos as u16,
            (Self::HEADER_LEN + self.payload_len) as u16,
            self.ident,
            flags_frag,
            (self.ttl as u16) << 8 | u8::from(self.protocol) as u16,
            0,
            src_hi,
            src_lo,
            dst_hi,
            dst_lo,
        ];
        words[field::CHECKSUM.start / 2] = !checksum::words(&words);
        let mut header = [0u8; Self::HEADER_LEN];
        for (bytes, word) in header.chunks_exact_mut(2).zip(words) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
        packet.buffer.as_mut()[..Self::HEADER_LEN].copy_from_slice(&header);
    }
}

/// An address as its two big-endian 16-bit words.
fn split_words(addr: Ipv4Addr) -> [u16; 2] {
    let v = u32::from_be_bytes(addr.octets());
    [(v >> 16) as u16, v as u16]
}

#[cfg(test)]
mod tests {
    use super::*;

    // A UDP datagram header from 192.168.0.1 to 192.168.0.199, checksum 0xb861
    // (the worked example on Wikipedia's "IPv4 header checksum" page).
    const HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
        0x00, 0xc7,
    ];

    fn datagram() -> Vec<u8> {
        let mut bytes = HEADER.to_vec();
        bytes.extend((0..0x73 - 20).map(|i| i as u8));
        bytes
    }

    fn repr() -> Ipv4Repr {
        Ipv4Repr {
            src: Ipv4Addr::new(192, 168, 0, 1),
            dst: Ipv4Addr::new(192, 168, 0, 199),
            protocol: IpProtocol::Udp,
            payload_len: 0x73 - 20,
            ttl: 64,
            tos: 0,
            ident: 0,
            dont_fragment: true,
        }
    }

    #[test]
    fn parses_known_good_header() {
        let bytes = datagram();
        let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert!(packet.verify_checksum());
        assert!(!packet.is_fragment());
        assert_eq!(Ipv4Repr::parse(&packet, true), Ok(repr()));
        assert_eq!(packet.payload(), &bytes[20..]);
    }

    #[test]
    fn emit_reproduces_known_checksum() {
        let mut out = [0u8; 20];
        repr().emit(&mut Ipv4Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, HEADER);
    }

    #[test]
    fn ethernet_padding_is_cut_off() {
        let mut bytes = datagram();
        bytes.extend([0xee; 6]);
        let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.payload().len(), 0x73 - 20);
        assert_eq!(Ipv4Repr::parse(&packet, true).unwrap().payload_len, 0x73 - 20);
    }

    #[test]
    fn options_are_skipped() {
        // IHL 6 with a 4-byte NOP/EOL option word; total length grows by 4.
        let mut bytes = vec![0x46, 0x00, 0x00, 0x20];
        bytes.extend_from_slice(&HEADER[4..20]);
        bytes.extend_from_slice(&[0x01, 0x01, 0x01, 0x00]);
        bytes.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4]);
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
        packet.fill_checksum();
        let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        let repr = Ipv4Repr::parse(&packet, true).unwrap();
        assert_eq!(repr.payload_len, 8);
        assert_eq!(packet.payload(), &[0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4]);
    }

    #[test]
    fn fragments_are_reported() {
        let mut bytes = datagram();
        // MF set, offset 185 * 8 = 1480 bytes.
        bytes[6..8].copy_from_slice(&(0x2000u16 | 185).to_be_bytes());
        Ipv4Packet::new_unchecked(&mut bytes[..]).fill_checksum();
        let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert!(packet.more_frags());
        assert!(!packet.dont_frag());
        assert_eq!(packet.frag_offset(), 1480);
        assert!(packet.is_fragment());
        let repr = Ipv4Repr::parse(&packet, true).unwrap();
        assert_eq!(repr.payload_len, 0x73 - 20);
        assert!(!repr.dont_fragment);
    }

    #[test]
    fn bad_checksum_is_detected_only_when_asked() {
        let mut bytes = datagram();
        bytes[8] = 63; // TTL decremented without fixing the checksum
        let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&packet, true), Err(Error::Checksum));
        assert_eq!(Ipv4Repr::parse(&packet, false).unwrap().ttl, 63);
    }

    #[test]
    fn malformed_lengths() {
        let bytes = datagram();
        for len in 0..20 {
            assert_eq!(Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&bytes[..len]), false), Err(Error::Truncated));
        }
        // Total length beyond the buffer.
        assert_eq!(Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&bytes[..0x72]), false), Err(Error::Truncated));
        // IHL below 5.
        let mut b = bytes.clone();
        b[0] = 0x44;
        assert_eq!(Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&b[..]), false), Err(Error::Malformed));
        // IHL beyond the buffer.
        let mut b = HEADER;
        b[0] = 0x4f;
        assert_eq!(Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&b[..]), false), Err(Error::Truncated));
        // Total length shorter than the header.
        let mut b = bytes.clone();
        b[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&b[..]), false), Err(Error::Malformed));
    }

    #[test]
    fn other_versions_are_unsupported() {
        let mut b = datagram();
        b[0] = 0x60;
        assert_eq!(Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&b[..]), true), Err(Error::Unsupported));
    }
}
