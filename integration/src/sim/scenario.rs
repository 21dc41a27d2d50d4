//! The common shape of the bulk scenarios: one server stack (host 1) facing
//! several client stacks (hosts 2, 3, ...) through the switch, each client
//! opening connections that move pattern streams one or both ways.

use core::net::SocketAddrV4;
use std::fmt::Write;

use sluice_stack::config::{StackConfig, TcpConfig};
use sluice_stack::time::{Duration, Instant};
use sluice_stack::ConsumerId;

use super::apps::{BulkClient, BulkClientConfig, BulkServer, BulkServerConfig, Expect, ReadPause};
use super::link::PortFaults;
use super::world::{host_config, host_ip, NodeId, RunError, World};

pub const SERVER_HOST: u8 = 1;
pub const SERVER_PORT: u16 = 5001;

/// Raises the retry limits so that a correct engine does not give up under
/// the heavy random loss the scenarios inject (20% each way makes seven
/// failed handshakes in a row likely enough among thousands of connections).
pub fn patient(mut tcp: TcpConfig) -> TcpConfig {
    tcp.syn_retries = tcp.syn_retries.max(15);
    tcp.synack_retries = tcp.synack_retries.max(15);
    tcp.data_retries = tcp.data_retries.max(20);
    tcp.orphan_retries = tcp.orphan_retries.max(20);
    tcp
}

/// Sizes the engine's tables for `connections` concurrent connections.
pub fn size_for(config: &mut StackConfig, connections: usize) {
    config.max_connections = 2 * connections + 1024;
    config.max_half_open = connections + 256;
    config.event_queue_capacity = 2 * connections + 2048;
}

pub struct BulkScenario {
    pub label: String,
    pub seed: u64,
    pub client_stacks: usize,
    pub connections_per_client: usize,
    /// Bytes each client connection sends (the server reads and checks them).
    pub client_to_server: u64,
    /// Bytes the server sends on each connection.
    pub server_to_client: u64,
    /// The server closes as soon as its data is queued and never reads
    /// (seed 003); otherwise it reads `client_to_server` bytes and EOF first.
    pub server_closes_at_once: bool,
    pub client_faults: PortFaults,
    pub server_faults: PortFaults,
    pub connect_interval: Duration,
    /// Applied to the server's and to every client's stack configuration.
    pub tune_server: fn(&mut StackConfig),
    pub tune_client: fn(&mut StackConfig),
    pub abort_after: Option<u64>,
    pub read_pause: Option<ReadPause>,
}

impl BulkScenario {
    pub fn new(label: &str, seed: u64) -> BulkScenario {
        BulkScenario {
            label: label.to_string(),
            seed,
            client_stacks: 1,
            connections_per_client: 1,
            client_to_server: 0,
            server_to_client: 0,
            server_closes_at_once: false,
            client_faults: PortFaults::default(),
            server_faults: PortFaults::default(),
            connect_interval: Duration::ZERO,
            tune_server: |_| {},
            tune_client: |_| {},
            abort_after: None,
            read_pause: None,
        }
    }

    pub fn total_connections(&self) -> usize {
        self.client_stacks * self.connections_per_client
    }

    pub fn build(&self) -> BulkWorld {
        let mut world = World::new(&self.label, self.seed);
        let total = self.total_connections();
        let mut server_config = host_config(SERVER_HOST, self.seed);
        size_for(&mut server_config, total);
        (self.tune_server)(&mut server_config);
        let listen = SocketAddrV4::new(host_ip(SERVER_HOST), SERVER_PORT);
        let server = world.add_stack(
            server_config,
            self.server_faults,
            BulkServer::new(BulkServerConfig {
                listen,
                backlog: total.max(128),
                consumer: ConsumerId(0),
                send_bytes: self.server_to_client,
                expect_bytes: (!self.server_closes_at_once).then_some(self.client_to_server),
            }),
        );
        let clients = (0..self.client_stacks)
            .map(|i| {
                let host = SERVER_HOST + 1 + i as u8;
                let mut config = host_config(host, self.seed);
                size_for(&mut config, self.connections_per_client);
                (self.tune_client)(&mut config);
                let app = BulkClient::new(BulkClientConfig {
                    send_bytes: self.client_to_server,
                    expect: Expect::ServerPattern(self.server_to_client),
                    connect_interval: self.connect_interval,
                    abort_after: self.abort_after,
                    read_pause: self.read_pause,
                    ..BulkClientConfig::new(listen, self.connections_per_client)
                });
                world.add_stack(config, self.client_faults, app)
            })
            .collect();
        BulkWorld {
            world,
            server,
            clients,
            total,
        }
    }
}

/// A built bulk scenario.
pub struct BulkWorld {
    pub world: World,
    pub server: NodeId,
    pub clients: Vec<NodeId>,
    pub total: usize,
}

