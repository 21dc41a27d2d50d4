//! The test bed: the `scripts/netns-daemon.sh` topology on TAP under one
//! namespace prefix, the kernel's own address 10.79.0.3 in the dut
//! namespace (on the bridge that also carries the daemon's TAP), the daemon
//! (`--loopback on`, so that its apps' 127.0.0.0/8 connections are
//! cut-through sessions) and a scratch directory. Dropped in reverse order:
//! the daemon, the namespaces, the directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_integration::netns::{in_namespace, require_privileges, Process};

use crate::binaries::{sluice, workspace};

/// The peer's address, Sluice's, and the kernel's in the dut namespace.
pub const PEER_IP: &str = "10.79.0.1";
pub const SLUICE_IP: &str = "10.79.0.2";
pub const KERNEL_IP: &str = "10.79.0.3";
/// How long anything may take to come up or go away.
pub const READY: Duration = Duration::from_secs(20);

pub struct Bed {
    daemon: Option<Process>,
    pub prefix: String,
    pub dir: PathBuf,
    pub control: PathBuf,
    /// Leave `dir` (logs, configurations) behind for a look after the run.
    pub keep_dir: bool,
}

impl Bed {
    /// Builds the topology under `prefix` and starts the daemon; `dir` (in
    /// a directory every user can traverse, such as /tmp) is created empty
    /// and removed on drop.
    pub fn up(prefix: &str, dir: &Path) -> Bed {
        require_privileges();
        let sluice = sluice();
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).expect("create the scratch directory");
        // nginx's workers run as nobody: they must reach the scratch files.
        allow_all(dir);
        let mut bed = Bed {
            daemon: None,
            prefix: prefix.into(),
            dir: dir.into(),
            control: dir.join("control.sock"),
            keep_dir: false,
        };
        bed.script(&["up", "tap", "0"]);
        let added = Command::new("ip")
            .args(["-n", &bed.dut_ns(), "addr", "add", &format!("{KERNEL_IP}/24"), "dev", "br1"])
            .status()
            .expect("run ip addr add");
        assert!(added.success(), "ip addr add {KERNEL_IP} in {}", bed.dut_ns());
        let mut cmd = in_namespace(&bed.dut_ns(), sluice.to_str().expect("utf-8 path"));
        cmd.args(["daemon", "--device", "tap", "--iface", "sdtap0", "--ip", &format!("{SLUICE_IP}/24")])
            .args(["--loopback", "on", "--log", "warn", "--control-socket"])
            .arg(&bed.control);
        bed.daemon = Some(Process::spawn(cmd).expect("spawn sluice daemon"));
        let deadline = Instant::now() + READY;
        while bed.stats().is_none() {
            assert!(Instant::now() < deadline, "the daemon never answered on {}", bed.control.display());
            std::thread::sleep(Duration::from_millis(50));
        }
        bed
    }

    fn script(&self, args: &[&str]) {
        let out = Command::new("bash")
            .arg(workspace().join("scripts").join("netns-daemon.sh"))
            .args(args)
            .env("SLUICE_NETNS_PREFIX", &self.prefix)
            .output()
            .expect("run netns-daemon.sh");
        assert!(out.status.success(), "netns-daemon.sh {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn peer_ns(&self) -> String {
        format!("{}-peer", self.prefix)
    }

    pub fn dut_ns(&self) -> String {
        format!("{}-dut", self.prefix)
    }

    /// `sluice stats --json`, or `None` if the daemon does not answer.
    pub fn stats(&self) -> Option<Value> {
        self.sluice_json("stats")
    }

    /// `sluice sessions --json`.
    pub fn sessions(&self) -> Option<Value> {
        self.sluice_json("sessions")
    }

    fn sluice_json(&self, what: &str) -> Option<Value> {
        let out = Command::new(sluice()).args([what, "--json", "--control-socket"]).arg(&self.control).output().ok()?;
        out.status.success().then_some(())?;
        serde_json::from_slice(&out.stdout).ok()
    }

    /// A program in the peer namespace.
    pub fn peer(&self, program: &str) -> Command {
        in_namespace(&self.peer_ns(), program)
    }

    /// Stops the daemon; its exit status, and what it wrote, if it failed.
    pub fn finish(mut self) -> Result<(), String> {
        let daemon = self.daemon.take().expect("the daemon runs");
        let finished = daemon.terminate(Duration::from_secs(10));
        if finished.killed || !finished.status.success() {
            return Err(format!(
                "sluice daemon: {} (killed: {})\n{}",
                finished.status, finished.killed, finished.stderr
            ));
        }
        Ok(())
    }
}

/// Opens `dir` to every user (nginx's workers run as nobody and write
/// temp files and PUT bodies); its ancestors must be traversable (the
/// scratch directory is under /tmp).
pub fn allow_all(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).expect("chmod the scratch directory");
}

impl Drop for Bed {
    fn drop(&mut self) {
        if let Some(daemon) = self.daemon.take() {
            let _ = daemon.terminate(Duration::from_secs(10));
        }
        let _ = Command::new("bash")
            .arg(workspace().join("scripts").join("netns-daemon.sh"))
            .arg("down")
            .env("SLUICE_NETNS_PREFIX", &self.prefix)
            .status();
        if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
