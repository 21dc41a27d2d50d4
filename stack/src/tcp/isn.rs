//! Initial sequence numbers (RFC 6528 §3): ISN = M + F(local, remote, secret),
//! with M a 4-microsecond clock taken from the caller's `now`.

use core::net::SocketAddrV4;

use siphasher::sip::SipHasher24;

use crate::session::demux::derive_sip_keys;
use crate::tcp::seq::SeqNum;
use crate::time::Instant;

/// The four-tuple as hashed input: local address and port, then remote.
pub(crate) fn tuple_bytes(local: SocketAddrV4, remote: SocketAddrV4) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[0..4].copy_from_slice(&local.ip().octets());
    b[4..6].copy_from_slice(&local.port().to_be_bytes());
    b[6..10].copy_from_slice(&remote.ip().octets());
    b[10..12].copy_from_slice(&remote.port().to_be_bytes());
    b
}

/// Chooses initial sequence numbers and timestamp offsets for new connections.
#[derive(Clone, Debug)]
pub struct IsnGenerator {
    isn_hash: SipHasher24,
    ts_hash: SipHasher24,
}

impl IsnGenerator {
    pub fn new(secret: &[u8; 32]) -> Self {
        let (i0, i1) = derive_sip_keys(secret, b"sluice isn");
        let (t0, t1) = derive_sip_keys(secret, b"sluice ts offset");
        IsnGenerator {
            isn_hash: SipHasher24::new_with_keys(i0, i1),
            ts_hash: SipHasher24::new_with_keys(t0, t1),
        }
    }

    /// RFC 6528 §3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey).
    /// M ticks every 4 µs, so successive incarnations of one tuple get
    /// increasing ISNs (protecting old duplicates, RFC 9293 §3.4.1), while F
    /// hides the clock from anyone who does not share the tuple.
    pub fn isn(&self, now: Instant, local: SocketAddrV4, remote: SocketAddrV4) -> SeqNum {
        let m = (now.total_micros() / 4) as u32;
        let f = self.isn_hash.hash(&tuple_bytes(local, remote)) as u32;
        SeqNum(m.wrapping_add(f))
    }

    /// The offset added to our timestamp clock for a connection (RFC 7323
    /// §5.4 and §7.1: TSval must not expose the host's uptime clock).
    ///
    /// Like Linux's `secure_tcp_ts_off`, the offset depends on the two
    /// addresses but not the ports: every connection to one peer then shares
    /// one monotonic TSval clock, which RFC 6191 relies on to accept a new SYN
    /// for a tuple still in TIME-WAIT, while different peers see unrelated clocks.
    pub fn ts_offset(&self, local: SocketAddrV4, remote: SocketAddrV4) -> u32 {
        let mut b = [0u8; 8];
        b[0..4].copy_from_slice(&local.ip().octets());
        b[4..8].copy_from_slice(&remote.ip().octets());
        self.ts_hash.hash(&b) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    const SECRET: [u8; 32] = [7; 32];

    fn addr(last: u8, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, last), port)
    }

    #[test]
    fn equal_inputs_give_equal_isn() {
        let g = IsnGenerator::new(&SECRET);
        let now = Instant::from_secs(1000);
        assert_eq!(g.isn(now, addr(1, 80), addr(2, 5000)), IsnGenerator::new(&SECRET).isn(now, addr(1, 80), addr(2, 5000)));
    }

    #[test]
    fn isn_differs_across_tuples_and_secrets() {
        let g = IsnGenerator::new(&SECRET);
        let now = Instant::from_secs(1000);
        let base = g.isn(now, addr(1, 80), addr(2, 5000));
        assert_ne!(base, g.isn(now, addr(1, 80), addr(2, 5001)));
        assert_ne!(base, g.isn(now, addr(1, 81), addr(2, 5000)));
        assert_ne!(base, g.isn(now, addr(1, 80), addr(3, 5000)));
        assert_ne!(base, g.isn(now, addr(2, 5000), addr(1, 80)), "direction matters");
        assert_ne!(base, IsnGenerator::new(&[8; 32]).isn(now, addr(1, 80), addr(2, 5000)));
    }

    #[test]
    fn isn_advances_one_per_four_microseconds() {
        let g = IsnGenerator::new(&SECRET);
        let (l, r) = (addr(1, 80), addr(2, 5000));
        let t0 = Instant::from_micros(4_000_000);
        let base = g.isn(t0, l, r);
        assert_eq!(g.isn(Instant::from_micros(4_000_003), l, r), base);
        assert_eq!(g.isn(Instant::from_micros(4_000_004), l, r), base + 1);
        assert_eq!(g.isn(Instant::from_micros(5_000_000), l, r), base + 250_000);
        // The 32-bit space wraps after 2^32 * 4 µs (about 4.8 hours).
        assert_eq!(g.isn(Instant::from_micros(4_000_000 + (1u64 << 34)), l, r), base);
    }

    #[test]
    fn ts_offset_is_per_address_pair() {
        let g = IsnGenerator::new(&SECRET);
        let off = g.ts_offset(addr(1, 80), addr(2, 5000));
        assert_eq!(off, g.ts_offset(addr(1, 80), addr(2, 6000)), "ports do not matter");
        assert_ne!(off, g.ts_offset(addr(1, 80), addr(3, 5000)));
        assert_ne!(off, g.ts_offset(addr(2, 80), addr(1, 5000)));
        // Keyed differently from the ISN: the two values are unrelated.
        assert_ne!(off, g.isn(Instant::ZERO, addr(1, 80), addr(2, 5000)).0);
    }
}
