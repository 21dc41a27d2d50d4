//! Sluice's protocol engine: wire formats, ARP, IPv4, ICMP and TCP, sans-IO.
//!
//! The engine makes no syscalls and reads no clock: time and frames are passed
//! in, frames, timer deadlines and events are polled out. That makes every run
//! deterministic and lets the whole stack be tested in simulation.
#![forbid(unsafe_code)]

pub mod config;
pub mod engine;
pub mod error;
pub mod handle;
pub mod iface;
pub mod session;
pub mod tcp;
pub mod time;
pub mod wire;

pub use config::{CongestionAlgorithm, StackConfig, TcpConfig};
pub use engine::{ConnId, ConsumerId, FrameSink, ListenerId, Shutdown, SocketId, Stack, Stats};
pub use error::{Error, Result};
pub use session::event::{Event, EventSet};
pub use time::{Duration, Instant};
