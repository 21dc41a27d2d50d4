//! TCP header and options (RFC 9293 §3.1, RFC 7323, RFC 2018).

use super::view::{be16, be32, packet_view};
use super::{checksum, Error, Ipv4Addr, Result};
use crate::tcp::seq::SeqNum;

/// TCP control bits.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;

    pub const fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    pub const fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    pub const fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    pub const fn psh(self) -> bool {
        self.0 & Self::PSH != 0
    }
    pub const fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
    pub const fn urg(self) -> bool {
        self.0 & Self::URG != 0
    }
    pub const fn contains(self, bits: u8) -> bool {
        self.0 & bits == bits
    }
    pub const fn with(self, bits: u8) -> Self {
        TcpFlags(self.0 | bits)
    }
}

impl core::fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let names = [
            (Self::SYN, "S"),
            (Self::FIN, "F"),
            (Self::RST, "R"),
            (Self::PSH, "P"),
            (Self::ACK, "."),
            (Self::URG, "U"),
            (Self::ECE, "E"),
            (Self::CWR, "W"),
        ];
        for (bit, n) in names {
            if self.0 & bit != 0 {
                f.write_str(n)?;
            }
        }
        Ok(())
    }
}

/// Up to four SACK blocks `[left, right)` (RFC 2018 §3); with timestamps only three fit.
#[derive(Clone, Copy, Default, Debug)]
pub struct SackBlocks {
    blocks: [(SeqNum, SeqNum); 4],
    /// A full word rather than a byte: the struct is built and then copied
    /// by value on every segment sent, and a 4-byte load of a field written
    /// with a 1-byte store cannot be forwarded from the store buffer.
    len: u32,
}

impl SackBlocks {
    pub const MAX: usize = 4;
    /// Appends a block; returns false (and ignores it) when full.
    pub fn push(&mut self, left: SeqNum, right: SeqNum) -> bool {
        if (self.len as usize) < Self::MAX {
            self.blocks[self.len as usize] = (left, right);
            self.len += 1;
            true
        } else {
            false
        }
    }
    pub fn as_slice(&self) -> &[(SeqNum, SeqNum)] {
        &self.blocks[..self.len as usize]
    }
    pub fn len(&self) -> usize {
        self.len as usize
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn clear(&mut self) {
        self.len = 0
    }
    pub fn truncate(&mut self, n: usize) {
        // Clamp before narrowing: `n as u32` alone could wrap a huge count to 0.
        self.len = self.len.min(n.min(Self::MAX) as u32)
    }
}

// Equality is over the blocks in use: slots past `len` hold stale values
// after `truncate` or `clear`.
impl PartialEq for SackBlocks {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}
impl Eq for SackBlocks {}

/// The TCP options this stack understands. Unknown options are skipped on parse.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct TcpOptions {
    /// Maximum segment size (SYN only).
    pub mss: Option<u16>,
    /// Window scale shift (SYN only); values above 14 are clamped to 14 on parse (RFC 7323 §2.3).
    pub window_scale: Option<u8>,
    /// SACK-permitted (SYN only).
    pub sack_permitted: bool,
    /// SACK blocks.
    pub sack: SackBlocks,
    /// Timestamps `(TSval, TSecr)`.
    pub timestamps: Option<(u32, u32)>,
}

/// A parsed TCP header. The payload is not part of the repr: `payload_len`
/// says how long it is, and the caller moves the bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TcpRepr {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: SeqNum,
    /// Acknowledgment number; meaningful only when `flags.ack()`.
    pub ack: SeqNum,
    pub flags: TcpFlags,
    /// Raw (unscaled) window field.
    pub window: u16,
    pub urgent: u16,
    pub options: TcpOptions,
    pub payload_len: usize,
}

impl TcpRepr {
    /// Sequence space the segment occupies: payload plus one for each of SYN and FIN.
    pub fn segment_len(&self) -> usize {
        self.payload_len + self.flags.syn() as usize + self.flags.fin() as usize
    }
    /// The acknowledgment number if the ACK bit is set.
    pub fn ack_number(&self) -> Option<SeqNum> {
        if self.flags.ack() {
            Some(self.ack)
        } else {
            None
        }
    }
}

