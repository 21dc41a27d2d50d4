//! Harness for tests against real peers: the network-namespace topology of
//! `scripts/netns-tap.sh` as an RAII guard, and child processes (run inside a
//! namespace) with bounded waits that kill them on timeout.

use std::io::{self, BufRead, BufReader, Read};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wait_timeout::ChildExt;

/// Namespace holding the kernel peer (`slpeer0`, 10.77.0.1/24).
pub const PEER_NS: &str = "sl-peer";
/// Namespace holding the bridge and the TAP device the driver attaches to.
pub const MID_NS: &str = "sl-mid";
/// The TAP device, persistent, created by the script.
pub const TAP: &str = "sltap0";
pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
pub const SLUICE_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
pub const PREFIX_LEN: u8 = 24;
pub const SLUICE_MAC: &str = "02:00:00:77:00:02";

/// Only one topology can exist at a time (fixed names): tests take turns.
static TOPOLOGY_LOCK: Mutex<()> = Mutex::new(());

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("scripts").join(name)
}

/// Panics (does not skip) when the machine cannot run real-peer tests, so a
/// CI run that lost its privileges fails loudly.
pub fn require_privileges() {
    // The Uid: line of /proc/self/status is "real effective saved fs".
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().nth(1))
        .expect("Uid: line in /proc/self/status");
    assert_eq!(euid, "0", "real-peer tests need root (network namespaces, TAP devices, nftables); run them as root");
    assert!(
        std::path::Path::new("/dev/net/tun").exists(),
        "real-peer tests need /dev/net/tun (load the tun module: modprobe tun)"
    );
}

/// The topology, torn down on drop (also when a test panics).
pub struct Topology {
    _turn: MutexGuard<'static, ()>,
}

impl Topology {
    /// Build the namespaces, bridge and TAP device with `loss_percent` random
    /// drops on the bridge (both directions).
    pub fn up(loss_percent: u8) -> Topology {
        require_privileges();
        // A test that panicked while holding the lock poisoned it; the
        // topology it left is rebuilt below anyway.
        let turn = TOPOLOGY_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let topology = Topology { _turn: turn };
        let out = run_script(&["up", &loss_percent.to_string()]);
        assert!(out.0.success(), "netns-tap.sh up failed: {}", out.1);
        topology
    }

    pub fn set_loss(&self, loss_percent: u8) {
        let out = run_script(&["loss", &loss_percent.to_string()]);
        assert!(out.0.success(), "netns-tap.sh loss failed: {}", out.1);
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let (status, output) = run_script(&["down"]);
        if !status.success() {
            eprintln!("netns-tap.sh down failed: {output}");
        }
    }
}

fn run_script(args: &[&str]) -> (ExitStatus, String) {
    let mut cmd = Command::new("bash");
    cmd.arg(script("netns-tap.sh")).args(args);
    let out = Process::spawn(cmd).unwrap_or_else(|e| panic!("start netns-tap.sh: {e}"));
    let done = out.wait(Duration::from_secs(30));
    (done.status, format!("{}{}", done.stdout, done.stderr))
}

/// `ip netns exec NS PROGRAM ARGS...` (`ip` execs the program, so the child
/// process is the program itself and killing it kills the program).
pub fn in_namespace(ns: &str, program: &str) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, program]);
    cmd
}

/// The Python peer helper, run inside the kernel peer's namespace.
pub fn python_peer() -> Command {
    let mut cmd = in_namespace(PEER_NS, "python3");
    cmd.arg(script("netns-peer.py"));
    cmd
}

/// What a finished (or killed) process left.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    /// True if the process was killed because it overran its time.
    pub killed: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// Panic with everything the process said unless it exited with 0.
    pub fn expect_success(self, what: &str) -> Finished {
        assert!(
            !self.killed && self.status.success(),
            "{what} {}: {}\n--- stdout\n{}\n--- stderr\n{}",
            if self.killed { "overran its time and was killed" } else { "failed" },
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// The last stdout line containing `needle`.
    pub fn last_line_with(&self, needle: &str) -> Option<&str> {
        self.stdout.lines().rev().find(|l| l.contains(needle))
    }
}

/// A child process whose stdout lines are delivered as they come (so a test
/// can wait for a "ready" line) and whose stderr is collected.
pub struct Process {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    stdout_reader: Option<JoinHandle<()>>,
    stderr_reader: Option<JoinHandle<String>>,
}

impl Process {
    pub fn spawn(mut cmd: Command) -> io::Result<Process> {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        let stdout: ChildStdout = child.stdout.take().ok_or_else(|| io::Error::other("no stdout pipe"))?;
        let mut stderr = child.stderr.take().ok_or_else(|| io::Error::other("no stderr pipe"))?;
        let (tx, lines) = mpsc::channel();
        let stdout_reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr_reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Ok(Process { child, lines, seen: Vec::new(), stdout_reader: Some(stdout_reader), stderr_reader: Some(stderr_reader) })
    }

    /// Wait for a stdout line containing `needle`; `None` if the process
    /// ended or `timeout` passed first.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return Some(line);
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Asks the process to stop (SIGTERM) and waits for it, killing it if it
    /// is still running after `timeout`.
    pub fn terminate(self, timeout: Duration) -> Finished {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) with a child's pid that has not been reaped yet (this Process still owns it), so the pid cannot name another process.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        self.wait(timeout)
    }

    /// Wait for the process to exit, killing it if it is still running after `timeout`.
    pub fn wait(mut self, timeout: Duration) -> Finished {
        let (status, killed) = match self.child.wait_timeout(timeout) {
            Ok(Some(status)) => (status, false),
            Ok(None) | Err(_) => {
                let _ = self.child.kill();
                (self.child.wait().expect("reap a killed child"), true)
            }
        };
        if let Some(reader) = self.stdout_reader.take() {
            let _ = reader.join();
        }
        let mut stdout_lines = std::mem::take(&mut self.seen);
        stdout_lines.extend(self.lines.try_iter());
        let stderr = self.stderr_reader.take().and_then(|r| r.join().ok()).unwrap_or_default();
        let mut stdout = stdout_lines.join("\n");
        stdout.push('\n');
        Finished { status, killed, stdout, stderr }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Only a process not waited for is still ours to stop (a panicking test).
        if self.stdout_reader.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
