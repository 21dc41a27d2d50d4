//! The byte stream bulk transfers send: seeded random bytes repeating with a
//! prime period, so segment boundaries never line up with the period and a
//! misplaced, duplicated or lost byte range shows up as a mismatch.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Length of the repeating unit (prime).
const PERIOD: usize = 65_521;
/// Longest slice handed out at once.
pub const MAX_SLICE: usize = 256 * 1024;

pub struct Pattern {
    /// `PERIOD` random bytes followed by the first `MAX_SLICE` of them again,
    /// so any slice of up to `MAX_SLICE` bytes is contiguous.
    bytes: Vec<u8>,
}

impl Pattern {
    pub fn new(seed: u64) -> Pattern {
        let mut bytes = vec![0u8; PERIOD + MAX_SLICE];
        ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut bytes[..PERIOD]);
        for i in PERIOD..bytes.len() {
            bytes[i] = bytes[i % PERIOD];
        }
        Pattern { bytes }
    }

    /// The stream's bytes from `offset`, `len` of them (at most [`MAX_SLICE`]).
    pub fn at(&self, offset: u64, len: usize) -> &[u8] {
        let start = (offset % PERIOD as u64) as usize;
        &self.bytes[start..start + len.min(MAX_SLICE)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_repeat_with_the_period_and_differ_elsewhere() {
        let p = Pattern::new(3);
        assert_eq!(p.at(10, 100), p.at(10 + PERIOD as u64, 100));
        assert_ne!(p.at(10, 100), p.at(11, 100));
        assert_eq!(p.at(PERIOD as u64 - 1, MAX_SLICE).len(), MAX_SLICE);
    }
}
