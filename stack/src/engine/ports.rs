//! Ephemeral port choice for active opens, after Linux's
//! `__inet_hash_connect` (RFC 6056 §3.3.4, "double-hash" algorithm): the
//! search for a free four-tuple starts at a keyed hash of (local address,
//! remote address, remote port) plus a counter, so ports are not predictable
//! off-path, and consecutive connections to one peer walk forward rather than
//! retrying the same used ports.

use core::hash::Hasher;
use core::net::{Ipv4Addr, SocketAddrV4};

use siphasher::sip::SipHasher13;

use crate::session::demux::derive_sip_keys;

pub(crate) struct EphemeralPorts {
    first: u16,
    count: u32,
    keys: (u64, u64),
    /// Advanced by the number of ports tried, so the next search starts past them.
    perturbation: u32,
}

impl EphemeralPorts {
    /// `range` is inclusive; a reversed or zero-based range is repaired.
    pub fn new(secret: &[u8; 32], range: (u16, u16)) -> Self {
        let (lo, hi) = if range.0 <= range.1 { range } else { (range.1, range.0) };
        let lo = lo.max(1);
        let hi = hi.max(lo);
        EphemeralPorts {
            first: lo,
            count: u32::from(hi - lo) + 1,
            keys: derive_sip_keys(secret, b"sluice ephemeral ports"),
            perturbation: 0,
        }
    }

    /// The first port in search order for which `is_free` holds.
    pub fn pick(&mut self, local: Ipv4Addr, remote: SocketAddrV4, mut is_free: impl FnMut(u16) -> bool) -> Option<u16> {
        let mut hasher = SipHasher13::new_with_keys(self.keys.0, self.keys.1);
        hasher.write(&local.octets());
        hasher.write(&remote.ip().octets());
        hasher.write_u16(remote.port());
        // Reduced before stepping: `offset + i` must not wrap, since 2^32 is
        // not a multiple of `count` and a wrapped sum skips ports.
        let start = (hasher.finish() as u32).wrapping_add(self.perturbation) % self.count;
        for i in 0..self.count {
            // `start + i < 2 * count <= 2^17`: no overflow.
            let port = self.first + ((start + i) % self.count) as u16;
            if is_free(port) {
                self.perturbation = self.perturbation.wrapping_add(i + 1);
                return Some(port);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REMOTE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80);
    const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

    #[test]
    fn picks_free_ports_within_range_without_repeating() {
        let mut ports = EphemeralPorts::new(&[3; 32], (40000, 40009));
        let mut used = std::collections::HashSet::new();
        for _ in 0..10 {
            let p = ports.pick(LOCAL, REMOTE, |p| !used.contains(&p)).expect("a port is free");
            assert!((40000..=40009).contains(&p));
            assert!(used.insert(p));
        }
        assert_eq!(ports.pick(LOCAL, REMOTE, |p| !used.contains(&p)), None, "range exhausted");
    }

    #[test]
    fn reversed_range_is_repaired() {
        let mut ports = EphemeralPorts::new(&[3; 32], (5, 0));
        let p = ports.pick(LOCAL, REMOTE, |_| true).unwrap();
        assert!((1..=5).contains(&p));
    }

    /// When `hash + perturbation + i` wraps past u32::MAX, `% count` is not
    /// contiguous (2^32 is not a multiple of `count`): some ports are
    /// visited twice and others never, so a free port is missed.
    #[test]
    fn search_visits_every_port_even_when_the_offset_wraps() {
        let local = Ipv4Addr::new(10, 0, 0, 1);
        let remote = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80);
        let mut ports = EphemeralPorts::new(&[3; 32], (40000, 40009));
        let mut hasher = SipHasher13::new_with_keys(ports.keys.0, ports.keys.1);
        hasher.write(&local.octets());
        hasher.write(&remote.ip().octets());
        hasher.write_u16(remote.port());
        let hash = hasher.finish() as u32;
        // Make the offset u32::MAX - 2, as the perturbation counter eventually does.
        ports.perturbation = (u32::MAX - 2).wrapping_sub(hash);
        assert_eq!(ports.pick(local, remote, |p| p == 40008), Some(40008));
    }
}
