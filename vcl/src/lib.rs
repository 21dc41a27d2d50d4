//! The per-process session layer apps attach with (see the brief and issue 3).
//! This crate is the home of that layer; it has no API yet.
#![forbid(unsafe_code)]
