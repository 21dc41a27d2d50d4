//! The LD_PRELOAD interposer (see the brief and issue 4).
//! This crate is the home of the interposer; it intercepts nothing yet.
