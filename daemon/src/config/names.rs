//! Name-like settings: the interface name, the log filter, the socket path.

use super::suggest::closest;

/// The level names env_logger accepts (case ignored).
const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// `IFNAMSIZ` (16, `<net/if.h>`) less the terminating NUL.
const IFACE_MAX: usize = 15;

/// `sizeof(sockaddr_un.sun_path)` (108, unix(7)) less the terminating NUL.
const SOCKET_PATH_MAX: usize = 107;

/// An interface name the kernel accepts: the rules of `dev_valid_name()`
/// in `net/core/dev.c` (non-empty, < IFNAMSIZ, not `.` or `..`, no `/`,
/// `:` or whitespace).
pub fn iface(text: &str, shown: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("the interface name is empty".to_owned());
    }
    if text.len() > IFACE_MAX {
        return Err(format!("{shown} is {} bytes long; interface names have at most {IFACE_MAX}", text.len()));
    }
    if text == "." || text == ".." {
        return Err(format!("{shown} is not a valid interface name"));
    }
    if let Some(c) = text.chars().find(|&c| c == '/' || c == ':' || c.is_whitespace() || c.is_control()) {
        return Err(format!("{shown} contains {c:?}, which interface names cannot"));
    }
    Ok(())
}

/// A control socket path that fits `sun_path`.
pub fn socket_path(text: &str, shown: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("the path is empty".to_owned());
    }
    if text.contains('\0') {
        return Err(format!("{shown} contains a NUL byte"));
    }
    if text.len() > SOCKET_PATH_MAX {
        return Err(format!(
            "{shown} is {} bytes long; a Unix socket path has at most {SOCKET_PATH_MAX} (unix(7))",
            text.len()
        ));
    }
    Ok(())
}

/// An env_logger filter, checked with env_filter's grammar (its
/// `parse_spec`): `DIRECTIVE[,DIRECTIVE...][/REGEX]`, where a directive is
/// `LEVEL`, `MODULE` or `MODULE=LEVEL`. env_logger itself only warns on a
/// bad directive and drops it; at start-up we would rather refuse it. The
/// regex is not checked here (that needs the regex engine env_logger uses).
pub fn log_filter(text: &str, shown: &str) -> Result<(), String> {
    let mut parts = text.split('/');
    let directives = parts.next().unwrap_or("");
    if parts.next().is_some() && parts.next().is_some() {
        return Err(format!("{shown} has more than one '/'"));
    }
    // Quote the whole filter only when it has more than the one directive.
    let whole = |part: &str| if part == text { String::new() } else { format!("{shown}: ") };
    for directive in directives.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let mut sides = directive.split('=');
        let first = sides.next().unwrap_or("").trim();
        match (sides.next().map(str::trim), sides.next()) {
            (None, _) => {
                // A lone word that is not a level is a module name to
                // env_logger; one that is nearly a level is a typo that
                // would silently turn all other logging off.
                if first.parse::<log::LevelFilter>().is_err() {
                    if let Some(level) = closest(first, &LEVELS) {
                        return Err(format!(
                            "{}{first:?} is not a log level (did you mean {level}? for a module, write {first}=LEVEL)",
                            whole(first)
                        ));
                    }
                }
            }
            (Some(""), None) => {}
            (Some(level), None) => {
                if level.parse::<log::LevelFilter>().is_err() {
                    return Err(format!(
                        "{}{level:?} is not a log level (off, error, warn, info, debug, trace)",
                        whole(directive)
                    ));
                }
            }
            (Some(_), Some(_)) => return Err(format!("{}{directive:?} has more than one '='", whole(directive))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names() {
        assert!(iface("eth0", "").is_ok());
        assert!(iface("veth-sluice-123", "").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "a:1", "sixteen-bytes-xx", "tab\t"] {
            assert!(iface(bad, "").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn log_filters() {
        for good in ["info", "sluice_daemon=debug,warn", "trace/foo", "sluice_stack", "a=,b=OFF", ""] {
            assert!(log_filter(good, "").is_ok(), "{good:?}");
        }
        assert!(log_filter("sluice_daemon", "").is_ok());
        for bad in ["debg", "inf,sluice=trace", "a=b=c", "a/b/c", "sluice=verbose"] {
            assert!(log_filter(bad, "").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn socket_paths() {
        assert!(socket_path("/run/sluice/control.sock", "").is_ok());
        assert!(socket_path("", "").is_err());
        assert!(socket_path(&"x".repeat(108), "").is_err());
        assert!(socket_path(&"x".repeat(107), "").is_ok());
    }
}
