//! Ethernet II framing.

/// A MAC address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);
    pub const fn is_broadcast(&self) -> bool {
        let b = self.0;
        b[0] == 0xff && b[1] == 0xff && b[2] == 0xff && b[3] == 0xff && b[4] == 0xff && b[5] == 0xff
    }
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }
}

impl core::fmt::Debug for EthernetAddress {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}
impl core::fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self, f)
    }
}

/// EtherType.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EthernetProtocol {
    Ipv4,
    Arp,
    Unknown(u16),
}

impl From<u16> for EthernetProtocol {
    fn from(v: u16) -> Self {
        match v {
            0x0800 => EthernetProtocol::Ipv4,
            0x0806 => EthernetProtocol::Arp,
            other => EthernetProtocol::Unknown(other),
        }
    }
}
impl From<EthernetProtocol> for u16 {
    fn from(p: EthernetProtocol) -> u16 {
        match p {
            EthernetProtocol::Ipv4 => 0x0800,
            EthernetProtocol::Arp => 0x0806,
            EthernetProtocol::Unknown(v) => v,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EthernetRepr {
    pub src: EthernetAddress,
    pub dst: EthernetAddress,
    pub ethertype: EthernetProtocol,
}
