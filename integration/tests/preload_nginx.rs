//! nginx (Debian's package, `master_process on; worker_processes 2; daemon
//! on;`, `sendfile on`, `tcp_nopush on`, `tcp_nodelay on`, keep-alive) under
//! the preload on the Sluice daemon, served to real clients in the peer
//! namespace (issue 4):
//!
//! * the load client and `curl`: small and 1 MiB files checked by hash,
//!   `nginx -s reload` under load, `nginx -s quit`;
//! * `wrk` (1,000 keep-alive connections) and `ab` (5,000 connections, one
//!   request each): no socket error, no failed or non-2xx request, every
//!   worker a share; `ab` across a reload; `quit` with downloads in flight,
//!   which finish intact, and no session left behind; the same `wrk` against
//!   the same nginx on the kernel in the daemon's namespace, for comparison;
//! * `proxy_pass` to an upstream server on Sluice, by the stack's own
//!   address (keep-alive upstream) and by 127.0.0.1 (`--loopback on`): the
//!   upstream connections are cut-through sessions, 1 MiB bodies arrive
//!   intact;
//! * the same nginx at 5% loss: many connections and 1 MiB downloads intact.
//!
//! Same bench as `preload_fork.rs` (daemon on TAP in its namespace, nginx
//! under `sluice run`, kernel peers), with its own namespace prefixes. Needs
//! root.

mod daemon_support;
mod preload_bench;
mod preload_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use daemon_support::*;
use preload_bench::http_tools::*;
use preload_bench::nginx::*;
use preload_bench::*;
use sluice_integration::netns::{in_namespace, Process};

/// The kernel's address for the comparison nginx in the daemon's namespace
/// (on the bridge that joins the daemon's TAP to the wire).
const KERNEL_IP: &str = "10.79.0.3";

/// A directory of files to serve: their names and SHA-256s.
struct Site {
    www: PathBuf,
    small: String,
    big: String,
}

fn site(bench: &Bench) -> Site {
    let www = bench.tmp.0.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let big = random_file(&www, "1m.bin", 1 << 20, 41);
    let small = random_file(&www, "16k.bin", 16 << 10, 42);
    Site { www, small, big }
}

/// nginx under the preload with `extra` in its `http` block, serving `www`
/// on `port`; returns once it answers, with its directory, configuration and
/// guard.
fn start_nginx(bench: &Bench, www: &Path, port: u16, extra: &str, env: &[(&str, &str)]) -> Nginx {
    let dir = bench.tmp.0.join("nginx");
    let conf = nginx_conf_with(&dir, www, port, extra);
    let nginx = Nginx {
        guard: NginxGuard(dir.clone()),
        dir,
        conf,
        env: env.iter().map(|&(k, v)| (k.into(), v.into())).collect(),
    };
    nginx.cmd(bench, &[]);
    wait_http(bench, &format!("http://{SLUICE_IP}:{port}/16k.bin"));
    let family = nginx_family(&nginx.dir);
    assert_eq!(family.len(), 3, "a master and two workers expected: {family:?}");
    nginx
}

struct Nginx {
    dir: PathBuf,
    conf: PathBuf,
    env: Vec<(String, String)>,
    guard: NginxGuard,
}

impl Nginx {
    fn cmd(&self, bench: &Bench, args: &[&str]) {
        let mut cmd = bench.run("nginx");
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        nginx_cmd_in(cmd, &self.dir, &self.conf, args);
    }

    /// `nginx -s quit`: every process leaves, no session is left in the
    /// daemon, the port refuses, the error log has no alert.
    fn quit(self, bench: &Bench, port: u16) {
        self.cmd(bench, &["-s", "quit"]);
        assert!(
            wait_until(Duration::from_secs(30), || nginx_family(&self.dir).is_empty()),
            "nginx left processes after quit: {:?}",
            nginx_family(&self.dir)
        );
        assert!(
            wait_until(READY, || bench.sessions().is_empty()),
            "sessions stranded after quit: {:#?}",
            bench.sessions()
        );
        assert!(refused(bench, port), "port {port} still accepts after nginx quit");
        let errors = std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
        assert!(!errors.contains("[alert]") && !errors.contains("[emerg]"), "nginx error log:\n{errors}");
        drop(self.guard);
    }
}

