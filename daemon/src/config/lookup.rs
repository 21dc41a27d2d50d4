//! Precedence: a setting's value comes from its flag, else its variable,
//! else the config file, else the table's default; whichever it is, the
//! value is checked and an error names the setting and that source.

use super::error::{ConfigError, Source};
use super::file::ConfigFile;
use super::raw::Raw;
use super::settings::{Fallback, Setting};
use crate::cli::DaemonArgs;

/// A checked value and where it came from (for later cross-checks' errors).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Given<T> {
    pub value: T,
    pub source: Source,
}

/// The three sources of settings.
pub struct Sources<'a> {
    pub args: &'a DaemonArgs,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub file: Option<&'a ConfigFile>,
}

impl Sources<'_> {
    /// The unchecked value of `setting` and its source, by precedence.
    /// An empty variable counts as unset (`VAR= cmd` is how a shell
    /// clears one for a single command).
    fn raw(&self, setting: &Setting) -> Option<(Raw, Source)> {
        if let Some(text) = (setting.flag)(self.args) {
            return Some((Raw::Arg(text.to_owned()), Source::Flag));
        }
        if let Some(text) = (self.env)(setting.env).filter(|t| !t.is_empty()) {
            return Some((Raw::Arg(text), Source::Env(setting.env)));
        }
        if let Some(file) = self.file {
            if let Some(value) = file.get(setting.name) {
                return Some((Raw::Toml(value.clone()), Source::File(file.path().to_path_buf())));
            }
        }
        match setting.fallback {
            Fallback::Value(text) => Some((Raw::Arg(text.to_owned()), Source::Default)),
            Fallback::Absent(_) | Fallback::Required => None,
        }
    }

    /// `setting`'s value checked by `check`, or `None` when no source sets it
    /// and it has no default value.
    pub fn get<T>(
        &self,
        setting: &'static Setting,
        check: impl FnOnce(&Raw) -> Result<T, String>,
    ) -> Result<Option<Given<T>>, ConfigError> {
        let Some((raw, source)) = self.raw(setting) else {
            return Ok(None);
        };
        match check(&raw) {
            Ok(value) => Ok(Some(Given { value, source })),
            Err(message) => Err(ConfigError::new(setting.name, source, message)),
        }
    }

    /// Like [`get`](Self::get), for a setting that must end up with a value.
    pub fn require<T>(
        &self,
        setting: &'static Setting,
        check: impl FnOnce(&Raw) -> Result<T, String>,
    ) -> Result<Given<T>, ConfigError> {
        self.get(setting, check)?.ok_or_else(|| {
            let message = format!(
                "is required: give {}, {} or {} in the config file",
                setting.flag_name(),
                setting.env,
                setting.name
            );
            ConfigError::new(setting.name, Source::Default, message)
        })
    }
}
