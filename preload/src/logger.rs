//! The interposer's `log` backend: `sluice[PID]: LEVEL message` lines on
//! stderr, filtered by `SLUICE_LOG=off|error|warn|info|debug|trace` (default
//! `warn`, so configuration errors and the daemon-unreachable notice show).
//!
//! The `log` crate is statically linked into the preload, so this logger is
//! private to it (and to the session library linked with it): a Rust host
//! program's own logger is a different instance and never sees our lines.
//! Lines are formatted on the stack and written with the real `write`.

use std::ffi::CStr;
use std::fmt::Write;
use std::sync::Once;

use log::{LevelFilter, Log, Metadata, Record};

use crate::linebuf::{LineBuf, ShowBytes};
use crate::output::{self, Sink};

struct StderrLogger;

static LOGGER: StderrLogger = StderrLogger;
static INIT: Once = Once::new();

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut line = LineBuf::new();
        // SAFETY: getpid takes no arguments and cannot fail.
        let pid = unsafe { libc::getpid() };
        let _ = write!(line, "sluice[{pid}]: {}: {}", record.level(), record.args());
        output::emit(Sink::Stderr, line.finish());
    }

    fn flush(&self) {}
}

/// Installs the logger and reads `SLUICE_LOG`; later calls do nothing.
pub fn init() {
    INIT.call_once(|| {
        // SAFETY: NUL-terminated name; getenv returns NULL or a C string.
        let value = unsafe { libc::getenv(c"SLUICE_LOG".as_ptr()) };
        let (level, bad) = if value.is_null() {
            (LevelFilter::Warn, None)
        } else {
            // SAFETY: getenv returned a valid NUL-terminated string.
            let text = unsafe { CStr::from_ptr(value) }.to_bytes();
            match parse_level(text) {
                Some(level) => (level, None),
                None => (LevelFilter::Warn, Some(text)),
            }
        };
        if log::set_logger(&LOGGER).is_ok() {
            log::set_max_level(level);
        }
        if let Some(text) = bad {
            log::error!(
                "SLUICE_LOG: unknown level \"{}\" (expected off, error, warn, info, debug or trace); using warn",
                ShowBytes(text)
            );
        }
    });
}

fn parse_level(text: &[u8]) -> Option<LevelFilter> {
    Some(match text {
        b"off" | b"0" => LevelFilter::Off,
        b"error" => LevelFilter::Error,
        b"warn" | b"" => LevelFilter::Warn,
        b"info" => LevelFilter::Info,
        b"debug" => LevelFilter::Debug,
        b"trace" => LevelFilter::Trace,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(parse_level(b"debug"), Some(LevelFilter::Debug));
        assert_eq!(parse_level(b"off"), Some(LevelFilter::Off));
        assert_eq!(parse_level(b""), Some(LevelFilter::Warn));
        assert_eq!(parse_level(b"loud"), None);
    }
}
