//! [`load`]: the daemon's configuration from its flags, the real process
//! environment and the config file on disk. Everything it reads is handed to
//! the pure [`resolve`](super::resolve).

use std::path::PathBuf;

use super::env::unknown_variable_warnings;
use super::error::{ConfigError, Source};
use super::resolve::resolve;
use super::settings::{CONFIG_ENV, DEFAULT_CONFIG_FILE};
use super::DaemonConfig;
use crate::cli::DaemonArgs;

/// A variable of the process environment; a value that is not UTF-8 is kept
/// lossily, so that the setting's check rejects it with the value shown.
fn process_env(name: &str) -> Option<String> {
    std::env::var_os(name).map(|value| value.to_string_lossy().into_owned())
}

/// The config file to read and what named it: `--config`, else
/// `SLUICE_CONFIG`, else the default path if it exists.
fn config_file_location(args: &DaemonArgs, env: &dyn Fn(&str) -> Option<String>) -> Option<(PathBuf, Source)> {
    if let Some(path) = &args.config {
        return Some((PathBuf::from(path), Source::Flag));
    }
    if let Some(path) = env(CONFIG_ENV).filter(|p| !p.is_empty()) {
        return Some((PathBuf::from(path), Source::Env(CONFIG_ENV)));
    }
    let default = PathBuf::from(DEFAULT_CONFIG_FILE);
    default.exists().then_some((default, Source::Default))
}

/// Reads the config file, if there is one.
fn read_config_file(
    args: &DaemonArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<(PathBuf, String)>, ConfigError> {
    let Some((path, source)) = config_file_location(args, env) else {
        return Ok(None);
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some((path, text))),
        Err(e) => Err(ConfigError::new("config", source, format!("cannot read {:?}: {e}", path.display()))),
    }
}

/// Warns about `SLUICE_*` variables nobody reads. The logger is configured
/// from this very configuration, so it is usually not installed yet: then
/// the warning goes straight to stderr, like the errors the binary prints.
fn warn_about_unknown_variables() {
    let names: Vec<String> = std::env::vars_os().filter_map(|(name, _)| name.into_string().ok()).collect();
    for warning in unknown_variable_warnings(names.iter().map(String::as_str)) {
        if log::max_level() == log::LevelFilter::Off {
            eprintln!("sluice: warning: {warning}");
        } else {
            log::warn!("{warning}");
        }
    }
}

/// The daemon's configuration: `args` > `SLUICE_*` variables > config file
/// > defaults, every setting checked.
pub fn load(args: &DaemonArgs) -> Result<DaemonConfig, ConfigError> {
    warn_about_unknown_variables();
    let file = read_config_file(args, &process_env)?;
    resolve(args, &process_env, file.as_ref().map(|(path, text)| (path.as_path(), text.as_str())))
}
