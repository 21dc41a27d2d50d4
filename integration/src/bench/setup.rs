//! Opening connections through the harness (not timed by the workloads).

use core::net::SocketAddrV4;

use super::driver::{App, Sim, Step};
use super::endpoint::{Endpoint, Micros, StackError};

/// The port every workload's server listens on.
pub const SERVER_PORT: u16 = 5001;

/// Connections opened and accepted, pairwise unordered.
pub struct Opened<C> {
    pub client: Vec<C>,
    pub server: Vec<C>,
}

struct OpenBatch<'a, C> {
    remote: SocketAddrV4,
    to_open: usize,
    connecting: Vec<C>,
    opened: &'a mut Opened<C>,
    accepted_target: usize,
}

impl<E: Endpoint> App<E> for OpenBatch<'_, E::Conn> {
    fn step(&mut self, now: Micros, client: &mut E, server: &mut E) -> Result<Step, StackError> {
        let mut step = Step::default();
        while self.to_open > 0 {
            self.connecting.push(client.connect(now, self.remote)?);
            self.to_open -= 1;
            step.progressed = true;
        }
        let mut still_connecting = Vec::with_capacity(self.connecting.len());
        for &conn in &self.connecting {
            if client.is_established(conn)? {
                self.opened.client.push(conn);
                step.progressed = true;
            } else {
                still_connecting.push(conn);
            }
        }
        self.connecting = still_connecting;
        let before = self.opened.server.len();
        server.accept(&mut self.opened.server)?;
        step.progressed |= self.opened.server.len() != before;
        step.done = self.connecting.is_empty() && self.opened.server.len() >= self.accepted_target;
        Ok(step)
    }
}

/// Open `count` connections from client to server (which must already listen
/// on [`SERVER_PORT`]), `batch` at a time, appending them to `opened`.
pub fn open_connections<E: Endpoint>(sim: &mut Sim<E>, count: usize, batch: usize, opened: &mut Opened<E::Conn>) -> Result<(), StackError> {
    let remote = SocketAddrV4::new(sim.server_ip(), SERVER_PORT);
    let mut left = count;
    while left > 0 {
        let this_batch = left.min(batch.max(1));
        let accepted_target = opened.server.len() + this_batch;
        let mut app = OpenBatch { remote, to_open: this_batch, connecting: Vec::with_capacity(this_batch), opened, accepted_target };
        sim.run(&mut app)?;
        left -= this_batch;
    }
    if opened.client.len() != opened.server.len() {
        return Err(StackError(format!("{} connections established but {} accepted", opened.client.len(), opened.server.len())));
    }
    Ok(())
}
