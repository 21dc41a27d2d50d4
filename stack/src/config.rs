//! Engine configuration. Every limit the engine enforces is a field here, so
//! the daemon can expose it (flags, config file, `SLUICE_*` variables).

use crate::time::Duration;
use crate::wire::{EthernetAddress, Ipv4Addr};

/// Congestion control, chosen per connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum CongestionAlgorithm {
    /// RFC 5681 + RFC 6582.
    NewReno,
    /// RFC 9438.
    #[default]
    Cubic,
}

/// TCP keepalive parameters (RFC 9293 §3.8.4; Linux's tcp_keepalive_* defaults).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct KeepaliveConfig {
    pub idle: Duration,
    pub interval: Duration,
    pub probes: u32,
}

impl Default for KeepaliveConfig {
    fn default() -> Self {
        KeepaliveConfig { idle: Duration::from_secs(7200), interval: Duration::from_secs(75), probes: 9 }
    }
}

/// Per-connection TCP settings; a connection copies them at creation and the
/// application may change some (no-delay, keepalive, buffer sizes) later.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TcpConfig {
    /// Send buffer limit in bytes (allocated lazily, grown up to this).
    pub send_buffer: usize,
    /// Receive buffer limit in bytes; bounds the advertised window.
    pub recv_buffer: usize,
    /// Offer/accept window scaling (RFC 7323 §2).
    pub window_scaling: bool,
    /// Offer/accept SACK (RFC 2018).
    pub sack: bool,
    /// Offer/accept timestamps (RFC 7323 §3).
    pub timestamps: bool,
    pub congestion: CongestionAlgorithm,
    /// Initial congestion window in segments (RFC 6928).
    pub initial_cwnd_segments: u32,
    /// RFC 6298 §2.1: 1 s.
    pub initial_rto: Duration,
    /// RFC 6298 §2.4 says 1 s; Linux uses 200 ms, which we follow.
    pub min_rto: Duration,
    /// RFC 6298 §2.5: at least 60 s.
    pub max_rto: Duration,
    /// SYN retransmissions before an active open fails (Linux tcp_syn_retries).
    pub syn_retries: u32,
    /// SYN-ACK retransmissions before a half-open connection is dropped.
    pub synack_retries: u32,
    /// Data retransmissions before the connection is aborted (Linux tcp_retries2).
    pub data_retries: u32,
    /// Retransmissions of an orphaned (app-closed) connection before abort (tcp_orphan_retries).
    pub orphan_retries: u32,
    /// Delayed-ACK timeout (RFC 9293 §3.8.6.3: < 500 ms).
    pub delayed_ack: Duration,
    /// Disable Nagle (TCP_NODELAY).
    pub nodelay: bool,
    /// Cork output (TCP_CORK, tcp(7)): while set only full segments leave;
    /// a held partial segment goes out when cork is cleared, with a FIN, or
    /// when the probe timer fires (Linux's 200 ms ceiling). Wins over `nodelay`.
    pub cork: bool,
    /// Keepalive, off unless set (SO_KEEPALIVE).
    pub keepalive: Option<KeepaliveConfig>,
    /// Keepalive parameters used when keepalive is switched on without its own.
    pub keepalive_defaults: KeepaliveConfig,
    /// Length of TIME-WAIT (2*MSL; Linux uses 60 s).
    pub time_wait: Duration,
    /// How long an orphaned connection may sit in FIN-WAIT-2 (tcp_fin_timeout).
    pub fin_wait2_timeout: Duration,
    /// SO_LINGER with a zero timeout: close sends RST.
    pub linger_zero: bool,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            send_buffer: 256 * 1024,
            recv_buffer: 256 * 1024,
            window_scaling: true,
            sack: true,
            timestamps: true,
            congestion: CongestionAlgorithm::default(),
            initial_cwnd_segments: 10,
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(120),
            syn_retries: 6,
            synack_retries: 5,
            data_retries: 15,
            orphan_retries: 8,
            delayed_ack: Duration::from_millis(40),
            nodelay: false,
            cork: false,
            keepalive: None,
            keepalive_defaults: KeepaliveConfig::default(),
            time_wait: Duration::from_secs(60),
            fin_wait2_timeout: Duration::from_secs(60),
            linger_zero: false,
        }
    }
}

/// ARP cache settings.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ArpConfig {
    /// How long a learned entry is trusted.
    pub entry_ttl: Duration,
    /// Interval between requests for an unresolved address.
    pub request_interval: Duration,
    /// Requests sent before an address is declared unreachable for a while.
    pub max_requests: u32,
    /// Maximum entries (bounded so a flood of senders cannot grow it).
    pub max_entries: usize,
    /// Frames held per unresolved next hop while a request is outstanding.
    pub pending_per_neighbor: usize,
    /// Frames held across all unresolved next hops.
    pub pending_total: usize,
}

impl Default for ArpConfig {
    fn default() -> Self {
        ArpConfig {
            entry_ttl: Duration::from_secs(60),
            request_interval: Duration::from_secs(1),
            max_requests: 3,
            max_entries: 1024,
            pending_per_neighbor: 8,
            pending_total: 256,
        }
    }
}

/// Everything a [`crate::Stack`] needs at creation.
#[derive(Clone, Debug)]
pub struct StackConfig {
    pub mac: EthernetAddress,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    /// IP MTU of the link; the MSS offered is `mtu - 40`.
    pub mtu: usize,
    /// Secret for the demultiplexing hash, ISNs (RFC 6528) and SYN cookies.
    /// The caller draws it from a real random source; tests pass a fixed one.
    pub secret: [u8; 32],
    pub tcp: TcpConfig,
    pub arp: ArpConfig,
    /// Live connections (including half-open and TIME-WAIT) at the most.
    pub max_connections: usize,
    pub max_listeners: usize,
    /// Half-open connections before SYN cookies are used instead.
    pub max_half_open: usize,
    /// Fast retransmits sent per `poll_transmit`; the rest are postponed to the
    /// next poll (VPP sends at most one 256-packet frame per dispatch).
    pub fast_retransmit_budget: usize,
    /// Local ports used for active opens, inclusive.
    pub ephemeral_ports: (u16, u16),
    /// IPv4 fragments held for reassembly at the most (bytes), and how long.
    pub reassembly_buffer: usize,
    pub reassembly_timeout: Duration,
    /// Entries per consumer event queue; at least the connections it can own.
    pub event_queue_capacity: usize,
}

impl StackConfig {
    /// A configuration with defaults for everything but the addresses and secret.
    pub fn new(mac: EthernetAddress, ip: Ipv4Addr, prefix_len: u8, secret: [u8; 32]) -> Self {
        StackConfig {
            mac,
            ip,
            prefix_len,
            gateway: None,
            mtu: 1500,
            secret,
            tcp: TcpConfig::default(),
            arp: ArpConfig::default(),
            max_connections: 131_072,
            max_listeners: 1024,
            max_half_open: 1024,
            fast_retransmit_budget: 256,
            ephemeral_ports: (32768, 60999),
            reassembly_buffer: 256 * 1024,
            reassembly_timeout: Duration::from_secs(30),
            event_queue_capacity: 131_072 + 1024,
        }
    }

    /// The MSS this host offers: the MTU less IPv4 and TCP headers.
    pub fn mss(&self) -> usize {
        self.mtu.saturating_sub(40).max(536)
    }
}
