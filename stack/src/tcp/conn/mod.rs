//! One TCP connection's state machine (RFC 9293), sans-IO.
//!
//! The engine owns connections in an arena and drives them through this
//! interface; a connection holds no reference to anything outside itself, so it
//! can be moved between owners (elastic workers, later).

use core::net::SocketAddrV4;

use crate::config::TcpConfig;
use crate::error::{Error, Result};
use crate::session::event::EventSet;
use crate::tcp::seq::SeqNum;
use crate::time::Instant;
use crate::wire::TcpRepr;

/// RFC 9293 §3.3.2 states.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TcpState {
    Closed,
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
}

/// What a new connection needs to know about itself.
#[derive(Clone, Copy, Debug)]
pub struct ConnParams {
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
    /// Initial send sequence number (from `tcp::isn`).
    pub iss: SeqNum,
    /// MSS we offer (the link MTU less 40).
    pub local_mss: usize,
    /// Offset added to our timestamp clock (RFC 7323 §5.4: per-connection random offset).
    pub ts_offset: u32,
    pub config: TcpConfig,
}

/// Options recovered from a SYN cookie (see `tcp::syncookie`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct CookieOptions {
    pub mss: u16,
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    /// Whether the ACK carried timestamps (then `TSecr` holds our echoed value).
    pub timestamps: bool,
}

/// Limits for one `poll_transmit` call, shared across connections by the engine.
#[derive(Clone, Copy, Debug)]
pub struct TxBudget {
    /// Fast retransmits the engine still allows in this poll (seed 003: VPP caps
    /// them at one frame per dispatch and postpones the rest).
    pub fast_retransmits: usize,
}

/// What `poll_transmit` left undone.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TxReport {
    /// Segments emitted.
    pub segments: usize,
    /// Fast retransmits are pending but the budget ran out: the engine puts the
    /// connection on its postponed list and polls it first next time.
    pub fast_retransmit_postponed: bool,
    /// The sink refused a segment (device ring full, neighbour unresolved).
    pub blocked: bool,
}

/// How a segment was handled, for what only the engine can do.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SegmentOutcome {
    /// Processed (possibly dropped as unacceptable, possibly queued an ACK/RST).
    Done,
    /// A SYN arrived for this TIME-WAIT connection with a higher sequence
    /// number (RFC 9293 §3.10.7.4 / RFC 6191): the engine should free this
    /// connection and hand the SYN to the listener.
    ReopenFromTimeWait,
}

/// Application-visible connection statistics (subset of Linux's `tcp_info`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TcpInfo {
    pub state: Option<TcpState>,
    pub snd_mss: u32,
    pub rcv_mss: u32,
    pub cwnd_bytes: u32,
    pub ssthresh_bytes: u32,
    pub srtt_us: u32,
    pub rttvar_us: u32,
    pub rto_us: u32,
    pub bytes_sent: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub segs_out: u64,
    pub segs_in: u64,
    pub retransmits: u64,
    pub fast_retransmits: u64,
    pub timeouts: u64,
    pub snd_wscale: u8,
    pub rcv_wscale: u8,
    pub sack_enabled: bool,
    pub timestamps_enabled: bool,
    pub unacked: u32,
    pub send_queue: u32,
    pub recv_queue: u32,
}

/// A segment handed to the engine's sink: the header and up to two payload
/// slices (the send buffer is a ring). The sink returns false if it cannot take
/// the segment now; the connection then keeps it for the next poll.
pub type SegmentSink<'a> = dyn FnMut(&TcpRepr, &[u8], &[u8]) -> bool + 'a;

pub struct TcpConn {
    _todo: (),
}

impl TcpConn {
    /// Active open: state SYN-SENT with a SYN ready to transmit.
    pub fn connect(now: Instant, params: ConnParams) -> TcpConn {
        let _ = (now, params);
        todo!()
    }
    /// Passive open from a listener's SYN: state SYN-RECEIVED with a SYN-ACK ready.
    pub fn accept_syn(now: Instant, params: ConnParams, syn: &TcpRepr) -> TcpConn {
        let _ = (now, params, syn);
        todo!()
    }
    /// Passive open completed by a valid SYN-cookie ACK: straight to ESTABLISHED.
    /// `params.iss` is the cookie minus one; `ack` is the segment (which may carry data,
    /// passed with `payload`).
    pub fn accept_cookie(now: Instant, params: ConnParams, opts: CookieOptions, ack: &TcpRepr, payload: &[u8]) -> TcpConn {
        let _ = (now, params, opts, ack, payload);
        todo!()
    }

