//! `sluice` command-line parsing: each subcommand, help, usage errors, and
//! that every setting has its flag.

use std::path::PathBuf;

use clap::error::ErrorKind;
use sluice_daemon::cli::{parse_from, Command, DaemonArgs};
use sluice_daemon::config::settings::SETTINGS;

#[test]
fn daemon_takes_every_flag_as_text() {
    let command = parse_from([
        "sluice",
        "daemon",
        "--iface",
        "eth0",
        "--ip",
        "10.0.0.2/24",
        "--gateway",
        "10.0.0.1",
        "--device",
        "tap",
        "--queues",
        "2",
        "--xdp-mode",
        "skb",
        "--zero-copy",
        "off",
        "--xdp-frames",
        "8k",
        "--poll-mode",
        "busy",
        "--idle-spin-us",
        "10",
        "--rx-fifo",
        "64k",
        "--tx-fifo",
        "4M",
        "--max-sessions",
        "100",
        "--event-ring",
        "1024",
        "--request-ring",
        "256",
        "--control-socket",
        "/tmp/s.sock",
        "--socket-mode",
        "0600",
        "--mac",
        "02:00:00:00:00:01",
        "--mtu",
        "9000",
        "--loopback",
        "on",
        "--log",
        "debug",
        "--loss",
        "2.5",
        "--loss-seed",
        "42",
        "--allow-kernel-addr",
        "--config",
        "/etc/x.toml",
    ])
    .unwrap();
    let text = |s: &str| Some(s.to_owned());
    let expected = DaemonArgs {
        iface: text("eth0"),
        ip: text("10.0.0.2/24"),
        gateway: text("10.0.0.1"),
        device: text("tap"),
        queues: text("2"),
        xdp_mode: text("skb"),
        zero_copy: text("off"),
        xdp_frames: text("8k"),
        poll_mode: text("busy"),
        idle_spin_us: text("10"),
        rx_fifo: text("64k"),
        tx_fifo: text("4M"),
        max_sessions: text("100"),
        event_ring: text("1024"),
        request_ring: text("256"),
        control_socket: text("/tmp/s.sock"),
        socket_mode: text("0600"),
        mac: text("02:00:00:00:00:01"),
        mtu: text("9000"),
        loopback: text("on"),
        log: text("debug"),
        loss: text("2.5"),
        loss_seed: text("42"),
        allow_kernel_addr: true,
        config: text("/etc/x.toml"),
    };
    assert_eq!(command, Command::Daemon(expected));
}

#[test]
fn daemon_without_flags_leaves_everything_unset() {
    assert_eq!(parse_from(["sluice", "daemon"]).unwrap(), Command::Daemon(DaemonArgs::default()));
}

#[test]
fn each_settings_flag_reaches_its_table_row() {
    for setting in SETTINGS {
        let flag = setting.flag_name();
        let argv: Vec<String> = if setting.name == "allow_kernel_addr" {
            vec!["sluice".into(), "daemon".into(), flag.clone()]
        } else {
            vec!["sluice".into(), "daemon".into(), format!("{flag}=v-{}", setting.name)]
        };
        let Ok(Command::Daemon(args)) = parse_from(&argv) else { panic!("{flag} did not parse") };
        let expected =
            if setting.name == "allow_kernel_addr" { "on".to_owned() } else { format!("v-{}", setting.name) };
        assert_eq!((setting.flag)(&args), Some(expected.as_str()), "{flag}");
        for other in SETTINGS.iter().filter(|o| o.name != setting.name) {
            assert_eq!((other.flag)(&args), None, "{flag} set {}", other.name);
        }
    }
}

#[test]
fn stats_and_sessions() {
    let stats = parse_from(["sluice", "stats"]).unwrap();
    assert_eq!(stats, Command::Stats { json: false, socket: None });
    let stats = parse_from(["sluice", "stats", "--json", "--control-socket", "/run/x.sock"]).unwrap();
    assert_eq!(stats, Command::Stats { json: true, socket: Some(PathBuf::from("/run/x.sock")) });
    let sessions = parse_from(["sluice", "sessions", "--control-socket=/s", "--json"]).unwrap();
    assert_eq!(sessions, Command::Sessions { json: true, socket: Some(PathBuf::from("/s")) });
    assert_eq!(parse_from(["sluice", "sessions"]).unwrap(), Command::Sessions { json: false, socket: None });
}

#[test]
fn help_lists_subcommands_and_every_setting_with_its_variable() {
    let top = parse_from(["sluice", "--help"]).unwrap_err();
    assert_eq!(top.kind(), ErrorKind::DisplayHelp);
    let top = top.to_string();
    for word in ["daemon", "stats", "sessions"] {
        assert!(top.contains(word), "{top}");
    }
    let daemon = parse_from(["sluice", "daemon", "--help"]).unwrap_err();
    assert_eq!(daemon.kind(), ErrorKind::DisplayHelp);
    let daemon = daemon.to_string();
    for setting in SETTINGS {
        assert!(daemon.contains(&setting.flag_name()), "{} missing from:\n{daemon}", setting.flag_name());
        assert!(daemon.contains(&format!("[env: {}]", setting.env)), "{} missing", setting.env);
    }
    assert!(daemon.contains("--config"));
    let stats = parse_from(["sluice", "stats", "--help"]).unwrap_err().to_string();
    assert!(stats.contains("--json") && stats.contains("--control-socket"), "{stats}");
}

#[test]
fn usage_errors() {
    assert_eq!(parse_from(["sluice"]).unwrap_err().kind(), ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand);
    assert_eq!(parse_from(["sluice", "daemon", "--queus", "2"]).unwrap_err().kind(), ErrorKind::UnknownArgument);
    assert_eq!(parse_from(["sluice", "daemon", "--queues"]).unwrap_err().kind(), ErrorKind::InvalidValue);
    assert_eq!(
        parse_from(["sluice", "daemon", "--allow-kernel-addr=on"]).unwrap_err().kind(),
        ErrorKind::TooManyValues
    );
    assert_eq!(parse_from(["sluice", "frobnicate"]).unwrap_err().kind(), ErrorKind::InvalidSubcommand);
    assert_eq!(parse_from(["sluice", "stats", "--iface", "eth0"]).unwrap_err().kind(), ErrorKind::UnknownArgument);
}
