//! O(1) demultiplexing of incoming segments: an exact four-tuple table for
//! connections and a (address, port) table for listeners with a wildcard
//! fallback. Hashing is SipHash-1-3 keyed with the stack's secret, so a remote
//! peer cannot choose tuples that collide.

use core::hash::{BuildHasher, Hash, Hasher};
use core::net::{Ipv4Addr, SocketAddrV4};
use std::collections::hash_map::{Entry, HashMap};

use siphasher::sip::{SipHasher13, SipHasher24};

/// A connection's identity as seen from this host.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FourTuple {
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
}

/// Hashed as two fixed-size words rather than field by field: the derived
/// impl feeds SipHash six small writes (a length prefix and four bytes per
/// address, then each port), and this lookup runs for every segment.
impl Hash for FourTuple {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let addrs = (u64::from(self.local.ip().to_bits()) << 32) | u64::from(self.remote.ip().to_bits());
        let ports = (u32::from(self.local.port()) << 16) | u32::from(self.remote.port());
        state.write_u64(addrs);
        state.write_u32(ports);
    }
}

/// Derives a 128-bit SipHash key for one purpose from the stack's 256-bit
/// secret. Each user (demux tables, ISNs, timestamp offsets, SYN cookies)
/// passes its own `domain` label, so learning one hash output tells an
/// attacker nothing about the others.
pub fn derive_sip_keys(secret: &[u8; 32], domain: &[u8]) -> (u64, u64) {
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&secret[i * 8..i * 8 + 8]);
        u64::from_le_bytes(b)
    };
    let prf = |k0: u64, k1: u64, which: u8| {
        let mut h = SipHasher24::new_with_keys(k0, k1);
        h.write(domain);
        h.write_u8(which);
        h.finish()
    };
    // Two chained PRF layers so every secret byte influences both halves.
    let (a0, a1) = (prf(word(0), word(1), 0), prf(word(0), word(1), 1));
    (prf(word(2) ^ a0, word(3) ^ a1, 2), prf(word(2) ^ a0, word(3) ^ a1, 3))
}

/// A `BuildHasher` yielding SipHash-1-3 keyed from the stack's secret: hash
/// tables indexed by remote-chosen values (tuples, ports) cannot be flooded
/// with collisions by a peer that does not know the secret.
#[derive(Clone, Debug)]
pub struct KeyedHasher {
    k0: u64,
    k1: u64,
}

impl KeyedHasher {
    pub fn new(secret: &[u8; 32]) -> Self {
        let (k0, k1) = derive_sip_keys(secret, b"sluice demux");
        KeyedHasher { k0, k1 }
    }
}

impl BuildHasher for KeyedHasher {
    type Hasher = SipHasher13;
    fn build_hasher(&self) -> SipHasher13 {
        SipHasher13::new_with_keys(self.k0, self.k1)
    }
}

/// Exact four-tuple → connection table.
pub struct ConnTable<V: Copy> {
    map: HashMap<FourTuple, V, KeyedHasher>,
}

impl<V: Copy> ConnTable<V> {
    pub fn new(secret: &[u8; 32]) -> Self {
        ConnTable { map: HashMap::with_hasher(KeyedHasher::new(secret)) }
    }
    /// Adds a connection; gives `v` back if the tuple is already taken.
    pub fn insert(&mut self, t: FourTuple, v: V) -> Result<(), V> {
        match self.map.entry(t) {
            Entry::Occupied(_) => Err(v),
            Entry::Vacant(slot) => {
                slot.insert(v);
                Ok(())
            }
        }
    }
    pub fn get(&self, t: &FourTuple) -> Option<V> {
        self.map.get(t).copied()
    }
    pub fn remove(&mut self, t: &FourTuple) -> Option<V> {
        self.map.remove(t)
    }
    pub fn contains(&self, t: &FourTuple) -> bool {
        self.map.contains_key(t)
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    /// The table's hasher, for [`reuseport_pick`].
    pub fn hasher(&self) -> &KeyedHasher {
        self.map.hasher()
    }
}

/// Listening sockets keyed by (address, port); 0.0.0.0 is the wildcard
/// address. Each key holds a group of members (an `SO_REUSEPORT` group), kept
/// in insertion order.
pub struct ListenerTable<V: Copy + Eq> {
    groups: HashMap<(Ipv4Addr, u16), Vec<V>, KeyedHasher>,
    len: usize,
}

impl<V: Copy + Eq> ListenerTable<V> {
    pub fn new(secret: &[u8; 32]) -> Self {
        ListenerTable { groups: HashMap::with_hasher(KeyedHasher::new(secret)), len: 0 }
    }
    /// Adds `v` at the end of the group for (addr, port). Adding a member that
    /// is already in that group changes nothing.
    pub fn insert(&mut self, addr: Ipv4Addr, port: u16, v: V) {
        let group = self.groups.entry((addr, port)).or_default();
        if !group.contains(&v) {
            group.push(v);
            self.len += 1;
        }
    }
    /// Removes `v` from the group for (addr, port); false if it was not there.
    pub fn remove(&mut self, addr: Ipv4Addr, port: u16, v: V) -> bool {
        let Some(group) = self.groups.get_mut(&(addr, port)) else { return false };
        let Some(pos) = group.iter().position(|m| *m == v) else { return false };
        // Order is kept so the remaining members' picks move as little as possible.
        group.remove(pos);
        if group.is_empty() {
            self.groups.remove(&(addr, port));
        }
        self.len -= 1;
        true
    }
    /// The group bound exactly to (addr, port).
    pub fn group(&self, addr: Ipv4Addr, port: u16) -> &[V] {
        self.groups.get(&(addr, port)).map_or(&[], Vec::as_slice)
    }
    /// The listeners for a segment to (dst_addr, dst_port): those bound to the
    /// exact address, else those bound to the wildcard, else none.
    pub fn lookup(&self, dst_addr: Ipv4Addr, dst_port: u16) -> &[V] {
        let exact = self.group(dst_addr, dst_port);
        if !exact.is_empty() {
            return exact;
        }
        self.group(Ipv4Addr::UNSPECIFIED, dst_port)
    }
    /// Number of members across all groups.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The table's hasher, for [`reuseport_pick`].
    pub fn hasher(&self) -> &KeyedHasher {
        self.groups.hasher()
    }
}

/// Chooses one of `n` group members for a flow by keyed hash of its tuple, so
/// every segment of a flow reaches the same member and a peer cannot steer
/// its flows onto one member. Returns 0 when `n` is 0 (there is nothing to pick).
pub fn reuseport_pick(hasher: &KeyedHasher, t: &FourTuple, n: usize) -> usize {
    let h = hasher.hash_one(t);
    // Multiply-shift maps the hash onto 0..n without the bias of `%` on small n.
    ((u128::from(h) * n as u128) >> 64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: [u8; 32] = *b"0123456789abcdef0123456789abcdef";

    fn tuple(a: u8, lport: u16, b: u8, rport: u16) -> FourTuple {
        FourTuple {
            local: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, a), lport),
            remote: SocketAddrV4::new(Ipv4Addr::new(10, 0, 1, b), rport),
        }
    }

