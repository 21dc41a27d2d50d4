//! What the preload tests share: building `libsluice_preload.so`, compiling
//! the C programs of `integration/c/`, and running a program on the kernel or
//! under the preload with a clean `SLUICE_*` environment and a deadline.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use wait_timeout::ChildExt;

/// How long one program run may take before the test fails.
pub const RUN_DEADLINE: Duration = Duration::from_secs(60);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("integration/ has a parent").to_path_buf()
}

/// `libsluice_preload.so`, built once per test binary with the profile this
/// test binary was built with, in the same target directory (the test
/// binary lives in `<target>/<profile>/deps/`).
pub fn preload_lib() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let exe = std::env::current_exe().expect("test binary path");
        let profile_dir = exe.parent().and_then(Path::parent).expect("<target>/<profile>/deps/<test>");
        let target_dir = profile_dir.parent().expect("<target>/<profile>");
        let release = profile_dir.file_name().is_some_and(|name| name == "release");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build.current_dir(workspace_root()).args(["build", "--quiet", "-p", "sluice-preload", "--lib"]);
        if release {
            build.arg("--release");
        }
        build.env("CARGO_TARGET_DIR", target_dir);
        let status = build.status().expect("running cargo build -p sluice-preload");
        assert!(status.success(), "cargo build -p sluice-preload failed: {status}");
        let lib = profile_dir.join("libsluice_preload.so");
        assert!(lib.exists(), "{} was not built", lib.display());
        lib
    })
}

/// Compiles `integration/c/<name>.c` (once per test binary) and returns the
/// executable.
pub fn c_program(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(name) {
        return path.clone();
    }
    let source_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("c");
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("preload-c");
    std::fs::create_dir_all(&out_dir).expect("creating the C output directory");
    let exe = out_dir.join(name);
    let output = Command::new("cc")
        .args(["-O1", "-g", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&exe)
        .arg(source_dir.join(format!("{name}.c")))
        .output()
        .expect("running cc (install gcc: scripts/install-deps.sh)");
    assert!(output.status.success(), "cc {name}.c failed:\n{}", String::from_utf8_lossy(&output.stderr));
    built.insert(name.to_string(), exe.clone());
    exe
}

/// Where a program's TCP sockets go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// No preload: the oracle.
    Kernel,
    /// Under the preload without a backend and `SLUICE_FALLBACK=kernel`:
    /// candidates decided by the policy, converted to kernel sockets.
    Preload,
    /// Under the preload with `SLUICE_BACKEND=kernel-proxy` and loopback
    /// allowed: the program's loopback sockets are sessions.
    Proxy,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Kernel, Mode::Preload, Mode::Proxy];
}

/// A command for `program` in `mode`: stdin from /dev/null, output
/// captured, every inherited `SLUICE_*` variable removed.
pub fn command(program: impl AsRef<Path>, mode: Mode) -> Command {
    let mut cmd = Command::new(program.as_ref());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SLUICE_") {
            cmd.env_remove(name);
        }
    }
    cmd.env_remove("LD_PRELOAD");
    match mode {
        Mode::Kernel => {}
        Mode::Preload => {
            // No daemon answers there, whatever runs on this machine: the
            // Sluice verdict falls back to the kernel, which this mode tests.
            let nowhere = Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-daemon/control.sock");
            cmd.env("LD_PRELOAD", preload_lib())
                .env("SLUICE_FALLBACK", "kernel")
                .env("SLUICE_CONTROL_SOCKET", nowhere);
        }
        Mode::Proxy => {
            cmd.env("LD_PRELOAD", preload_lib()).env("SLUICE_BACKEND", "kernel-proxy").env("SLUICE_LOOPBACK", "on");
        }
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

/// What a finished run produced.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The interposer's own stderr lines (`sluice[PID]...`).
    pub fn sluice_lines(&self) -> Vec<&str> {
        self.stderr.lines().filter(|line| line.starts_with("sluice[")).collect()
    }
}

/// Runs `cmd` to completion within [`RUN_DEADLINE`]; a run past it is
/// killed and fails the test.
pub fn run(mut cmd: Command) -> Run {
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    // Read both pipes on threads so a chatty program cannot block on them.
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let status = match child.wait_timeout(RUN_DEADLINE).expect("waiting for the program") {
        Some(status) => status,
        None => {
            kill(&mut child);
            panic!(
                "{cmd:?} ran past {RUN_DEADLINE:?}; output so far:\n{}\n{}",
                stdout.join().unwrap_or_default(),
                stderr.join().unwrap_or_default()
            );
        }
    };
    // A program that daemonized leaves a descendant holding the pipes: the
    // output ends when it does, within the same deadline.
    Run { code: status.code(), stdout: stdout.finish("stdout"), stderr: stderr.finish("stderr") }
}

/// A pipe being read to its end on a thread.
struct Drain(std::sync::mpsc::Receiver<String>);

impl Drain {
    fn join(self) -> Result<String, std::sync::mpsc::RecvTimeoutError> {
        self.0.recv_timeout(Duration::from_secs(1))
    }

    fn finish(self, what: &str) -> String {
        self.0.recv_timeout(RUN_DEADLINE).unwrap_or_else(|e| panic!("{what} still open after {RUN_DEADLINE:?}: {e}"))
    }
}

fn drain(mut pipe: impl std::io::Read + Send + 'static) -> Drain {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        let _ = tx.send(String::from_utf8_lossy(&bytes).into_owned());
    });
    Drain(rx)
}

pub fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}