    pub fn state(&self) -> TcpState {
        todo!()
    }
    pub fn local(&self) -> SocketAddrV4 {
        todo!()
    }
    pub fn remote(&self) -> SocketAddrV4 {
        todo!()
    }

    /// A segment for this connection (RFC 9293 §3.10.7). Checksums were verified by the engine.
    pub fn on_segment(&mut self, now: Instant, seg: &TcpRepr, payload: &[u8]) -> SegmentOutcome {
        let _ = (now, seg, payload);
        todo!()
    }
    /// Emit whatever is due: SYN/SYN-ACK, data (window, Nagle, cwnd), retransmissions,
    /// ACKs (delayed or immediate), window updates, FIN, RST, probes.
    pub fn poll_transmit(&mut self, now: Instant, budget: &mut TxBudget, sink: &mut SegmentSink<'_>) -> TxReport {
        let _ = (now, budget, sink);
        todo!()
    }
    /// The earliest time `on_timeout` has work (RTO, delayed ACK, persist,
    /// keepalive, TIME-WAIT, FIN-WAIT-2, SYN retries), or None.
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }
    pub fn on_timeout(&mut self, now: Instant) {
        let _ = now;
        todo!()
    }

    /// Queue data; returns the bytes taken (Err(WouldBlock) if none fit,
    /// Err(BrokenPipe) after shutdown or close, the pending error if reset).
    pub fn send(&mut self, data: &[u8]) -> Result<usize> {
        let _ = data;
        todo!()
    }
    /// Read in-order data; Ok(0) at end of stream, Err(WouldBlock) if none yet.
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        let _ = buf;
        todo!()
    }
    /// Like `recv` without consuming (MSG_PEEK).
    pub fn peek(&self, buf: &mut [u8]) -> Result<usize> {
        let _ = buf;
        todo!()
    }
    pub fn send_queue_free(&self) -> usize {
        todo!()
    }
    pub fn recv_queue_len(&self) -> usize {
        todo!()
    }
    /// Half-close: FIN after all queued data (shutdown(SHUT_WR)).
    pub fn shutdown_write(&mut self) {
        todo!()
    }
    /// Stop delivering data to the app (shutdown(SHUT_RD)); later data is acked and discarded.
    pub fn shutdown_read(&mut self) {
        todo!()
    }
    /// The application closed the socket. Unread received data or linger-zero
    /// aborts with RST (RFC 9293 §3.10.4, RFC 2525 §2.17); otherwise the
    /// connection becomes an orphan that keeps (re)transmitting until everything,
    /// FIN included, is acknowledged or `orphan_retries` run out.
    pub fn close(&mut self, now: Instant) {
        let _ = now;
        todo!()
    }
    /// Abortive close: RST now, state CLOSED.
    pub fn abort(&mut self, now: Instant) {
        let _ = now;
        todo!()
    }
    /// Events since the last call (readable, writable, connected, peer closed, reset, error, closed).
    pub fn take_events(&mut self) -> EventSet {
        todo!()
    }
    /// The error that ended the connection, if any (SO_ERROR).
    pub fn take_error(&mut self) -> Option<Error> {
        todo!()
    }
    /// True once the connection is CLOSED (after TIME-WAIT, reset or abort) and may be freed.
    pub fn is_finished(&self) -> bool {
        todo!()
    }
    /// Fast retransmits are waiting (the engine checks this to service its postponed list).
    pub fn wants_fast_retransmit(&self) -> bool {
        todo!()
    }
    pub fn info(&self) -> TcpInfo {
        todo!()
    }
    pub fn config(&self) -> &TcpConfig {
        todo!()
    }
    /// Apply changed options (no-delay, keepalive, buffer limits, congestion algorithm
    /// before the handshake completes). Fields that cannot change now are ignored.
    pub fn set_config(&mut self, now: Instant, config: TcpConfig) {
        let _ = (now, config);
        todo!()
    }
}