const PROTOCOL: u8 = 6;

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ: Range<usize> = 4..8;
    pub const ACK: Range<usize> = 8..12;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
    pub const OPTIONS: usize = 20;
}

packet_view! {
    /// A zero-copy view of a TCP segment (the IPv4 payload: header, options, data).
    TcpPacket
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// The fixed header, without options.
    pub const HEADER_LEN: usize = field::OPTIONS;

    /// The fixed header fits, and the data offset is at least 5 words
    /// (RFC 9293 §3.1) and within the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < Self::HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = self.header_len();
        if header_len < Self::HEADER_LEN {
            Err(Error::Malformed)
        } else if header_len > len {
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
    pub fn seq_number(&self) -> SeqNum {
        SeqNum(be32(&self.buffer.as_ref()[field::SEQ]))
    }
    pub fn ack_number(&self) -> SeqNum {
        SeqNum(be32(&self.buffer.as_ref()[field::ACK]))
    }
    /// Header length in bytes (data offset × 4), options included.
    pub fn header_len(&self) -> usize {
        (self.buffer.as_ref()[field::DATA_OFFSET] >> 4) as usize * 4
    }
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buffer.as_ref()[field::FLAGS])
    }
    pub fn window_len(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::WINDOW])
    }
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }
    pub fn urgent_at(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::URGENT])
    }
    /// The raw option area.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS..self.header_len()]
    }
    /// Everything after the data offset.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
    /// Whether the whole segment sums to zero with the IPv4 pseudo-header.
    pub fn verify_checksum(&self, src: &Ipv4Addr, dst: &Ipv4Addr) -> bool {
        checksum::upper_layer_ok(src, dst, PROTOCOL, self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    pub fn set_src_port(&mut self, v: u16) {
        self.buffer.as_mut()[field::SRC_PORT].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_dst_port(&mut self, v: u16) {
        self.buffer.as_mut()[field::DST_PORT].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_seq_number(&mut self, v: SeqNum) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&v.0.to_be_bytes());
    }
    pub fn set_ack_number(&mut self, v: SeqNum) {
        self.buffer.as_mut()[field::ACK].copy_from_slice(&v.0.to_be_bytes());
    }
    /// Sets the data offset (`len` a multiple of 4, at most 60) and clears
    /// the reserved bits.
    pub fn set_header_len(&mut self, len: usize) {
        self.buffer.as_mut()[field::DATA_OFFSET] = ((len / 4) as u8) << 4;
    }
    pub fn set_flags(&mut self, flags: TcpFlags) {
        self.buffer.as_mut()[field::FLAGS] = flags.0;
    }
    pub fn set_window_len(&mut self, v: u16) {
        self.buffer.as_mut()[field::WINDOW].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_urgent_at(&mut self, v: u16) {
        self.buffer.as_mut()[field::URGENT].copy_from_slice(&v.to_be_bytes());
    }
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[field::OPTIONS..end]
    }
    /// Everything after the data offset (set it first with [`Self::set_header_len`]).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }
    /// Computes the checksum over the pseudo-header and the whole buffer.
    pub fn fill_checksum(&mut self, src: &Ipv4Addr, dst: &Ipv4Addr) {
        self.set_checksum(0);
        let value = checksum::upper_layer_value(src, dst, PROTOCOL, self.buffer.as_ref());
        self.set_checksum(value);
    }
}

impl TcpRepr {
    /// Parses a segment (the whole IPv4 payload), verifying the checksum over
    /// the pseudo-header of `src`/`dst` when asked (RFC 9293 §3.1). Flag
    /// combinations are not judged here: that is the connection's policy.
    #[inline]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &TcpPacket<&T>,
        src: &Ipv4Addr,
        dst: &Ipv4Addr,
        verify_checksum: bool,
    ) -> Result<TcpRepr> {
        packet.check_len()?;
        if verify_checksum && !packet.verify_checksum(src, dst) {
            return Err(Error::Checksum);
        }
        Ok(TcpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq: packet.seq_number(),
            ack: packet.ack_number(),
            flags: packet.flags(),
            window: packet.window_len(),
            urgent: packet.urgent_at(),
            options: TcpOptions::parse(packet.options()),
            payload_len: packet.payload().len(),
        })
    }

    /// Header length [`Self::emit`] writes: 20 plus the options (which are
    /// emitted in 32-bit units, so no further padding is needed).
    pub fn header_len(&self) -> usize {
        TcpPacket::<&[u8]>::HEADER_LEN + self.options.emitted_len()
    }

    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload_len
    }

    /// Writes the header and options and fills the checksum.
    ///
    /// The checksum covers the header and the `payload_len` bytes **already in
    /// the buffer after the header**, so put the payload there first: copy it
    /// to `buffer[repr.header_len()..]` (or call
    /// `packet.set_header_len(repr.header_len())` and use `payload_mut()`),
    /// then call `emit`. The buffer must be at least [`Self::buffer_len`]
    /// long; bytes beyond that are not part of the segment.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut TcpPacket<&mut T>,
        src: &Ipv4Addr,
        dst: &Ipv4Addr,
    ) {
        let header_len = self.header_len();
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_seq_number(self.seq);
        packet.set_ack_number(self.ack);
        packet.set_header_len(header_len);
        packet.set_flags(self.flags);
        packet.set_window_len(self.window);
        packet.set_urgent_at(self.urgent);
        let (_, options_sum) = self.options.emit_summed(packet.options_mut());
        // The header and options are summed from the values just written, not
        // read back: wide loads over many just-stored narrow fields cannot be
        // forwarded from the store buffer and stall. The payload was copied in
        // whole before this call, so reading it back is cheap.
        let offset_and_flags = ((header_len as u32 / 4) << 12) | self.flags.0 as u32;
        let header_sum = self.src_port as u64
            + self.dst_port as u64
            + (self.seq.0 >> 16) as u64
            + (self.seq.0 & 0xffff) as u64
            + (self.ack.0 >> 16) as u64
            + (self.ack.0 & 0xffff) as u64
            + offset_and_flags as u64
            + self.window as u64
            + self.urgent as u64
            + options_sum as u64;
        let segment_len = header_len + self.payload_len;
        let payload = &packet.buffer.as_ref()[header_len..segment_len];
        let sum = checksum::combine(&[
            checksum::pseudo_header_v4(src, dst, PROTOCOL, segment_len as u32),
            checksum::fold(header_sum),
            checksum::data(payload),
        ]);
        packet.set_checksum(!sum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    // A Linux SYN 10.0.0.1:54321 -> 10.0.0.2:80: MSS 1460, SACK-permitted,
    // timestamps (TSval 0x0a1b2c3d), NOP, window scale 7, window 64240.
    // Checksum 0xc586 computed independently over the pseudo-header.
    const SYN: [u8; 40] = [
        0xd4, 0x31, 0x00, 0x50, 0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa, 0xf0, 0xc5, 0x86,
        0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x0a, 0x1b, 0x2c, 0x3d, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x03, 0x03, 0x07,
    ];

    fn syn_repr() -> TcpRepr {
        TcpRepr {
            src_port: 54321,
            dst_port: 80,
            seq: SeqNum(0x12345678),
            ack: SeqNum(0),
            flags: TcpFlags(TcpFlags::SYN),
            window: 64240,
            urgent: 0,
            options: TcpOptions {
                mss: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                sack: SackBlocks::default(),
                timestamps: Some((0x0a1b2c3d, 0)),
            },
            payload_len: 0,
        }
    }

    // The server's PSH|ACK with "hello": NOP NOP TS, NOP NOP SACK(2 blocks).
    // Checksum 0xae73 computed independently.
    fn data_segment() -> Vec<u8> {
        let mut b = vec![
            0x00, 0x50, 0xd4, 0x31, 0x9a, 0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56, 0x79, 0xd0, 0x18, 0x01, 0xf6, 0xae, 0x73,
            0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0x01, 0x02, 0x03, 0x04, 0x0a, 0x1b, 0x2c, 0x3d, 0x01, 0x01, 0x05, 0x12,
        ];
        for v in [1000u32, 2000, 3000, 4000] {
            b.extend(v.to_be_bytes());
        }
        b.extend(b"hello");
        b
    }

    fn data_repr() -> TcpRepr {
        let mut sack = SackBlocks::default();
        sack.push(SeqNum(1000), SeqNum(2000));
        sack.push(SeqNum(3000), SeqNum(4000));
        TcpRepr {
            src_port: 80,
            dst_port: 54321,
            seq: SeqNum(0x9abcdef0),
            ack: SeqNum(0x12345679),
            flags: TcpFlags(TcpFlags::PSH | TcpFlags::ACK),
            window: 502,
            urgent: 0,
            options: TcpOptions { sack, timestamps: Some((0x01020304, 0x0a1b2c3d)), ..Default::default() },
            payload_len: 5,
        }
    }

    #[test]
    fn parses_linux_syn() {
        let packet = TcpPacket::new_checked(&SYN[..]).unwrap();
        assert!(packet.verify_checksum(&CLIENT, &SERVER));
        assert_eq!(TcpRepr::parse(&packet, &CLIENT, &SERVER, true), Ok(syn_repr()));
    }

    #[test]
    fn emits_linux_syn_byte_for_byte() {
        let repr = syn_repr();
        assert_eq!(repr.header_len(), 40);
        let mut out = [0xffu8; 40];
        repr.emit(&mut TcpPacket::new_unchecked(&mut out[..]), &CLIENT, &SERVER);
        assert_eq!(out, SYN);
    }

    #[test]
    fn data_segment_round_trips() {
        let bytes = data_segment();
        let packet = TcpPacket::new_checked(&bytes[..]).unwrap();
        let repr = TcpRepr::parse(&packet, &SERVER, &CLIENT, true).unwrap();
        assert_eq!(repr, data_repr());
        assert_eq!(packet.payload(), b"hello");

        // Payload first, then emit; spare room past the segment is ignored.
        let mut out = vec![0u8; repr.buffer_len() + 7];
        out[repr.header_len()..repr.buffer_len()].copy_from_slice(b"hello");
        repr.emit(&mut TcpPacket::new_unchecked(&mut out[..]), &SERVER, &CLIENT);
        assert_eq!(&out[..repr.buffer_len()], &bytes[..]);
    }

    #[test]
    fn emitted_checksum_matches_summing_the_bytes() {
        // `emit` sums header and options from the values; the buffer-reading
        // `fill_checksum` is the reference, over every option layout.
        let mut sack = SackBlocks::default();
        sack.push(SeqNum(0xfffe_0001), SeqNum(0x0000_ffff));
        sack.push(SeqNum(7), SeqNum(0x8000_0000));
        sack.push(SeqNum(u32::MAX), SeqNum(0));
        let layouts = [
            TcpOptions::default(),
            syn_repr().options,
            data_repr().options,
            TcpOptions { sack, ..Default::default() },
            TcpOptions { sack_permitted: true, ..Default::default() },
            TcpOptions { window_scale: Some(14), mss: Some(536), ..Default::default() },
        ];
        for (i, options) in layouts.into_iter().enumerate() {
            for payload_len in [0usize, 1, 2, 63, 64, 1448] {
                let repr = TcpRepr {
                    src_port: 0xffff,
                    dst_port: 1 + i as u16,
                    seq: SeqNum(0xffff_fff0 ^ payload_len as u32),
                    ack: SeqNum(0xfedc_ba98),
                    flags: TcpFlags(TcpFlags::ACK | TcpFlags::PSH | TcpFlags::CWR),
                    window: 0xffff,
                    urgent: 0x8001,
                    options,
                    payload_len,
                };
                let mut out = vec![0u8; repr.buffer_len()];
                for (k, b) in out[repr.header_len()..].iter_mut().enumerate() {
                    *b = (k as u8).wrapping_mul(151) ^ 0xa5;
                }
                repr.emit(&mut TcpPacket::new_unchecked(&mut out[..]), &CLIENT, &SERVER);
                let emitted = TcpPacket::new_unchecked(&out[..]).checksum();
                let mut reference = out.clone();
                TcpPacket::new_unchecked(&mut reference[..]).fill_checksum(&CLIENT, &SERVER);
                assert_eq!(emitted, TcpPacket::new_unchecked(&reference[..]).checksum(), "layout {i}, payload {payload_len}");
                assert!(TcpPacket::new_unchecked(&out[..]).verify_checksum(&CLIENT, &SERVER));
            }
        }
    }

    #[test]
    fn bad_checksum() {
        let mut bytes = data_segment();
        *bytes.last_mut().unwrap() ^= 0x20;
        let packet = TcpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(TcpRepr::parse(&packet, &SERVER, &CLIENT, true), Err(Error::Checksum));
        assert!(TcpRepr::parse(&packet, &SERVER, &CLIENT, false).is_ok());
        // Swapped addresses still sum the same (the pseudo-header is symmetric)...
        assert!(TcpRepr::parse(&TcpPacket::new_unchecked(&SYN[..]), &SERVER, &CLIENT, true).is_ok());
        // ...but a different address does not.
        let other = Ipv4Addr::new(10, 0, 0, 3);
        assert_eq!(TcpRepr::parse(&TcpPacket::new_unchecked(&SYN[..]), &other, &SERVER, true), Err(Error::Checksum));
    }

    #[test]
    fn bad_lengths() {
        for len in 0..20 {
            assert_eq!(
                TcpRepr::parse(&TcpPacket::new_unchecked(&SYN[..len]), &CLIENT, &SERVER, false),
                Err(Error::Truncated)
            );
        }
        // Data offset 4 words.
        let mut b = SYN;
        b[12] = 0x40;
        assert_eq!(TcpPacket::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        // Data offset beyond the buffer.
        assert_eq!(TcpPacket::new_checked(&SYN[..39]).unwrap_err(), Error::Truncated);
        let mut b = SYN;
        b[12] = 0xf0;
        assert_eq!(TcpRepr::parse(&TcpPacket::new_unchecked(&b[..]), &CLIENT, &SERVER, false), Err(Error::Truncated));
    }

    /// Linux processes a segment whose options are malformed (it stops
    /// parsing them), so the segment parses, without the broken option.
    #[test]
    fn bad_option_length_keeps_the_segment() {
        let mut b = SYN;
        b[21] = 0; // MSS length zero
        let mut packet = TcpPacket::new_unchecked(&mut b[..]);
        packet.fill_checksum(&CLIENT, &SERVER);
        let packet = TcpPacket::new_checked(&b[..]).unwrap();
        let repr = TcpRepr::parse(&packet, &CLIENT, &SERVER, true).unwrap();
        assert_eq!(repr.options, TcpOptions::default());
        assert!(repr.flags.syn());
    }

    #[test]
    fn sack_truncate_to_a_large_count_keeps_everything() {
        let mut a = SackBlocks::default();
        a.push(SeqNum(1), SeqNum(2));
        a.truncate(256);
        assert_eq!(a.len(), 1);
        a.truncate(0);
        assert!(a.is_empty());
    }

    #[test]
    fn sack_blocks_compare_by_contents() {
        let mut a = SackBlocks::default();
        a.push(SeqNum(1), SeqNum(2));
        a.push(SeqNum(3), SeqNum(4));
        a.truncate(1);
        let mut b = SackBlocks::default();
        b.push(SeqNum(1), SeqNum(2));
        assert_eq!(a, b);
        b.push(SeqNum(5), SeqNum(6));
        assert_ne!(a, b);
    }
}
