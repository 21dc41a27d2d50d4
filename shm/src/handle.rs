//! Session handles as they cross shared memory: `(index, gen)` packed in a `u64`.
//!
//! The index names a slot of one app worker's session table, the generation
//! the slot's life (design §2.3): a slot's generation changes each time it is
//! freed, so a handle kept from an earlier life never matches. Generations
//! start at 1 and skip 0 when they wrap, which makes the packed value 0 never
//! a valid handle, so zeroed shared memory never names a session.

/// A generation-checked reference to a session slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionHandle {
    /// Slot in the app worker's session table.
    pub index: u32,
    /// Life of the slot; never 0 in a valid handle.
    pub gen: u32,
}

impl SessionHandle {
    /// The first generation of every slot.
    pub const FIRST_GEN: u32 = 1;

    /// The handle for `index` in generation `gen`, or `None` for gen 0.
    pub fn new(index: u32, gen: u32) -> Option<SessionHandle> {
        (gen != 0).then_some(SessionHandle { index, gen })
    }

    /// Packs as `gen << 32 | index`.
    pub fn to_u64(self) -> u64 {
        (u64::from(self.gen) << 32) | u64::from(self.index)
    }

    /// Unpacks a word that came from shared memory; `None` when its
    /// generation is 0 (which includes the all-zero word).
    pub fn from_u64(raw: u64) -> Option<SessionHandle> {
        SessionHandle::new(raw as u32, (raw >> 32) as u32)
    }

    /// The generation that follows `gen` when a slot is freed, skipping 0.
    pub fn next_gen(gen: u32) -> u32 {
        match gen.wrapping_add(1) {
            0 => Self::FIRST_GEN,
            g => g,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn zero_is_never_a_handle() {
        assert_eq!(SessionHandle::from_u64(0), None);
        assert_eq!(
            SessionHandle::from_u64(0xffff_ffff),
            None,
            "index without generation"
        );
        assert_eq!(SessionHandle::new(5, 0), None);
    }

    #[test]
    fn packing_puts_gen_high_and_index_low() {
        let h = SessionHandle::new(7, 3).unwrap();
        assert_eq!(h.to_u64(), 0x0000_0003_0000_0007);
    }

    #[test]
    fn next_gen_skips_zero() {
        assert_eq!(SessionHandle::next_gen(1), 2);
        assert_eq!(SessionHandle::next_gen(u32::MAX), SessionHandle::FIRST_GEN);
    }

    proptest! {
        #[test]
        fn round_trips(index: u32, gen in 1u32..) {
            let h = SessionHandle::new(index, gen).unwrap();
            prop_assert_ne!(h.to_u64(), 0);
            prop_assert_eq!(SessionHandle::from_u64(h.to_u64()), Some(h));
        }
    }
}
