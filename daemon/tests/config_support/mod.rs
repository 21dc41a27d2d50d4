//! Helpers for the config tests: an environment as a map, a minimal valid
//! set of flags, and `resolve` with a file's text at a made-up path.
#![allow(dead_code)] // each test crate uses a different subset

use std::collections::HashMap;
use std::path::Path;

use sluice_daemon::cli::{self, Command, DaemonArgs};
use sluice_daemon::config::{resolve, ConfigError, DaemonConfig};

/// Where test config files claim to live (nothing is read from it).
pub const FILE: &str = "/etc/sluice/test.toml";

/// An environment holding exactly `vars`.
pub fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |name: &str| map.get(name).cloned()
}

/// `sluice daemon ARGS...` parsed; panics (fails the test) on a usage error.
pub fn daemon_args(args: &[&str]) -> DaemonArgs {
    let argv = ["sluice", "daemon"].iter().chain(args).map(|s| s.to_string());
    match cli::parse_from(argv) {
        Ok(Command::Daemon(args)) => args,
        other => panic!("{args:?} did not parse as daemon flags: {other:?}"),
    }
}

/// Resolves flags `args`, variables `vars` and, if given, a file with `text`.
pub fn resolve_with(args: &[&str], vars: &[(&str, &str)], file: Option<&str>) -> Result<DaemonConfig, ConfigError> {
    let args = daemon_args(args);
    let env = env_of(vars);
    resolve(&args, &env, file.map(|text| (Path::new(FILE), text)))
}

/// The two required settings, as flags.
pub const REQUIRED: [&str; 4] = ["--iface", "eth0", "--ip", "10.0.0.2/24"];
