//! The TOML config file: a complete good file, unknown keys, wrong types
//! and syntax errors.

mod config_support;

use std::net::Ipv4Addr;
use std::path::PathBuf;

use config_support::{resolve_with, FILE};
use sluice_daemon::config::{DeviceKind, PollMode, Source, XdpMode};

const GOOD: &str = r#"
# Every setting, as an operator would write them.
iface = "veth-sluice"
ip = "192.168.7.2/24"
gateway = "192.168.7.1"
device = "tap"
queues = 2
xdp_mode = "native"
zero_copy = false
xdp_frames = 8192
poll_mode = "sleep"
idle_spin_us = 0
rx_fifo = "128k"
tx_fifo = 262144
max_sessions = 1024
event_ring = "8k"
request_ring = 512
control_socket = "/run/sluice-test/control.sock"
socket_mode = 0o660
mac = "02:00:00:77:00:02"
mtu = 9000
loopback = "on"
log = "sluice_daemon=debug,info"
loss = 2.5
loss_seed = 7
allow_kernel_addr = true
"#;

#[test]
fn a_good_file_sets_everything() {
    let config = resolve_with(&[], &[], Some(GOOD)).unwrap();
    assert_eq!(config.iface, "veth-sluice");
    assert_eq!((config.ip, config.prefix), (Ipv4Addr::new(192, 168, 7, 2), 24));
    assert_eq!(config.gateway, Some(Ipv4Addr::new(192, 168, 7, 1)));
    assert_eq!(config.device, DeviceKind::Tap);
    assert_eq!(config.queues, 2);
    assert_eq!(config.xdp_mode, XdpMode::Native);
    assert_eq!(config.zero_copy, Some(false));
    assert_eq!(config.xdp_frames, 8192);
    assert_eq!(config.poll_mode, PollMode::Sleep);
    assert_eq!(config.idle_spin_us, 0);
    assert_eq!((config.rx_fifo, config.tx_fifo), (128 << 10, 256 << 10));
    assert_eq!(config.max_sessions, 1024);
    assert_eq!((config.event_ring, config.request_ring), (8192, 512));
    assert_eq!(config.control_socket, PathBuf::from("/run/sluice-test/control.sock"));
    assert_eq!(config.socket_mode, 0o660);
    assert_eq!(config.mac, Some([2, 0, 0, 0x77, 0, 2]));
    assert_eq!(config.mtu, 9000);
    assert!(config.loopback);
    assert_eq!(config.log, "sluice_daemon=debug,info");
    assert_eq!((config.loss_ppm, config.loss_seed), (25_000, Some(7)));
    assert!(config.allow_kernel_addr);
}

#[test]
fn an_empty_file_changes_nothing() {
    let args = ["--iface", "eth0", "--ip", "10.0.0.2/24"];
    assert_eq!(resolve_with(&args, &[], Some("# nothing\n")), resolve_with(&args, &[], None));
}

#[test]
fn unknown_keys_are_errors_with_a_suggestion() {
    let file = Source::File(PathBuf::from(FILE));
    let error = resolve_with(&[], &[], Some("iface = \"eth0\"\nqueus = 4\n")).unwrap_err();
    assert_eq!((error.setting, &error.source), ("config", &file));
    assert_eq!(error.message, "unknown key \"queus\" (did you mean 'queues'?)");
    let error = resolve_with(&[], &[], Some("rx-fifo = 4096\n")).unwrap_err();
    assert!(error.message.contains("'rx_fifo'"), "{error}");
    let error = resolve_with(&[], &[], Some("nginx = 1\n")).unwrap_err();
    assert_eq!(error.message, "unknown key \"nginx\"");
    // The file cannot name another file.
    let error = resolve_with(&[], &[], Some("config = \"/etc/other.toml\"\n")).unwrap_err();
    assert_eq!((error.setting, &error.source), ("config", &file));
    // Sections are not settings either.
    let error = resolve_with(&[], &[], Some("[daemon]\nqueues = 4\n")).unwrap_err();
    assert_eq!(error.message, "unknown key \"daemon\"");
}

#[test]
fn wrong_types_name_the_setting_the_file_and_both_types() {
    let file = Source::File(PathBuf::from(FILE));
    let cases = [
        ("queues = \"4\"", "queues", "expected an integer, found a string \"4\""),
        ("mtu = 1500.0", "mtu", "expected an integer, found a float 1500.0"),
        ("log = 7", "log", "expected a string, found an integer 7"),
        ("loopback = 1", "loopback", "expected a boolean or one of \"on\", \"off\", found an integer 1"),
        ("rx_fifo = [4096]", "rx_fifo", "expected an integer or a string like \"64k\", found an array [4096]"),
        ("device = true", "device", "expected a string, one of xdp, tap, found a boolean true"),
        ("queues = -2", "queues", "-2 is negative"),
    ];
    for (text, setting, message) in cases {
        let error = resolve_with(&["--iface", "eth0", "--ip", "10.0.0.2/24"], &[], Some(text)).unwrap_err();
        assert_eq!((error.setting, &error.source, error.message.as_str()), (setting, &file, message), "{text}");
    }
}

#[test]
fn syntax_errors_give_the_line_and_column() {
    let error = resolve_with(&[], &[], Some("iface = \"eth0\"\n\nqueues = = 4\n")).unwrap_err();
    assert_eq!(error.setting, "config");
    assert!(error.message.starts_with("invalid TOML at line 3, column "), "{error}");
    let error = resolve_with(&[], &[], Some("queues = 4\nqueues = 5\n")).unwrap_err();
    assert!(error.message.contains("line 2"), "duplicate key: {error}");
}
