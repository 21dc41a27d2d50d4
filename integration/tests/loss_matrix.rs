//! CI regression under packet loss (issue 5): unmodified nginx (master and
//! two workers) and redis (persistence on), both under the preload on the
//! Sluice daemon, driven from the peer namespace by many concurrent kernel
//! clients, at 0%, 2% and 10% random loss in both directions, from the two
//! loss sources:
//!
//! * nft on the middle bridge (`scripts/netns-daemon.sh loss N`): one daemon
//!   and one nginx live through every round, so the rounds also show that
//!   the daemon neither dies, restarts nor grows its private memory;
//! * the daemon's own injector (`SLUICE_LOSS`, `SLUICE_LOSS_SEED`), which
//!   drops behind the engine's back on the device, a daemon per rate.
//!
//! Each round downloads 1 MiB files over keep-alive connections and, the
//! seed-003 scenario, over connections nginx closes right after writing the
//! response (`keepalive_timeout 0`): the tail segments and the FIN lost
//! after the application's close must still be retransmitted. redis serves
//! `redis-benchmark` with and without pipelining (every INCR counted once)
//! and values up to 1 MiB read back by hash. The round fails on any wrong or
//! missing byte, any failed or reset connection, any session left behind
//! once the clients are done.
//!
//! Needs root (namespaces, AF_XDP, TAP).

mod daemon_support;
mod preload_bench;
mod preload_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use daemon_support::*;
use preload_bench::nginx::*;
use preload_bench::redis::*;
use preload_bench::*;
use serde_json::Value;

/// nginx serves keep-alive connections here...
const KEEPALIVE_PORT: u16 = 8100;
/// ...and closes every connection right after its response here.
const CLOSING_PORT: u16 = 8101;
/// redis listens here.
const REDIS_PORT: u16 = 6390;
/// A fixed seed for the injector: a failure replays with the same losses.
const LOSS_SEED: &str = "2003";
/// Private memory the daemon may gain in the third pass of rounds over the
/// first two: allocator slack (a few hundred KiB seen). The third pass
/// opens about 800 connections, so a leak of 5 KiB per connection is over
/// the limit.
const RSS_GROWTH_LIMIT_KIB: u64 = 4 << 10;

/// nginx's configuration: master, two workers, both servers.
fn write_conf(dir: &Path, www: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    let conf = dir.join("nginx.conf");
    let (d, w) = (dir.display(), www.display());
    let text = format!(
        "daemon on;\nmaster_process on;\nworker_processes 2;\nerror_log {d}/error.log info;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 2048; }}\nhttp {{\n  log_format bypid '$pid $status';\n\
         access_log {d}/access.log bypid;\n\
         client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;\n\
         uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n\
         sendfile on; tcp_nopush on; tcp_nodelay on;\n\
         server {{ listen {KEEPALIVE_PORT}; root {w}; keepalive_timeout 60; }}\n\
         server {{ listen {CLOSING_PORT}; root {w}; keepalive_timeout 0; }}\n}}\n"
    );
    std::fs::write(&conf, text).unwrap();
    conf
}

/// nginx on a bench, with its files.
struct Site {
    dir: PathBuf,
    conf: PathBuf,
    big: String,
    small: String,
    _guard: NginxGuard,
}

impl Site {
    fn start(bench: &Bench) -> Site {
        let www = bench.tmp.0.join("www");
        std::fs::create_dir_all(&www).unwrap();
        let big = random_file(&www, "1m.bin", 1 << 20, 61);
        let small = random_file(&www, "16k.bin", 16 << 10, 62);
        let dir = bench.tmp.0.join("nginx");
        let conf = write_conf(&dir, &www);
        let guard = NginxGuard(dir.clone());
        nginx_cmd(bench, &dir, &conf, &[]);
        wait_http(bench, &format!("http://{SLUICE_IP}:{KEEPALIVE_PORT}/16k.bin"));
        wait_http(bench, &format!("http://{SLUICE_IP}:{CLOSING_PORT}/16k.bin"));
        Site { dir, conf, big, small, _guard: guard }
    }

    fn quit(self, bench: &Bench) {
        nginx_cmd(bench, &self.dir, &self.conf, &["-s", "quit"]);
        assert!(wait_until(Duration::from_secs(30), || nginx_family(&self.dir).is_empty()), "nginx left processes");
        let errors = std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
        assert!(!errors.contains("[alert]") && !errors.contains("[emerg]"), "nginx error log:\n{errors}");
    }
}

/// redis with persistence on, and the values it holds.
struct Store<'b> {
    redis: Redis<'b>,
    values: Values,
}

impl<'b> Store<'b> {
    fn start(bench: &'b Bench) -> Store<'b> {
        let dir = bench.tmp.0.join("redis");
        let conf = redis_conf(&dir, REDIS_PORT, &[]);
        let mut cmd = bench.run("redis-server");
        cmd.arg(conf);
        let redis = Redis::start(bench, cmd, SLUICE_IP, REDIS_PORT, &dir);
        let values = write_values(&redis, &bench.tmp.0);
        Store { redis, values }
    }

    /// Plain and pipelined benchmark runs, exact counts, values intact.
    fn round(&self) {
        serve(&self.redis, 20, 4_000, 1);
        serve(&self.redis, 20, 4_000, 16);
        check_values(&self.redis, &self.values);
    }

    fn shutdown(self) {
        let finished = self.redis.shutdown();
        assert!(!finished.killed && finished.status.success(), "redis SHUTDOWN: {finished:#?}");
    }
}

fn engine(stats: &Value) -> &Value {
    &stats["workers"][0]["engine"]
}

fn counter(stats: &Value, name: &str) -> u64 {
    engine(stats)[name].as_u64().unwrap_or(0)
}

/// The daemon's private (anonymous) resident memory, KiB: the heap, where a
/// leak would show; the shared segments and the UMEM are left out.
fn rss_anon_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the daemon is alive");
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("RssAnon in /proc/PID/status")
}

