//! The engine benchmark: Sluice and smoltcp driven through one harness over an
//! in-memory wire, on a virtual clock, measuring the CPU cost (CPU time of the
//! one thread that runs both endpoints) of bulk transfer and small
//! request/response at 0% and 1% loss, and bytes of state per connection.
//!
//! - [`wire`]: the two-port in-memory link with seeded loss.
//! - [`endpoint`]: the harness trait; [`sluice_endpoint`] and [`smoltcp_endpoint`] implement it.
//! - [`driver`]: the round loop and virtual clock.
//! - [`setup`], [`bulk`], [`request_response`], [`conn_state`]: workloads.
//! - [`suite`]: runs everything for both stacks; [`report`]: the Markdown table.
//!
//! Run with `cargo run --release -p sluice-integration --bin sluice-bench -- [--quick]`.

pub mod bulk;
pub mod conn_state;
pub mod cpu_clock;
pub mod driver;
pub mod endpoint;
pub mod pattern;
pub mod report;
pub mod request_response;
pub mod setup;
pub mod sluice_endpoint;
pub mod smoltcp_endpoint;
pub mod suite;
pub mod wire;

use endpoint::{EndpointConfig, Micros};

/// How to build one stack's endpoints, with the settings shared by both stacks.
pub struct StackFactory<E> {
    pub name: &'static str,
    pub make: fn(&EndpointConfig, Micros) -> E,
    /// IP MTU of the link.
    pub mtu: usize,
    /// Send and receive buffer size of every connection.
    pub buffer: usize,
}

/// Link MTU used by every workload.
pub const MTU: usize = 1500;
/// Socket buffer size (each direction) used by every workload.
pub const BUFFER: usize = 256 * 1024;

pub fn sluice_factory() -> StackFactory<sluice_endpoint::SluiceEndpoint> {
    StackFactory { name: "Sluice", make: sluice_endpoint::SluiceEndpoint::new, mtu: MTU, buffer: BUFFER }
}

pub fn smoltcp_factory() -> StackFactory<smoltcp_endpoint::SmoltcpEndpoint> {
    StackFactory { name: "smoltcp", make: smoltcp_endpoint::SmoltcpEndpoint::new, mtu: MTU, buffer: BUFFER }
}

#[cfg(test)]
mod tests;
