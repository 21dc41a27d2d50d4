//! nginx behaviours under the Sluice preload against the same nginx on the
//! kernel (issue 5): one `scripts/netns-daemon.sh` topology, the daemon in
//! its dut namespace, one nginx on the kernel of that namespace (10.79.0.3)
//! and one under `sluice run` (10.79.0.2, its loopback upstream through the
//! daemon's cut-through), both driven by the same kernel clients from the
//! peer namespace. Every case yields an outcome record per side (what the
//! clients saw, reduced to what two correct servers agree on) and its own
//! expectations; the [`report::Report`] compares them.

pub mod bed;
pub mod binaries;
pub mod cases;
pub mod client;
pub mod nginx;
pub mod report;
pub mod suite;