/// Connected (not listening) sessions the daemon still holds for apps.
fn open_sessions(bench: &Bench) -> Vec<Value> {
    let out = std::process::Command::new(sluice_binary())
        .args(["sessions", "--json", "--control-socket"])
        .arg(&bench.control)
        .output()
        .expect("run sluice sessions");
    let list: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    list["sessions"].as_array().cloned().unwrap_or_default().into_iter().filter(|s| s["state"] != "LISTEN").collect()
}

/// One round of load at the current loss: keep-alive and closing 1 MiB
/// downloads and many small ones, every byte checked; then every session
/// must be gone and no connection reset.
fn round(bench: &Bench, site: &Site, store: &Store, label: &str) -> Value {
    let before = stats(&bench.control).expect("stats before the round");
    store.round();
    let topo = &bench.topo;
    std::thread::scope(|scope| {
        let keepalive = scope.spawn(|| http_load_on(topo, KEEPALIVE_PORT, "/1m.bin", &site.big, 1 << 20, 40, 2));
        let closing = scope.spawn(|| http_load_on(topo, CLOSING_PORT, "/1m.bin", &site.big, 1 << 20, 40, 1));
        http_load_on(topo, KEEPALIVE_PORT, "/16k.bin", &site.small, 16 << 10, 300, 3);
        keepalive.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        closing.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
    });
    let left = || open_sessions(bench);
    assert!(wait_until(Duration::from_secs(60), || left().is_empty()), "{label}: sessions left behind: {:#?}", left());
    let after = stats(&bench.control).expect("stats after the round");
    let reset = counter(&after, "connections_reset") - counter(&before, "connections_reset");
    assert_eq!(reset, 0, "{label}: {reset} connections reset: {after:#}");
    for app in after["workers"][0]["apps"].as_array().cloned().unwrap_or_default() {
        assert_eq!(app["violations"], 0, "{label}: nginx was flagged: {app}");
    }
    println!(
        "{label}: retransmits {} (fast {}, timeouts {}), injected drops {}",
        counter(&after, "tcp_retransmits") - counter(&before, "tcp_retransmits"),
        counter(&after, "tcp_fast_retransmits") - counter(&before, "tcp_fast_retransmits"),
        counter(&after, "tcp_timeouts") - counter(&before, "tcp_timeouts"),
        after["workers"][0]["device_counters"]["injected_drops"].as_u64().unwrap_or(0)
    );
    after
}

/// nft loss: one daemon, one nginx and one redis through 0%, 2% and 10%,
/// then 2% and 10% twice more. The first two passes set the daemon's
/// memory high-water mark (loss makes out-of-order queues and
/// retransmission state, whose heap the allocator keeps; when the peak comes
/// depends on how many connections happen to recover at once); the third
/// must not climb past it, as a leak would, pass after pass.
#[test]
fn nginx_on_sluice_survives_0_2_and_10_percent_loss_on_the_wire() {
    let bench = Bench::with("lmn", "xdp", 0, &[]);
    let site = Site::start(&bench);
    let store = Store::start(&bench);
    let pid = bench.daemon_pid();
    let mut retransmits = 0;
    let mut high_water = 0;
    for (pass, loss) in [(1, 0u8), (1, 2), (1, 10), (2, 2), (2, 10), (3, 2), (3, 10)] {
        bench.topo.set_loss(loss);
        let after = round(&bench, &site, &store, &format!("pass {pass}, nft {loss}%"));
        let now = counter(&after, "tcp_retransmits");
        assert!(loss == 0 || now > retransmits, "{loss}% loss caused no retransmission");
        retransmits = now;
        let rss = rss_anon_kib(pid);
        println!("daemon RssAnon after pass {pass} at {loss}%: {rss} KiB");
        if pass < 3 {
            high_water = high_water.max(rss);
        } else {
            assert!(
                rss <= high_water + RSS_GROWTH_LIMIT_KIB,
                "the daemon's private memory grew from {high_water} KiB (first two passes) to {rss} KiB"
            );
        }
    }
    bench.topo.set_loss(0);
    assert_eq!(bench.daemon_pid(), pid, "the daemon was replaced");
    store.shutdown();
    site.quit(&bench);
    bench.finish();
}

/// The daemon's own injector, configured through its variables.
fn injected(prefix: &str, percent: &str) {
    let env = [("SLUICE_LOSS", percent), ("SLUICE_LOSS_SEED", LOSS_SEED)];
    let bench = Bench::with_env(prefix, "xdp", 0, &[], &env);
    let site = Site::start(&bench);
    let store = Store::start(&bench);
    let after = round(&bench, &site, &store, &format!("injected {percent}%"));
    let dropped = after["workers"][0]["device_counters"]["injected_drops"].as_u64().unwrap_or(0);
    assert!(dropped > 0, "the injector dropped nothing: {after:#}");
    assert!(counter(&after, "tcp_retransmits") > 0, "{percent}% injected loss caused no retransmission");
    store.shutdown();
    site.quit(&bench);
    bench.finish();
}

#[test]
fn nginx_on_sluice_survives_2_percent_injected_loss() {
    injected("lmi", "2");
}

#[test]
fn nginx_on_sluice_survives_10_percent_injected_loss() {
    injected("lmj", "10");
}
