//! A hasher for small integer ids the application chooses (consumer ids).
//!
//! SipHash defends tables keyed by values a remote peer picks; an id the
//! application assigns cannot be chosen by the network, so a multiplicative
//! hash suffices, and the per-event lookup then costs a multiply instead of a
//! SipHash round.

use core::hash::{BuildHasherDefault, Hasher};

/// Fibonacci hashing: multiplying by 2^64 / φ spreads consecutive ids over
/// the high bits that hashbrown uses for its control bytes.
const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

/// Hashes integer keys by one multiply; other byte strings are folded in
/// eight bytes at a time.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdHasher {
    state: u64,
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.state = (self.state.rotate_left(5) ^ n).wrapping_mul(MULTIPLIER);
    }
    fn finish(&self) -> u64 {
        self.state
    }
}

/// `BuildHasher` for maps keyed by application-assigned ids.
pub type BuildIdHasher = BuildHasherDefault<IdHasher>;

#[cfg(test)]
mod tests {
    use super::*;
    use core::hash::{BuildHasher, Hash};
    use std::collections::HashMap;

    fn hash_of(v: impl Hash) -> u64 {
        BuildIdHasher::default().hash_one(v)
    }

    #[test]
    fn distinct_ids_hash_apart_and_consistently() {
        let hashes: std::collections::HashSet<u64> = (0..1000u32).map(hash_of).collect();
        assert_eq!(hashes.len(), 1000);
        assert_eq!(hash_of(7u32), hash_of(7u32));
        assert_ne!(hash_of([1u8, 2, 3]), hash_of([1u8, 2, 4]));
    }

    #[test]
    fn works_as_a_map_hasher() {
        let mut map: HashMap<u32, u32, BuildIdHasher> = HashMap::default();
        for i in 0..100 {
            map.insert(i, i * 2);
        }
        assert!((0..100).all(|i| map.get(&i) == Some(&(i * 2))));
        assert_eq!(map.get(&100), None);
    }
}
