//! A configuration error: which setting, where its value came from, and what
//! is wrong with it. The operator has to find the value to fix it, so the
//! source is as precise as we know it (the flag, the variable, the file).

use std::fmt;
use std::path::PathBuf;

/// Where a setting's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag (its name is derived from the setting's).
    Flag,
    /// A `SLUICE_*` environment variable.
    Env(&'static str),
    /// The TOML config file at this path.
    File(PathBuf),
    /// No source gave a value: the built-in default (or its absence).
    Default,
}

/// A setting that is missing, malformed or out of range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The setting's name (also its config-file key), or `config` for the
    /// config file itself.
    pub setting: &'static str,
    pub source: Source,
    /// What is wrong; quotes the offending value.
    pub message: String,
}

impl ConfigError {
    pub fn new(setting: &'static str, source: Source, message: impl Into<String>) -> ConfigError {
        ConfigError { setting, source, message: message.into() }
    }
}

impl Source {
    /// Where `setting`'s value came from, as a message names it: `--ip`,
    /// `SLUICE_IP`, the file's path, or `the default`.
    pub fn describe(&self, setting: &str) -> String {
        match self {
            Source::Flag => format!("--{}", setting.replace('_', "-")),
            Source::Env(name) => (*name).to_owned(),
            Source::File(path) => path.display().to_string(),
            Source::Default => "the default".to_owned(),
        }
    }
}

impl fmt::Display for ConfigError {
    /// `setting 'ip' (from SLUICE_IP): "10.0.0.1" lacks a /prefix`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "setting '{}' (from {}): {}", self.setting, self.source.describe(self.setting), self.message)
    }
}

impl std::error::Error for ConfigError {}
