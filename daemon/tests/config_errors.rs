//! Every setting rejects bad values from every source, and the error names
//! the setting and the source the bad value came from.

mod config_support;

use std::path::PathBuf;

use config_support::{resolve_with, FILE, REQUIRED};
use sluice_daemon::config::settings::{find, Setting, SETTINGS};
use sluice_daemon::config::Source;

/// 108 bytes: one more than `sun_path` holds with its NUL.
const TOO_LONG_PATH: &str =
    "/run/sluice/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

/// Bad values per setting, written as on the command line.
const BAD: &[(&str, &[&str])] = &[
    ("iface", &["", "this-name-is-16b", "a/b", "a b", "..", "eth0:1"]),
    (
        "ip",
        &[
            "10.0.0.1",
            "10.0.0.1/0",
            "10.0.0.1/33",
            "10.0.0.0/24",
            "10.0.0.255/24",
            "127.0.0.1/8",
            "224.0.0.1/8",
            "0.0.0.1/8",
            "255.255.255.255/32",
            "240.0.0.1/8",
            "10.0.0/24",
            "ten/8",
        ],
    ),
    ("gateway", &["10.0.1.1", "10.0.0.2", "10.0.0.255", "10.0.0.0", "224.0.0.1", "gw"]),
    ("device", &["memory", "xdp2"]),
    ("queues", &["0", "33", "-1", "1.5", "one", "4k"]),
    ("xdp_mode", &["drv"]),
    ("zero_copy", &["yes"]),
    ("xdp_frames", &["1024", "3000", "524288", "0"]),
    ("poll_mode", &["spin"]),
    ("idle_spin_us", &["1000001", "-5"]),
    ("rx_fifo", &["2048", "3000", "8M", "64KB", "0", "5G"]),
    ("tx_fifo", &["2048", "3000", "8M", "64KB", "0"]),
    ("max_sessions", &["0", "1048577", "2M"]),
    ("event_ring", &["1", "3", "32M"]),
    ("request_ring", &["1", "100", "131072"]),
    ("control_socket", &["", TOO_LONG_PATH]),
    ("socket_mode", &["1000", "0888", "rw"]),
    ("mac", &["01:00:5e:00:00:01", "00:00:00:00:00:00", "02:00:00:00:00", "zz:00:00:00:00:01"]),
    ("mtu", &["575", "9001", "1500b"]),
    ("loopback", &["maybe", "1"]),
    ("log", &["verbose=1", "a/b/c", "debg"]),
    ("loss", &["101", "-1", "5%", "0.00001", "1.", "lots"]),
    ("loss_seed", &["-1", "18446744073709551616", "seed"]),
    ("allow_kernel_addr", &["maybe"]),
];

/// The same value as a TOML literal: an integer written canonically stays
/// an integer (so range checks, not type checks, are exercised), anything
/// else becomes a string.
fn toml_literal(value: &str) -> String {
    match value.parse::<i64>() {
        Ok(n) if n.to_string() == value => value.to_owned(),
        _ => format!("{value:?}"),
    }
}

/// The required flags, minus the one under test.
fn other_required(setting: &Setting) -> Vec<&'static str> {
    REQUIRED.chunks(2).filter(|pair| pair[0] != setting.flag_name()).flatten().copied().collect()
}

fn check(
    setting: &Setting,
    value: &str,
    source: Source,
    result: Result<impl std::fmt::Debug, sluice_daemon::config::ConfigError>,
) {
    let error = match result {
        Err(e) => e,
        Ok(config) => panic!("{} = {value:?} from {source:?} was accepted: {config:?}", setting.name),
    };
    assert_eq!(error.setting, setting.name, "{value:?} from {source:?}: {error}");
    assert_eq!(error.source, source, "{value:?}: {error}");
    let prefix = format!("setting '{}' (from {}): ", setting.name, source.describe(setting.name));
    assert!(error.to_string().starts_with(&prefix), "{error}");
    assert!(!error.message.is_empty());
}

#[test]
fn every_setting_is_in_the_bad_value_table() {
    assert_eq!(TOO_LONG_PATH.len(), 108);
    for setting in SETTINGS {
        assert!(BAD.iter().any(|(name, _)| *name == setting.name), "no bad values for {}", setting.name);
    }
}

