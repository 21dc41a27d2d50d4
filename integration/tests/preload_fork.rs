//! fork under the preload on the Sluice daemon (issue 4): programs whose
//! children serve the listeners their parent opened.
//!
//! * `prefork_server.c`: the parent listens and forks two workers that each
//!   epoll on the inherited listener and accept; the load client in the peer
//!   namespace gets every request answered and both workers get a share.
//! * `bgsave_server.c`: a child forked after every response (as redis's
//!   BGSAVE) finds its inherited connection unusable and closes everything
//!   it inherited; the parent's connections and listener keep working.
//! * nginx with `master_process on; worker_processes 2; daemon on;` (the
//!   daemonizing fork, then the master's forks of its workers) serves a
//!   1 MiB file to `curl` and the load client, checked by hash; `nginx -s
//!   reload` under load fails no request; `nginx -s quit` leaves no process.
//!
//! Same topology as `preload_daemon_programs.rs` (daemon on TAP in its
//! namespace, programs under `sluice run`, kernel peers), with its own
//! namespace prefixes. Needs root.

mod daemon_support;
mod preload_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use daemon_support::*;
use sluice_integration::netns::{in_namespace, Process};

/// A topology, a daemon on it and a scratch directory, torn down in order.
struct Bench {
    daemon: Option<Process>,
    tmp: TempDir,
    control: PathBuf,
    topo: Topology,
}

impl Bench {
    fn up(prefix: &str) -> Bench {
        preload_support::preload_lib();
        let topo = Topology::up(prefix, "tap", 0);
        let tmp = TempDir::new(prefix);
        let control = tmp.0.join("control.sock");
        let daemon = Some(start_daemon(&topo, &control, &[]));
        Bench { daemon, tmp, control, topo }
    }

    /// `sluice run --control-socket C -- program args...`.
    fn run(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(sluice_binary());
        cmd.arg("run").arg("--control-socket").arg(&self.control).arg("--").arg(program);
        cmd.env_remove("LD_PRELOAD").env("SLUICE_LOG", "warn");
        cmd
    }

    fn peer(&self, program: &str) -> Command {
        in_namespace(&self.topo.peer_ns(), program)
    }

    fn opened(&self) -> u64 {
        let s = stats(&self.control).expect("daemon stats");
        s["workers"][0]["engine"]["connections_opened"].as_u64().unwrap_or(0)
    }

    fn finish(mut self) {
        if let Some(daemon) = self.daemon.take() {
            daemon.terminate(Duration::from_secs(10)).expect_success("sluice daemon");
        }
    }
}

/// `load-client.py http` arguments.
fn http_args(port: u16, path: &str, sha: &str, len: usize, connections: u32, requests: u32) -> Vec<String> {
    vec![
        "http".into(),
        SLUICE_IP.into(),
        port.to_string(),
        path.into(),
        "--sha256".into(),
        sha.into(),
        "--length".into(),
        len.to_string(),
        "--connections".into(),
        connections.to_string(),
        "--requests".into(),
        requests.to_string(),
    ]
}

/// Runs the load client; every request must have been answered correctly.
fn http_load(bench: &Bench, port: u16, path: &str, sha: &str, len: usize, connections: u32, requests: u32) {
    let (finished, result) = load_client(&bench.topo, &http_args(port, path, sha, len, connections, requests));
    assert!(
        !finished.killed && finished.status.success() && result["ok"] == connections * requests,
        "http {path} {connections}x{requests}: {result}\n{}\n{}",
        finished.stdout,
        finished.stderr
    );
}

/// `curl` in the peer namespace; the body's SHA-256, or `None` on failure.
fn curl_sha(bench: &Bench, url: &str) -> Option<String> {
    let mut cmd = bench.peer("bash");
    cmd.arg("-c").arg(format!("set -o pipefail; curl -sSf --max-time 60 {url} | sha256sum"));
    let out = cmd.output().ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).split_whitespace().next()?.to_string())
}

