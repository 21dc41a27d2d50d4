//! A SYN flood from spoofed, off-link sources (through the gateway) while ten
//! legitimate connections open during the flood and move data both ways.
//! The server must answer with SYN cookies once its half-open table is full,
//! keep its connection count bounded, and let the real connections complete.

use core::net::{Ipv4Addr, SocketAddrV4};

use sluice_integration::sim::apps::{
    BulkClient, BulkClientConfig, BulkServer, BulkServerConfig, Expect, SynFlood, SynFloodConfig,
};
use sluice_integration::sim::scenario::{seed_from_env, SERVER_HOST, SERVER_PORT};
use sluice_integration::sim::{host_config, host_ip, host_mac, Faults, PortFaults, World};
use sluice_stack::time::{Duration, Instant};
use sluice_stack::ConsumerId;

const GATEWAY_HOST: u8 = 254;
const LEGIT_CONNECTIONS: usize = 10;
const BYTES: u64 = 256 * 1024;
const MAX_HALF_OPEN: usize = 128;
const MAX_CONNECTIONS: usize = 1024;

#[test]
fn syn_flood_is_answered_with_cookies_and_real_connections_complete() {
    let seed = seed_from_env(0x005f_100d);
    let mut world = World::new("synflood", seed);
    let wire = PortFaults::symmetric(Faults::delay(Duration::from_micros(500)));

    let mut server_config = host_config(SERVER_HOST, seed);
    server_config.gateway = Some(host_ip(GATEWAY_HOST));
    server_config.max_half_open = MAX_HALF_OPEN;
    server_config.max_connections = MAX_CONNECTIONS;
    let listen = SocketAddrV4::new(host_ip(SERVER_HOST), SERVER_PORT);
    let server = world.add_stack(
        server_config,
        wire,
        BulkServer::new(BulkServerConfig {
            listen,
            backlog: 128,
            consumer: ConsumerId(0),
            send_bytes: BYTES,
            expect_bytes: Some(BYTES),
        }),
    );
    let flood_stop = Instant::from_secs(3);
    let flooder = world.add_raw(
        wire,
        SynFlood::new(SynFloodConfig {
            mac: host_mac(GATEWAY_HOST),
            ip: host_ip(GATEWAY_HOST),
            victim_mac: host_mac(SERVER_HOST),
            victim_ip: host_ip(SERVER_HOST),
            victim_port: SERVER_PORT,
            spoof_base: Ipv4Addr::new(198, 18, 0, 0),
            rate: 50_000,
            start: Instant::ZERO,
            stop: flood_stop,
            seed,
        }),
    );
    // The legitimate client joins 200 ms into the flood, when the half-open
    // table has long been full, and opens a connection every 50 ms.
    if let Err(e) = world.run_for(Duration::from_millis(200)) {
        panic!("seed {seed}: {e}\n{}", world.report());
    }
    assert!(
        world.stack(server).stats().syn_cookies_sent > 0,
        "seed {seed}: no cookies yet\n{}",
        world.report()
    );
    let client = world.add_stack(
        host_config(2, seed),
        wire,
        BulkClient::new(BulkClientConfig {
            send_bytes: BYTES,
            expect: Expect::ServerPattern(BYTES),
            connect_interval: Duration::from_millis(50),
            ..BulkClientConfig::new(listen, LEGIT_CONNECTIONS)
        }),
    );

    let mut peak_connections = 0;
    let result = world.run_until(Instant::from_secs(120), |w| {
        peak_connections = peak_connections.max(w.stack(server).connection_count());
        w.app::<BulkClient>(client).finished() && w.now() >= flood_stop
    });
    assert!(
        result.is_ok(),
        "seed {seed}: {}\n{}",
        result.unwrap_err(),
        world.report()
    );

    let legit = world.app::<BulkClient>(client);
    assert_eq!(
        legit.completed(),
        LEGIT_CONNECTIONS,
        "seed {seed}: {:?}\n{}",
        legit.failures(),
        world.report()
    );
    let served = world.app::<BulkServer>(server).tally();
    assert!(
        served.failures.is_empty(),
        "seed {seed}: {:?}",
        served.failures
    );
    assert_eq!(served.completed, LEGIT_CONNECTIONS);

    let stats = world.stack(server).stats();
    let flood = world.raw::<SynFlood>(flooder).tally();
    assert!(
        flood.syns_sent >= 140_000,
        "the flood was weaker than intended: {flood:?}"
    );
    assert!(
        stats.syn_cookies_sent > 0,
        "seed {seed}: no SYN cookies under a flood\n{}",
        world.report()
    );
    assert!(
        flood.syn_acks_seen > 0,
        "cookie SYN-ACKs must go out through the gateway: {flood:?}"
    );
    // Half-open entries, the legitimate connections and their TIME-WAITs at most.
    let bound = MAX_HALF_OPEN + 2 * LEGIT_CONNECTIONS + 8;
    assert!(
        peak_connections <= bound,
        "seed {seed}: {peak_connections} connections at the peak, bound {bound}\n{}",
        world.report()
    );
    println!(
        "synflood: {} SYNs, {} cookie SYN-ACKs sent ({} seen at the gateway), peak connections {peak_connections}, \
         half-open dropped {}, {} steps, legit done by {:?}",
        flood.syns_sent,
        stats.syn_cookies_sent,
        flood.syn_acks_seen,
        stats.half_open_dropped,
        world.steps(),
        legit.outcomes().iter().filter_map(|o| o.completed_at).max()
    );
}