/// Every worker served a share of the requests in the access log.
fn assert_every_worker_served(dir: &Path) -> Vec<u32> {
    let by_pid = access_by_pid(dir);
    assert!(by_pid.len() == 2 && by_pid.values().all(|&n| n > 0), "both workers must serve a share: {by_pid:?}");
    by_pid.keys().copied().collect()
}

fn access_lines(dir: &Path) -> usize {
    access_by_pid(dir).values().sum()
}

/// Local port of a `sluice sessions` row ("10.79.0.2:8090").
fn port_of(address: &serde_json::Value) -> Option<u16> {
    address.as_str()?.rsplit_once(':')?.1.parse().ok()
}

#[test]
fn nginx_master_and_workers_serve_reload_and_quit_under_the_preload() {
    let bench = Bench::up("pnx");
    let Site { www, small, big } = site(&bench);
    let dir = bench.tmp.0.join("nginx");
    let conf = nginx_conf(&dir, &www, 8090);
    let guard = NginxGuard(dir.clone());

    // `daemon on`: the started process forks the master and exits; the
    // master forks two workers, which inherit the listener twice over.
    nginx_cmd(&bench, &dir, &conf, &[]);
    wait_http(&bench, &format!("http://{SLUICE_IP}:8090/16k.bin"));
    let family = nginx_family(&dir);
    assert_eq!(family.len(), 3, "a master and two workers expected: {family:?}");
    let before = bench.opened();
    for _ in 0..3 {
        let got = curl_sha(&bench, &format!("http://{SLUICE_IP}:8090/1m.bin"));
        assert_eq!(got.as_deref(), Some(big.as_str()), "nginx /1m.bin");
    }
    http_load(&bench, 8090, "/1m.bin", &big, 1 << 20, 20, 2);
    http_load(&bench, 8090, "/16k.bin", &small, 16 << 10, 200, 3);
    assert!(bench.opened() >= before + 223, "nginx's connections did not go through the daemon");
    let old_workers = assert_every_worker_served(&dir);

    // Reload under load: the new workers inherit the listener from the
    // master and join its group; the old ones finish what they accepted.
    // One request per connection: an idle keep-alive connection is closed by
    // a gracefully exiting worker also on the kernel (nginx's
    // `ngx_close_idle_connections`), which a client without retries counts
    // as failed.
    let served_before = access_lines(&dir);
    std::thread::scope(|scope| {
        let load = scope.spawn(|| {
            (0..3)
                .map(|_| load_client(&bench.topo, &http_args(8090, "/16k.bin", &small, 16 << 10, 400, 1)))
                .collect::<Vec<_>>()
        });
        assert!(
            wait_until(READY, || access_lines(&dir) >= served_before + 100),
            "the load before the reload never got going"
        );
        nginx_cmd(&bench, &dir, &conf, &["-s", "reload"]);
        for (finished, result) in load.join().expect("load thread") {
            assert!(
                !finished.killed && finished.status.success() && result["ok"] == 400,
                "load across the reload: {result}\n{}\n{}",
                finished.stdout,
                finished.stderr
            );
        }
    });
    // The new generation serves.
    assert!(
        wait_until(READY, || nginx_family(&dir).iter().all(|p| !old_workers.contains(p))),
        "the old workers never left: {:?}",
        nginx_family(&dir)
    );
    http_load(&bench, 8090, "/1m.bin", &big, 1 << 20, 10, 2);
    let new_pids: Vec<u32> = access_by_pid(&dir).keys().copied().filter(|p| !old_workers.contains(p)).collect();
    assert!(!new_pids.is_empty(), "no request served by the new workers");

    nginx_cmd(&bench, &dir, &conf, &["-s", "quit"]);
    assert!(wait_until(Duration::from_secs(30), || nginx_family(&dir).is_empty()), "nginx left processes after quit");
    assert!(refused(&bench, 8090), "port 8090 still accepts after nginx quit");
    let errors = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
    assert!(!errors.contains("[alert]") && !errors.contains("[emerg]"), "nginx error log:\n{errors}");
    drop(guard);
    bench.finish();
}

