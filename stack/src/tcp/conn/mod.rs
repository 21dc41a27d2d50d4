//! One TCP connection's state machine (RFC 9293), sans-IO.
//!
//! The engine owns connections in an arena and drives them through this
//! interface; a connection holds no reference to anything outside itself, so it
//! can be moved between owners (elastic workers, later).
//!
//! Driving it: feed segments to `on_segment` and expired deadlines to
//! `on_timeout`, then call `poll_transmit` until it has nothing more to say;
//! `poll_timeout` gives the next deadline. Loss-recovery retransmissions are
//! paid from the engine's `TxBudget` and postponed when it runs out (seed 003);
//! once a connection is CLOSED it transmits nothing ever again.
//!
//! Files, one job each: `open` (handshakes, options), `input` (segment
//! arrival, RFC 5961, PAWS), `ack` (receiving text, delayed ACKs),
//! `sack_report` (which SACK blocks each ACK carries), `window` (the
//! advertised window), `send` (segmentation, Nagle, cork, SWS, probes), `recovery`
//! (ACK processing, fast recovery, RTO), `lost_retransmission` (RACK-style
//! detection of lost retransmissions), `timers`, `close`, `info`, `state`
//! (the variables), `lazy_scoreboard`.

mod ack;
mod close;
mod info;
mod input;
mod lazy_scoreboard;
mod lost_retransmission;
mod open;
mod recovery;
mod sack_report;
mod send;
mod state;
mod timers;
mod window;

#[cfg(test)]
mod tests;

use core::net::SocketAddrV4;

use crate::config::TcpConfig;
use crate::error::{Error, Result};
use crate::session::event::EventSet;
use crate::tcp::buffer::{RecvBuffer, SendBuffer};
use crate::tcp::cc::CongestionControl;
use crate::tcp::rtt::RttEstimator;
use crate::tcp::seq::SeqNum;
use crate::time::Instant;
use crate::wire::TcpRepr;

pub use open::receive_window_shift;
use state::{ChallengeLimit, Counters, Flags, PendingRst, RecvSeq, Recovery, SendSeq, Timers};

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


/// One TCP connection. Buffers allocate lazily, so an idle connection costs
/// only this struct (see `size_of::<TcpConn>()` in the tests).
pub struct TcpConn {
    local: SocketAddrV4,
    remote: SocketAddrV4,
    config: TcpConfig,
    state: TcpState,
    snd: SendSeq,
    rcv: RecvSeq,
    send_buf: SendBuffer,
    recv_buf: RecvBuffer,
    rtt: RttEstimator,
    cc: CongestionControl,
    scoreboard: lazy_scoreboard::LazyScoreboard,
    rec: Recovery,
    timers: Timers,
    flags: Flags,
    challenge: ChallengeLimit,
    pending_rst: Option<PendingRst>,
    events: EventSet,
    error: Option<Error>,
    counters: Counters,
    /// Our offered MSS (link MTU less 40).
    local_mss: u16,
    /// RFC 7323 §5.4 per-connection timestamp offset.
    ts_offset: u32,
}

impl TcpConn {
    /// Active open: state SYN-SENT with a SYN ready to transmit.
    pub fn connect(now: Instant, params: ConnParams) -> TcpConn {
        open::connect(now, params)
    }
    /// Passive open from a listener's SYN: state SYN-RECEIVED with a SYN-ACK ready.
    pub fn accept_syn(now: Instant, params: ConnParams, syn: &TcpRepr) -> TcpConn {
        open::accept_syn(now, params, syn)
    }
    /// Passive open completed by a valid SYN-cookie ACK: straight to ESTABLISHED.
    /// `params.iss` is the cookie minus one; `ack` is the segment (which may carry data,
    /// passed with `payload`).
    pub fn accept_cookie(now: Instant, params: ConnParams, opts: CookieOptions, ack: &TcpRepr, payload: &[u8]) -> TcpConn {
        open::accept_cookie(now, params, opts, ack, payload)
    }

    pub fn state(&self) -> TcpState {
        self.state
    }
    pub fn local(&self) -> SocketAddrV4 {
        self.local
    }
    pub fn remote(&self) -> SocketAddrV4 {
        self.remote
    }

