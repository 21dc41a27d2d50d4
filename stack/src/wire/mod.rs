//! Wire formats: zero-copy views over byte slices (`XxxPacket<T: AsRef<[u8]>>`)
//! and high-level `XxxRepr` structs with `parse` and `emit`.
//!
//! Parsing never panics on any input: malformed frames give an [`Error`] and the
//! caller drops and counts them. Every checksum is verified on input and filled
//! on output.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod tcp;
mod tcp_options;
pub mod udp;
mod view;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use checksum::ipv4_tcp_checksum_ok;
pub use ethernet::{EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr};
pub use icmp::{IcmpPacket, IcmpRepr};
pub use ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
pub use tcp::{SackBlocks, TcpFlags, TcpOptions, TcpPacket, TcpRepr};
pub use tcp_options::{MAX_OPTIONS_LEN as TCP_MAX_OPTIONS_LEN, MAX_WINDOW_SCALE as TCP_MAX_WINDOW_SCALE};
pub use udp::{UdpPacket, UdpRepr};

pub use core::net::Ipv4Addr;

/// Why a frame could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Shorter than its headers or its own length fields say.
    Truncated,
    /// A field holds a value the format forbids.
    Malformed,
    /// The checksum does not match.
    Checksum,
    /// Well-formed but not something this stack handles (e.g. IP version 6).
    Unsupported,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated",
            Error::Malformed => "malformed",
            Error::Checksum => "bad checksum",
            Error::Unsupported => "unsupported",
        })
    }
}

pub type Result<T> = core::result::Result<T, Error>;
