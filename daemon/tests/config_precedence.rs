//! Flags beat variables, variables beat the file, the file beats defaults;
//! and the defaults are the documented ones.

mod config_support;

use std::net::Ipv4Addr;
use std::path::PathBuf;

use config_support::{resolve_with, REQUIRED};
use sluice_daemon::config::settings::find;
use sluice_daemon::config::{default_control_socket_for, euid, DaemonConfig, DeviceKind, PollMode, XdpMode};

/// Three valid, distinct values per setting (flag, variable, file literal)
/// and how to read the setting back out of the config.
struct Case {
    name: &'static str,
    flag: &'static str,
    env: &'static str,
    file: &'static str,
    read: fn(&DaemonConfig) -> String,
}

const CASES: &[Case] = &[
    Case { name: "iface", flag: "eth1", env: "eth2", file: "\"eth3\"", read: |c| c.iface.clone() },
    Case {
        name: "ip",
        flag: "10.0.0.1/8",
        env: "10.0.0.2/16",
        file: "\"10.0.0.3/24\"",
        read: |c| format!("{}/{}", c.ip, c.prefix),
    },
    Case { name: "device", flag: "tap", env: "xdp", file: "\"tap\"", read: |c| format!("{:?}", c.device) },
    Case { name: "queues", flag: "4", env: "3", file: "2", read: |c| c.queues.to_string() },
    Case { name: "xdp_mode", flag: "native", env: "skb", file: "\"native\"", read: |c| format!("{:?}", c.xdp_mode) },
    Case { name: "zero_copy", flag: "on", env: "off", file: "\"on\"", read: |c| format!("{:?}", c.zero_copy) },
    Case { name: "xdp_frames", flag: "8192", env: "16k", file: "32768", read: |c| c.xdp_frames.to_string() },
    Case { name: "poll_mode", flag: "busy", env: "sleep", file: "\"busy\"", read: |c| format!("{:?}", c.poll_mode) },
    Case { name: "idle_spin_us", flag: "7", env: "8", file: "9", read: |c| c.idle_spin_us.to_string() },
    Case { name: "rx_fifo", flag: "8k", env: "16k", file: "\"32k\"", read: |c| c.rx_fifo.to_string() },
    Case { name: "tx_fifo", flag: "8k", env: "16k", file: "32768", read: |c| c.tx_fifo.to_string() },
    Case { name: "max_sessions", flag: "10", env: "20", file: "30", read: |c| c.max_sessions.to_string() },
    Case { name: "event_ring", flag: "1024", env: "2048", file: "4096", read: |c| c.event_ring.to_string() },
    Case { name: "request_ring", flag: "256", env: "512", file: "128", read: |c| c.request_ring.to_string() },
    Case {
        name: "control_socket",
        flag: "/a.sock",
        env: "/b.sock",
        file: "\"/c.sock\"",
        read: |c| c.control_socket.display().to_string(),
    },
    Case { name: "socket_mode", flag: "0600", env: "0660", file: "0o640", read: |c| format!("{:o}", c.socket_mode) },
    Case {
        name: "mac",
        flag: "02:00:00:00:00:01",
        env: "02:00:00:00:00:02",
        file: "\"02:00:00:00:00:03\"",
        read: |c| format!("{:?}", c.mac),
    },
    Case { name: "mtu", flag: "9000", env: "1400", file: "576", read: |c| c.mtu.to_string() },
    Case { name: "loopback", flag: "on", env: "off", file: "true", read: |c| c.loopback.to_string() },
    Case { name: "log", flag: "debug", env: "warn", file: "\"trace\"", read: |c| c.log.clone() },
];

/// The required flags unless `case` is one of them.
fn base(case: &Case) -> Vec<&'static str> {
    let flag = find(case.name).unwrap().flag_name();
    REQUIRED.chunks(2).filter(|pair| pair[0] != flag).flatten().copied().collect()
}

