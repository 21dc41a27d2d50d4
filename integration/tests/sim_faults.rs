//! Every fault at once: loss, duplication, reordering, bit corruption, delay
//! and jitter on the client cables, and a bandwidth-limited server downlink
//! with a small tail-drop queue (the shared bottleneck). Echo traffic, every
//! byte checked. Then determinism: the same seed gives the identical wire
//! trace (digest of every frame and its time), another seed does not.

use sluice_integration::sim::apps::{BulkClient, BulkClientConfig, EchoServer, Expect};
use sluice_integration::sim::scenario::{patient, seed_from_env, SERVER_HOST, SERVER_PORT};
use sluice_integration::sim::{
    host_config, host_ip, Direction, Faults, NodeId, PortFaults, Tap, WireEvent, WireEventKind,
    World,
};
use sluice_stack::time::{Duration, Instant};
use sluice_stack::{ConsumerId, Stats};

const CLIENT_STACKS: u8 = 3;
const CONNECTIONS_PER_CLIENT: usize = 8;
const BYTES: u64 = 512 * 1024;

/// Counts corrupted frames delivered to each port.
#[derive(Default)]
struct CorruptionCount(Vec<u64>);

impl Tap for CorruptionCount {
    fn record(&mut self, e: &WireEvent<'_>) {
        if let WireEventKind::Delivered {
            port,
            corrupted: true,
        } = e.kind
        {
            if self.0.len() <= port {
                self.0.resize(port + 1, 0);
            }
            self.0[port] += 1;
        }
    }
}

struct Outcome {
    digest: u64,
    end: Instant,
    server_stats: Stats,
    corrupted_to_server: u64,
}

fn hostile() -> Faults {
    Faults {
        drop: 0.01,
        duplicate: 0.02,
        reorder: 0.05,
        reorder_delay: Duration::from_millis(5),
        delay: Duration::from_millis(2),
        jitter: Duration::from_micros(300),
        corrupt: 0.01,
        ..Faults::default()
    }
}

fn echo_through_every_fault(seed: u64) -> Outcome {
    let mut world = World::new("all-faults", seed);
    let digest = world.enable_digest();
    let corruption = world.switch_mut().add_tap(CorruptionCount::default());
    // 100 Mbit/s into the server with 64 KiB of buffer: 24 connections'
    // slow starts overflow it, so the queue tail-drops.
    let bottleneck = Faults {
        bandwidth: Some(12_500_000),
        queue_limit: Some(64 * 1024),
        delay: Duration::from_micros(100),
        ..Faults::default()
    };
    let mut server_config = host_config(SERVER_HOST, seed);
    server_config.tcp = patient(server_config.tcp);
    let listen = core::net::SocketAddrV4::new(host_ip(SERVER_HOST), SERVER_PORT);
    let server = world.add_stack(
        server_config,
        PortFaults {
            uplink: Faults::default(),
            downlink: bottleneck,
        },
        EchoServer::new(listen, ConsumerId(0)),
    );
    let clients: Vec<NodeId> = (0..CLIENT_STACKS)
        .map(|i| {
            let mut config = host_config(SERVER_HOST + 1 + i, seed);
            config.tcp = patient(config.tcp);
            let app = BulkClient::new(BulkClientConfig {
                send_bytes: BYTES,
                expect: Expect::Echo,
                connect_interval: Duration::from_millis(1),
                ..BulkClientConfig::new(listen, CONNECTIONS_PER_CLIENT)
            });
            world.add_stack(config, PortFaults::symmetric(hostile()), app)
        })
        .collect();

    let result = world.run_until(Instant::from_secs(3600), |w| {
        clients.iter().all(|&c| w.app::<BulkClient>(c).finished())
    });
    assert!(
        result.is_ok(),
        "seed {seed}: {}\n{}",
        result.unwrap_err(),
        world.report()
    );
    for &c in &clients {
        let app = world.app::<BulkClient>(c);
        assert_eq!(
            app.completed(),
            CONNECTIONS_PER_CLIENT,
            "seed {seed}: {:?}\n{}",
            app.failures(),
            world.report()
        );
        assert!(app.outcomes().iter().all(|o| o.eof && o.received == BYTES));
    }
    let echo = world.app::<EchoServer>(server).tally();
    assert!(echo.failures.is_empty(), "seed {seed}: {:?}", echo.failures);

    // Every fault really happened.
    let sw = world.switch();
    let client_pipes = || {
        clients.iter().flat_map(|&c| {
            [
                sw.counters(c.0, Direction::Uplink),
                sw.counters(c.0, Direction::Downlink),
            ]
        })
    };
    assert!(client_pipes().map(|p| p.dropped_loss).sum::<u64>() > 0);
    assert!(client_pipes().map(|p| p.duplicated).sum::<u64>() > 0);
    assert!(client_pipes().map(|p| p.reordered).sum::<u64>() > 0);
    assert!(client_pipes().map(|p| p.corrupted).sum::<u64>() > 0);
    assert!(
        sw.counters(server.0, Direction::Downlink).dropped_queue > 0,
        "seed {seed}: the bottleneck never overflowed"
    );

    // Corrupted frames reached the server and were all refused at the IPv4/TCP
    // checksum (or as malformed): none of them got through to the echo, whose
    // bytes were all checked above.
    let corrupted_to_server = world
        .switch()
        .tap::<CorruptionCount>(corruption)
        .and_then(|c| c.0.get(server.0).copied())
        .unwrap_or(0);
    let stats = world.stack(server).stats().clone();
    let refused = stats.drop_bad_checksum
        + stats.drop_malformed_ipv4
        + stats.drop_malformed_tcp
        + stats.drop_not_for_us
        + stats.drop_unsupported;
    assert!(
        corrupted_to_server > 0,
        "seed {seed}: no corrupted frame reached the server"
    );
    assert!(
        stats.drop_bad_checksum > 0,
        "seed {seed}: corrupted frames passed the checksums\n{}",
        world.report()
    );
    assert!(
        refused >= corrupted_to_server,
        "seed {seed}: {corrupted_to_server} corrupted frames in, only {refused} refused\n{}",
        world.report()
    );

    Outcome {
        digest: world.digest(digest),
        end: world.now(),
        server_stats: stats,
        corrupted_to_server,
    }
}

