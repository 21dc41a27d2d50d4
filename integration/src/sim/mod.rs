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
//!
//! Reproducing and inspecting a scenario (`integration/tests/sim_*.rs`):
//! - a failure prints the run's label and seed; `SLUICE_SIM_SEED=<seed>`
//!   replays it (the same seed gives byte-identical wire traffic);
//! - `SLUICE_SIM_PCAP=<dir>` writes `<label>-seed<seed>.node<N>.pcap` (what
//!   node N's interface saw) and `.dropped.pcap`; `SLUICE_SIM_PCAP_SNAPLEN=96`
//!   keeps them small;
//! - `SLUICE_SIM_SCALE=<percent>` shrinks the connection counts of the big
//!   scenarios for a quick run.

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
