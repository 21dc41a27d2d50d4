//! The loop that drives both endpoints over the wire on a virtual clock.
//!
//! One round: both endpoints process what arrived, the application steps,
//! both endpoints transmit (after running due timers), and the wire carries the
//! frames across. While anything moves, the clock advances by [`ROUND_TICK`]
//! per round (a short fixed link delay, so RTT estimates are small and sane).
//! When nothing moved and the application made no progress, the clock jumps to
//! the earliest deadline of either stack, so waiting for a retransmission or a
//! delayed ACK costs no CPU time and results do not depend on timer values.

use super::endpoint::{Endpoint, EndpointConfig, Micros, StackError};
use super::wire::{Wire, WireStats};

/// Virtual time that passes per busy round.
pub const ROUND_TICK: Micros = 10;
/// Consecutive rounds without any frame moving before a run is declared stuck.
const MAX_IDLE_ROUNDS: u32 = 10_000;
/// Virtual time a single run may take at the most (1 hour).
const MAX_VIRTUAL_TIME: Micros = 3_600_000_000;

/// What an application step reports.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Step {
    /// Bytes were sent or received, or a connection changed state.
    pub progressed: bool,
    /// The workload is complete.
    pub done: bool,
}

/// The application side of a workload, stepped once per round.
pub trait App<E: Endpoint> {
    fn step(&mut self, now: Micros, client: &mut E, server: &mut E) -> Result<Step, StackError>;
}

/// Counters of one `run` call.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunStats {
    pub rounds: u64,
    pub virtual_elapsed: Micros,
}

/// A client endpoint and a server endpoint joined by a wire.
pub struct Sim<E: Endpoint> {
    pub client: E,
    pub server: E,
    pub wire: Wire,
    pub now: Micros,
}

/// Addresses of the two endpoints (one /24, distinct MACs).
pub fn endpoint_configs(mtu: usize, buffer: usize, seed: u64) -> (EndpointConfig, EndpointConfig) {
    let base = EndpointConfig {
        mac: [0x02, 0, 0, 0, 0, 0x01],
        ip: core::net::Ipv4Addr::new(10, 0, 0, 1),
        prefix_len: 24,
        mtu,
        send_buffer: buffer,
        recv_buffer: buffer,
        seed,
    };
    let server = EndpointConfig { mac: [0x02, 0, 0, 0, 0, 0x02], ip: core::net::Ipv4Addr::new(10, 0, 0, 2), seed: seed ^ 0x5eed, ..base };
    (base, server)
}

impl<E: Endpoint> Sim<E> {
    /// Build both endpoints with `make` (client config first, then server).
    pub fn new(make: impl Fn(&EndpointConfig, Micros) -> E, mtu: usize, buffer: usize, loss: f64, seed: u64) -> Sim<E> {
        let now = 1_000_000;
        let (client_config, server_config) = endpoint_configs(mtu, buffer, seed);
        Sim { client: make(&client_config, now), server: make(&server_config, now), wire: Wire::new(loss, seed), now }
    }

    pub fn server_ip(&self) -> core::net::Ipv4Addr {
        endpoint_configs(0, 0, 0).1.ip
    }

    pub fn wire_stats(&self) -> WireStats {
        self.wire.stats
    }

    /// Drive rounds until `app` reports done.
    pub fn run(&mut self, app: &mut impl App<E>) -> Result<RunStats, StackError> {
        let start = self.now;
        let mut rounds = 0u64;
        let mut idle_rounds = 0u32;
        // Whether the last idle round found no timer and allowed one more step.
        let mut timerless_step_taken = false;
        loop {
            rounds += 1;
            self.client.ingress(self.now, &mut self.wire.client);
            self.server.ingress(self.now, &mut self.wire.server);
            let step = app.step(self.now, &mut self.client, &mut self.server)?;
            if step.done {
                return Ok(RunStats { rounds, virtual_elapsed: self.now - start });
            }
            self.client.egress(self.now, &mut self.wire.client);
            self.server.egress(self.now, &mut self.wire.server);
            let moved = self.wire.carry();
            if moved > 0 || step.progressed {
                idle_rounds = 0;
                timerless_step_taken = false;
                self.now += ROUND_TICK;
            } else {
                idle_rounds += 1;
                if idle_rounds > MAX_IDLE_ROUNDS {
                    return Err(StackError(format!("stalled: {MAX_IDLE_ROUNDS} rounds without a frame or progress")));
                }
                match self.next_wakeup() {
                    Some(wakeup) => self.now = wakeup,
                    // A timer that just fired may have failed a connection;
                    // give the application one more step to see that.
                    None if !timerless_step_taken => {
                        timerless_step_taken = true;
                        self.now += ROUND_TICK;
                    }
                    None => return Err(StackError("stalled: nothing in flight and no timer pending".into())),
                }
            }
            if self.now - start > MAX_VIRTUAL_TIME {
                return Err(StackError("gave up: an hour of virtual time passed".into()));
            }
        }
    }

    /// Run rounds with no application activity until no frame is in flight.
    pub fn settle(&mut self) -> Result<(), StackError> {
        for _ in 0..MAX_IDLE_ROUNDS {
            self.client.ingress(self.now, &mut self.wire.client);
            self.server.ingress(self.now, &mut self.wire.server);
            self.client.egress(self.now, &mut self.wire.client);
            self.server.egress(self.now, &mut self.wire.server);
            if self.wire.carry() == 0 {
                return Ok(());
            }
            self.now += ROUND_TICK;
        }
        Err(StackError("frames kept flowing between idle connections".into()))
    }

    /// The next time either stack wants to run timers: the earliest future
    /// deadline, or one tick from now if a deadline is already due; `None`
    /// if neither has a timer.
    fn next_wakeup(&mut self) -> Option<Micros> {
        let deadline = match (self.client.next_deadline(self.now), self.server.next_deadline(self.now)) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => return None,
        };
        Some(deadline.max(self.now + ROUND_TICK))
    }
}