/// `curl --limit-rate` downloads of `url` (1 MiB) from the peer, `count` at
/// once: 8 s each, so all of them are in flight together for seconds even
/// on a loaded machine. Prints one SHA-256 (or "failed") per download.
fn slow_downloads(bench: &Bench, url: &str, count: u32) -> Process {
    let mut cmd = bench.peer("bash");
    cmd.arg("-c").arg(format!(
        "for i in $(seq {count}); do (set -o pipefail; curl -sSf --max-time 60 --limit-rate 128k {url} | sha256sum \
         || echo failed) & done; wait"
    ));
    Process::spawn(cmd).expect("spawn curl downloads")
}

/// The same `wrk` run against the same nginx on the kernel, in the daemon's
/// namespace on [`KERNEL_IP`] (the wire and the peer are the same; only the
/// TAP device and Sluice are left out).
fn kernel_wrk(bench: &Bench, www: &Path, connections: u32) -> Wrk {
    let dut = bench.topo.dut_ns();
    let added = std::process::Command::new("ip")
        .args(["-n", &dut, "addr", "add", &format!("{KERNEL_IP}/24"), "dev", "br1"])
        .status()
        .expect("run ip addr add");
    assert!(added.success(), "ip addr add {KERNEL_IP} in {dut}");
    let dir = bench.tmp.0.join("nginx-kernel");
    let conf = nginx_conf(&dir, www, 8090);
    let guard = NginxGuard(dir.clone());
    nginx_cmd_in(in_namespace(&dut, "nginx"), &dir, &conf, &[]);
    let url = format!("http://{KERNEL_IP}:8090/16k.bin");
    wait_http(bench, &url);
    // Only for comparison: the kernel's errors, if any, are printed, not judged.
    let report = wrk(bench, &url, 2, connections, 5);
    assert!(report.requests > 0, "wrk against nginx on the kernel: {}", report.report);
    nginx_cmd_in(in_namespace(&dut, "nginx"), &dir, &conf, &["-s", "quit"]);
    assert!(wait_until(Duration::from_secs(30), || nginx_family(&dir).is_empty()), "the kernel's nginx stayed");
    drop(guard);
    report
}

