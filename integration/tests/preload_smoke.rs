//! Real programs under the preload: Python's `http.server` serves files to
//! `curl` over loopback, with both under the preload, once with sockets
//! converted to the kernel's and once with them as kernel-proxy sessions
//! (so Python's selectors and curl's poll loop run over placeholders).
//! Bodies are compared byte for byte.

mod preload_support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use preload_support::{command, kill, run, Mode};

/// How long the server may take to say where it listens.
const STARTUP_DEADLINE: Duration = Duration::from_secs(30);

/// A file body whose bytes depend on their position, so truncation,
/// reordering or duplication all change it.
fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8).collect()
}

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// Starts `python3 -m http.server` on an ephemeral loopback port, serving
/// `dir`, and waits for its "Serving HTTP on ... port N" line.
fn start_server(dir: &Path, mode: Mode) -> Server {
    let mut cmd = command("python3", mode);
    cmd.args(["-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory"]).arg(dir).stderr(Stdio::null());
    let mut child = cmd.spawn().expect("python3 (install it: scripts/install-deps.sh)");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let line = match rx.recv_timeout(STARTUP_DEADLINE) {
        Ok(line) => line,
        Err(e) => {
            kill(&mut child);
            panic!("http.server under {mode:?} did not start: {e}");
        }
    };
    let port = line
        .split_whitespace()
        .skip_while(|word| *word != "port")
        .nth(1)
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("unexpected http.server banner: {line}"));
    Server { child, port }
}

fn fetch_and_compare(dir: &Path, mode: Mode, files: &[(&str, Vec<u8>)]) {
    let server = start_server(dir, mode);
    let out_dir = dir.join(format!("out-{mode:?}"));
    std::fs::create_dir_all(&out_dir).unwrap();
    // One curl run fetches every file over one keep-alive connection
    // (http.server speaks HTTP/1.0, so curl reconnects per file instead).
    let mut cmd = command("curl", mode);
    cmd.args(["-sS", "--fail", "--max-time", "30"]);
    for (name, _) in files {
        cmd.arg(format!("http://127.0.0.1:{}/{name}", server.port)).arg("-o").arg(out_dir.join(name));
    }
    let fetched = run(cmd);
    assert_eq!(fetched.code, Some(0), "curl under {mode:?} failed:\n{}", fetched.stderr);
    for (name, expected) in files {
        let got = std::fs::read(out_dir.join(name)).expect("curl's output file");
        assert!(got == *expected, "{name} under {mode:?}: {} bytes, expected {}", got.len(), expected.len());
    }
    for line in fetched.sluice_lines() {
        assert!(
            mode == Mode::Preload && line.contains("is unreachable"),
            "curl under {mode:?}: unexpected interposer output: {line}"
        );
    }
    drop(server);
}

fn test_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("preload-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn curl_fetches_files_from_python_http_server() {
    let dir = test_dir();
    let files = vec![("small.txt", b"hello from http.server\n".to_vec()), ("big.bin", body(3 << 20))];
    for (name, content) in &files {
        std::fs::write(dir.join(name), content).unwrap();
    }
    for mode in [Mode::Preload, Mode::Proxy] {
        fetch_and_compare(&dir, mode, &files);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
