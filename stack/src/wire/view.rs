//! What every zero-copy packet view shares: big-endian field readers and the
//! constructors, so each format file holds only its own layout and checks.

/// The big-endian `u16` at the start of `bytes`. Callers index within a
/// length their view's `check_len` has verified.
pub(crate) fn be16(bytes: &[u8]) -> u16 {
    u16::from_be_bytes([bytes[0], bytes[1]])
}

/// The big-endian `u32` at the start of `bytes` (see [`be16`]).
pub(crate) fn be32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// Declares `$name<T: AsRef<[u8]>>`, a view over one buffer, with
/// `new_unchecked`, `new_checked` (after the view's own `check_len`, which
/// makes every accessor safe) and `into_inner`.
macro_rules! packet_view {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $name<T> {
            /// Wraps a buffer without checking it; accessors may panic if it
            /// is too short for them.
            pub const fn new_unchecked(buffer: T) -> Self {
                $name { buffer }
            }

            /// Wraps a buffer after `check_len`, which makes every accessor safe.
            pub fn new_checked(buffer: T) -> crate::wire::Result<Self> {
                let packet = Self::new_unchecked(buffer);
                packet.check_len()?;
                Ok(packet)
            }

            pub fn into_inner(self) -> T {
                self.buffer
            }
        }
    };
}

pub(crate) use packet_view;
