//! Routing for a single interface: the destination itself when it is on the
//! attached subnet, else the default gateway (RFC 1122 §3.3.1.1).

use crate::error::{Error, Result};
use crate::wire::Ipv4Addr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    local: Ipv4Addr,
    mask: u32,
    gateway: Option<Ipv4Addr>,
}

impl Route {
    /// `prefix_len` above 32 is treated as 32.
    pub fn new(local: Ipv4Addr, prefix_len: u8, gateway: Option<Ipv4Addr>) -> Self {
        let prefix_len = prefix_len.min(32) as u32;
        let mask = if prefix_len == 0 { 0 } else { u32::MAX << (32 - prefix_len) };
        Route { local, mask, gateway }
    }

    pub fn local(&self) -> Ipv4Addr {
        self.local
    }

    /// Whether `addr` is on the attached subnet.
    pub fn is_on_link(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & self.mask == u32::from(self.local) & self.mask
    }

    /// The directed broadcast address of the attached subnet.
    pub fn subnet_broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.local) | !self.mask)
    }

    /// The neighbour a packet to `dst` is handed to. Our own address is
    /// refused: loopback is not served by this interface.
    pub fn next_hop(&self, dst: Ipv4Addr) -> Result<Ipv4Addr> {
        if dst == self.local || dst.is_unspecified() || dst.is_broadcast() || dst.is_multicast() {
            return Err(Error::Unreachable);
        }
        if self.is_on_link(dst) {
            return Ok(dst);
        }
        self.gateway.ok_or(Error::Unreachable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_link_goes_direct_and_off_link_via_gateway() {
        let r = Route::new(Ipv4Addr::new(10, 0, 0, 1), 24, Some(Ipv4Addr::new(10, 0, 0, 254)));
        assert_eq!(r.next_hop(Ipv4Addr::new(10, 0, 0, 7)), Ok(Ipv4Addr::new(10, 0, 0, 7)));
        assert_eq!(r.next_hop(Ipv4Addr::new(8, 8, 8, 8)), Ok(Ipv4Addr::new(10, 0, 0, 254)));
        assert_eq!(r.subnet_broadcast(), Ipv4Addr::new(10, 0, 0, 255));
    }

    #[test]
    fn no_gateway_means_unreachable() {
        let r = Route::new(Ipv4Addr::new(192, 168, 1, 2), 16, None);
        assert_eq!(r.next_hop(Ipv4Addr::new(192, 168, 200, 1)), Ok(Ipv4Addr::new(192, 168, 200, 1)));
        assert_eq!(r.next_hop(Ipv4Addr::new(192, 169, 0, 1)), Err(Error::Unreachable));
        assert_eq!(r.next_hop(Ipv4Addr::new(192, 168, 1, 2)), Err(Error::Unreachable), "own address");
    }

    #[test]
    fn prefix_extremes() {
        let all = Route::new(Ipv4Addr::new(1, 2, 3, 4), 0, None);
        assert!(all.is_on_link(Ipv4Addr::new(200, 1, 1, 1)));
        let host = Route::new(Ipv4Addr::new(1, 2, 3, 4), 40, Some(Ipv4Addr::new(1, 2, 3, 5)));
        assert!(!host.is_on_link(Ipv4Addr::new(1, 2, 3, 5)));
        assert_eq!(host.next_hop(Ipv4Addr::new(1, 2, 3, 9)), Ok(Ipv4Addr::new(1, 2, 3, 5)));
    }
}
