//! Unmodified programs under the preload on the Sluice daemon (issue 4):
//! the daemon on TAP in its namespace (`scripts/netns-daemon.sh`), programs
//! started with `sluice run` in the test's own namespace (they reach the
//! daemon through its control socket only, so every TCP/IPv4 socket they
//! open is a Sluice session), and kernel peers in the peer namespace.
//!
//! * `python3 -m http.server` and single-process `nginx` (`sendfile on`)
//!   serve files to `curl`, checked by hash;
//! * an edge-triggered epoll echo server in C serves hundreds of concurrent
//!   connections of `scripts/load-client.py`, every byte checked;
//! * `socat` connects out to a kernel echo server and moves a file;
//! * `remote_mix.c` (epoll LT/ET/ONESHOT/RDHUP/EXCLUSIVE, poll and select
//!   over a session mixed with a pipe and an eventfd, timeouts, EINTR) prints
//!   exactly what it prints on the kernel;
//! * a forked child's use and close of an inherited connection leave the
//!   parent's connection working;
//! * `sluice run` without a daemon fails with a clear message.
//!
//! Needs root (namespaces, TAP). Every process runs under a deadline; the
//! topology is removed when a test ends, also by panic.

mod daemon_support;
mod preload_support;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use daemon_support::*;
use sluice_integration::netns::{in_namespace, Finished, Process};

const PEER_IP: &str = "10.79.0.1";

/// A topology, a daemon on it and a scratch directory, torn down in order.
struct Bench {
    daemon: Option<Process>,
    tmp: TempDir,
    control: std::path::PathBuf,
    topo: Topology,
}

impl Bench {
    fn up(prefix: &str) -> Bench {
        // `sluice run` finds the interposer next to the `sluice` binary.
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

    /// The number of connections the daemon's engine opened so far.
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

/// Runs `cmd` to completion under a deadline.
fn run_done(cmd: Command, what: &str) -> Finished {
    Process::spawn(cmd).unwrap_or_else(|e| panic!("spawn {what}: {e}")).wait(STEP)
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

/// Waits until `url` answers from the peer namespace (the server is up).
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

/// Waits until a kernel server in the peer namespace listens on `port`.
fn wait_peer_listening(bench: &Bench, port: u16) {
    let deadline = Instant::now() + READY;
    while Instant::now() < deadline {
        let out = bench.peer("ss").args(["-Hltn", &format!("sport = :{port}")]).output().expect("run ss");
        if !out.stdout.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the peer's server on port {port} never listened");
}

/// `load-client.py http` from the peer namespace; every request must succeed.
fn http_load(bench: &Bench, port: u16, path: &str, sha: &str, len: usize, connections: u32, requests: u32) {
    let args: Vec<String> = vec![
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
    ];
    let (finished, result) = load_client(&bench.topo, &args);
    assert!(
        !finished.killed && finished.status.success() && result["ok"] == connections * requests,
        "http {path} {connections}x{requests}: {result}\n{}\n{}",
        finished.stdout,
        finished.stderr
    );
}

/// A program stopped by the test's SIGTERM, after serving: it must not have
/// died on its own before.
fn stopped_by_us(finished: &Finished, what: &str) {
    let by_term = finished.status.signal() == Some(libc::SIGTERM) || finished.status.success();
    assert!(by_term && !finished.killed, "{what} ended badly: {finished:#?}");
}

#[test]
fn python_http_server_and_nginx_serve_curl_under_the_preload() {
    let bench = Bench::up("pdh");
    let www = bench.tmp.0.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let big = random_file(&www, "1m.bin", 1 << 20, 11);
    let odd = random_file(&www, "odd.bin", 3_000_017, 12);
    let before = bench.opened();

    // Python's socketserver: poll() on a Sluice listener, blocking accept,
    // sendall of a 3 MB file.
    let mut py = bench.run("python3");
    py.args(["-u", "-m", "http.server", "8080", "--bind", "0.0.0.0", "--directory"]).arg(&www);
    let py = Process::spawn(py).expect("spawn python http.server");
    wait_http(&bench, &format!("http://{SLUICE_IP}:8080/"));
    for (name, sha) in [("1m.bin", &big), ("odd.bin", &odd)] {
        let got = curl_sha(&bench, &format!("http://{SLUICE_IP}:8080/{name}"));
        assert_eq!(got.as_deref(), Some(sha.as_str()), "python http.server /{name}");
    }
    stopped_by_us(&py.terminate(Duration::from_secs(10)), "python3 -m http.server");
    assert!(bench.opened() > before, "the daemon opened no connection: python used the kernel");

    // nginx in one process (epoll, accept4, sendfile, writev, TCP_NODELAY).
    let conf_dir = bench.tmp.0.join("nginx");
    std::fs::create_dir_all(conf_dir.join("tmp")).unwrap();
    let conf = conf_dir.join("nginx.conf");
    let d = conf_dir.display();
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log {d}/error.log info;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 1024; }}\nhttp {{\n  access_log {d}/access.log;\n\
             client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;\n\
             uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n\
             sendfile on; tcp_nopush on; tcp_nodelay on; keepalive_timeout 30;\n\
             server {{ listen 8081; root {}; }}\n}}\n",
            www.display()
        ),
    )
    .unwrap();
    let mut nginx = bench.run("nginx");
    nginx.arg("-p").arg(&conf_dir).arg("-c").arg(&conf);
    let nginx = Process::spawn(nginx).expect("spawn nginx (scripts/install-deps.sh installs it)");
    wait_http(&bench, &format!("http://{SLUICE_IP}:8081/1m.bin"));
    for _ in 0..3 {
        let got = curl_sha(&bench, &format!("http://{SLUICE_IP}:8081/1m.bin"));
        assert_eq!(got.as_deref(), Some(big.as_str()), "nginx /1m.bin");
    }
    let got = curl_sha(&bench, &format!("http://{SLUICE_IP}:8081/odd.bin"));
    assert_eq!(got.as_deref(), Some(odd.as_str()), "nginx /odd.bin");
    // Many concurrent keep-alive clients, every body checked.
    let small = random_file(&www, "16k.bin", 16 << 10, 13);
    http_load(&bench, 8081, "/16k.bin", &small, 16 << 10, 400, 3);
    http_load(&bench, 8081, "/1m.bin", &big, 1 << 20, 40, 2);
    let finished = nginx.terminate(Duration::from_secs(10));
    stopped_by_us(&finished, "nginx");
    bench.finish();
}

