//! Test infrastructure shared by Sluice's end-to-end tests.
pub mod bench;
