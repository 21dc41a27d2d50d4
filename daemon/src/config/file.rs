//! The TOML config file: a flat table whose keys are setting names. A key
//! that names no setting is an error, not something to skip: a misspelt key
//! would otherwise silently leave its setting at the default.

use std::path::{Path, PathBuf};

use super::error::{ConfigError, Source};
use super::settings::SETTINGS;
use super::suggest::closest;

/// A parsed config file whose keys are all known settings.
#[derive(Clone, Debug)]
pub struct ConfigFile {
    path: PathBuf,
    table: toml::Table,
}

/// 1-based line and column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

impl ConfigFile {
    /// Parses `text`, read from `path`, and checks that every key is a
    /// setting. Errors name the setting `config` and the file.
    pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, ConfigError> {
        let source = Source::File(path.to_path_buf());
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let place = e.span().map(|span| line_column(text, span.start));
            let message = e.message().trim_end();
            let message = match place {
                Some((line, column)) => format!("invalid TOML at line {line}, column {column}: {message}"),
                None => format!("invalid TOML: {message}"),
            };
            ConfigError::new("config", source.clone(), message)
        })?;
        let names: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
        for key in table.keys() {
            if names.contains(&key.as_str()) {
                continue;
            }
            let hint = match closest(key, &names) {
                Some(name) => format!(" (did you mean '{name}'?)"),
                None if key.contains('-') => format!(" (keys use '_': '{}')", key.replace('-', "_")),
                None => String::new(),
            };
            return Err(ConfigError::new("config", source, format!("unknown key {key:?}{hint}")));
        }
        Ok(ConfigFile { path: path.to_path_buf(), table })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The value of setting `name`, if the file sets it.
    pub fn get(&self, name: &str) -> Option<&toml::Value> {
        self.table.get(name)
    }
}
