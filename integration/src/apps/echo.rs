//! The echo protocol: every byte comes back, in order; the server closes
//! after the client's FIN once everything has been returned.

use std::io;

use super::protocol::Protocol;

/// Most bytes held for a slow reader before input is paused.
const MAX_PENDING: usize = 1 << 20;

#[derive(Default)]
pub struct EchoConnection {
    pending: Vec<u8>,
    sent: usize,
    eof: bool,
}

impl Protocol for EchoConnection {
    fn on_input(&mut self, data: &[u8]) {
        if self.sent == self.pending.len() {
            self.pending.clear();
            self.sent = 0;
        }
        self.pending.extend_from_slice(data);
    }
    fn on_eof(&mut self) {
        self.eof = true;
    }
    fn wants_input(&self) -> bool {
        !self.eof && self.pending.len() - self.sent < MAX_PENDING
    }
    fn output(&mut self) -> io::Result<&[u8]> {
        Ok(&self.pending[self.sent..])
    }
    fn wrote(&mut self, n: usize) {
        self.sent = (self.sent + n).min(self.pending.len());
        if self.sent > MAX_PENDING {
            self.pending.drain(..self.sent);
            self.sent = 0;
        }
    }
    fn finished(&self) -> bool {
        self.eof && self.sent == self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_in_order_and_finishes_after_eof() {
        let mut e = EchoConnection::default();
        e.on_input(b"abc");
        e.on_input(b"def");
        assert_eq!(e.output().unwrap(), b"abcdef");
        e.wrote(4);
        assert_eq!(e.output().unwrap(), b"ef");
        e.on_eof();
        assert!(!e.finished() && !e.wants_input());
        e.wrote(2);
        assert!(e.finished());
    }

    #[test]
    fn input_pauses_while_a_mebibyte_waits() {
        let mut e = EchoConnection::default();
        e.on_input(&vec![7u8; MAX_PENDING]);
        assert!(!e.wants_input());
        e.wrote(MAX_PENDING / 2);
        assert!(e.wants_input());
    }
}