#[test]
fn epoll_echo_server_in_c_serves_hundreds_of_connections_under_the_preload() {
    let bench = Bench::up("pde");
    let mut server = Process::spawn({
        let mut cmd = bench.run(preload_support::c_program("epoll_echo"));
        cmd.arg("7007");
        cmd
    })
    .expect("spawn epoll_echo");
    assert!(server.wait_for_line("ready", READY).is_some(), "epoll_echo never listened");
    for (loss, connections, bytes) in [(0u8, 400u32, 64u32 << 10), (0, 50, 1 << 20), (5, 30, 256 << 10)] {
        bench.topo.set_loss(loss);
        let args: Vec<String> = vec![
            "echo".into(),
            SLUICE_IP.into(),
            "7007".into(),
            "--connections".into(),
            connections.to_string(),
            "--bytes".into(),
            bytes.to_string(),
        ];
        let (finished, result) = load_client(&bench.topo, &args);
        assert!(
            !finished.killed && finished.status.success() && result["ok"] == result["expected"],
            "echo {connections}x{bytes} at {loss}% loss: {result}\n{}\n{}",
            finished.stdout,
            finished.stderr
        );
        assert_eq!(result["ok"], connections, "{result}");
    }
    bench.topo.set_loss(0);
    stopped_by_us(&server.terminate(Duration::from_secs(10)), "epoll_echo");
    bench.finish();
}

#[test]
fn socat_client_and_mixed_readiness_under_the_preload_match_the_kernel() {
    let bench = Bench::up("pdm");
    // A kernel echo server in the peer namespace (one `cat` per connection,
    // which closes after the client's FIN).
    let mut echo = bench.peer("socat");
    echo.args(["TCP-LISTEN:9001,reuseaddr,fork", "EXEC:cat"]);
    let echo = Process::spawn(echo).expect("spawn socat (scripts/install-deps.sh installs it)");
    wait_peer_listening(&bench, 9001);

    // socat as a client, connecting out through the daemon.
    let input = bench.tmp.0.join("in.bin");
    let sha = random_file(&bench.tmp.0, "in.bin", 777_777, 21);
    let before = bench.opened();
    let mut client = bench.run("sh");
    client.arg("-c").arg(format!("socat -t 10 -T 30 - TCP:{PEER_IP}:9001 < {} | sha256sum", input.display()));
    let finished = run_done(client, "socat client").expect_success("socat client under the preload");
    assert_eq!(finished.stdout.split_whitespace().next(), Some(sha.as_str()), "socat's echo differs");
    assert!(bench.opened() > before, "socat's connection did not go through the daemon");

    // The same readiness program on the kernel (in the peer namespace, to
    // the same server) and under the preload: identical output.
    let program = preload_support::c_program("remote_mix");
    let mut kernel = bench.peer(program.to_str().expect("utf-8 path"));
    kernel.args([PEER_IP, "9001"]);
    let kernel = run_done(kernel, "remote_mix on the kernel").expect_success("remote_mix on the kernel");
    let mut sluice = bench.run(&program);
    sluice.args([PEER_IP, "9001"]);
    let sluice = run_done(sluice, "remote_mix under the preload").expect_success("remote_mix under the preload");
    assert!(kernel.stdout.contains("done"), "{kernel:#?}");
    assert_eq!(sluice.stdout, kernel.stdout, "remote_mix differs from the kernel\n--- stderr\n{}", sluice.stderr);

    // A forked child cannot use its parent's connection (it stays the
    // parent's; vcl's fork support): it fails cleanly with ENOTCONN, and the
    // child's close leaves the parent's connection working.
    let mut fork = bench.run(preload_support::c_program("fork_remote"));
    fork.args([PEER_IP, "9001"]);
    let fork = run_done(fork, "fork_remote").expect_success("fork_remote under the preload");
    assert_eq!(
        fork.stdout,
        "parent before fork: one\nchild send: ENOTCONN\nchild close: 0\nchild exit: 0\nparent after child: two\ndone\n",
        "{fork:#?}"
    );

    echo.terminate(Duration::from_secs(10));
    bench.finish();
}

#[test]
fn sluice_run_without_a_daemon_says_so() {
    preload_support::preload_lib();
    let dir = TempDir::new("pdn");
    let missing = dir.0.join("nobody.sock");
    let out = Command::new(sluice_binary())
        .args(["run", "--control-socket"])
        .arg(&missing)
        .args(["--", "true"])
        .output()
        .expect("run sluice run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("does not answer") && stderr.contains(&*missing.to_string_lossy()), "{stderr}");
    assert!(Path::new(sluice_binary()).exists());
}