fn read(case: &Case, flag: bool, env: bool, file: bool) -> String {
    let setting = find(case.name).unwrap();
    let flag_arg = format!("{}={}", setting.flag_name(), case.flag);
    let mut args = base(case);
    if flag {
        args.push(&flag_arg);
    }
    let vars: Vec<(&str, &str)> = if env { vec![(setting.env, case.env)] } else { vec![] };
    let text = format!("{} = {}\n", case.name, case.file);
    let config = resolve_with(&args, &vars, file.then_some(text.as_str()));
    (case.read)(&config.unwrap_or_else(|e| panic!("{}: {e}", case.name)))
}

#[test]
fn flag_beats_variable_beats_file_beats_default() {
    for case in CASES {
        let from_flag = read(case, true, true, true);
        let from_env = read(case, false, true, true);
        let from_file = read(case, false, false, true);
        assert_ne!(from_flag, from_env, "{}: the flag must win over the variable", case.name);
        assert_ne!(from_env, from_file, "{}: the variable must win over the file", case.name);
        assert_eq!(read(case, true, false, false), from_flag, "{}", case.name);
        assert_eq!(read(case, false, true, false), from_env, "{}", case.name);
        if !REQUIRED.contains(&find(case.name).unwrap().flag_name().as_str()) {
            let default = read(case, false, false, false);
            assert_ne!(from_file, default, "{}: the file must win over the default", case.name);
        }
    }
}

#[test]
fn a_bad_value_that_is_overridden_is_never_checked() {
    let args = [&REQUIRED[..], &["--queues", "2"]].concat();
    let config = resolve_with(&args, &[("SLUICE_QUEUES", "0")], Some("queues = 99\n")).unwrap();
    assert_eq!(config.queues, 2);
}

#[test]
fn allow_kernel_addr_from_each_source() {
    let with_flag = [&REQUIRED[..], &["--allow-kernel-addr"]].concat();
    assert!(resolve_with(&with_flag, &[("SLUICE_ALLOW_KERNEL_ADDR", "off")], None).unwrap().allow_kernel_addr);
    assert!(resolve_with(&REQUIRED, &[("SLUICE_ALLOW_KERNEL_ADDR", "on")], None).unwrap().allow_kernel_addr);
    assert!(resolve_with(&REQUIRED, &[], Some("allow_kernel_addr = true")).unwrap().allow_kernel_addr);
    assert!(!resolve_with(&REQUIRED, &[], None).unwrap().allow_kernel_addr);
}

#[test]
fn defaults_are_the_documented_ones() {
    let runtime = "/run/user/4242";
    let config = resolve_with(&REQUIRED, &[("XDG_RUNTIME_DIR", runtime)], None).unwrap();
    let expected = DaemonConfig {
        device: DeviceKind::Xdp,
        iface: "eth0".into(),
        ip: Ipv4Addr::new(10, 0, 0, 2),
        prefix: 24,
        gateway: None,
        mac: None,
        mtu: 1500,
        queues: 1,
        xdp_mode: XdpMode::Auto,
        zero_copy: None,
        xdp_frames: 4096,
        poll_mode: PollMode::Adaptive,
        idle_spin_us: 50,
        rx_fifo: 64 * 1024,
        tx_fifo: 64 * 1024,
        max_sessions: 131_072,
        event_ring: 65_536,
        request_ring: 4096,
        control_socket: default_control_socket_for(euid(), Some(PathBuf::from(runtime))),
        socket_mode: 0o666,
        loopback: false,
        log: "info".into(),
        loss_ppm: 0,
        loss_seed: None,
        allow_kernel_addr: false,
    };
    assert_eq!(config, expected);
    let expected_socket = if euid() == 0 { "/run/sluice/control.sock" } else { "/run/user/4242/sluice/control.sock" };
    assert_eq!(config.control_socket, PathBuf::from(expected_socket));
    config.geometry().validate().unwrap();
}

#[test]
fn gateway_from_the_file_is_checked_against_the_ip_from_a_flag() {
    let config = resolve_with(&REQUIRED, &[], Some("gateway = \"10.0.0.1\"\n")).unwrap();
    assert_eq!(config.gateway, Some(Ipv4Addr::new(10, 0, 0, 1)));
    let args = ["--iface", "eth0", "--ip", "10.0.1.2/24"];
    assert_eq!(resolve_with(&args, &[], Some("gateway = \"10.0.0.1\"\n")).unwrap_err().setting, "gateway");
}
