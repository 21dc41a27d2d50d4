//! The settings table: every daemon setting's name, flag, variable, file key,
//! default and rule, in one place. The flag lookup, the variable lookup, the
//! file's key check, the `--help` lines and the defaults all read [`SETTINGS`],
//! and a test checks that the table below matches it row for row.
//!
//! Precedence: flag > variable > file (`--config FILE`, else `SLUICE_CONFIG`,
//! else `/etc/sluice/sluice.toml` if it exists) > default. The flag is the
//! setting name with `-` for `_`; the file key is the setting name. Empty
//! variables count as unset. Sizes and counts take binary suffixes
//! (`64k` = 65536, `4M`, `1G`).
//!
//! | setting | flag | env | file key | default | rule |
//! |---|---|---|---|---|---|
//! | `iface` | `--iface` | `SLUICE_IFACE` | `iface` | required | an interface name: 1..=15 bytes, no '/', ':' or whitespace, not '.' or '..' |
//! | `ip` | `--ip` | `SLUICE_IP` | `ip` | required | ADDR/PREFIX with prefix 1..=32 and a unicast host address |
//! | `gateway` | `--gateway` | `SLUICE_GATEWAY` | `gateway` | none: on-link peers only | a unicast host address inside the ip's prefix, not the ip |
//! | `device` | `--device` | `SLUICE_DEVICE` | `device` | xdp | one of xdp, tap |
//! | `queues` | `--queues` | `SLUICE_QUEUES` | `queues` | 1 | 1..=32 |
//! | `xdp_mode` | `--xdp-mode` | `SLUICE_XDP_MODE` | `xdp_mode` | auto | one of auto, native, skb |
//! | `zero_copy` | `--zero-copy` | `SLUICE_ZERO_COPY` | `zero_copy` | auto | one of auto, on, off; on needs xdp_mode auto or native |
//! | `xdp_frames` | `--xdp-frames` | `SLUICE_XDP_FRAMES` | `xdp_frames` | 4096 | a power of two in 2048..=262144 (twice the 1024-slot rings, at least) |
//! | `poll_mode` | `--poll-mode` | `SLUICE_POLL_MODE` | `poll_mode` | adaptive | one of adaptive, busy, sleep |
//! | `idle_spin_us` | `--idle-spin-us` | `SLUICE_IDLE_SPIN_US` | `idle_spin_us` | 50 | 0..=1000000 |
//! | `rx_fifo` | `--rx-fifo` | `SLUICE_RX_FIFO` | `rx_fifo` | 64k | a power of two in 4k..=4M |
//! | `tx_fifo` | `--tx-fifo` | `SLUICE_TX_FIFO` | `tx_fifo` | 64k | a power of two in 4k..=4M |
//! | `max_sessions` | `--max-sessions` | `SLUICE_MAX_SESSIONS` | `max_sessions` | 131072 | 1..=1048576 |
//! | `event_ring` | `--event-ring` | `SLUICE_EVENT_RING` | `event_ring` | 65536 | a power of two in 2..=16M |
//! | `request_ring` | `--request-ring` | `SLUICE_REQUEST_RING` | `request_ring` | 4096 | a power of two in 2..=65536 |
//! | `control_socket` | `--control-socket` | `SLUICE_CONTROL_SOCKET` | `control_socket` | /run/sluice/control.sock as root, else $XDG_RUNTIME_DIR/sluice/control.sock or /tmp/sluice-UID/control.sock | a path of 1..=107 bytes |
//! | `socket_mode` | `--socket-mode` | `SLUICE_SOCKET_MODE` | `socket_mode` | 0666 | an octal file mode up to 0777 |
//! | `mac` | `--mac` | `SLUICE_MAC` | `mac` | none: the interface's (xdp) or a generated local one (tap) | a unicast MAC written aa:bb:cc:dd:ee:ff |
//! | `mtu` | `--mtu` | `SLUICE_MTU` | `mtu` | 1500 | 576..=9000 |
//! | `loopback` | `--loopback` | `SLUICE_LOOPBACK` | `loopback` | off | one of on, off |
//! | `log` | `--log` | `SLUICE_LOG` | `log` | info | an env_logger filter: `DIRECTIVE[,DIRECTIVE...][/REGEX]` |
//! | `loss` | `--loss` | `SLUICE_LOSS` | `loss` | 0 | a percentage 0..=100 with up to 4 decimals (2, 0.5) |
//! | `loss_seed` | `--loss-seed` | `SLUICE_LOSS_SEED` | `loss_seed` | none: a random seed, logged at start | a number 0..=18446744073709551615 |
//! | `allow_kernel_addr` | `--allow-kernel-addr` | `SLUICE_ALLOW_KERNEL_ADDR` | `allow_kernel_addr` | off | on or off as a variable or file key (the flag takes no value) |
//!
//! In the file, counts are TOML integers (sizes may also be strings with a
//! suffix), names and addresses are strings, switches are booleans or
//! `"on"`/`"off"`, and `socket_mode` is an integer (`0o660`) or an octal
//! string (`"0660"`).

