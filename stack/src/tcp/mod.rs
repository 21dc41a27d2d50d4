//! TCP: sequence numbers, per-connection algorithms, and the connection state machine.

pub mod buffer;
pub mod cc;
pub mod conn;
pub mod isn;
pub mod rtt;
pub mod sack;
pub mod seq;
pub mod syncookie;
