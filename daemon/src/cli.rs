//! The `sluice` command line (design §3.8): `sluice daemon` runs the daemon,
//! `sluice stats` and `sluice sessions` ask a running one.
//!
//! The daemon's flags are kept as text here and checked in [`crate::config`],
//! together with the `SLUICE_*` variables and the config file, so that every
//! error names the setting and where its value came from. Their help lines
//! are generated from the settings table ([`crate::config::settings`]), so
//! the help, the variables and the file keys cannot drift apart.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser};

use crate::config::settings::SETTINGS;

/// A parsed `sluice` invocation.
// Parsed once per process; boxing the daemon's flags would only make
// matching on them clumsier.
#[allow(clippy::large_enum_variant)]
#[derive(Parser, Clone, Debug, PartialEq, Eq)]
#[command(name = "sluice", version, about = "Userspace TCP/IP stack daemon and its admin commands")]
pub enum Command {
    /// Run the daemon on an interface.
    Daemon(DaemonArgs),
    /// Print the running daemon's counters.
    Stats {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// The daemon's control socket [default: $SLUICE_CONTROL_SOCKET, else the daemon's default].
        #[arg(long = "control-socket", value_name = "PATH")]
        socket: Option<PathBuf>,
    },
    /// Run a program with its TCP/IPv4 sockets on the running daemon
    /// (LD_PRELOAD of libsluice_preload.so).
    Run {
        /// The daemon's control socket [default: $SLUICE_CONTROL_SOCKET, else the daemon's default].
        #[arg(long = "control-socket", value_name = "PATH")]
        socket: Option<PathBuf>,
        /// The program and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "CMD")]
        command: Vec<OsString>,
    },
    /// List the running daemon's TCP sessions, like `ss -tin`.
    Sessions {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// The daemon's control socket [default: $SLUICE_CONTROL_SOCKET, else the daemon's default].
        #[arg(long = "control-socket", value_name = "PATH")]
        socket: Option<PathBuf>,
    },
    /// Capture the frames the daemon receives and sends into a pcap file, until
    /// Ctrl-C or COUNT frames (needs root or CAP_NET_RAW).
    Capture {
        /// The pcap file to write.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: PathBuf,
        /// Stop after this many frames.
        #[arg(short = 'c', long = "count", value_name = "COUNT")]
        count: Option<u64>,
        /// The daemon's control socket [default: $SLUICE_CONTROL_SOCKET, else the daemon's default].
        #[arg(long = "control-socket", value_name = "PATH")]
        socket: Option<PathBuf>,
    },
}

/// `sluice daemon` flags, unchecked. Each field is named like its setting
/// (flag `--xdp-mode` ↔ field and file key `xdp_mode`); `None` means "not
/// given on the command line". Help text comes from the settings table.
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct DaemonArgs {
    #[arg(long, value_name = "IFACE")]
    pub iface: Option<String>,
    #[arg(long, value_name = "ADDR/PREFIX")]
    pub ip: Option<String>,
    #[arg(long, value_name = "ADDR")]
    pub gateway: Option<String>,
    #[arg(long, value_name = "xdp|tap")]
    pub device: Option<String>,
    #[arg(long, value_name = "N")]
    pub queues: Option<String>,
    #[arg(long, value_name = "auto|native|skb")]
    pub xdp_mode: Option<String>,
    #[arg(long, value_name = "auto|on|off")]
    pub zero_copy: Option<String>,
    #[arg(long, value_name = "N")]
    pub xdp_frames: Option<String>,
    #[arg(long, value_name = "adaptive|busy|sleep")]
    pub poll_mode: Option<String>,
    #[arg(long, value_name = "N")]
    pub idle_spin_us: Option<String>,
    #[arg(long, value_name = "BYTES")]
    pub rx_fifo: Option<String>,
    #[arg(long, value_name = "BYTES")]
    pub tx_fifo: Option<String>,
    #[arg(long, value_name = "N")]
    pub max_sessions: Option<String>,
    #[arg(long, value_name = "N")]
    pub event_ring: Option<String>,
    #[arg(long, value_name = "N")]
    pub request_ring: Option<String>,
    #[arg(long, value_name = "PATH")]
    pub control_socket: Option<String>,
    #[arg(long, value_name = "OCTAL")]
    pub socket_mode: Option<String>,
    #[arg(long, value_name = "MAC")]
    pub mac: Option<String>,
    #[arg(long, value_name = "N")]
    pub mtu: Option<String>,
    #[arg(long, value_name = "on|off")]
    pub loopback: Option<String>,
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,
    #[arg(long, value_name = "PERCENT")]
    pub loss: Option<String>,
    #[arg(long, value_name = "N")]
    pub loss_seed: Option<String>,
    #[arg(long)]
    pub allow_kernel_addr: bool,
    /// TOML config file [default: $SLUICE_CONFIG, else /etc/sluice/sluice.toml if it exists].
    #[arg(long, value_name = "FILE")]
    pub config: Option<String>,
}

/// The clap command with the daemon's help lines filled in from the table.
fn command() -> clap::Command {
    Command::command().mut_subcommand("daemon", |mut daemon| {
        for setting in SETTINGS {
            daemon = daemon.mut_arg(setting.name, |arg| arg.help(setting.help_line()));
        }
        daemon
    })
}

/// Parses the process's arguments; prints help, version or a usage error
/// and exits as clap does.
pub fn parse() -> Command {
    parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
}

/// Parses `args` (the first one is the program name).
pub fn parse_from<I, T>(args: I) -> Result<Command, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut cmd = command();
    let matches = cmd.try_get_matches_from_mut(args)?;
    Command::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))
}