/// wrk and ab: thousands of connections, every one answered, every worker
/// a share; ab across a reload; quit with downloads in flight.
#[test]
fn nginx_serves_wrk_and_ab_through_reload_and_quit_under_the_preload() {
    let bench = Bench::up("pnw");
    let site = site(&bench);
    let nginx = start_nginx(&bench, &site.www, 8090, "", &[]);
    let small_url = format!("http://{SLUICE_IP}:8090/16k.bin");
    let big_url = format!("http://{SLUICE_IP}:8090/1m.bin");
    for url in [&small_url, &big_url] {
        let want = if url == &small_url { &site.small } else { &site.big };
        assert_eq!(curl_sha(&bench, url).as_ref(), Some(want), "curl {url}");
    }
    http_load(&bench, 8090, "/1m.bin", &site.big, 1 << 20, 10, 2);

    let before = bench.opened();
    let ab_5000 = ab(&bench, &small_url, 5000, 200);
    assert!(bench.opened() >= before + 5000, "ab's connections did not go through the daemon");
    let sluice = wrk(&bench, &small_url, 2, 1000, 5);
    assert_clean_wrk(&sluice, "wrk -c 1000 against nginx on Sluice");
    let workers = assert_every_worker_served(&nginx.dir);
    eprintln!("access log by worker after ab and wrk: {:?}", access_by_pid(&nginx.dir));
    let kernel = kernel_wrk(&bench, &site.www, 1000);
    eprintln!(
        "nginx, wrk -t 2 -c 1000 -d 5s /16k.bin: Sluice {:.0} req/s p50 {:.2} ms p99 {:.2} ms; \
         kernel {:.0} req/s p50 {:.2} ms p99 {:.2} ms ({} socket errors); \
         ab -n 5000 -c 200 on Sluice {:.0} req/s p50 {} ms p99 {} ms",
        sluice.requests_per_sec,
        sluice.p50_ms,
        sluice.p99_ms,
        kernel.requests_per_sec,
        kernel.p50_ms,
        kernel.p99_ms,
        kernel.socket_errors,
        ab_5000.requests_per_sec,
        ab_5000.p50_ms,
        ab_5000.p99_ms
    );

    // ab across a reload: one request per connection (see the load-client
    // reload above for why not keep-alive).
    let served_before = access_lines(&nginx.dir);
    let load = ab_spawn(&bench, &small_url, 4000, 50);
    assert!(
        wait_until(READY, || access_lines(&nginx.dir) >= served_before + 500),
        "ab's load never got going before the reload"
    );
    nginx.cmd(&bench, &["-s", "reload"]);
    let finished = load.wait(STEP);
    let across = ab_report(&finished).unwrap_or_else(|| panic!("ab across the reload: no report\n{finished:#?}"));
    assert_clean_ab(&across, 4000, "ab across the reload");
    assert!(
        wait_until(READY, || nginx_family(&nginx.dir).iter().all(|p| !workers.contains(p))),
        "the old workers never left: {:?}",
        nginx_family(&nginx.dir)
    );
    let after_reload = wrk(&bench, &small_url, 2, 200, 2);
    assert_clean_wrk(&after_reload, "wrk after the reload");

    // Quit with 1 MiB downloads in flight: nginx's workers finish them
    // before they leave (a graceful shutdown), and nothing is stranded.
    let downloads = slow_downloads(&bench, &big_url, 20);
    let in_flight = || {
        bench.sessions().iter().filter(|s| s["state"] == "ESTABLISHED" && port_of(&s["local"]) == Some(8090)).count()
    };
    if !wait_until(READY, || in_flight() >= 20) {
        let sessions = bench.sessions();
        panic!("the downloads never were in flight: {sessions:#?}\n{:#?}", downloads.terminate(Duration::from_secs(5)));
    }
    nginx.quit(&bench, 8090);
    let finished = downloads.wait(Duration::from_secs(90));
    let hashes: Vec<&str> = finished.stdout.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(
        !finished.killed && hashes.len() == 20 && hashes.iter().all(|h| *h == site.big),
        "downloads across the quit: {finished:#?}"
    );
    bench.finish();
}

/// The upstream side of the proxy test: a second server on Sluice, whose
/// log tells who connected and how many requests each connection carried.
const PROXY_CONF: &str = "  log_format upstream '$remote_addr $connection $connection_requests $status';\n\
  upstream by_address { server 10.79.0.2:8091; keepalive 16; }\n\
  server { listen 8092;\n\
    location /addr/ { proxy_pass http://by_address/; proxy_http_version 1.1; proxy_set_header Connection \"\"; }\n\
    location /lo/ { proxy_pass http://127.0.0.1:8091/; }\n\
  }\n";

