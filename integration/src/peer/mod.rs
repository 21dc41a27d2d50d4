//! `sluice-peer`: one Sluice engine on a TAP device, running a small test
//! application (echo, bulk send, sink) against real peers such as the Linux
//! kernel's TCP. The binary (`src/bin/sluice-peer.rs`) only parses arguments
//! and prints; everything else is here so it can be unit-tested.

pub mod app;
pub mod args;
pub mod driver;
pub mod json;
pub mod pattern;
pub mod report;
pub mod tap_sink;
pub mod transfer;
