//! Moving one pattern stream through a connection: the sending half writes
//! the pattern as fast as the engine takes it, the receiving half reads,
//! checks every byte and notices the end of stream.

use sluice_stack::{ConnId, Error, Stack};

use super::pattern::{fill, first_mismatch};

/// Size of the apps' scratch buffers (one read or write call at most).
pub const CHUNK: usize = 64 * 1024;

/// Bytes of pattern a sender prepares at a time. Kept per connection so
/// that bytes the engine did not take yet are not generated again.
const STAGE: usize = 16 * 1024;

/// Writes bytes `0..total` of pattern stream `key`.
#[derive(Clone, Debug)]
pub struct PatternSender {
    key: u64,
    total: u64,
    sent: u64,
    /// Pattern bytes `staged_from..staged_from + staged.len()`.
    staged: Vec<u8>,
    staged_from: u64,
}

impl PatternSender {
    pub fn new(key: u64, total: u64) -> PatternSender {
        PatternSender {
            key,
            total,
            sent: 0,
            staged: Vec::new(),
            staged_from: 0,
        }
    }
    pub fn sent(&self) -> u64 {
        self.sent
    }
    pub fn done(&self) -> bool {
        self.sent == self.total
    }

    /// Sends until the engine stops taking data or everything is sent.
    pub fn pump(&mut self, stack: &mut Stack, conn: ConnId) -> Result<(), Error> {
        while self.sent < self.total {
            let mut consumed = (self.sent - self.staged_from) as usize;
            if consumed >= self.staged.len() {
                let n = (self.total - self.sent).min(STAGE as u64) as usize;
                self.staged.resize(n, 0);
                fill(self.key, self.sent, &mut self.staged);
                self.staged_from = self.sent;
                consumed = 0;
            }
            match stack.tcp_send(conn, &self.staged[consumed..]) {
                Ok(0) | Err(Error::WouldBlock) => return Ok(()),
                Ok(k) => self.sent += k as u64,
                Err(e) => return Err(e),
            }
        }
        self.staged = Vec::new();
        Ok(())
    }
}

/// Why a receiving half failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RecvFailure {
    /// The byte at this stream offset is wrong.
    Mismatch { offset: u64 },
    /// More bytes arrived than the stream has.
    TooLong { received: u64, expected: u64 },
    /// End of stream before all bytes arrived.
    Short { received: u64, expected: u64 },
    /// The engine reported an error on read.
    Engine(Error),
}

/// Reads and checks bytes `0..expected` of pattern stream `key`, then EOF.
#[derive(Clone, Copy, Debug)]
pub struct PatternReceiver {
    key: u64,
    expected: u64,
    received: u64,
    eof: bool,
}

impl PatternReceiver {
    pub fn new(key: u64, expected: u64) -> PatternReceiver {
        PatternReceiver {
            key,
            expected,
            received: 0,
            eof: false,
        }
    }
    pub fn received(&self) -> u64 {
        self.received
    }
    /// End of stream was read (after exactly the expected bytes, or `pump` failed).
    pub fn eof(&self) -> bool {
        self.eof
    }

    /// Reads until the engine has nothing more, EOF, or `stop_at` bytes
    /// have been received in total (to simulate an app that stops reading).
    pub fn pump(
        &mut self,
        stack: &mut Stack,
        conn: ConnId,
        scratch: &mut [u8],
        stop_at: Option<u64>,
    ) -> Result<(), RecvFailure> {
        while !self.eof && !matches!(stop_at, Some(s) if self.received >= s) {
            let want = match stop_at {
                Some(s) => (s - self.received).min(scratch.len() as u64) as usize,
                None => scratch.len(),
            };
            match stack.tcp_recv(conn, &mut scratch[..want]) {
                Ok(0) => {
                    self.eof = true;
                    if self.received != self.expected {
                        return Err(RecvFailure::Short {
                            received: self.received,
                            expected: self.expected,
                        });
                    }
                }
                Ok(n) => {
                    let data = &scratch[..n];
                    if self.received + n as u64 > self.expected {
                        return Err(RecvFailure::TooLong {
                            received: self.received + n as u64,
                            expected: self.expected,
                        });
                    }
                    if let Some(offset) = first_mismatch(self.key, self.received, data) {
                        return Err(RecvFailure::Mismatch { offset });
                    }
                    self.received += n as u64;
                }
                Err(Error::WouldBlock) => return Ok(()),
                Err(e) => return Err(RecvFailure::Engine(e)),
            }
        }
        Ok(())
    }
}
