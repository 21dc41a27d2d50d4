//! The receive side's out-of-order ranges: at most `MAX_RANGES` disjoint,
//! non-adjacent `[start, end)` offsets relative to `rcv_nxt`, kept in recency
//! order (most recently updated first) because that is the order SACK blocks
//! are reported in (RFC 2018 §4). With so few ranges a linear scan is cheaper
//! than keeping them sorted as well. Fixed storage: never allocates.

pub(super) const MAX_RANGES: usize = 16;

#[derive(Clone, Debug, Default)]
pub(super) struct Assembler {
    /// `ranges[..len]`, newest first; every `start > 0`, `start < end`.
    ranges: [(usize, usize); MAX_RANGES],
    len: usize,
}

fn touches(a: (usize, usize), start: usize, end: usize) -> bool {
    a.0 <= end && start <= a.1
}

impl Assembler {
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(super) fn ranges(&self) -> &[(usize, usize)] {
        &self.ranges[..self.len]
    }

    /// Whether `[start, end)` can be recorded: it joins an existing range or
    /// there is a free slot.
    pub(super) fn can_insert(&self, start: usize, end: usize) -> bool {
        self.len < MAX_RANGES || self.ranges().iter().any(|&r| touches(r, start, end))
    }

    /// Records `[start, end)`, merging every range it overlaps or abuts, and
    /// makes the result the most recent. The caller checks `can_insert` first;
    /// without a slot the range is not recorded.
    pub(super) fn insert(&mut self, start: usize, end: usize) {
        let mut merged = (start, end);
        let mut kept = 0;
        for i in 0..self.len {
            let r = self.ranges[i];
            if touches(r, merged.0, merged.1) {
                merged = (merged.0.min(r.0), merged.1.max(r.1));
            } else {
                self.ranges[kept] = r;
                kept += 1;
            }
        }
        // One pass suffices: the union of touching intervals is one interval,
        // so a range kept earlier (touching neither the new range nor what was
        // merged before it) cannot touch a range merged later, as existing
        // ranges never touch each other.
        if kept == MAX_RANGES {
            self.len = kept;
            return;
        }
        self.ranges.copy_within(0..kept, 1);
        self.ranges[0] = merged;
        self.len = kept + 1;
    }

    /// In-order data now reaches `edge`: absorbs every range starting at or
    /// before it and returns the new in-order edge.
    pub(super) fn absorb_from(&mut self, mut edge: usize) -> usize {
        loop {
            let Some(i) = self.ranges().iter().position(|r| r.0 <= edge) else {
                return edge;
            };
            edge = edge.max(self.ranges[i].1);
            self.ranges.copy_within(i + 1..self.len, i);
            self.len -= 1;
        }
    }

    /// rcv_nxt moved forward by `n`: offsets are relative to it.
    pub(super) fn shift_down(&mut self, n: usize) {
        for r in &mut self.ranges[..self.len] {
            r.0 = r.0.saturating_sub(n);
            r.1 = r.1.saturating_sub(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_overlapping_and_adjacent_ranges_newest_first() {
        let mut a = Assembler::default();
        a.insert(10, 20);
        a.insert(30, 40);
        a.insert(50, 60);
        assert_eq!(a.ranges(), &[(50, 60), (30, 40), (10, 20)]);
        a.insert(20, 25); // adjacent to (10, 20)
        assert_eq!(a.ranges(), &[(10, 25), (50, 60), (30, 40)]);
        a.insert(24, 55); // bridges three
        assert_eq!(a.ranges(), &[(10, 60)]);
        a.insert(12, 14); // duplicate
        assert_eq!(a.ranges(), &[(10, 60)]);
    }

    #[test]
    fn full_assembler_accepts_only_merging_ranges() {
        let mut a = Assembler::default();
        for i in 0..MAX_RANGES {
            assert!(a.can_insert(i * 10 + 1, i * 10 + 5));
            a.insert(i * 10 + 1, i * 10 + 5);
        }
        assert!(!a.can_insert(500, 510));
        assert!(a.can_insert(5, 7));
        assert!(a.can_insert(3, 4));
        a.insert(5, 11);
        assert_eq!(a.ranges().len(), MAX_RANGES - 1);
        assert_eq!(a.ranges()[0], (1, 15));
    }

    #[test]
    fn absorbing_and_shifting() {
        let mut a = Assembler::default();
        a.insert(10, 20);
        a.insert(20, 30);
        a.insert(40, 50);
        assert_eq!(a.absorb_from(5), 5);
        assert_eq!(a.absorb_from(10), 30);
        a.shift_down(30);
        assert_eq!(a.ranges(), &[(10, 20)]);
    }
}