#[test]
fn bad_flags_name_the_setting_and_the_flag() {
    for (name, values) in BAD {
        let setting = find(name).unwrap();
        if *name == "allow_kernel_addr" {
            continue; // a flag without a value cannot be bad
        }
        for value in *values {
            let flag = format!("{}={value}", setting.flag_name());
            let mut args = other_required(setting);
            args.push(&flag);
            check(setting, value, Source::Flag, resolve_with(&args, &[], None));
        }
    }
}

#[test]
fn bad_variables_name_the_setting_and_the_variable() {
    for (name, values) in BAD {
        let setting = find(name).unwrap();
        // An empty variable is unset (see config_env.rs).
        for value in values.iter().filter(|v| !v.is_empty()) {
            let result = resolve_with(&other_required(setting), &[(setting.env, value)], None);
            check(setting, value, Source::Env(setting.env), result);
        }
    }
}

#[test]
fn bad_file_values_name_the_setting_and_the_file() {
    for (name, values) in BAD {
        let setting = find(name).unwrap();
        for value in *values {
            let text = format!("{} = {}\n", setting.name, toml_literal(value));
            let result = resolve_with(&other_required(setting), &[], Some(&text));
            check(setting, value, Source::File(PathBuf::from(FILE)), result);
        }
    }
}

#[test]
fn the_design_example_reads_exactly() {
    let error = resolve_with(&["--iface", "eth0"], &[("SLUICE_IP", "10.0.0.1")], None).unwrap_err();
    assert_eq!(error.to_string(), r#"setting 'ip' (from SLUICE_IP): "10.0.0.1" lacks a /prefix"#);
}

#[test]
fn range_errors_quote_the_value_and_the_rule() {
    let error = resolve_with(&[&REQUIRED[..], &["--rx-fifo", "5k"]].concat(), &[], None).unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"setting 'rx_fifo' (from --rx-fifo): "5k" = 5120 is invalid: must be a power of two in 4k..=4M"#
    );
    let error = resolve_with(&REQUIRED, &[], Some("queues = 40\n")).unwrap_err();
    assert_eq!(error.to_string(), format!("setting 'queues' (from {FILE}): 40 is out of range: must be 1..=32"));
    let error = resolve_with(&REQUIRED, &[("SLUICE_DEVICE", "dpdk")], None).unwrap_err();
    assert_eq!(error.message, r#""dpdk" is not one of xdp, tap"#);
}

#[test]
fn missing_required_settings_are_named() {
    let error = resolve_with(&["--ip", "10.0.0.2/24"], &[], None).unwrap_err();
    assert_eq!((error.setting, &error.source), ("iface", &Source::Default));
    assert!(error.message.contains("--iface") && error.message.contains("SLUICE_IFACE"), "{error}");
    let error = resolve_with(&["--iface", "eth0"], &[], None).unwrap_err();
    assert_eq!((error.setting, &error.source), ("ip", &Source::Default));
}

#[test]
fn zero_copy_on_conflicts_with_skb_mode_and_blames_zero_copy() {
    let error = resolve_with(&REQUIRED, &[("SLUICE_ZERO_COPY", "on")], Some("xdp_mode = \"skb\"\n")).unwrap_err();
    assert_eq!((error.setting, &error.source), ("zero_copy", &Source::Env("SLUICE_ZERO_COPY")));
    assert!(error.message.contains(FILE), "names where xdp_mode came from: {error}");
    for (mode, zero_copy) in [("native", "on"), ("auto", "on"), ("skb", "off"), ("skb", "auto")] {
        let args = [&REQUIRED[..], &["--xdp-mode", mode, "--zero-copy", zero_copy]].concat();
        assert!(resolve_with(&args, &[], None).is_ok(), "{mode} {zero_copy}");
    }
}

#[test]
fn a_default_socket_path_too_long_for_sun_path_is_an_error() {
    let long_dir = format!("/{}", "d".repeat(100));
    let result = resolve_with(&REQUIRED, &[("XDG_RUNTIME_DIR", &long_dir)], None);
    if sluice_daemon::config::euid() == 0 {
        // Root's default does not depend on XDG_RUNTIME_DIR.
        assert_eq!(result.unwrap().control_socket, PathBuf::from("/run/sluice/control.sock"));
    } else {
        let error = result.unwrap_err();
        assert_eq!((error.setting, &error.source), ("control_socket", &Source::Default));
    }
    let long = format!("/{}", "s".repeat(107));
    let error = resolve_with(&[&REQUIRED[..], &["--control-socket", &long]].concat(), &[], None).unwrap_err();
    assert_eq!((error.setting, &error.source), ("control_socket", &Source::Flag));
}
