//! redis-server under the preload on the Sluice daemon (issue 4): Debian's
//! redis with persistence on (RDB snapshots and the append-only file)
//! serves `redis-benchmark` with and without pipelining and `redis-cli`
//! from the kernel peer namespace.
//!
//! * Values of 1 B to 1 MiB written with `redis-cli -x` read back byte for
//!   byte; `INCR` counts exactly what `redis-benchmark` sent and its `LPUSH`es
//!   and `LPOP`s cancel out: no request lost or run twice.
//! * `BGSAVE` (five times) and `BGREWRITEAOF` while `redis-benchmark` runs:
//!   their forked children close the listener they inherited (and, as they
//!   exit, the clients' connections), the parent serves on and the clients
//!   see no error.
//! * Replication with a kernel redis in the peer namespace, both ways (the
//!   master's diskless sync is a forked child writing into a pipe).
//! * `SHUTDOWN` ends redis and its listener; a restart (with `io-threads 2`)
//!   loads what the children and the final save wrote and serves again.
//! * The same redis on the kernel, in the same topology and run, passes the
//!   same checks (the oracle) and gives the benchmark's reference numbers,
//!   printed next to Sluice's (not asserted).
//! * At 5% loss on the wire the same checks pass.
//!
//! Needs root and `redis-server`, `redis-tools` (scripts/install-deps.sh).

mod daemon_support;
mod preload_bench;
mod preload_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use daemon_support::*;
use preload_bench::redis::*;
use preload_bench::*;
use sluice_integration::netns::in_namespace;

/// The kernel's redis in the dut namespace answers at this address (on the
/// bridge that also carries the daemon's TAP; Sluice answers for SLUICE_IP).
const KERNEL_IP: &str = "10.79.0.3";
/// The kernel peer's address, and the port of its redis (a replica).
const PEER_IP: &str = "10.79.0.1";
const REPLICA_PORT: u16 = 6400;
/// `bgsaves` BGSAVEs then one BGREWRITEAOF, one after the other, while
/// `redis-benchmark` INCRs with `clients` connections: every fork's child
/// closes the listener it inherited (and, as it exits, the clients'
/// connections), the benchmark ends without an error and the counter is exact. Returns the
/// counter when the last child had finished (below `requests` if the load
/// outlasted the forks).
fn forks_under_load(redis: &Redis, clients: u32, requests: u32, pipeline: u32, bgsaves: u32) -> i64 {
    redis.cli(&["del", COUNTER]);
    let forks = redis.forks();
    let (c, n, p) = (clients.to_string(), requests.to_string(), pipeline.to_string());
    let args = ["-c", &c, "-n", &n, "-P", &p, "-t", "incr"];
    let load = redis.benchmark(&args);
    assert!(wait_until(READY, || counter(redis) > 0), "the load never got going");
    for _ in 0..bgsaves {
        assert_eq!(redis.cli(&["bgsave"]), "Background saving started");
        redis.wait_persistence_idle();
    }
    let reply = redis.cli(&["bgrewriteaof"]);
    assert!(reply.starts_with("Background append only file rewriting"), "BGREWRITEAOF: {reply}");
    redis.wait_persistence_idle();
    let at_last_fork = counter(redis);
    benchmark_result(load.wait(BENCHMARK_DEADLINE), &args);
    assert_eq!(counter(redis), i64::from(requests), "INCR lost or repeated requests across the forks");
    assert!(redis.forks() >= forks + u64::from(bgsaves + 1), "fewer forks than BGSAVEs and BGREWRITEAOFs");
    at_last_fork
}

/// Only redis itself is attached to the daemon (its BGSAVE and AOF rewrite
/// children are gone and detached), and the daemon saw no bad request.
fn only_redis_attached(bench: &Bench, pid: u32) {
    let mut apps = serde_json::Value::Null;
    let alone = wait_until(READY, || {
        apps = stats(&bench.control).expect("daemon stats")["workers"][0]["apps"].clone();
        apps.as_array().is_some_and(|a| a.len() == 1 && a[0]["pid"] == pid)
    });
    assert!(alone, "apps other than redis ({pid}) attached: {apps}");
    assert!(apps[0]["bad_requests"] == 0 && apps[0]["violations"] == 0, "{apps}");
}

