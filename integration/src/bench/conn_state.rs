//! Bytes of state per connection, measured: open `count` idle established
//! connections and read how much the heap grew.
//!
//! The heap reading comes from the caller (the bench binary installs a counting
//! global allocator). Growth is measured from before `listen` (smoltcp's
//! listening sockets, buffers included, are per-connection state) to after the
//! handshakes have settled and the wire's frame pool was freed; it covers both
//! ends, so the figure per connection is growth / (2 × count).

use super::cpu_clock::{Elapsed, Stopwatch};
use super::driver::Sim;
use super::endpoint::{Endpoint, StackError};
use super::setup::{open_connections, Opened, SERVER_PORT};
use super::StackFactory;

/// Connections opened per batch: enough to be quick, few enough that a stack's
/// SYN-flood defences (half-open limits, SYN cookies) do not kick in.
const BATCH: usize = 256;

#[derive(Clone, Copy, Debug)]
pub struct StateResult {
    pub connections: usize,
    /// Heap growth for both ends of all connections.
    pub heap_growth: usize,
    /// Time to open them all.
    pub setup_time: Elapsed,
}

impl StateResult {
    /// Heap bytes per connection endpoint (one side of one connection).
    pub fn bytes_per_endpoint(&self) -> f64 {
        self.heap_growth as f64 / (2 * self.connections.max(1)) as f64
    }
}

pub fn run_conn_state<E: Endpoint>(factory: &StackFactory<E>, count: usize, seed: u64, heap_in_use: &dyn Fn() -> usize) -> Result<StateResult, StackError> {
    let mut sim = Sim::new(factory.make, factory.mtu, factory.buffer, 0.0, seed);
    let mut opened = Opened { client: Vec::with_capacity(count), server: Vec::with_capacity(count) };
    let before = heap_in_use();
    let watch = Stopwatch::start();
    sim.server.listen(sim.now, SERVER_PORT, count)?;
    open_connections(&mut sim, count, BATCH, &mut opened)?;
    let setup_time = watch.elapsed();
    sim.settle()?;
    sim.wire.release_buffers();
    let after = heap_in_use();
    if opened.client.len() != count {
        return Err(StackError(format!("opened {} of {count} connections", opened.client.len())));
    }
    // Keep the simulation alive until after the reading.
    drop(sim);
    Ok(StateResult { connections: count, heap_growth: after.saturating_sub(before), setup_time })
}
