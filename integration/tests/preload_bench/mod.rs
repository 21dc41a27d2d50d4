//! The preload tests' bench on the Sluice daemon: a `netns-daemon.sh`
//! topology, a daemon in its dut namespace, programs under `sluice run` in
//! the test's namespace (they reach the daemon through its control socket
//! only, so every TCP/IPv4 socket they open is a Sluice session), kernel
//! peers in the peer namespace, and the waits and checks the tests share.
#![allow(dead_code)]

pub mod http_tools;
pub mod nginx;
pub mod redis;

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::daemon_support::*;
use crate::preload_support;
use sluice_integration::netns::{in_namespace, Finished, Process};

/// A topology, a daemon on it and a scratch directory, torn down in order.
pub struct Bench {
    daemon: Option<Process>,
    pub tmp: TempDir,
    pub control: PathBuf,
    pub topo: Topology,
}

impl Bench {
    /// The daemon on TAP, no loss.
    pub fn up(prefix: &str) -> Bench {
        Bench::with(prefix, "tap", 0, &[])
    }

    /// The daemon on `device` ("tap" or "xdp") with `loss` percent dropped
    /// on the middle bridge and `daemon_args` added to its command line.
    pub fn with(prefix: &str, device: &'static str, loss: u8, daemon_args: &[&str]) -> Bench {
        Bench::with_env(prefix, device, loss, daemon_args, &[])
    }

    /// [`Bench::with`], the daemon started with the variables `daemon_env`.
    pub fn with_env(
        prefix: &str,
        device: &'static str,
        loss: u8,
        daemon_args: &[&str],
        daemon_env: &[(&str, &str)],
    ) -> Bench {
        // `sluice run` finds the interposer next to the `sluice` binary.
        preload_support::preload_lib();
        let topo = Topology::up(prefix, device, loss);
        let tmp = TempDir::new(prefix);
        let control = tmp.0.join("control.sock");
        let daemon = Some(start_daemon_with_env(&topo, &control, daemon_args, daemon_env));
        Bench { daemon, tmp, control, topo }
    }

    /// The daemon's process id (`ip netns exec` execs it in place).
    pub fn daemon_pid(&self) -> u32 {
        self.daemon.as_ref().expect("the daemon runs").pid()
    }

    /// `sluice run --control-socket C -- program args...`.
    pub fn run(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(sluice_binary());
        cmd.arg("run").arg("--control-socket").arg(&self.control).arg("--").arg(program);
        cmd.env_remove("LD_PRELOAD").env("SLUICE_LOG", "warn");
        cmd
    }

    pub fn peer(&self, program: &str) -> Command {
        in_namespace(&self.topo.peer_ns(), program)
    }

    /// The number of connections the daemon's engine opened so far.
    pub fn opened(&self) -> u64 {
        let s = stats(&self.control).expect("daemon stats");
        s["workers"][0]["engine"]["connections_opened"].as_u64().unwrap_or(0)
    }

    /// The rows of `sluice sessions --json` (every app's sessions).
    pub fn sessions(&self) -> Vec<serde_json::Value> {
        let out = Command::new(sluice_binary())
            .args(["sessions", "--json", "--control-socket"])
            .arg(&self.control)
            .output()
            .expect("run sluice sessions");
        assert!(out.status.success(), "sluice sessions: {}", String::from_utf8_lossy(&out.stderr));
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("sluice sessions --json");
        list["sessions"].as_array().cloned().unwrap_or_default()
    }

    pub fn finish(mut self) {
        if let Some(daemon) = self.daemon.take() {
            daemon.terminate(Duration::from_secs(10)).expect_success("sluice daemon");
        }
    }
}

/// Runs the load client; every request must have been answered correctly.
pub fn http_load(bench: &Bench, port: u16, path: &str, sha: &str, len: usize, connections: u32, requests: u32) {
    http_load_on(&bench.topo, port, path, sha, len, connections, requests)
}

/// [`http_load`] given the topology only (it can be shared with threads).
pub fn http_load_on(topo: &Topology, port: u16, path: &str, sha: &str, len: usize, connections: u32, requests: u32) {
    let (finished, result) = load_client(topo, &http_args(port, path, sha, len, connections, requests));
    assert!(
        !finished.killed && finished.status.success() && result["ok"] == connections * requests,
        "http {path} {connections}x{requests}: {result}\n{}\n{}",
        finished.stdout,
        finished.stderr
    );
}

/// `curl` in the peer namespace; the body's SHA-256, or `None` on failure.
pub fn curl_sha(bench: &Bench, url: &str) -> Option<String> {
    let mut cmd = bench.peer("bash");
    cmd.arg("-c").arg(format!("set -o pipefail; curl -sSf --max-time 60 {url} | sha256sum"));
    let out = cmd.output().ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).split_whitespace().next()?.to_string())
}

/// Waits until `url` answers from the peer namespace.
pub fn wait_http(bench: &Bench, url: &str) {
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
pub fn refused(bench: &Bench, port: u16) -> bool {
    wait_until(READY, || {
        bench
            .peer("curl")
            .args(["-s", "--max-time", "2", "-o", "/dev/null", &format!("http://{SLUICE_IP}:{port}/")])
            .status()
            .is_ok_and(|s| s.code() == Some(7))
    })
}

/// Runs `cmd` to completion under a deadline.
pub fn run_done(cmd: Command, what: &str) -> Finished {
    Process::spawn(cmd).unwrap_or_else(|e| panic!("spawn {what}: {e}")).wait(STEP)
}

/// Waits until a kernel server in the peer namespace listens on `port`.
pub fn wait_peer_listening(bench: &Bench, port: u16) {
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

/// A program stopped by the test's SIGTERM, after serving: it must not have
/// died on its own before.
pub fn stopped_by_us(finished: &Finished, what: &str) {
    let by_term = finished.status.signal() == Some(libc::SIGTERM) || finished.status.success();
    assert!(by_term && !finished.killed, "{what} ended badly: {finished:#?}");
}

/// Waits for `cond` within `within`.
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
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