#[test]
fn echo_survives_every_fault_at_once() {
    let seed = seed_from_env(0xfa17);
    let wall = std::time::Instant::now();
    let o = echo_through_every_fault(seed);
    println!(
        "all-faults: done at {:?}, {} corrupted frames refused by the server, retransmits {}, wall {:?}",
        o.end,
        o.corrupted_to_server,
        o.server_stats.tcp_retransmits,
        wall.elapsed()
    );
}

#[test]
fn same_seed_same_trace_other_seed_other_trace() {
    let seed = seed_from_env(0xde7e);
    let a = echo_through_every_fault(seed);
    let b = echo_through_every_fault(seed);
    assert_eq!(
        a.digest, b.digest,
        "seed {seed}: two runs of one seed put different frames on the wire"
    );
    assert_eq!(a.end, b.end);
    assert_eq!(a.server_stats, b.server_stats);
    let c = echo_through_every_fault(seed + 1);
    assert_ne!(a.digest, c.digest, "the digest does not depend on the run");
}

/// The client's first ARP exchanges all fail (its downlink is dead for the
/// first 5 s, so every reply is lost), then the link heals. Connections
/// opened meanwhile must keep retrying — SYN retransmission re-triggers
/// resolution — and complete; none may be left without a timer.
#[test]
fn connections_opened_while_arp_fails_complete_once_the_link_heals() {
    use sluice_integration::sim::scenario::BulkScenario;

    let seed = seed_from_env(0xa4b);
    let mut scenario = BulkScenario::new("arp-heals", seed);
    scenario.connections_per_client = 20;
    scenario.client_to_server = 64 * 1024;
    scenario.server_to_client = 64 * 1024;
    let dead_downlink = PortFaults {
        uplink: Faults::default(),
        downlink: Faults::lossy(1.0, Duration::ZERO),
    };
    scenario.client_faults = dead_downlink;
    let mut bulk = scenario.build();
    let client = bulk.clients[0];
    if let Err(e) = bulk.world.run_for(Duration::from_secs(5)) {
        panic!("seed {seed}: {e}\n{}", bulk.world.report());
    }
    let replies_lost = bulk
        .world
        .switch()
        .counters(client.0, Direction::Downlink)
        .dropped_loss;
    let connected = bulk
        .client_apps()
        .flat_map(|c| c.outcomes())
        .filter(|o| o.connected_at.is_some())
        .count();
    assert!(
        replies_lost > 0 && connected == 0,
        "seed {seed}: the dead downlink should have kept every connection from opening"
    );
    bulk.world
        .switch_mut()
        .set_faults(client.0, PortFaults::default());

    let result = bulk.run(Instant::from_secs(600));
    assert!(
        result.is_ok(),
        "seed {seed}: {}\n{}",
        result.unwrap_err(),
        bulk.world.report()
    );
    if let Err(problems) = bulk.check_clean() {
        panic!("seed {seed}: {problems}");
    }
    println!(
        "arp-heals: {replies_lost} frames lost before healing | {}",
        bulk.summary()
    );
}
