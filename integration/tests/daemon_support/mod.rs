//! What the daemon end-to-end tests share: the `scripts/netns-daemon.sh`
//! topology as an RAII guard, the `sluice` binary (built on demand with this
//! test's profile), and the daemon, servers and clients as child processes
//! with bounded waits.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_integration::netns::{in_namespace, require_privileges, Finished, Process};

pub const SLUICE_IP: &str = "10.79.0.2";
pub const READY: Duration = Duration::from_secs(20);
pub const STEP: Duration = Duration::from_secs(300);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("integration/ has a parent").to_path_buf()
}

fn script(name: &str) -> PathBuf {
    workspace().join("scripts").join(name)
}

/// The `sluice` binary of this workspace, built once per test binary with
/// the profile the test was built with, into the same target directory.
pub fn sluice_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test binary path");
        let profile_dir = exe.parent().and_then(Path::parent).expect("<target>/<profile>/deps/<test>");
        let target_dir = profile_dir.parent().expect("<target>/<profile>");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build.current_dir(workspace()).args(["build", "--quiet", "-p", "sluice-daemon", "--bin", "sluice"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        build.env("CARGO_TARGET_DIR", target_dir);
        let status = build.status().expect("running cargo build -p sluice-daemon");
        assert!(status.success(), "cargo build -p sluice-daemon failed: {status}");
        let bin = profile_dir.join("sluice");
        assert!(bin.exists(), "{} was not built", bin.display());
        bin
    })
}

/// A directory under the target's temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("daemon-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The namespaces of `netns-daemon.sh` under one prefix, removed on drop.
pub struct Topology {
    pub prefix: String,
    pub device: &'static str,
}

impl Topology {
    pub fn up(prefix: &str, device: &'static str, loss: u8) -> Topology {
        require_privileges();
        let topo = Topology { prefix: prefix.into(), device };
        topo.script(&["up", device, &loss.to_string()]);
        topo
    }

    fn script(&self, args: &[&str]) {
        let out = Command::new("bash")
            .arg(script("netns-daemon.sh"))
            .args(args)
            .env("SLUICE_NETNS_PREFIX", &self.prefix)
            .output()
            .expect("run netns-daemon.sh");
        assert!(out.status.success(), "netns-daemon.sh {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn set_loss(&self, loss: u8) {
        self.script(&["loss", &loss.to_string()]);
    }

    pub fn peer_ns(&self) -> String {
        format!("{}-peer", self.prefix)
    }

    pub fn dut_ns(&self) -> String {
        format!("{}-dut", self.prefix)
    }

    /// The daemon's interface in the dut namespace.
    pub fn iface(&self) -> &'static str {
        if self.device == "tap" {
            "sdtap0"
        } else {
            "sddut0"
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script("netns-daemon.sh"))
            .arg("down")
            .env("SLUICE_NETNS_PREFIX", &self.prefix)
            .status();
    }
}

/// `sluice daemon` in the topology's dut namespace; returns once its control
/// socket answers `sluice stats`.
pub fn start_daemon(topo: &Topology, control: &Path, extra: &[&str]) -> Process {
    start_daemon_with_env(topo, control, extra, &[])
}

/// [`start_daemon`] with `SLUICE_*` (or other) variables set for the daemon.
pub fn start_daemon_with_env(topo: &Topology, control: &Path, extra: &[&str], env: &[(&str, &str)]) -> Process {
    let mut cmd = in_namespace(&topo.dut_ns(), sluice_binary().to_str().expect("utf-8 path"));
    cmd.envs(env.iter().copied());
    cmd.args(["daemon", "--device", topo.device, "--iface", topo.iface()])
        .args(["--ip", &format!("{SLUICE_IP}/24"), "--control-socket"])
        .arg(control)
        .args(["--log", "warn"])
        .args(extra);
    let daemon = Process::spawn(cmd).expect("spawn sluice daemon");
    let deadline = Instant::now() + READY;
    while Instant::now() < deadline {
        if stats(control).is_some() {
            return daemon;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let finished = daemon.terminate(Duration::from_secs(5));
    panic!("sluice daemon never answered on {}: {finished:#?}", control.display());
}

/// `sluice stats --json`, or `None` if the daemon does not answer.
pub fn stats(control: &Path) -> Option<Value> {
    let out = Command::new(sluice_binary()).args(["stats", "--json", "--control-socket"]).arg(control).output().ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// A `sluice-server` on the daemon, listening on `port`; returns once ready.
pub fn start_server(server_bin: &str, kind: &str, port: u16, root: &Path, control: &Path) -> Process {
    let mut cmd = Command::new(server_bin);
    cmd.args([kind, "--listen", &format!("0.0.0.0:{port}"), "--root"])
        .arg(root)
        .arg("--control-socket")
        .arg(control)
        .env("RUST_LOG", "warn");
    let mut server = Process::spawn(cmd).expect("spawn sluice-server");
    if server.wait_for_line("ready", READY).is_none() {
        let finished = server.wait(Duration::ZERO);
        panic!("sluice-server {kind} never became ready: {finished:#?}");
    }
    server
}

/// `scripts/load-client.py ARGS` in the peer namespace; its JSON result.
pub fn load_client(topo: &Topology, args: &[String]) -> (Finished, Value) {
    let mut cmd = in_namespace(&topo.peer_ns(), "python3");
    cmd.arg(script("load-client.py")).args(args);
    let finished = Process::spawn(cmd).expect("spawn load-client.py").wait(STEP);
    let line = finished.last_line_with("\"mode\"").unwrap_or("").to_string();
    let value = serde_json::from_str(&line).unwrap_or(Value::Null);
    (finished, value)
}

/// `load-client.py http` arguments: `connections` keep-alive connections
/// each GET `path` `requests` times from `SLUICE_IP:port`, bodies checked.
pub fn http_args(port: u16, path: &str, sha: &str, len: usize, connections: u32, requests: u32) -> Vec<String> {
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

/// A file of `len` pseudo-random bytes in `dir`; returns its SHA-256 (hex).
pub fn random_file(dir: &Path, name: &str, len: usize, seed: u64) -> String {
    use rand::{RngCore, SeedableRng};
    use sha2::{Digest, Sha256};
    let mut bytes = vec![0u8; len];
    rand_chacha::ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut bytes);
    std::fs::write(dir.join(name), &bytes).expect("write test file");
    Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
}