/// Waits until `url` answers from the peer namespace.
fn wait_http(bench: &Bench, url: &str) {
    let deadline = Instant::now() + READY;
    while Instant::now() < deadline {
        let ok = bench
            .peer("curl")
            .args(["-sSf", "--max-time", "2", "-o", "/dev/null", url])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{url} never answered");
}

/// Waits until a connection to `port` is refused (no listener is left in
/// the daemon: curl's exit code 7).
fn refused(bench: &Bench, port: u16) -> bool {
    wait_until(READY, || {
        bench
            .peer("curl")
            .args(["-s", "--max-time", "2", "-o", "/dev/null", &format!("http://{SLUICE_IP}:{port}/")])
            .status()
            .is_ok_and(|s| s.code() == Some(7))
    })
}

/// `prefork_server` with two workers waiting with `wait` ("epoll" or
/// "poll") on the listener their parent opened.
fn prefork_serves(prefix: &str, wait: &str) {
    let bench = Bench::up(prefix);
    let sha = random_file(&bench.tmp.0, "body.bin", 64 << 10, 31);
    let before = bench.opened();
    let mut server = Process::spawn({
        let mut cmd = bench.run(preload_support::c_program("prefork_server"));
        cmd.arg("7080").arg(bench.tmp.0.join("body.bin")).arg("2").arg(wait);
        cmd
    })
    .expect("spawn prefork_server");
    for n in 0..2 {
        if server.wait_for_line("worker ready", READY).is_none() {
            let finished = server.terminate(Duration::from_secs(10));
            panic!("worker {n} never waited on the listener: {finished:#?}");
        }
    }
    http_load(&bench, 7080, "/", &sha, 64 << 10, 60, 4);
    assert!(bench.opened() >= before + 60, "the connections did not go through the daemon");

    let finished = server.terminate(Duration::from_secs(20));
    assert!(!finished.killed && finished.status.success(), "prefork_server: {finished:#?}");
    let served: Vec<u64> = finished
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("served "))
        .map(|n| n.parse().expect("a count"))
        .collect();
    assert_eq!(served.len(), 2, "{finished:#?}");
    assert_eq!(served.iter().sum::<u64>(), 60, "every connection served once: {served:?}");
    assert!(served.iter().all(|&n| n > 0), "a worker got no connection: {served:?}");
    assert!(finished.stdout.contains("done"), "{finished:#?}");
    // The parent's and the workers' listeners all closed: the group is gone.
    assert!(refused(&bench, 7080), "port 7080 still accepts after the server ended");
    bench.finish();
}

#[test]
fn prefork_server_workers_share_an_inherited_listener_under_the_preload() {
    prefork_serves("pfp", "epoll");
}

#[test]
fn prefork_server_workers_polling_an_inherited_listener_under_the_preload() {
    prefork_serves("pfq", "poll");
}

/// A redis-BGSAVE-like child after every response: it finds its inherited
/// connection unusable (ENOTCONN), closes it, the listener and the epoll
/// descriptor, and the parent serves on, on the same connections.
#[test]
fn bgsave_like_children_close_what_they_inherited_and_the_parent_serves_on() {
    let bench = Bench::up("pfb");
    let sha = random_file(&bench.tmp.0, "body.bin", 32 << 10, 51);
    let mut server = Process::spawn({
        let mut cmd = bench.run(preload_support::c_program("bgsave_server"));
        cmd.arg("7090").arg(bench.tmp.0.join("body.bin"));
        cmd
    })
    .expect("spawn bgsave_server");
    if server.wait_for_line("ready", READY).is_none() {
        let finished = server.terminate(Duration::from_secs(10));
        panic!("bgsave_server never listened: {finished:#?}");
    }
    http_load(&bench, 7090, "/", &sha, 32 << 10, 10, 5);
    http_load(&bench, 7090, "/", &sha, 32 << 10, 5, 2);
    let finished = server.terminate(Duration::from_secs(20));
    assert!(!finished.killed && finished.status.success(), "bgsave_server: {finished:#?}");
    assert!(finished.stdout.contains("forks 60\nchild-send ENOTCONN: 60\nbad-children 0\ndone"), "{finished:#?}");
    assert!(refused(&bench, 7090), "port 7090 still accepts after the server ended");
    bench.finish();
}

/// nginx's configuration for `dir`: master and two workers, daemonizing.
fn nginx_conf(dir: &Path, www: &Path, port: u16) -> PathBuf {
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    let conf = dir.join("nginx.conf");
    let d = dir.display();
    std::fs::write(
        &conf,
        format!(
            "daemon on;\nmaster_process on;\nworker_processes 2;\nerror_log {d}/error.log info;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 1024; }}\nhttp {{\n  log_format bypid '$pid $status';\n\
             access_log {d}/access.log bypid;\n\
             client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;\n\
             uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n\
             sendfile on; tcp_nopush on; tcp_nodelay on; keepalive_timeout 30;\n\
             server {{ listen {port}; root {}; }}\n}}\n",
            www.display()
        ),
    )
    .unwrap();
    conf
}

