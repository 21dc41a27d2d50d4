//! The Sluice daemon (issue 3, design `shm/DESIGN.md` §3): one process owns
//! a network interface and runs the engine for every app on the host; apps
//! attach over a Unix control socket and exchange data through shared memory.
//!
//! * [`config`]: settings from flags, `SLUICE_*` variables and a config file, validated.
//! * [`device`]: frame I/O: AF_XDP, TAP, and an in-memory wire for tests.
//! * [`worker`]: the thread that runs one engine over one device queue, with adaptive polling.
//! * [`app`]: attached app workers: their requests, fifos and events, against the engine.
//! * [`control`]: the control socket: attach, admin commands, app death.
//! * [`daemon`]: starting and stopping the whole daemon; [`cli`]: the `sluice` command line.
//! * [`stats`] and [`admin`]: `sluice stats`/`sluice sessions`, daemon and client side;
//!   [`capture`]: the frame tap behind `sluice capture`.
//!
//! The library is what the `sluice` binary runs, and what in-process tests
//! start on the memory wire.

pub mod admin;
pub mod app;
pub mod capture;
pub mod capture_client;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod run;
pub mod device;
pub mod stats;
pub mod worker;
