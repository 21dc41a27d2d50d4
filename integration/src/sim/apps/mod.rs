//! Reusable application drivers for simulated stacks. Every byte moved is a
//! keyed pattern (see [`pattern`]) checked on arrival, and every connection
//! must end with an orderly FIN, not a reset.

pub mod client;
pub mod echo;
pub mod pattern;
pub mod server;
pub mod stream;
pub mod syn_flood;

pub use client::{BulkClient, BulkClientConfig, ClientOutcome, Expect, ReadPause};
pub use echo::{EchoServer, EchoTally};
pub use server::{BulkServer, BulkServerConfig, ServerTally};
pub use syn_flood::{FloodTally, SynFlood, SynFloodConfig};