/// redis ended: its port is refused and no process of the bench is left.
fn gone(bench: &Bench, port: u16) {
    assert!(refused(bench, port), "port {port} still accepts after redis ended");
    let mut left = Vec::new();
    assert!(
        wait_until(READY, || {
            left = processes_of(bench);
            left.is_empty()
        }),
        "processes left: {left:?}"
    );
}

/// Replication both ways with a kernel redis in the peer namespace. First
/// it replicates redis on Sluice: the full sync's snapshot is written by a
/// forked child into a pipe (diskless sync, redis 7's default) and streamed
/// by redis to the replica's connection, then writes follow as a stream.
/// Then redis on Sluice replicates the kernel one: its outgoing
/// non-blocking connect, and a snapshot loaded from its socket.
fn replicates_both_ways(bench: &Bench, redis: &Redis, values: &Values) {
    let link_up = |r: &Redis| r.info("replication").get("master_link_status").is_some_and(|s| s == "up");
    redis.cli(&["config", "set", "repl-diskless-sync-delay", "0"]);
    let dir = bench.tmp.0.join("replica");
    let master = format!("replicaof {SLUICE_IP} {}", redis.port);
    let conf = redis_conf(&dir, REPLICA_PORT, &[&master]);
    let mut cmd = bench.peer("redis-server");
    cmd.arg(&conf);
    let replica = Redis::start(bench, cmd, PEER_IP, REPLICA_PORT, &dir);
    assert!(wait_until(READY, || link_up(&replica)), "the replica never synced: {:?}", replica.info("replication"));
    check_values(&replica, values);
    assert_eq!(replica.cli_int(&["dbsize"]), redis.cli_int(&["dbsize"]));
    assert_eq!(counter(&replica), counter(redis));
    redis.cli(&["set", "streamed", "after the sync"]);
    assert!(wait_until(READY, || replica.cli(&["get", "streamed"]) == "after the sync"), "a write was not streamed");

    replica.cli(&["replicaof", "no", "one"]);
    replica.cli(&["set", "from:kernel", "the kernel's write"]);
    redis.cli(&["replicaof", PEER_IP, &REPLICA_PORT.to_string()]);
    assert!(wait_until(READY, || link_up(redis)), "redis on Sluice never synced: {:?}", redis.info("replication"));
    assert_eq!(redis.cli(&["get", "from:kernel"]), "the kernel's write");
    check_values(redis, values);
    redis.cli(&["replicaof", "no", "one"]);
    let finished = replica.shutdown();
    assert!(!finished.killed && finished.status.success(), "the replica's SHUTDOWN: {finished:#?}");
}

fn persisted(dir: &Path) {
    assert!(dir.join("dump.rdb").is_file(), "no dump.rdb in {}", dir.display());
    let aof = std::fs::read_dir(dir.join("appendonlydir")).expect("appendonlydir").flatten().count();
    assert!(aof >= 3, "appendonlydir should hold a manifest, a base and an incr file: {aof} files");
}

fn print_lines(what: &str, lines: &[BenchmarkLine]) {
    let cells: Vec<String> =
        lines.iter().map(|l| format!("{} {:.0} rps p50 {:.3} ms", l.test, l.rps, l.p50_ms)).collect();
    eprintln!("redis-benchmark {what}: {}", cells.join(", "));
}

fn sluice_redis<'b>(bench: &'b Bench, conf: &Path, dir: &Path, port: u16) -> Redis<'b> {
    let mut cmd = bench.run("redis-server");
    cmd.arg(conf);
    Redis::start(bench, cmd, SLUICE_IP, port, dir)
}

