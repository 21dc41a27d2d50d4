//! `config::load`: finds and reads the file named by `--config` (the flag
//! beats `SLUICE_CONFIG`, so the real environment does not matter here).

mod config_support;

use std::path::PathBuf;

use config_support::daemon_args;
use sluice_daemon::config::{load, Source};

/// A file in the temp directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!("sluice-config-test-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn an_unreadable_config_file_is_named_with_the_flag() {
    let missing = std::env::temp_dir().join(format!("sluice-config-test-{}-missing.toml", std::process::id()));
    let args = daemon_args(&["--iface", "eth0", "--ip", "10.0.0.2/24", "--config", missing.to_str().unwrap()]);
    let error = load(&args).unwrap_err();
    assert_eq!((error.setting, &error.source), ("config", &Source::Flag));
    assert!(error.message.starts_with("cannot read"), "{error}");
    assert!(error.to_string().starts_with("setting 'config' (from --config): "), "{error}");
}

#[test]
fn the_file_named_by_the_flag_is_read() {
    let file = TempFile::new("unknown-key.toml", "queus = 2\n");
    let args = daemon_args(&["--iface", "eth0", "--ip", "10.0.0.2/24", "--config", file.0.to_str().unwrap()]);
    let error = load(&args).unwrap_err();
    assert_eq!((error.setting, &error.source), ("config", &Source::File(file.0.clone())));
    assert!(error.message.contains("did you mean 'queues'"), "{error}");
}
