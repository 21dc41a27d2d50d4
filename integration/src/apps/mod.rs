//! Protocol sides of the test servers (HTTP/1.1 file server), independent
//! of the socket layer that carries them.

pub mod http;
