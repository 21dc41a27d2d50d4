//! What a peer did wrong: an index word it wrote that cannot be right.
//!
//! The daemon counts these per app and aborts the session (or kills the app
//! worker) on them; the primitives only detect and report, never trust.

use std::fmt;

/// A shared index word with a value the protocol makes impossible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// A fifo consumer's `head` (read by the producer) is not in
    /// `[last seen head, producer's tail]`: it moved backwards or past data
    /// that was never written.
    FifoHead { head: u32, low: u32, high: u32 },
    /// A fifo producer's `tail` (read by the consumer) claims more than the
    /// fifo's size, or moved backwards past data it had already published.
    FifoTail { tail: u32, low: u32, high: u32 },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Violation::FifoHead { head, low, high } => {
                write!(f, "fifo head {head} outside [{low}, {high}] (wrapping)")
            }
            Violation::FifoTail { tail, low, high } => {
                write!(f, "fifo tail {tail} outside [{low}, {high}] (wrapping)")
            }
        }
    }
}

impl std::error::Error for Violation {}
