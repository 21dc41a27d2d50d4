//! Seed 003 (VPP's crash on nginx downloads under heavy loss): many clients
//! download 1 MiB from a server that writes the whole response and closes at
//! once, with 20% loss and a small per-poll fast-retransmit budget, so fast
//! retransmits are postponed while connections are being closed. VPP freed
//! connections that still had postponed retransmits queued and crashed when
//! it reached them; Sluice must deliver every byte and the FIN, never touch
//! a freed connection, and free every connection in the end.

use sluice_integration::sim::scenario::{patient, scaled, seed_from_env, BulkScenario};
use sluice_integration::sim::{Faults, PortFaults};
use sluice_stack::time::{Duration, Instant};
use sluice_stack::StackConfig;

const MIB: u64 = 1 << 20;

fn seed003_scenario(label: &str, seed: u64) -> BulkScenario {
    let connections = scaled(256);
    let mut s = BulkScenario::new(label, seed);
    s.client_stacks = 2.min(connections);
    s.connections_per_client = connections.div_ceil(s.client_stacks);
    s.server_to_client = MIB;
    s.server_closes_at_once = true;
    s.client_faults = PortFaults::symmetric(Faults::lossy(0.2, Duration::from_millis(1)));
    s.server_faults = PortFaults::symmetric(Faults::delay(Duration::from_millis(1)));
    s.connect_interval = Duration::from_micros(200);
    fn server(c: &mut StackConfig) {
        c.tcp = patient(c.tcp);
        // The whole response fits: `close` follows the write immediately, like nginx.
        c.tcp.send_buffer = MIB as usize + 64 * 1024;
        c.tcp.time_wait = Duration::from_secs(10);
        c.fast_retransmit_budget = 4;
    }
    fn client(c: &mut StackConfig) {
        c.tcp = patient(c.tcp);
        c.tcp.time_wait = Duration::from_secs(10);
    }
    s.tune_server = server;
    s.tune_client = client;
    s
}

#[test]
fn seed003_every_client_gets_every_byte_and_the_fin_and_all_connections_are_freed() {
    let seed = seed_from_env(0x003_0f92);
    let wall = std::time::Instant::now();
    let mut bulk = seed003_scenario("seed003", seed).build();
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
    let stats = bulk.world.stack(bulk.server).stats();
    assert!(
        stats.tcp_fast_retransmits_postponed > 0,
        "seed {seed}: the fast-retransmit budget was never exhausted, the scenario did not exercise it\n{}",
        bulk.world.report()
    );
    let downloads_done = bulk.world.now();
    let freed = bulk.run_until_all_freed(downloads_done + Duration::from_secs(600));
    assert!(
        freed.is_ok(),
        "seed {seed}: connections left after TIME-WAIT: {}\n{}",
        freed.unwrap_err(),
        bulk.world.report()
    );
    assert_eq!(bulk.world.stack(bulk.server).connection_count(), 0);
    println!(
        "{} | all freed at {:?} | wall {:?}",
        bulk.summary(),
        bulk.world.now(),
        wall.elapsed()
    );
}

/// The crash itself: connections disappear (the client resets them halfway)
/// while the server holds postponed retransmissions and timers for them.
#[test]
fn seed003_connections_reset_while_retransmits_are_postponed_are_skipped_safely() {
    let seed = seed_from_env(0x003_a807);
    let mut scenario = seed003_scenario("seed003-abort", seed);
    scenario.abort_after = Some(MIB / 2);
    fn one_retransmit_per_cycle(c: &mut StackConfig) {
        c.tcp = patient(c.tcp);
        c.tcp.send_buffer = MIB as usize + 64 * 1024;
        c.tcp.time_wait = Duration::from_secs(10);
        c.fast_retransmit_budget = 1;
    }
    scenario.tune_server = one_retransmit_per_cycle;
    let mut bulk = scenario.build();
    // A dispatch cycle takes 20 us: a backlog of postponed retransmits drains
    // over milliseconds, long enough for resets to free their connections.
    bulk.world
        .set_dispatch_gap(bulk.server, Duration::from_micros(20));
    let result = bulk.run(Instant::from_secs(8 * 3600));
    assert!(
        result.is_ok(),
        "seed {seed}: {}\n{}",
        result.unwrap_err(),
        bulk.world.report()
    );
    for client in bulk.client_apps() {
        assert!(
            client.failures().is_empty(),
            "seed {seed}: {:?}\n{}",
            &client.failures()[..1],
            bulk.world.report()
        );
        for o in client.outcomes() {
            assert!(
                o.aborted_at.is_some() && o.received == MIB / 2,
                "seed {seed}: {o:?}"
            );
        }
    }
    let freed = bulk.run_until_all_freed(bulk.world.now() + Duration::from_secs(600));
    assert!(
        freed.is_ok(),
        "seed {seed}: connections left: {}\n{}",
        freed.unwrap_err(),
        bulk.world.report()
    );
    let s = bulk.world.stack(bulk.server).stats();
    assert!(
        s.tcp_fast_retransmits_postponed > 0,
        "seed {seed}: budget not exercised\n{}",
        bulk.world.report()
    );
    assert!(
        s.connections_reset > 0,
        "seed {seed}: the resets never reached the server\n{}",
        bulk.world.report()
    );
    println!(
        "{} | resets {} | stale postponed {} | stale timers {}",
        bulk.summary(),
        s.connections_reset,
        s.tcp_postponed_stale,
        s.tcp_timer_stale
    );
}
