//! The `sluice` binary and `libsluice_preload.so` (which `sluice run` finds
//! next to it), built with cargo into the target directory and profile of
//! the running executable (a test in `<target>/<profile>/deps/`, the
//! `nginx-tests` binary in `<target>/<profile>/`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root (this crate's parent).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("nginx-tests/ has a parent").to_path_buf()
}

/// `<target>/<profile>` of the running executable.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the running executable's path");
    let dir = exe.parent().expect("an executable lives in a directory");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().expect("<target>/<profile>/deps").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// The `sluice` binary, with the preload library next to it; built once
/// per process (cargo makes it a no-op when nothing changed).
pub fn sluice() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let profile = profile_dir();
        let target = profile.parent().expect("<target>/<profile>");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build.current_dir(workspace()).args(["build", "--quiet", "-p", "sluice-daemon", "--bin", "sluice"]);
        build.args(["-p", "sluice-preload", "--lib"]).env("CARGO_TARGET_DIR", target);
        if profile.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build (sluice, libsluice_preload.so)");
        assert!(status.success(), "cargo build of sluice and the preload failed: {status}");
        let bin = profile.join("sluice");
        assert!(bin.exists() && profile.join("libsluice_preload.so").exists(), "{} not built", bin.display());
        bin
    })
}

/// The raw-socket client, run by python3 in the peer namespace.
pub fn http_client_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients").join("http_client.py")
}
