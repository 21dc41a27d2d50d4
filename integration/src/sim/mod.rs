//! Deterministic network simulation: Sluice stacks (and raw frame hosts) on
//! a virtual switched Ethernet with seeded faults, a virtual clock, packet
//! captures, and app drivers that check every byte.
//!
//! ```text
//! World ── clock, step loop ── nodes: Stack + App | RawHost
//!   └── Switch (link.rs): ports, MAC learning, in-flight queue by (time, seq)
//!         └── per port: uplink Pipe + downlink Pipe (fault.rs), seeded ChaCha8 streams
//!         └── taps (trace.rs): pcap (pcap.rs), digest, test counters
//! ```

pub mod apps;
pub mod fault;
pub mod frame;
pub mod link;
pub mod pcap;
pub mod scenario;
pub mod trace;
pub mod world;

pub use fault::{DropReason, Faults, PipeCounters};
pub use link::{PortFaults, Switch, TapId};
pub use trace::{Direction, PortId, Tap, TraceDigest, WireEvent, WireEventKind};
pub use world::{host_config, host_ip, host_mac, App, Idle, NodeId, RawHost, RunError, World};