    /// A segment for this connection (RFC 9293 §3.10.7). Checksums were verified by the engine.
    pub fn on_segment(&mut self, now: Instant, seg: &TcpRepr, payload: &[u8]) -> SegmentOutcome {
        let outcome = input::on_segment(self, now, seg, payload);
        self.update_buffer_release_timer(now);
        outcome
    }
    /// Emit whatever is due: SYN/SYN-ACK, data (window, Nagle, cwnd), retransmissions,
    /// ACKs (delayed or immediate), window updates, FIN, RST, probes.
    pub fn poll_transmit(&mut self, now: Instant, budget: &mut TxBudget, sink: &mut SegmentSink<'_>) -> TxReport {
        let report = send::poll_transmit(self, now, budget, sink);
        self.update_buffer_release_timer(now);
        report
    }
    /// The earliest time `on_timeout` has work (RTO, delayed ACK, persist,
    /// keepalive, TIME-WAIT, FIN-WAIT-2, SYN retries, idle buffer release), or None.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.earliest()
    }
    pub fn on_timeout(&mut self, now: Instant) {
        timers::on_timeout(self, now)
    }

    /// Queue data; returns the bytes taken (Err(WouldBlock) if none fit,
    /// Err(BrokenPipe) after shutdown or close, the pending error if reset).
    pub fn send(&mut self, data: &[u8]) -> Result<usize> {
        if let Some(err) = self.error {
            return Err(err);
        }
        if self.flags.fin_queued || self.flags.orphan || self.state == TcpState::Closed {
            return Err(Error::BrokenPipe);
        }
        if data.is_empty() {
            return Ok(0);
        }
        let taken = self.send_buf.write(data);
        if taken < data.len() {
            self.flags.writable_wanted = true;
        }
        if taken == 0 {
            return Err(Error::WouldBlock);
        }
        Ok(taken)
    }
    /// Read in-order data; Ok(0) at end of stream, Err(WouldBlock) if none yet.
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.recv_buf.readable() > 0 {
            if buf.is_empty() {
                return Ok(0);
            }
            let n = self.recv_buf.read(buf);
            window::after_read(self);
            if self.flags.fin_received {
                // No more data can arrive: the storage is not needed again.
                self.recv_buf.release_if_empty();
            }
            return Ok(n);
        }
        self.end_of_stream_or_error()
    }
    /// Like `recv` without consuming (MSG_PEEK).
    pub fn peek(&self, buf: &mut [u8]) -> Result<usize> {
        if self.recv_buf.readable() > 0 {
            return Ok(self.recv_buf.peek(0, buf));
        }
        self.end_of_stream_or_error()
    }
    /// What a read returns once the buffered data is exhausted.
    fn end_of_stream_or_error(&self) -> Result<usize> {
        if let Some(err) = self.error {
            return Err(err);
        }
        if self.flags.fin_received || self.flags.read_shut || self.state == TcpState::Closed {
            return Ok(0);
        }
        Err(Error::WouldBlock)
    }
    pub fn send_queue_free(&self) -> usize {
        if self.flags.fin_queued || self.state == TcpState::Closed {
            return 0;
        }
        self.send_buf.free()
    }
    pub fn recv_queue_len(&self) -> usize {
        self.recv_buf.readable()
    }
    /// Half-close: FIN after all queued data (shutdown(SHUT_WR)).
    pub fn shutdown_write(&mut self) {
        close::shutdown_write(self)
    }
    /// Stop delivering data to the app (shutdown(SHUT_RD)); later data is acked and discarded.
    pub fn shutdown_read(&mut self) {
        self.flags.read_shut = true;
    }
    /// The application closed the socket. Unread received data or linger-zero
    /// aborts with RST (RFC 9293 §3.10.4, RFC 2525 §2.17); otherwise the
    /// connection becomes an orphan that keeps (re)transmitting until everything,
    /// FIN included, is acknowledged or `orphan_retries` run out.
    pub fn close(&mut self, now: Instant) {
        close::close(self, now)
    }
    /// Abortive close: RST now, state CLOSED.
    pub fn abort(&mut self, now: Instant) {
        close::abort(self, now)
    }
    /// Events since the last call (readable, writable, connected, peer closed, reset, error, closed).
    pub fn take_events(&mut self) -> EventSet {
        self.events.take()
    }
    /// The error that ended the connection, if any (SO_ERROR).
    pub fn take_error(&mut self) -> Option<Error> {
        self.error.take()
    }
    /// True once the connection is CLOSED (after TIME-WAIT, reset or abort) and may be freed.
    pub fn is_finished(&self) -> bool {
        self.state == TcpState::Closed && self.pending_rst.is_none()
    }
    /// Answer with an ACK at the next poll: the engine's reply to a SYN that
    /// could reopen TIME-WAIT when nobody listens (RFC 9293 §3.10.7.4; Linux's
    /// TCP_TW_SYN without a listener falls through to the TIME-WAIT ACK).
    pub fn request_ack(&mut self) {
        if self.state != TcpState::Closed {
            self.flags.ack_now = true;
        }
    }
    /// Fast retransmits are waiting (the engine checks this to service its postponed list).
    pub fn wants_fast_retransmit(&self) -> bool {
        recovery::fast_retransmit_pending(self)
    }
    pub fn info(&self) -> TcpInfo {
        info::info(self)
    }
    pub fn config(&self) -> &TcpConfig {
        &self.config
    }
    /// Apply changed options (no-delay, cork, keepalive, buffer limits, congestion algorithm
    /// before the handshake completes). Fields that cannot change now are ignored.
    pub fn set_config(&mut self, now: Instant, config: TcpConfig) {
        info::set_config(self, now, config)
    }
}