#[test]
fn redis_serves_benchmark_and_cli_through_bgsave_and_bgrewriteaof_under_the_preload() {
    const PORT: u16 = 6380;
    let bench = Bench::up("prd");
    let dir = bench.tmp.0.join("redis");
    let conf = redis_conf(&dir, PORT, &[]);
    let opened = bench.opened();
    let redis = sluice_redis(&bench, &conf, &dir, PORT);
    let values = write_values(&redis, &bench.tmp.0);
    check_values(&redis, &values);
    assert_eq!(redis.cli_int(&["dbsize"]), values.len() as i64);

    let plain = serve(&redis, 50, 20_000, 1);
    let pipelined = serve(&redis, 50, 20_000, 16);
    assert!(bench.opened() >= opened + 100, "redis's connections did not go through the daemon");

    let at_last_fork = forks_under_load(&redis, 50, 100_000, 1, 5);
    assert!(at_last_fork < 100_000, "the load ended before the forks did: nothing was shown");
    forks_under_load(&redis, 50, 300_000, 16, 1);
    assert_eq!(redis.cli(&["ping"]), "PONG");
    check_values(&redis, &values);
    persisted(&dir);
    replicates_both_ways(&bench, &redis, &values);
    only_redis_attached(&bench, redis.pid());

    let finished = redis.shutdown();
    assert!(!finished.killed && finished.status.success(), "redis SHUTDOWN: {finished:#?}");
    assert!(finished.stdout.contains("ready to exit, bye bye"), "{finished:#?}");
    gone(&bench, PORT);

    // A restart loads what the children and the final save wrote; with two
    // I/O threads writing replies (and reading requests) next to the main
    // thread.
    let conf = redis_conf(&dir, PORT, &["io-threads 2", "io-threads-do-reads yes"]);
    let redis = sluice_redis(&bench, &conf, &dir, PORT);
    check_values(&redis, &values);
    assert_eq!(counter(&redis), 300_000, "the counter did not survive the restart");
    let threaded = serve(&redis, 50, 5_000, 1);
    let writes = redis.info("stats").get("io_threaded_writes_processed").and_then(|v| v.parse::<u64>().ok());
    assert!(writes.is_some_and(|w| w > 0), "the I/O threads wrote no reply: {writes:?}");
    let finished = redis.stop(Duration::from_secs(20));
    stopped_by_us(&finished, "redis-server (io-threads)");
    gone(&bench, PORT);

    // The oracle and the reference: the same redis on the kernel of the
    // dut namespace, the same clients on the same wire.
    let added = Command::new("ip")
        .args(["-n", &bench.topo.dut_ns(), "addr", "add", &format!("{KERNEL_IP}/24"), "dev", "br1"])
        .status()
        .expect("run ip addr add");
    assert!(added.success(), "ip addr add {KERNEL_IP}");
    let kernel_dir = bench.tmp.0.join("kernel-redis");
    let conf = redis_conf(&kernel_dir, PORT, &[]);
    let mut cmd = in_namespace(&bench.topo.dut_ns(), "redis-server");
    cmd.arg(&conf);
    let kernel = Redis::start(&bench, cmd, KERNEL_IP, PORT, &kernel_dir);
    let values = write_values(&kernel, &bench.tmp.0);
    check_values(&kernel, &values);
    let kernel_plain = serve(&kernel, 50, 20_000, 1);
    let kernel_pipelined = serve(&kernel, 50, 20_000, 16);
    forks_under_load(&kernel, 50, 20_000, 1, 1);
    let finished = kernel.shutdown();
    assert!(!finished.killed && finished.status.success(), "kernel redis SHUTDOWN: {finished:#?}");

    print_lines("sluice -c 50", &plain);
    print_lines("kernel -c 50", &kernel_plain);
    print_lines("sluice -c 50 -P 16", &pipelined);
    print_lines("kernel -c 50 -P 16", &kernel_pipelined);
    print_lines("sluice -c 50 io-threads 2", &threaded);
    bench.finish();
}

#[test]
fn redis_serves_through_bgsave_at_5_percent_loss_under_the_preload() {
    const PORT: u16 = 6390;
    let bench = Bench::with("prl", "tap", 5, &[]);
    let dir = bench.tmp.0.join("redis");
    let conf = redis_conf(&dir, PORT, &[]);
    let redis = sluice_redis(&bench, &conf, &dir, PORT);
    let values = write_values(&redis, &bench.tmp.0);
    check_values(&redis, &values);
    serve(&redis, 10, 2_000, 1);
    serve(&redis, 10, 2_000, 16);
    forks_under_load(&redis, 10, 4_000, 1, 2);
    check_values(&redis, &values);
    persisted(&dir);
    only_redis_attached(&bench, redis.pid());
    let finished = redis.shutdown();
    assert!(!finished.killed && finished.status.success(), "redis SHUTDOWN: {finished:#?}");
    gone(&bench, PORT);
    bench.finish();
}
