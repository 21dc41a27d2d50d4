//! Test servers (echo, HTTP/1.1 files): protocol sides independent of the
//! socket layer, and event loops over Sluice's `vcl` and over kernel sockets,
//! so the same server runs on both for comparison.

pub mod echo;
pub mod http;
pub mod protocol;
pub mod serve_kernel;
pub mod serve_vcl;