/// Process ids and parents, from `/proc` (zombies left out: they are gone
/// but for their parent's `wait`).
fn live_processes() -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // "pid (comm) state ppid ...": comm may hold spaces, so from the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("Z");
        let ppid = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if state != "Z" {
            out.push((pid, ppid));
        }
    }
    out
}

/// nginx's master (from its pid file) and its children, those alive.
fn nginx_family(dir: &Path) -> Vec<u32> {
    let Some(master) = std::fs::read_to_string(dir.join("nginx.pid")).ok().and_then(|s| s.trim().parse::<u32>().ok())
    else {
        return Vec::new();
    };
    let procs = live_processes();
    let mut family: Vec<u32> = procs.iter().filter(|&&(_, ppid)| ppid == master).map(|&(pid, _)| pid).collect();
    if procs.iter().any(|&(pid, _)| pid == master) {
        family.push(master);
    }
    family
}

/// The pids in the access log (`$pid` first on each line), with counts.
fn access_by_pid(dir: &Path) -> std::collections::HashMap<u32, usize> {
    let log = std::fs::read_to_string(dir.join("access.log")).unwrap_or_default();
    let mut counts = std::collections::HashMap::new();
    for pid in log.lines().filter_map(|l| l.split_whitespace().next()?.parse::<u32>().ok()) {
        *counts.entry(pid).or_default() += 1;
    }
    counts
}

/// Kills what is left of nginx after a failed run (the master named by its
/// pid file and its children only).
struct NginxGuard(PathBuf);

impl Drop for NginxGuard {
    fn drop(&mut self) {
        for pid in nginx_family(&self.0) {
            // SAFETY: kill(2) of this test's nginx processes.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

/// `sluice run -- nginx -p DIR -c CONF ARGS` to completion. Its output goes
/// to files: with `daemon on` the master keeps stderr until it redirects it
/// to the error log, so a pipe would not end with the command.
fn nginx_cmd(bench: &Bench, dir: &Path, conf: &Path, args: &[&str]) {
    let out = std::fs::File::create(dir.join("cmd.out")).expect("create cmd.out");
    let err = out.try_clone().expect("dup cmd.out");
    let mut cmd = bench.run("nginx");
    cmd.arg("-p").arg(dir).arg("-c").arg(conf).args(args);
    cmd.stdin(std::process::Stdio::null()).stdout(out).stderr(err);
    let mut child = cmd.spawn().expect("spawn nginx (scripts/install-deps.sh installs it)");
    let deadline = Instant::now() + READY;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for nginx") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("nginx {args:?} did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = std::fs::read_to_string(dir.join("cmd.out")).unwrap_or_default();
    assert!(status.success(), "nginx {args:?}: {status}\n{output}");
}

/// Waits for `cond` within `within`.
fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn nginx_master_and_workers_serve_reload_and_quit_under_the_preload() {
    let bench = Bench::up("pfn");
    let www = bench.tmp.0.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let big = random_file(&www, "1m.bin", 1 << 20, 41);
    let small = random_file(&www, "16k.bin", 16 << 10, 42);
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
    let by_pid = access_by_pid(&dir);
    assert!(by_pid.len() == 2 && by_pid.values().all(|&n| n > 0), "both workers must serve a share: {by_pid:?}");

    // Reload under load: the new workers inherit the listener from the
    // master and join its group; the old ones finish what they accepted.
    // One request per connection: an idle keep-alive connection is closed by
    // a gracefully exiting worker also on the kernel (nginx's
    // `ngx_close_idle_connections`), which a client without retries counts
    // as failed.
    let lines = || access_by_pid(&dir).values().sum::<usize>();
    let served_before = lines();
    std::thread::scope(|scope| {
        let load = scope.spawn(|| {
            (0..3)
                .map(|_| load_client(&bench.topo, &http_args(8090, "/16k.bin", &small, 16 << 10, 400, 1)))
                .collect::<Vec<_>>()
        });
        assert!(wait_until(READY, || lines() >= served_before + 100), "the load before the reload never got going");
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
    let old_workers: Vec<u32> = by_pid.keys().copied().collect();
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
