//! 1,000 concurrent connections, each moving 1 MiB both ways, every byte
//! checked, at 0, 1, 5, 10 and 20% random loss on the client cables (each
//! frame crosses exactly one lossy hop). One test per loss rate so they run
//! in parallel. `SLUICE_SIM_SCALE=<percent>` shrinks the connection count.

use sluice_integration::sim::scenario::{patient, scaled, seed_from_env, BulkScenario};
use sluice_integration::sim::{Direction, Faults, PortFaults};
use sluice_stack::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
const CLIENT_STACKS: usize = 4;

fn bulk_both_ways_at_loss(percent: u32) {
    let connections = scaled(1000);
    let seed = seed_from_env(0xb01c_0000 + u64::from(percent));
    let mut scenario = BulkScenario::new(&format!("bulk-loss-{percent}pct"), seed);
    scenario.client_stacks = CLIENT_STACKS.min(connections);
    scenario.connections_per_client = connections.div_ceil(scenario.client_stacks);
    scenario.client_to_server = MIB;
    scenario.server_to_client = MIB;
    let loss = f64::from(percent) / 100.0;
    scenario.client_faults = PortFaults::symmetric(Faults::lossy(loss, Duration::from_millis(1)));
    scenario.server_faults = PortFaults::symmetric(Faults::delay(Duration::from_millis(1)));
    // Spread the connects over 100 ms, as a load generator would.
    scenario.connect_interval = Duration::from_micros(100);
    fn tune(c: &mut sluice_stack::StackConfig) {
        c.tcp = patient(c.tcp);
        c.tcp.send_buffer = 128 * 1024;
        c.tcp.recv_buffer = 128 * 1024;
        c.tcp.time_wait = Duration::from_secs(5);
    }
    scenario.tune_server = tune;
    scenario.tune_client = tune;

    let wall = std::time::Instant::now();
    let mut bulk = scenario.build();
    // Virtual time is cheap; the deadline only catches livelocks. At 20% loss
    // each way retransmission timeouts back off to minutes, and the slowest
    // of a thousand connections can need well over an hour.
    let result = bulk.run(Instant::from_secs(8 * 3600));
    assert!(
        result.is_ok(),
        "seed {seed}: {}\n{}",
        result.unwrap_err(),
        bulk.world.report()
    );
    if let Err(problems) = bulk.check_clean() {
        panic!("seed {seed}: not every byte and FIN arrived:\n{problems}");
    }

    let server = bulk.world.stack(bulk.server).stats().clone();
    let lost: u64 = bulk
        .clients
        .iter()
        .map(|&c| {
            let sw = bulk.world.switch();
            sw.counters(c.0, Direction::Uplink).dropped_loss
                + sw.counters(c.0, Direction::Downlink).dropped_loss
        })
        .sum();
    if percent == 0 {
        assert_eq!(lost, 0);
        assert_eq!(
            server.tcp_timeouts,
            0,
            "no loss, yet the server timed out:\n{}",
            bulk.world.report()
        );
    } else {
        assert!(lost > 0, "the link dropped nothing at {percent}%");
        assert!(
            server.tcp_retransmits > 0,
            "losses were recovered without a retransmission?\n{}",
            bulk.world.report()
        );
    }
    println!(
        "{} | frames lost {lost} | wall {:?}",
        bulk.summary(),
        wall.elapsed()
    );
}

#[test]
fn bulk_both_ways_no_loss() {
    bulk_both_ways_at_loss(0);
}

#[test]
fn bulk_both_ways_1pct_loss() {
    bulk_both_ways_at_loss(1);
}

#[test]
fn bulk_both_ways_5pct_loss() {
    bulk_both_ways_at_loss(5);
}

#[test]
fn bulk_both_ways_10pct_loss() {
    bulk_both_ways_at_loss(10);
}

#[test]
fn bulk_both_ways_20pct_loss() {
    bulk_both_ways_at_loss(20);
}
