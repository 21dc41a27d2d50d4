//! The daemon's settings (design §3.8): flags > `SLUICE_*` environment >
//! config file (TOML) > defaults. Every setting is checked at start; an
//! error names the setting and where its value came from.
//!
//! The settings, their flags, variables, file keys, defaults and rules are
//! listed in [`settings`]. [`load`] reads the process environment and the
//! config file and hands them to the pure [`resolve`], which tests call
//! with their own environment.

mod env;
mod error;
mod file;
mod load;
mod lookup;
mod names;
mod net;
mod number;
mod paths;
mod raw;
mod resolve;
pub mod settings;
mod suggest;

pub use env::{unknown_variable_warnings, APP_VARIABLES, FOREIGN_PREFIXES};
pub use error::{ConfigError, Source};
pub use load::load;
pub use paths::{
    control_socket_path, control_socket_path_in, default_control_socket, default_control_socket_for, euid,
};
pub use resolve::{resolve, XDP_FRAMES_MAX, XDP_RING_MIN};

use std::net::Ipv4Addr;
use std::path::PathBuf;

use sluice_shm::layout::Geometry;

/// Which kind of device the daemon drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum DeviceKind {
    /// AF_XDP sockets on the interface (copy or zero-copy).
    Xdp,
    /// A TAP device (`/dev/net/tun`), no XDP needed.
    Tap,
}

/// How the AF_XDP program is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum XdpMode {
    /// Native (driver) mode, falling back to SKB (generic) mode.
    Auto,
    Native,
    Skb,
}

/// How a worker waits for work (design §3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum PollMode {
    /// Spin while busy, sleep in `epoll_wait` after `idle_spin_us` idle.
    Adaptive,
    /// Never sleep.
    Busy,
    /// Never spin.
    Sleep,
}

/// Validated daemon configuration.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DaemonConfig {
    pub device: DeviceKind,
    /// Interface (AF_XDP) or TAP device name.
    pub iface: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    /// MAC address to use; `None`: the interface's (AF_XDP) or a generated
    /// locally administered one (TAP).
    pub mac: Option<[u8; 6]>,
    /// IP MTU.
    pub mtu: u32,
    /// Worker threads, one device queue each.
    pub queues: u32,
    pub xdp_mode: XdpMode,
    /// `Some(true)`: require zero-copy; `Some(false)`: force copy mode;
    /// `None`: zero-copy where the driver offers it.
    pub zero_copy: Option<bool>,
    /// UMEM frames per queue.
    pub xdp_frames: u32,
    pub poll_mode: PollMode,
    pub idle_spin_us: u32,
    /// Per-session fifo sizes (powers of two).
    pub rx_fifo: u32,
    pub tx_fifo: u32,
    /// Session slots per app worker.
    pub max_sessions: u32,
    /// Event ring slots per app worker, request ring slots per worker.
    pub event_ring: u32,
    pub request_ring: u32,
    pub control_socket: PathBuf,
    /// File mode of the control socket.
    pub socket_mode: u32,
    /// Connections between apps on this daemon to 127.0.0.0/8 are short-cut.
    pub loopback: bool,
    /// env_logger filter.
    pub log: String,
    /// Frames lost on purpose in each direction, parts per million
    /// (`device::loss`); 0 leaves the device unwrapped.
    pub loss_ppm: u32,
    /// The loss injector's seed; `None`: a random one, logged.
    pub loss_seed: Option<u64>,
    /// Start even if the interface has a kernel IPv4 address.
    pub allow_kernel_addr: bool,
}

impl DaemonConfig {
    /// The segment geometry every app worker gets.
    pub fn geometry(&self) -> Geometry {
        Geometry {
            workers: self.queues,
            event_cap: self.event_ring,
            request_cap: self.request_ring,
            max_sessions: self.max_sessions,
            rx_fifo: self.rx_fifo,
            tx_fifo: self.tx_fifo,
        }
    }
}
