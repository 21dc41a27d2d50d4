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
    control_socket_path_in(explicit, &|name| std::env::var_os(name).map(PathBuf::from), euid())
}

/// [`control_socket_path`] with the environment looked up through `env`
/// and the effective uid given.
pub fn control_socket_path_in(explicit: Option<&Path>, env: &dyn Fn(&str) -> Option<PathBuf>, euid: u32) -> PathBuf {
    if let Some(path) = explicit {
        return path.to_path_buf();
    }
    match env(CONTROL_SOCKET.env) {
        Some(path) if !path.as_os_str().is_empty() => path,
        _ => default_control_socket_for(euid, env(RUNTIME_DIR_ENV)),
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
    fn explicit_then_variable_then_default() {
        let env = |name: &str| match name {
            "SLUICE_CONTROL_SOCKET" => Some(PathBuf::from("/env/c.sock")),
            "XDG_RUNTIME_DIR" => Some(PathBuf::from("/run/user/7")),
            _ => None,
        };
        let explicit = Some(Path::new("/x/y.sock"));
        assert_eq!(control_socket_path_in(explicit, &env, 7), Path::new("/x/y.sock"));
        assert_eq!(control_socket_path(explicit), Path::new("/x/y.sock"));
        assert_eq!(control_socket_path_in(None, &env, 7), Path::new("/env/c.sock"));
        let unset = |name: &str| env(name).filter(|_| name != "SLUICE_CONTROL_SOCKET");
        assert_eq!(control_socket_path_in(None, &unset, 7), Path::new("/run/user/7/sluice/control.sock"));
        let empty = |name: &str| if name == "SLUICE_CONTROL_SOCKET" { Some(PathBuf::new()) } else { env(name) };
        assert_eq!(control_socket_path_in(None, &empty, 0), Path::new("/run/sluice/control.sock"));
    }
}
