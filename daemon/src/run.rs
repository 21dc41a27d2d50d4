//! `sluice run [--control-socket P] [--] CMD ARGS...`: runs an unmodified
//! program with its TCP/IPv4 sockets on Sluice (design §5).
//!
//! It finds `libsluice_preload.so` (`SLUICE_PRELOAD`, else next to the
//! `sluice` binary, else in `../lib` from it), checks that the daemon answers
//! on its control socket (an admin `Hello` + `stats`, so a stale socket file
//! is caught here with a clear message rather than by the program's first
//! `connect`), puts the library first in `LD_PRELOAD` and the socket in
//! `SLUICE_CONTROL_SOCKET`, and `execvp`s the command: the program keeps
//! this process's pid, so signals and exit codes reach the caller unchanged.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use sluice_shm::control::AdminCommand;

use crate::config::settings::CONTROL_SOCKET;
use crate::{admin, config};

/// The file name of the interposer.
pub const PRELOAD_NAME: &str = "libsluice_preload.so";
/// Overrides where the interposer is looked for.
pub const PRELOAD_ENV: &str = "SLUICE_PRELOAD";

/// Why `sluice run` could not start the program.
#[derive(Debug)]
pub enum RunError {
    /// No command after the options.
    NoCommand,
    /// The interposer is not where it was looked for.
    NoPreload(Vec<PathBuf>),
    /// The daemon does not answer on its control socket.
    DaemonUnreachable { socket: PathBuf, why: String },
    /// `execvp` failed.
    Exec { program: OsString, why: std::io::Error },
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::NoCommand => {
                write!(f, "no command to run (usage: sluice run [--control-socket P] [--] CMD ARGS...)")
            }
            RunError::NoPreload(tried) => {
                let tried: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
                write!(f, "cannot find {PRELOAD_NAME} (looked at {}); set {PRELOAD_ENV} to its path", tried.join(", "))
            }
            RunError::DaemonUnreachable { socket, why } => write!(
                f,
                "the Sluice daemon does not answer at {} ({why}); start it with `sluice daemon` or pass \
                 --control-socket",
                socket.display()
            ),
            RunError::Exec { program, why } => write!(f, "cannot run {}: {why}", program.to_string_lossy()),
        }
    }
}

impl std::error::Error for RunError {}

/// Where the interposer is: `$SLUICE_PRELOAD` if set (it must exist), else
/// next to `exe`, else `exe`'s `../lib/`.
pub fn find_preload(env: Option<&OsStr>, exe: &Path) -> Result<PathBuf, RunError> {
    let candidates: Vec<PathBuf> = match env {
        Some(path) if !path.is_empty() => vec![PathBuf::from(path)],
        _ => {
            let dir = exe.parent().unwrap_or(Path::new("."));
            vec![dir.join(PRELOAD_NAME), dir.join("../lib").join(PRELOAD_NAME)]
        }
    };
    match candidates.iter().find(|p| p.is_file()) {
        // An absolute path: the program may chdir before loading anything
        // else, and ld.so resolves LD_PRELOAD entries as given.
        Some(found) => Ok(std::fs::canonicalize(found).unwrap_or_else(|_| found.clone())),
        None => Err(RunError::NoPreload(candidates)),
    }
}

/// `LD_PRELOAD` with `preload` first (ld.so takes space- or
/// colon-separated lists; an entry already there is not repeated).
pub fn preload_list(preload: &Path, existing: Option<&OsStr>) -> OsString {
    let mut list = OsString::from(preload.as_os_str());
    if let Some(existing) = existing {
        let existing = existing.to_string_lossy();
        for entry in existing.split([' ', ':']).filter(|e| !e.is_empty() && Path::new(e) != preload) {
            list.push(":");
            list.push(entry);
        }
    }
    list
}

/// Checks the daemon, sets up the environment and execs `command`. Returns
/// only on failure.
pub fn run(control_socket: Option<&Path>, command: &[OsString]) -> RunError {
    if command.is_empty() {
        return RunError::NoCommand;
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("sluice"));
    match find_preload(std::env::var_os(PRELOAD_ENV).as_deref(), &exe) {
        Ok(preload) => exec_under(&preload, control_socket, command),
        Err(e) => e,
    }
}

/// [`run`] with the interposer found.
pub fn exec_under(preload: &Path, control_socket: Option<&Path>, command: &[OsString]) -> RunError {
    let Some((program, args)) = command.split_first() else { return RunError::NoCommand };
    let socket = config::control_socket_path(control_socket);
    if let Err(e) = admin::request(&socket, AdminCommand::Stats, true) {
        return RunError::DaemonUnreachable { socket, why: e.to_string() };
    }
    let socket = std::fs::canonicalize(&socket).unwrap_or(socket);
    let why = std::process::Command::new(program)
        .args(args)
        .env("LD_PRELOAD", preload_list(preload, std::env::var_os("LD_PRELOAD").as_deref()))
        .env(CONTROL_SOCKET.env, &socket)
        .exec();
    RunError::Exec { program: program.clone(), why }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preload_goes_first_once() {
        let lib = Path::new("/opt/sluice/libsluice_preload.so");
        assert_eq!(preload_list(lib, None), OsString::from("/opt/sluice/libsluice_preload.so"));
        assert_eq!(
            preload_list(lib, Some(OsStr::new("/a.so /opt/sluice/libsluice_preload.so:/b.so"))),
            OsString::from("/opt/sluice/libsluice_preload.so:/a.so:/b.so")
        );
    }

    #[test]
    fn preload_is_found_next_to_the_binary_or_named_by_the_variable() {
        let dir = std::env::temp_dir().join(format!("sluice-run-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let exe = dir.join("sluice");
        assert!(matches!(find_preload(None, &exe), Err(RunError::NoPreload(tried)) if tried.len() == 2));
        std::fs::write(dir.join(PRELOAD_NAME), b"").unwrap();
        assert_eq!(find_preload(None, &exe).unwrap(), std::fs::canonicalize(dir.join(PRELOAD_NAME)).unwrap());
        let missing = dir.join("nowhere.so");
        assert!(find_preload(Some(missing.as_os_str()), &exe).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unreachable_daemon_is_a_clear_error() {
        let lib = Path::new("/nonexistent/libsluice_preload.so");
        let err = exec_under(lib, Some(Path::new("/nonexistent/sluice.sock")), &[OsString::from("true")]);
        let text = err.to_string();
        assert!(matches!(err, RunError::DaemonUnreachable { .. }), "{text}");
        assert!(text.contains("/nonexistent/sluice.sock") && text.contains("does not answer"), "{text}");
        assert!(run(None, &[]).to_string().contains("no command"));
    }
}
