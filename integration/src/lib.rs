//! Test infrastructure shared by Sluice's end-to-end tests.

pub mod bench;
pub mod netns;
pub mod peer;
pub mod sim;
pub mod tap;
pub mod tap_probe;
pub mod apps;
