//! What a test server's connection handler does, whatever socket layer
//! carries it: bytes in, bytes out, and when the connection is done.

use std::io;

/// One connection's protocol state machine.
pub trait Protocol {
    /// Bytes read from the socket.
    fn on_input(&mut self, data: &[u8]);
    /// The peer half-closed (read returned 0).
    fn on_eof(&mut self);
    /// Whether the handler wants more input now (back-pressure: false while
    /// it has too much output queued).
    fn wants_input(&self) -> bool;
    /// The next bytes to write; empty when nothing is pending.
    fn output(&mut self) -> io::Result<&[u8]>;
    /// `n` bytes of [`Protocol::output`] were written.
    fn wrote(&mut self, n: usize);
    /// The connection should be closed now (everything owed was written).
    fn finished(&self) -> bool;
}

impl Protocol for super::http::HttpConnection {
    fn on_input(&mut self, data: &[u8]) {
        super::http::HttpConnection::on_input(self, data)
    }
    fn on_eof(&mut self) {
        super::http::HttpConnection::on_eof(self)
    }
    fn wants_input(&self) -> bool {
        super::http::HttpConnection::wants_input(self)
    }
    fn output(&mut self) -> io::Result<&[u8]> {
        super::http::HttpConnection::output(self)
    }
    fn wrote(&mut self, n: usize) {
        super::http::HttpConnection::wrote(self, n)
    }
    fn finished(&self) -> bool {
        super::http::HttpConnection::finished(self)
    }
}