impl BulkWorld {
    pub fn server_app(&self) -> &BulkServer {
        self.world.app(self.server)
    }
    pub fn client_apps(&self) -> impl Iterator<Item = &BulkClient> {
        self.clients
            .iter()
            .map(|&c| self.world.app::<BulkClient>(c))
    }

    /// Every client connection has completed, failed or been aborted, and
    /// the server has finished with every connection it accepted.
    pub fn finished(&self) -> bool {
        bulk_finished(&self.world, self.server, &self.clients, self.total)
    }

    /// Runs until [`BulkWorld::finished`] or `deadline`.
    pub fn run(&mut self, deadline: Instant) -> Result<Instant, RunError> {
        let (server, clients, total) = (self.server, self.clients.clone(), self.total);
        self.world
            .run_until(deadline, |w| bulk_finished(w, server, &clients, total))
    }

    /// Like [`BulkWorld::run`], calling `observe` before every step (to sample state).
    pub fn run_observing(
        &mut self,
        deadline: Instant,
        mut observe: impl FnMut(&World),
    ) -> Result<Instant, RunError> {
        let (server, clients, total) = (self.server, self.clients.clone(), self.total);
        self.world.run_until(deadline, |w| {
            observe(w);
            bulk_finished(w, server, &clients, total)
        })
    }

    /// Runs until neither side holds any connection (TIME-WAIT expired).
    pub fn run_until_all_freed(&mut self, deadline: Instant) -> Result<Instant, RunError> {
        let nodes: Vec<NodeId> = std::iter::once(self.server)
            .chain(self.clients.iter().copied())
            .collect();
        self.world.run_until(deadline, |w| {
            nodes.iter().all(|&n| w.stack(n).connection_count() == 0)
        })
    }

    /// Checks that every connection moved every byte and ended with FIN,
    /// and that nobody reported a failure. The error lists what went wrong.
    pub fn check_clean(&self) -> Result<(), String> {
        let mut problems = String::new();
        let server = self.server_app().tally();
        for f in server.failures.iter().take(10) {
            let _ = writeln!(problems, "  {f}");
        }
        let mut completed = 0;
        for client in self.client_apps() {
            completed += client.completed();
            for f in client.failures().into_iter().take(10) {
                let _ = writeln!(problems, "  {f}");
            }
            for o in client
                .outcomes()
                .iter()
                .filter(|o| o.completed_at.is_some())
            {
                if !o.eof {
                    let _ = writeln!(problems, "  {:?}: completed without EOF", o.local);
                }
            }
        }
        if completed != self.total || server.completed != self.total {
            let _ = writeln!(
                problems,
                "  {} of {} client connections and {} server connections completed",
                completed, self.total, server.completed
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("{problems}{}", self.world.report()))
        }
    }

    /// One paragraph for the test log: sizes, virtual time, steps, counters.
    pub fn summary(&self) -> String {
        let s = self.world.stack(self.server).stats();
        let finish = self
            .client_apps()
            .flat_map(|c| c.outcomes().iter().filter_map(|o| o.completed_at))
            .max();
        format!(
            "{}: {} connections, virtual end {:?} (last completion {:?}), {} steps; server: segs in {} out {}, \
             retransmits {} (fast {}, postponed {}, stale {}), timeouts {}, bad checksums {}, rst out {}",
            self.world.label(),
            self.total,
            self.world.now(),
            finish,
            self.world.steps(),
            s.tcp_segments_in,
            s.tcp_segments_out,
            s.tcp_retransmits,
            s.tcp_fast_retransmits,
            s.tcp_fast_retransmits_postponed,
            s.tcp_postponed_stale,
            s.tcp_timeouts,
            s.drop_bad_checksum,
            s.tcp_rst_out,
        )
    }
}

fn bulk_finished(world: &World, server: NodeId, clients: &[NodeId], total: usize) -> bool {
    let mut ended_early = 0;
    for &c in clients {
        let app = world.app::<BulkClient>(c);
        if !app.finished() {
            return false;
        }
        ended_early += app.failed() + app.aborted();
    }
    let s = world.app::<BulkServer>(server);
    s.open_connections() == 0 && s.tally().accepted + ended_early >= total
}

/// `SLUICE_SIM_SEED` overrides a test's seed (to explore, or to replay a
/// seed printed by a failure); otherwise `default`.
pub fn seed_from_env(default: u64) -> u64 {
    std::env::var("SLUICE_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// `SLUICE_SIM_SCALE=<percent>` scales the connection counts of the big
/// scenarios (e.g. 10 for a quick run on a slow machine); at least 1.
pub fn scaled(connections: usize) -> usize {
    let percent = std::env::var("SLUICE_SIM_SCALE")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(100);
    (connections * percent / 100).max(1)
}
