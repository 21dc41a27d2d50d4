//! TCP sequence numbers: 32-bit, compared modulo 2^32 (RFC 9293 §3.4).

use core::cmp::Ordering;
use core::fmt;
use core::ops::{Add, Sub};

/// A sequence number. Ordering is the RFC 1982 serial-number comparison, valid
/// while the two numbers are less than 2^31 apart (which TCP guarantees).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNum(pub u32);

impl SeqNum {
    /// Signed distance `self - other`.
    pub fn diff(self, other: SeqNum) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }
    /// Non-negative distance `self - other`; zero if `self` is before `other`.
    pub fn distance_from(self, other: SeqNum) -> usize {
        let d = self.diff(other);
        if d < 0 { 0 } else { d as usize }
    }
    pub fn max(self, other: SeqNum) -> SeqNum {
        if self >= other { self } else { other }
    }
    pub fn min(self, other: SeqNum) -> SeqNum {
        if self <= other { self } else { other }
    }
    /// `lo <= self < hi`, modulo 2^32.
    pub fn in_range(self, lo: SeqNum, hi: SeqNum) -> bool {
        self >= lo && self < hi
    }
}

impl PartialOrd for SeqNum {
    fn partial_cmp(&self, other: &SeqNum) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for SeqNum {
    fn cmp(&self, other: &SeqNum) -> Ordering {
        self.diff(*other).cmp(&0)
    }
}

impl Add<usize> for SeqNum {
    type Output = SeqNum;
    fn add(self, rhs: usize) -> SeqNum {
        // Lengths added to a sequence number are window-sized, far below 2^31.
        SeqNum(self.0.wrapping_add(rhs as u32))
    }
}
impl Sub<usize> for SeqNum {
    type Output = SeqNum;
    fn sub(self, rhs: usize) -> SeqNum {
        SeqNum(self.0.wrapping_sub(rhs as u32))
    }
}

impl fmt::Debug for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
impl fmt::Display for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_survives_wrap_around() {
        let a = SeqNum(u32::MAX - 10);
        let b = a + 20;
        assert_eq!(b.0, 9);
        assert!(a < b);
        assert_eq!(b.diff(a), 20);
        assert_eq!(a.diff(b), -20);
        assert_eq!(b.distance_from(a), 20);
        assert_eq!(a.distance_from(b), 0);
        assert!((a + 5).in_range(a, b));
        assert!(!b.in_range(a, b));
        assert_eq!(a.max(b), b);
    }
}
