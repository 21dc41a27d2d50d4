//! Where the control socket is, for the daemon (its default) and for the
//! admin commands and apps (explicit path, else the variable, else the same
//! default).

use std::path::{Path, PathBuf};

use super::settings::CONTROL_SOCKET;

/// The XDG base directory variable for per-user runtime files (sockets).
pub const RUNTIME_DIR_ENV: &str = "XDG_RUNTIME_DIR";

/// The effective uid: who will own the socket.
pub fn euid() -> u32 {
    // SAFETY: geteuid(2) takes no arguments, touches no memory and cannot fail.
    unsafe { libc::geteuid() }
}

/// The default for user `euid` with runtime directory `runtime_dir`:
/// `/run/sluice/control.sock` for root, else under `$XDG_RUNTIME_DIR`, else
/// `/tmp/sluice-UID/`. The XDG base directory spec says a relative value is
/// invalid and must be ignored.
pub fn default_control_socket_for(euid: u32, runtime_dir: Option<PathBuf>) -> PathBuf {
    if euid == 0 {
        return PathBuf::from("/run/sluice/control.sock");
    }
    match runtime_dir.filter(|dir| dir.is_absolute()) {
        Some(dir) => dir.join("sluice/control.sock"),
        None => PathBuf::from(format!("/tmp/sluice-{euid}/control.sock")),
    }
}

/// The daemon's default control socket for this process's user and
/// environment.
pub fn default_control_socket() -> PathBuf {
    default_control_socket_for(euid(), std::env::var_os(RUNTIME_DIR_ENV).map(PathBuf::from))
}

/// The socket an admin command or app connects to: `explicit` (a
/// `--control-socket` flag), else `SLUICE_CONTROL_SOCKET` if set and not
/// empty, else [`default_control_socket`].
pub fn control_socket_path(explicit: Option<&Path>) -> PathBuf {
    if let Some(path) = explicit {
        return path.to_path_buf();
    }
    match std::env::var_os(CONTROL_SOCKET.env) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => default_control_socket(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_socket_by_user() {
        let runtime = Some(PathBuf::from("/run/user/1000"));
        assert_eq!(default_control_socket_for(0, runtime.clone()), Path::new("/run/sluice/control.sock"));
        assert_eq!(default_control_socket_for(1000, runtime), Path::new("/run/user/1000/sluice/control.sock"));
        assert_eq!(default_control_socket_for(1000, None), Path::new("/tmp/sluice-1000/control.sock"));
        let relative = Some(PathBuf::from("run/user"));
        assert_eq!(default_control_socket_for(1000, relative), Path::new("/tmp/sluice-1000/control.sock"));
    }

    #[test]
    fn explicit_socket_wins() {
        assert_eq!(control_socket_path(Some(Path::new("/x/y.sock"))), Path::new("/x/y.sock"));
    }
}
