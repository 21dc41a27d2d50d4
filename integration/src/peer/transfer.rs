//! One test connection's application logic: what it sends, what it has read,
//! and when it is finished. Driven like a non-blocking socket: read and write
//! until the engine says `WouldBlock`, then wait for the next event.

use std::net::SocketAddrV4;

use sha2::{Digest, Sha256};
use sluice_stack::tcp::conn::{TcpInfo, TcpState};
use sluice_stack::{ConnId, Error, Instant, Shutdown, Stack};

use super::pattern;

/// Bytes an echo connection holds between reading and writing them back.
/// Reading stops while this much is pending, so a slow reader applies back
/// pressure instead of growing the buffer.
const ECHO_BACKLOG: usize = 256 * 1024;

/// What the connection does with its byte streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Write back every byte read; FIN after the peer's FIN.
    Echo,
    /// Send this many pattern bytes, then FIN; hash what is read.
    Bulk { bytes: u64 },
    /// Only read; FIN after the peer's FIN.
    Sink,
}

/// Final record of one connection.
#[derive(Clone, Debug)]
pub struct TransferReport {
    pub peer: SocketAddrV4,
    pub error: Option<String>,
    pub sent: u64,
    pub received: u64,
    pub sent_sha256: String,
    pub recv_sha256: String,
    /// From the connection's establishment until the peer acknowledged our
    /// last byte and FIN.
    pub elapsed_us: u64,
    /// Snapshot taken just before the handle was released.
    pub info: Option<TcpInfo>,
}

pub struct Transfer {
    conn: ConnId,
    peer: SocketAddrV4,
    role: Role,
    /// Active opens wait for CONNECTED before touching the socket.
    connected: bool,
    established_at: Instant,
    sent: u64,
    received: u64,
    sent_hash: Sha256,
    recv_hash: Sha256,
    echo_pending: Vec<u8>,
    peer_fin: bool,
    write_shut: bool,
}

impl Transfer {
    pub fn new(conn: ConnId, peer: SocketAddrV4, role: Role, connected: bool, now: Instant) -> Transfer {
        Transfer {
            conn,
            peer,
            role,
            connected,
            established_at: now,
            sent: 0,
            received: 0,
            sent_hash: Sha256::new(),
            recv_hash: Sha256::new(),
            echo_pending: Vec::new(),
            peer_fin: false,
            write_shut: false,
        }
    }

    pub fn conn(&self) -> ConnId {
        self.conn
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    pub fn mark_connected(&mut self, now: Instant) {
        if !self.connected {
            self.connected = true;
            self.established_at = now;
        }
    }

    /// Both streams are done on our side: read up to the peer's FIN, and
    /// everything written with our FIN queued behind it.
    pub fn streams_done(&self) -> bool {
        self.write_shut && self.peer_fin
    }

    /// After `streams_done`: the peer has acknowledged our data and FIN, so
    /// closing the handle cannot cut anything off. With the peer's FIN already
    /// received, the ACK of ours moves CLOSING to TIME-WAIT and LAST-ACK to
    /// CLOSED (RFC 9293 §3.6).
    pub fn is_acknowledged(&self, stack: &Stack) -> Result<bool, Error> {
        let info = stack.tcp_info(self.conn)?;
        Ok(matches!(info.state, Some(TcpState::TimeWait | TcpState::Closed)))
    }

    /// Move data until neither reading nor writing makes progress. `scratch`
    /// is the caller's reusable buffer (no allocation per call).
    pub fn pump(&mut self, stack: &mut Stack, now: Instant, scratch: &mut [u8]) -> Result<(), Error> {
        if !self.connected {
            return Ok(());
        }
        loop {
            let read = self.read_available(stack, scratch)?;
            let wrote = self.write_available(stack, scratch)?;
            let shut = self.shutdown_when_done(stack, now)?;
            if !(read || wrote || shut) {
                return Ok(());
            }
        }
    }

    fn read_available(&mut self, stack: &mut Stack, scratch: &mut [u8]) -> Result<bool, Error> {
        let mut progressed = false;
        while !self.peer_fin {
            let room = match self.role {
                Role::Echo => (ECHO_BACKLOG - self.echo_pending.len()).min(scratch.len()),
                Role::Bulk { .. } | Role::Sink => scratch.len(),
            };
            if room == 0 {
                break;
            }
            let n = match stack.tcp_recv(self.conn, &mut scratch[..room]) {
                Ok(0) => {
                    self.peer_fin = true;
                    return Ok(true);
                }
                Ok(n) => n,
                Err(Error::WouldBlock) => break,
                Err(e) => return Err(e),
            };
            let data = &scratch[..n];
            self.recv_hash.update(data);
            self.received += n as u64;
            if self.role == Role::Echo {
                self.echo_pending.extend_from_slice(data);
            }
            progressed = true;
        }
        Ok(progressed)
    }

    fn write_available(&mut self, stack: &mut Stack, scratch: &mut [u8]) -> Result<bool, Error> {
        let mut progressed = false;
        match self.role {
            Role::Bulk { bytes } => {
                while self.sent < bytes {
                    let len = (bytes - self.sent).min(scratch.len() as u64) as usize;
                    let chunk = &mut scratch[..len];
                    pattern::fill(self.sent, chunk);
                    match stack.tcp_send(self.conn, chunk) {
                        Ok(0) | Err(Error::WouldBlock) => break,
                        Ok(n) => {
                            let taken = &chunk[..n.min(len)];
                            self.sent_hash.update(taken);
                            self.sent += taken.len() as u64;
                            progressed = true;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            Role::Echo => {
                while !self.echo_pending.is_empty() {
                    match stack.tcp_send(self.conn, &self.echo_pending) {
                        Ok(0) | Err(Error::WouldBlock) => break,
                        Ok(n) => {
                            let n = n.min(self.echo_pending.len());
                            self.sent_hash.update(&self.echo_pending[..n]);
                            self.sent += n as u64;
                            self.echo_pending.drain(..n);
                            progressed = true;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            Role::Sink => {}
        }
        Ok(progressed)
    }

    fn shutdown_when_done(&mut self, stack: &mut Stack, now: Instant) -> Result<bool, Error> {
        if self.write_shut {
            return Ok(false);
        }
        let done_sending = match self.role {
            // A bulk sender does not wait for the peer: both directions run at once.
            Role::Bulk { bytes } => self.sent >= bytes,
            // Echo and sink answer the peer's FIN with their own.
            Role::Echo => self.peer_fin && self.echo_pending.is_empty(),
            Role::Sink => self.peer_fin,
        };
        if !done_sending {
            return Ok(false);
        }
        stack.tcp_shutdown(now, self.conn, Shutdown::Write)?;
        self.write_shut = true;
        Ok(true)
    }

    /// Close the handle (gracefully when complete, by RST after an error) and
    /// return the record.
    pub fn finish(self, stack: &mut Stack, now: Instant, error: Option<String>) -> TransferReport {
        let info = stack.tcp_info(self.conn).ok();
        // A failed connection may already be gone from the engine; releasing a
        // stale handle is then a no-op error we do not care about.
        let _ = if error.is_none() { stack.tcp_close(now, self.conn) } else { stack.tcp_abort(now, self.conn) };
        TransferReport {
            peer: self.peer,
            error,
            sent: self.sent,
            received: self.received,
            sent_sha256: pattern::hex(&self.sent_hash.finalize()),
            recv_sha256: pattern::hex(&self.recv_hash.finalize()),
            elapsed_us: now.saturating_since(self.established_at).total_micros(),
            info,
        }
    }
}
