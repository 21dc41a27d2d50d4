//! Per-connection byte buffers: the send buffer (unacknowledged + unsent data,
//! read at an offset for (re)transmission) and the receive buffer (in-order data
//! for the application plus out-of-order segments placed at their offset and
//! tracked by an assembler). Storage is allocated lazily — the send ring grows
//! by doubling up to the configured limit, the receive store by chunks where
//! data lands — so idle connections stay small and the steady state allocates
//! nothing. Both can free their storage when empty (`release_if_empty`).
//!
//! Protocol rules implemented here: the receive window is the free buffer
//! space (RFC 9293 §3.8.6), data outside it is cut (RFC 9293 §3.10.7.4), and
//! out-of-order ranges are reported most recent first for SACK (RFC 2018 §4).
//!
//! - `ring`: the circular byte store of the send buffer (memcpy only);
//! - `chunks`: the sparse chunked store of the receive buffer;
//! - `send`: `SendBuffer`;
//! - `recv`: `RecvBuffer` and `Placed`;
//! - `assembler`: the bounded set of out-of-order ranges.

mod assembler;
mod chunks;
mod recv;
mod ring;
mod send;

pub use recv::{Placed, RecvBuffer};
pub use send::SendBuffer;
