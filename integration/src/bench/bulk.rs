//! Bulk workload: one connection, the client sends `total` bytes, the server
//! reads them and checks every byte against the sender's pattern.

use super::cpu_clock::{Elapsed, Stopwatch};
use super::driver::{App, Sim, Step};
use super::endpoint::{Endpoint, Micros, RecvOutcome, StackError};
use super::pattern::{Pattern, MAX_SLICE};
use super::setup::{open_connections, Opened, SERVER_PORT};
use super::wire::WireStats;
use super::StackFactory;

/// Read size of the server application.
const READ_SIZE: usize = 64 * 1024;

/// One bulk run's measurements.
#[derive(Clone, Copy, Debug)]
pub struct BulkResult {
    pub bytes: u64,
    /// Time the transfer took (setup excluded).
    pub time: Elapsed,
    pub virtual_elapsed: Micros,
    /// Driver rounds (each polls both stacks once).
    pub rounds: u64,
    pub wire: WireStats,
}

impl BulkResult {
    /// Goodput per core in Gbit/s: bytes over the CPU time of the one thread
    /// that runs the whole simulation.
    pub fn gbit_per_s(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.time.cpu.as_secs_f64().max(1e-9) / 1e9
    }
}

struct Transfer<'p, C> {
    client: C,
    server: C,
    total: u64,
    sent: u64,
    received: u64,
    pattern: &'p Pattern,
    read_buf: Vec<u8>,
}

impl<E: Endpoint> App<E> for Transfer<'_, E::Conn> {
    fn step(&mut self, _now: Micros, client: &mut E, server: &mut E) -> Result<Step, StackError> {
        let mut step = Step::default();
        while self.sent < self.total {
            let want = (self.total - self.sent).min(MAX_SLICE as u64) as usize;
            let n = client.send(self.client, self.pattern.at(self.sent, want))?;
            if n == 0 {
                break;
            }
            self.sent += n as u64;
            step.progressed = true;
        }
        loop {
            match server.recv(self.server, &mut self.read_buf)? {
                RecvOutcome::Data(n) => {
                    let got = self.read_buf.get(..n).ok_or_else(|| StackError(format!("recv returned {n} bytes for a {READ_SIZE}-byte buffer")))?;
                    if got != self.pattern.at(self.received, n) {
                        return Err(StackError(format!("data mismatch in {n} bytes received at offset {}", self.received)));
                    }
                    self.received += n as u64;
                    if self.received > self.total {
                        return Err(StackError(format!("received {} bytes, {} were sent", self.received, self.total)));
                    }
                    step.progressed = true;
                }
                RecvOutcome::WouldBlock => break,
                RecvOutcome::Eof => return Err(StackError(format!("end of stream after {} of {} bytes", self.received, self.total))),
            }
        }
        step.done = self.received == self.total;
        Ok(step)
    }
}

/// Transfer `total` bytes over one connection of a fresh simulation.
pub fn run_bulk<E: Endpoint>(factory: &StackFactory<E>, total: u64, loss: f64, seed: u64) -> Result<BulkResult, StackError> {
    let mut sim = Sim::new(factory.make, factory.mtu, factory.buffer, loss, seed);
    sim.server.listen(sim.now, SERVER_PORT, 1)?;
    let mut opened = Opened { client: Vec::new(), server: Vec::new() };
    open_connections(&mut sim, 1, 1, &mut opened)?;
    let (Some(&client), Some(&server)) = (opened.client.first(), opened.server.first()) else {
        return Err(StackError("no connection opened".into()));
    };
    let pattern = Pattern::new(seed);
    let mut transfer = Transfer { client, server, total, sent: 0, received: 0, pattern: &pattern, read_buf: vec![0u8; READ_SIZE] };
    let wire_before = sim.wire_stats();
    let watch = Stopwatch::start();
    let run = sim.run(&mut transfer)?;
    let time = watch.elapsed();
    Ok(BulkResult {
        bytes: transfer.received,
        time,
        virtual_elapsed: run.virtual_elapsed,
        rounds: run.rounds,
        wire: sim.wire_stats().since(wire_before),
    })
}