use crate::cli::DaemonArgs;

/// What a setting is when no source gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// This text, parsed like a flag's value.
    Value(&'static str),
    /// Left unset (`None` in the config); the text says what happens then.
    Absent(&'static str),
    /// There is no default: the daemon does not start without it.
    Required,
}

/// One row of the settings table.
#[derive(Clone, Copy, Debug)]
pub struct Setting {
    /// Setting name: the file key, the `DaemonArgs` field, and what errors name.
    pub name: &'static str,
    /// The `SLUICE_*` variable.
    pub env: &'static str,
    pub fallback: Fallback,
    /// What a valid value is, phrased to follow "must be".
    pub rule: &'static str,
    /// One line for `--help`.
    pub help: &'static str,
    /// This setting's flag value in parsed arguments, if given.
    pub flag: fn(&DaemonArgs) -> Option<&str>,
}

impl Setting {
    /// `--xdp-mode` for `xdp_mode`.
    pub fn flag_name(&self) -> String {
        format!("--{}", self.name.replace('_', "-"))
    }

    /// The default column of the table.
    pub fn default_text(&self) -> &'static str {
        match self.fallback {
            Fallback::Value(text) | Fallback::Absent(text) => text,
            Fallback::Required => "required",
        }
    }

    /// The `--help` line: what it is, the rule, the default and the variable.
    pub fn help_line(&self) -> String {
        let default = match self.fallback {
            Fallback::Required => "[required]".to_owned(),
            _ => format!("[default: {}]", self.default_text()),
        };
        format!("{}; must be {} {default} [env: {}]", self.help, self.rule, self.env)
    }
}