    #[test]
    fn conn_table_insert_get_remove() {
        let mut t = ConnTable::new(&SECRET);
        let a = tuple(1, 80, 2, 40000);
        let b = tuple(1, 80, 2, 40001);
        assert_eq!(t.insert(a, 1u32), Ok(()));
        assert_eq!(t.insert(b, 2u32), Ok(()));
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(&a), Some(1));
        assert!(t.contains(&b));
        assert_eq!(t.remove(&a), Some(1));
        assert_eq!(t.get(&a), None);
        assert_eq!(t.remove(&a), None);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn conn_table_refuses_duplicate_tuple() {
        let mut t = ConnTable::new(&SECRET);
        let a = tuple(1, 80, 2, 40000);
        t.insert(a, 1u32).unwrap();
        assert_eq!(t.insert(a, 9), Err(9));
        assert_eq!(t.get(&a), Some(1));
    }

    #[test]
    fn listener_exact_address_wins_then_wildcard() {
        let mut l = ListenerTable::new(&SECRET);
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        l.insert(Ipv4Addr::UNSPECIFIED, 80, 1u32);
        assert_eq!(l.lookup(ip, 80), &[1]);
        l.insert(ip, 80, 2);
        assert_eq!(l.lookup(ip, 80), &[2]);
        assert_eq!(l.lookup(Ipv4Addr::new(10, 0, 0, 9), 80), &[1]);
        assert!(l.lookup(ip, 81).is_empty());
        assert!(l.remove(ip, 80, 2));
        assert_eq!(l.lookup(ip, 80), &[1]);
        assert!(!l.remove(ip, 80, 2));
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn listener_group_keeps_insertion_order() {
        let mut l = ListenerTable::new(&SECRET);
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        for v in [5u32, 3, 8, 1] {
            l.insert(ip, 443, v);
        }
        l.insert(ip, 443, 3);
        assert_eq!(l.group(ip, 443), &[5, 3, 8, 1]);
        assert!(l.remove(ip, 443, 8));
        assert_eq!(l.group(ip, 443), &[5, 3, 1]);
        assert_eq!(l.len(), 3);
        assert!(l.group(Ipv4Addr::UNSPECIFIED, 443).is_empty());
    }

    #[test]
    fn reuseport_pick_is_stable_and_roughly_uniform() {
        let h = KeyedHasher::new(&SECRET);
        let mut buckets = [0usize; 4];
        for i in 0..10_000u32 {
            let t = tuple((i % 200) as u8, 80, (i / 200) as u8, 1024 + (i as u16 % 7919));
            let pick = reuseport_pick(&h, &t, 4);
            assert_eq!(pick, reuseport_pick(&h, &t, 4), "one flow, one member");
            buckets[pick] += 1;
        }
        for (i, n) in buckets.iter().enumerate() {
            assert!((2_000..=3_000).contains(n), "bucket {i} got {n} of 10000: {buckets:?}");
        }
        assert_eq!(reuseport_pick(&h, &tuple(1, 1, 1, 1), 0), 0);
        assert_eq!(reuseport_pick(&h, &tuple(1, 1, 1, 1), 1), 0);
    }

    #[test]
    fn different_secrets_hash_differently() {
        let t = tuple(1, 80, 2, 40000);
        let mut other = SECRET;
        other[31] ^= 1;
        assert_ne!(KeyedHasher::new(&SECRET).hash_one(t), KeyedHasher::new(&other).hash_one(t));
        assert_ne!(derive_sip_keys(&SECRET, b"a"), derive_sip_keys(&SECRET, b"b"));
    }
}
