//! Unknown `SLUICE_*` variables. Apps under the preload read their own
//! `SLUICE_*` policy variables (design §5.4) from the same environment, and
//! the test harness reads `SLUICE_SIM_*`, so an unknown name is only a
//! warning: the daemon cannot know every consumer, but a misspelt daemon
//! variable would otherwise be silently ignored.

use super::settings::{CONFIG_ENV, SETTINGS};
use super::suggest::closest;

/// The prefix of every Sluice variable.
const PREFIX: &str = "SLUICE_";

/// Variables that apps (vcl, preload, `sluice run`) read.
pub const APP_VARIABLES: &[&str] = &[
    "SLUICE_RULES",
    "SLUICE_FALLBACK",
    "SLUICE_TRACE",
    "SLUICE_UDP",
    "SLUICE_INHERITED",
    "SLUICE_PRELOAD",
    "SLUICE_PANIC",
];

/// Prefixes of variable families read outside the daemon: fault injection
/// in apps, and the integration simulator.
pub const FOREIGN_PREFIXES: &[&str] = &["SLUICE_FAULT_", "SLUICE_SIM_"];

/// Every variable the daemon reads.
fn daemon_variables() -> Vec<&'static str> {
    SETTINGS.iter().map(|s| s.env).chain([CONFIG_ENV]).collect()
}

/// A warning for each `SLUICE_*` name among `names` that neither the daemon
/// nor an app reads, with the nearest known name when it looks like a typo.
pub fn unknown_variable_warnings<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let daemon = daemon_variables();
    let known: Vec<&str> = daemon.iter().chain(APP_VARIABLES).copied().collect();
    // Compared without the common prefix, which would make every short
    // name look close to every other.
    let suffixes: Vec<&str> = known.iter().map(|name| name.strip_prefix(PREFIX).unwrap_or(name)).collect();
    names
        .into_iter()
        .filter(|name| name.starts_with(PREFIX))
        .filter(|name| !known.contains(name) && !FOREIGN_PREFIXES.iter().any(|p| name.starts_with(p)))
        .map(|name| match closest(name.strip_prefix(PREFIX).unwrap_or(name), &suffixes) {
            Some(near) => format!("{name} is not a Sluice variable (did you mean SLUICE_{near}?); ignoring it"),
            None => format!("{name} is not a Sluice variable; ignoring it"),
        })
        .collect()
}
