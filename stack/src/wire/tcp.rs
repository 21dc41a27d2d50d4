//! TCP header and options (RFC 9293 §3.1, RFC 7323, RFC 2018).

use super::{Error, Ipv4Addr, Result};
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

    pub const fn fin(self) -> bool { self.0 & Self::FIN != 0 }
    pub const fn syn(self) -> bool { self.0 & Self::SYN != 0 }
    pub const fn rst(self) -> bool { self.0 & Self::RST != 0 }
    pub const fn psh(self) -> bool { self.0 & Self::PSH != 0 }
    pub const fn ack(self) -> bool { self.0 & Self::ACK != 0 }
    pub const fn urg(self) -> bool { self.0 & Self::URG != 0 }
    pub const fn contains(self, bits: u8) -> bool { self.0 & bits == bits }
    pub const fn with(self, bits: u8) -> Self { TcpFlags(self.0 | bits) }
}

impl core::fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let names = [(Self::SYN, "S"), (Self::FIN, "F"), (Self::RST, "R"), (Self::PSH, "P"),
                     (Self::ACK, "."), (Self::URG, "U"), (Self::ECE, "E"), (Self::CWR, "W")];
        for (bit, n) in names {
            if self.0 & bit != 0 { f.write_str(n)?; }
        }
        Ok(())
    }
}

/// Up to four SACK blocks `[left, right)` (RFC 2018 §3); with timestamps only three fit.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct SackBlocks {
    blocks: [(SeqNum, SeqNum); 4],
    len: u8,
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
    pub fn len(&self) -> usize { self.len as usize }
    pub fn is_empty(&self) -> bool { self.len == 0 }
    pub fn clear(&mut self) { self.len = 0 }
    pub fn truncate(&mut self, n: usize) { self.len = self.len.min(n as u8) }
}

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
        if self.flags.ack() { Some(self.ack) } else { None }
    }
}
