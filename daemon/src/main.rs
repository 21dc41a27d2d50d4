//! `sluice`: the daemon and its admin commands.
fn main() {}
