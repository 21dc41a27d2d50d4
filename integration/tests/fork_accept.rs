//! Fork support end to end (issue 3, design §3.5 and §4.5): the daemon on
//! TAP, `sluice-fork-server` attached through `vcl`, and kernel clients in
//! the peer namespace. Every connection is answered with the pid of the
//! process that accepted it.
//!
//! Needs root (namespaces, TAP): without it these tests fail, they do not
//! skip. Forked servers are killed when the test ends, also by panic.

mod daemon_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use daemon_support::*;
use serde_json::Value;
use sluice_integration::netns::{in_namespace, Process};

const SERVER: &str = env!("CARGO_BIN_EXE_sluice-fork-server");

/// Kernel clients: `connections` connections, 8 at a time, each sends a
/// line and reads the pid line back. Prints one JSON object.
const CLIENT: &str = r#"
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def one(i):
    try:
        s = socket.create_connection((host, port), timeout=20)
        s.sendall(b"hello\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(64)
            if not chunk:
                break
            data += chunk
        s.close()
        return ("ok", data.strip().decode()) if data.endswith(b"\n") else ("error", "eof")
    except Exception as e:
        return ("error", type(e).__name__ + ": " + str(e))
with ThreadPoolExecutor(8) as pool:
    results = list(pool.map(one, range(n)))
counts, errors = {}, []
for kind, value in results:
    if kind == "ok":
        counts[value] = counts.get(value, 0) + 1
    else:
        errors.append(value)
print(json.dumps({"counts": counts, "errors": errors}))
"#;

/// Per-pid counts of `n` connections to `port`; panics on any failure.
fn clients(topo: &Topology, port: u16, n: usize) -> BTreeMap<i32, usize> {
    let mut cmd = in_namespace(&topo.peer_ns(), "python3");
    cmd.args(["-c", CLIENT, SLUICE_IP, &port.to_string(), &n.to_string()]);
    let finished = Process::spawn(cmd).expect("spawn the clients").wait(Duration::from_secs(120));
    let line = finished.last_line_with("\"counts\"").unwrap_or("").to_string();
    let value: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
    assert!(!finished.killed && finished.status.success(), "clients failed: {finished:#?}");
    assert_eq!(value["errors"], serde_json::json!([]), "every connection is served, none reset: {value}");
    let counts: BTreeMap<i32, usize> = value["counts"]
        .as_object()
        .expect("counts")
        .iter()
        .map(|(pid, n)| (pid.parse().unwrap(), n.as_u64().unwrap() as usize))
        .collect();
    assert_eq!(counts.values().sum::<usize>(), n, "each connection accepted exactly once: {counts:?}");
    counts
}

/// A forking server and the pids it reported; every process of it is
/// killed on drop.
struct Server {
    process: Option<Process>,
    pids: Vec<i32>,
    lines: Vec<String>,
}

impl Server {
    fn start(mode: &str, port: u16, workers: u32, control: &Path) -> Server {
        let mut cmd = Command::new(SERVER);
        cmd.args([mode, "--port", &port.to_string(), "--workers", &workers.to_string(), "--control-socket"])
            .arg(control)
            .env("RUST_LOG", "warn");
        let process = Process::spawn(cmd).expect("spawn sluice-fork-server");
        Server { process: Some(process), pids: Vec::new(), lines: Vec::new() }
    }

    /// Waits until `count` lines starting with `tag` have come (in any
    /// order with other lines); the pids they name.
    fn expect(&mut self, tag: &str, count: usize) -> Vec<i32> {
        loop {
            let found: Vec<i32> = self
                .lines
                .iter()
                .filter(|l| l.split_whitespace().next() == Some(tag))
                .map(|l| l.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0))
                .collect();
            if found.len() >= count {
                return found;
            }
            match self.process.as_mut().unwrap().wait_for_line("", READY) {
                Some(line) => {
                    if let Some(pid) = line.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
                        self.pids.push(pid);
                    }
                    self.lines.push(line);
                }
                None => {
                    let finished = self.process.take().unwrap().wait(Duration::ZERO);
                    panic!("no {tag} line from the server: {finished:#?}");
                }
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for pid in &self.pids {
            // SAFETY: kill(2) with integer arguments; the pids are this test's server processes (workers also die with their parent).
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
        if let Some(process) = self.process.take() {
            let _ = process.terminate(Duration::from_secs(5));
        }
    }
}

fn sigkill(pid: i32) {
    // SAFETY: kill(2) with integer arguments, on a worker this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
}

#[test]
fn forked_workers_share_a_listener_the_parent_never_accepts_on() {
    let topo = Topology::up("sfk1", "tap", 0);
    let tmp = TempDir::new("fork-prefork");
    let control = tmp.0.join("control.sock");
    let daemon = start_daemon(&topo, &control, &[]);

    let mut server = Server::start("prefork", 8001, 3, &control);
    let workers = server.expect("worker", 3);
    server.expect("listening", 3);
    server.expect("ready", 1);
    let parent = server.process.as_ref().unwrap().pid() as i32;

    let counts = clients(&topo, 8001, 90);
    assert!(!counts.contains_key(&parent), "the parent (nginx's master) never accepts: {counts:?}");
    assert!(counts.keys().all(|pid| workers.contains(pid)), "only workers accept: {counts:?}");
    eprintln!("share per worker (soft): {counts:?}");

    // SIGKILL one worker mid-run: the others serve every new connection.
    let killed = workers[0];
    sigkill(killed);
    let counts = clients(&topo, 8001, 60);
    assert!(!counts.contains_key(&killed), "a dead worker accepts nothing: {counts:?}");
    assert!(!counts.contains_key(&parent));
    drop(server);
    let _ = daemon.terminate(Duration::from_secs(5));
}

#[test]
fn nginx_daemon_chain_and_a_bgsave_child() {
    let topo = Topology::up("sfk2", "tap", 0);
    let tmp = TempDir::new("fork-chain");
    let control = tmp.0.join("control.sock");
    let daemon = start_daemon(&topo, &control, &[]);

    // P0 listens, forks P1 and exits; P1 forks two workers.
    let mut chain = Server::start("chain", 8002, 2, &control);
    let p1 = chain.expect("holder", 1)[0];
    let workers = chain.expect("worker", 2);
    chain.expect("listening", 2);
    let counts = clients(&topo, 8002, 40);
    assert!(counts.keys().all(|pid| workers.contains(pid)), "served by P1's workers only: {counts:?} (P1 {p1})");
    drop(chain);

    // A child that closes its inherited listener and exits leaves the
    // parent serving.
    let mut bgsave = Server::start("bgsave", 8003, 0, &control);
    bgsave.expect("ready", 1);
    let parent = bgsave.process.as_ref().unwrap().pid() as i32;
    let counts = clients(&topo, 8003, 20);
    assert_eq!(counts.keys().copied().collect::<Vec<_>>(), vec![parent], "{counts:?}");
    drop(bgsave);
    let _ = daemon.terminate(Duration::from_secs(5));
}