/// `proxy_pass` from nginx to an upstream nginx server on Sluice, by the
/// stack's own address and by 127.0.0.1: cut-through sessions that never
/// cross the engine, bodies intact, upstream connections kept alive.
#[test]
fn nginx_proxy_pass_to_an_upstream_on_sluice_is_cut_through() {
    let bench = Bench::with("pnp", "tap", 0, &["--loopback", "on"]);
    let site = site(&bench);
    let dir = bench.tmp.0.join("nginx");
    let upstream_log = dir.join("upstream.log");
    let extra = format!(
        "{PROXY_CONF}  server {{ listen 8091; root {}; access_log {} upstream; }}\n",
        site.www.display(),
        upstream_log.display()
    );
    let nginx = start_nginx(&bench, &site.www, 8090, &extra, &[("SLUICE_LOOPBACK", "on")]);
    for via in ["addr", "lo"] {
        for (file, sha) in [("16k.bin", &site.small), ("1m.bin", &site.big)] {
            let url = format!("http://{SLUICE_IP}:8092/{via}/{file}");
            assert_eq!(curl_sha(&bench, &url).as_ref(), Some(sha), "curl {url}");
        }
    }
    // Only the clients' connections are engine connections: the upstream
    // ones are cut-through pairs.
    for via in ["addr", "lo"] {
        let before = bench.opened();
        http_load(&bench, 8092, &format!("/{via}/1m.bin"), &site.big, 1 << 20, 20, 3);
        http_load(&bench, 8092, &format!("/{via}/16k.bin"), &site.small, 16 << 10, 100, 2);
        let opened = bench.opened() - before;
        assert_eq!(opened, 120, "/{via}/: engine connections beyond the clients' 120");
    }
    let report = wrk(&bench, &format!("http://{SLUICE_IP}:8092/addr/16k.bin"), 2, 200, 3);
    assert_clean_wrk(&report, "wrk through the keep-alive upstream");

    // The keep-alive pool's idle connections are cut-through sessions to 8091.
    let sessions = bench.sessions();
    let pooled = sessions.iter().filter(|s| s["cut_through"] == true && port_of(&s["remote"]) == Some(8091)).count();
    assert!(pooled > 0, "no cut-through upstream session idles in the keep-alive pool: {sessions:#?}");
    let upstream = |s: &&serde_json::Value| {
        s["state"] != "LISTEN" && (port_of(&s["local"]) == Some(8091) || port_of(&s["remote"]) == Some(8091))
    };
    assert!(
        sessions.iter().filter(upstream).all(|s| s["cut_through"] == true),
        "an upstream session is not cut-through: {sessions:#?}"
    );
    // Upstream connections came from the stack's address (kept alive: many
    // requests each) and from 127.0.0.1 (one request each).
    let log = std::fs::read_to_string(&upstream_log).expect("upstream access log");
    let mut most = std::collections::HashMap::<&str, u64>::new();
    for line in log.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.get(3), Some(&"200"), "upstream request failed: {line}");
        let requests: u64 = fields[2].parse().expect("$connection_requests");
        let entry = most.entry(fields[0]).or_default();
        *entry = (*entry).max(requests);
    }
    assert!(most.get(SLUICE_IP).is_some_and(|&n| n > 1), "no upstream connection was reused: {most:?}");
    assert_eq!(most.get("127.0.0.1"), Some(&1), "the loopback upstream is not kept alive: {most:?}");
    nginx.quit(&bench, 8092);
    bench.finish();
}

/// The same nginx at 5% loss on the wire: many connections and 1 MiB
/// downloads, every byte checked.
#[test]
fn nginx_serves_intact_bodies_at_five_percent_loss_under_the_preload() {
    let bench = Bench::with("pnl", "tap", 5, &[]);
    let site = site(&bench);
    let nginx = start_nginx(&bench, &site.www, 8090, "", &[]);
    for _ in 0..3 {
        let got = curl_sha(&bench, &format!("http://{SLUICE_IP}:8090/1m.bin"));
        assert_eq!(got.as_ref(), Some(&site.big), "curl /1m.bin at 5% loss");
    }
    std::thread::scope(|scope| {
        // The topology, not the bench, crosses the thread (the daemon's
        // process handle stays here).
        let topo = &bench.topo;
        let big = scope.spawn(|| load_client(topo, &http_args(8090, "/1m.bin", &site.big, 1 << 20, 30, 2)));
        http_load(&bench, 8090, "/16k.bin", &site.small, 16 << 10, 300, 3);
        let (finished, result) = big.join().expect("1 MiB load at 5% loss");
        assert!(
            !finished.killed && finished.status.success() && result["ok"] == 60,
            "1 MiB downloads at 5% loss: {result}\n{}\n{}",
            finished.stdout,
            finished.stderr
        );
    });
    assert_every_worker_served(&nginx.dir);
    nginx.quit(&bench, 8090);
    bench.finish();
}