pub const IFACE: Setting = Setting {
    name: "iface",
    env: "SLUICE_IFACE",
    fallback: Fallback::Required,
    rule: "an interface name: 1..=15 bytes, no '/', ':' or whitespace, not '.' or '..'",
    help: "Network interface (xdp) or TAP device (tap) to run on",
    flag: |a| a.iface.as_deref(),
};
pub const IP: Setting = Setting {
    name: "ip",
    env: "SLUICE_IP",
    fallback: Fallback::Required,
    rule: "ADDR/PREFIX with prefix 1..=32 and a unicast host address",
    help: "The stack's IPv4 address and prefix length",
    flag: |a| a.ip.as_deref(),
};
pub const GATEWAY: Setting = Setting {
    name: "gateway",
    env: "SLUICE_GATEWAY",
    fallback: Fallback::Absent("none: on-link peers only"),
    rule: "a unicast host address inside the ip's prefix, not the ip",
    help: "Default IPv4 gateway",
    flag: |a| a.gateway.as_deref(),
};
pub const DEVICE: Setting = Setting {
    name: "device",
    env: "SLUICE_DEVICE",
    fallback: Fallback::Value("xdp"),
    rule: "one of xdp, tap",
    help: "Kind of device: AF_XDP sockets on the interface, or a TAP device",
    flag: |a| a.device.as_deref(),
};
pub const QUEUES: Setting = Setting {
    name: "queues",
    env: "SLUICE_QUEUES",
    fallback: Fallback::Value("1"),
    rule: "1..=32",
    help: "Worker threads, one device queue each",
    flag: |a| a.queues.as_deref(),
};
pub const XDP_MODE: Setting = Setting {
    name: "xdp_mode",
    env: "SLUICE_XDP_MODE",
    fallback: Fallback::Value("auto"),
    rule: "one of auto, native, skb",
    help: "How the XDP program is attached (auto: native, else skb)",
    flag: |a| a.xdp_mode.as_deref(),
};
pub const ZERO_COPY: Setting = Setting {
    name: "zero_copy",
    env: "SLUICE_ZERO_COPY",
    fallback: Fallback::Value("auto"),
    rule: "one of auto, on, off; on needs xdp_mode auto or native",
    help: "AF_XDP zero-copy: where offered (auto), required (on) or never (off)",
    flag: |a| a.zero_copy.as_deref(),
};
pub const XDP_FRAMES: Setting = Setting {
    name: "xdp_frames",
    env: "SLUICE_XDP_FRAMES",
    fallback: Fallback::Value("4096"),
    rule: "a power of two in 2048..=262144 (twice the 1024-slot rings, at least)",
    help: "UMEM frames per queue",
    flag: |a| a.xdp_frames.as_deref(),
};
pub const POLL_MODE: Setting = Setting {
    name: "poll_mode",
    env: "SLUICE_POLL_MODE",
    fallback: Fallback::Value("adaptive"),
    rule: "one of adaptive, busy, sleep",
    help: "How workers wait: spin then sleep (adaptive), always spin (busy), never spin (sleep)",
    flag: |a| a.poll_mode.as_deref(),
};
pub const IDLE_SPIN_US: Setting = Setting {
    name: "idle_spin_us",
    env: "SLUICE_IDLE_SPIN_US",
    fallback: Fallback::Value("50"),
    rule: "0..=1000000",
    help: "Microseconds an adaptive worker spins idle before it sleeps",
    flag: |a| a.idle_spin_us.as_deref(),
};
pub const RX_FIFO: Setting = Setting {
    name: "rx_fifo",
    env: "SLUICE_RX_FIFO",
    fallback: Fallback::Value("64k"),
    rule: "a power of two in 4k..=4M",
    help: "Bytes of each session's receive fifo",
    flag: |a| a.rx_fifo.as_deref(),
};
pub const TX_FIFO: Setting = Setting {
    name: "tx_fifo",
    env: "SLUICE_TX_FIFO",
    fallback: Fallback::Value("64k"),
    rule: "a power of two in 4k..=4M",
    help: "Bytes of each session's transmit fifo",
    flag: |a| a.tx_fifo.as_deref(),
};
pub const MAX_SESSIONS: Setting = Setting {
    name: "max_sessions",
    env: "SLUICE_MAX_SESSIONS",
    fallback: Fallback::Value("131072"),
    rule: "1..=1048576",
    help: "Session slots per app worker",
    flag: |a| a.max_sessions.as_deref(),
};
pub const EVENT_RING: Setting = Setting {
    name: "event_ring",
    env: "SLUICE_EVENT_RING",
    fallback: Fallback::Value("65536"),
    rule: "a power of two in 2..=16M",
    help: "Event ring slots per app worker",
    flag: |a| a.event_ring.as_deref(),
};
pub const REQUEST_RING: Setting = Setting {
    name: "request_ring",
    env: "SLUICE_REQUEST_RING",
    fallback: Fallback::Value("4096"),
    rule: "a power of two in 2..=65536",
    help: "Request ring slots per app worker and daemon worker",
    flag: |a| a.request_ring.as_deref(),
};
pub const CONTROL_SOCKET: Setting = Setting {
    name: "control_socket",
    env: "SLUICE_CONTROL_SOCKET",
    fallback: Fallback::Absent(
        "/run/sluice/control.sock as root, else $XDG_RUNTIME_DIR/sluice/control.sock or /tmp/sluice-UID/control.sock",
    ),
    rule: "a path of 1..=107 bytes",
    help: "Unix socket apps and admin commands connect to",
    flag: |a| a.control_socket.as_deref(),
};
pub const SOCKET_MODE: Setting = Setting {
    name: "socket_mode",
    env: "SLUICE_SOCKET_MODE",
    fallback: Fallback::Value("0666"),
    rule: "an octal file mode up to 0777",
    help: "File mode of the control socket",
    flag: |a| a.socket_mode.as_deref(),
};
pub const MAC: Setting = Setting {
    name: "mac",
    env: "SLUICE_MAC",
    fallback: Fallback::Absent("none: the interface's (xdp) or a generated local one (tap)"),
    rule: "a unicast MAC written aa:bb:cc:dd:ee:ff",
    help: "The stack's MAC address",
    flag: |a| a.mac.as_deref(),
};
pub const MTU: Setting = Setting {
    name: "mtu",
    env: "SLUICE_MTU",
    fallback: Fallback::Value("1500"),
    rule: "576..=9000",
    help: "IP MTU",
    flag: |a| a.mtu.as_deref(),
};
pub const LOOPBACK: Setting = Setting {
    name: "loopback",
    env: "SLUICE_LOOPBACK",
    fallback: Fallback::Value("off"),
    rule: "one of on, off",
    help: "Short-cut connections between apps on this daemon to 127.0.0.0/8",
    flag: |a| a.loopback.as_deref(),
};
pub const LOG: Setting = Setting {
    name: "log",
    env: "SLUICE_LOG",
    fallback: Fallback::Value("info"),
    rule: "an env_logger filter: DIRECTIVE[,DIRECTIVE...][/REGEX]",
    help: "Log filter, as RUST_LOG",
    flag: |a| a.log.as_deref(),
};
pub const LOSS: Setting = Setting {
    name: "loss",
    env: "SLUICE_LOSS",
    fallback: Fallback::Value("0"),
    rule: "a percentage 0..=100 with up to 4 decimals (2, 0.5)",
    help: "Drop this share of the frames received and sent, at random (fault injection for tests)",
    flag: |a| a.loss.as_deref(),
};
pub const LOSS_SEED: Setting = Setting {
    name: "loss_seed",
    env: "SLUICE_LOSS_SEED",
    fallback: Fallback::Absent("none: a random seed, logged at start"),
    rule: "a number 0..=18446744073709551615",
    help: "Seed of the loss injector, to replay a run's losses",
    flag: |a| a.loss_seed.as_deref(),
};
pub const ALLOW_KERNEL_ADDR: Setting = Setting {
    name: "allow_kernel_addr",
    env: "SLUICE_ALLOW_KERNEL_ADDR",
    fallback: Fallback::Value("off"),
    rule: "on or off as a variable or file key (the flag takes no value)",
    help: "Start even if the interface has a kernel IPv4 address",
    flag: |a| a.allow_kernel_addr.then_some("on"),
};

/// Every setting, in `--help` order.
pub const SETTINGS: &[Setting] = &[
    IFACE,
    IP,
    GATEWAY,
    DEVICE,
    QUEUES,
    XDP_MODE,
    ZERO_COPY,
    XDP_FRAMES,
    POLL_MODE,
    IDLE_SPIN_US,
    RX_FIFO,
    TX_FIFO,
    MAX_SESSIONS,
    EVENT_RING,
    REQUEST_RING,
    CONTROL_SOCKET,
    SOCKET_MODE,
    MAC,
    MTU,
    LOOPBACK,
    LOG,
    LOSS,
    LOSS_SEED,
    ALLOW_KERNEL_ADDR,
];

/// The variable naming the config file; not a setting (the file cannot name
/// itself), but a known daemon variable.
pub const CONFIG_ENV: &str = "SLUICE_CONFIG";

/// The config file read when neither `--config` nor `SLUICE_CONFIG` names one.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/sluice/sluice.toml";

/// The row named `name`.
pub fn find(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}
