//! Opening a connection: active open, passive open (SYN or SYN cookie), the
//! SYN's options and their negotiation, and SYN-SENT segment processing
//! (RFC 9293 §3.5, §3.10.7.3; RFC 7323 §2–§3; RFC 2018 §2).

use super::state::*;
use super::{ConnParams, CookieOptions, TcpConn, TcpState};
use crate::error::Error;
use crate::session::event::EventSet;
use crate::tcp::buffer::{RecvBuffer, SendBuffer};
use crate::tcp::cc::CongestionControl;
use crate::tcp::rtt::RttEstimator;
use crate::tcp::seq::SeqNum;
use crate::time::Instant;
use crate::wire::{TcpOptions, TcpRepr};

/// The window scale shift we announce for a receive buffer of `recv_buffer`
/// bytes: the smallest shift that lets the whole buffer be advertised
/// (RFC 7323 §2.3), at most 14. The engine uses it for SYN-cookie SYN-ACKs so
/// that `accept_cookie` agrees with what was announced.
pub fn receive_window_shift(recv_buffer: usize) -> u8 {
    let mut shift = 0u8;
    while shift < MAX_WINDOW_SHIFT && (recv_buffer >> shift) > u16::MAX as usize {
        shift += 1;
    }
    shift
}

/// Header plus the bytes the options of an established-state segment take
/// (timestamps: 10 bytes padded to 12).
pub(super) fn timestamp_option_len(timestamps: bool) -> usize {
    if timestamps { 12 } else { 0 }
}

fn new_conn(now: Instant, params: ConnParams, state: TcpState) -> TcpConn {
    let config = params.config;
    let local_mss = params.local_mss.clamp(MIN_MSS as usize, u16::MAX as usize) as u16;
    let iss = params.iss;
    TcpConn {
        local: params.local,
        remote: params.remote,
        config,
        state,
        snd: SendSeq {
            iss,
            una: iss,
            nxt: iss,
            max: iss,
            wnd: 0,
            max_wnd: 0,
            wl1: SeqNum(0),
            wl2: iss,
            fin: None,
            wscale: 0,
            mss_clamp: DEFAULT_MSS.min(local_mss),
            sml: iss,
        },
        rcv: RecvSeq {
            irs: SeqNum(0),
            nxt: SeqNum(0),
            adv: SeqNum(0),
            wscale: 0,
            last_ack_sent: SeqNum(0),
            ts_recent: 0,
            ts_recent_at: now,
            unacked_bytes: 0,
            mss_est: DEFAULT_MSS.min(local_mss),
            quick_acks: super::state::QUICK_ACKS_AT_START,
            sack: Default::default(),
            fin_at: None,
        },
        send_buf: SendBuffer::new(config.send_buffer),
        recv_buf: RecvBuffer::new(config.recv_buffer),
        rtt: RttEstimator::new(config.initial_rto, config.min_rto, config.max_rto),
        cc: CongestionControl::new(config.congestion, DEFAULT_MSS as usize, config.initial_cwnd_segments),
        scoreboard: Default::default(),
        rec: Recovery {
            active: false,
            recover: None,
            high_rxt: iss,
            dupacks: 0,
            head_due: false,
            retries: 0,
            probes: 0,
            persist_backoff: 0,
            keepalive_probes: 0,
            timed_seq: None,
            timed_at: now,
            tsecr_floor: ts_clock(now, params.ts_offset),
            last_data_sent: now,
            rxt_fence: None,
        },
        timers: Timers::default(),
        flags: Flags::default(),
        challenge: ChallengeLimit::default(),
        pending_rst: None,
        events: EventSet::EMPTY,
        error: None,
        counters: Counters::default(),
        local_mss,
        ts_offset: params.ts_offset,
    }
}

/// Active open (RFC 9293 §3.10.1): SYN-SENT, SYN due now, RTO armed when it goes out.
pub(super) fn connect(now: Instant, params: ConnParams) -> TcpConn {
    let mut conn = new_conn(now, params, TcpState::SynSent);
    conn.flags.active_open = true;
    conn.flags.syn_due = true;
    // Offer everything configured; what the peer echoes decides (RFC 7323 §2.2, §3.2; RFC 2018 §2).
    conn.flags.sack = conn.config.sack;
    conn.flags.timestamps = conn.config.timestamps;
    conn.rcv.wscale = if conn.config.window_scaling { receive_window_shift(conn.config.recv_buffer) } else { 0 };
    conn
}

/// Passive open from a listener's SYN (RFC 9293 §3.10.7.2): SYN-RECEIVED, SYN-ACK due.
pub(super) fn accept_syn(now: Instant, params: ConnParams, syn: &TcpRepr) -> TcpConn {
    let mut conn = new_conn(now, params, TcpState::SynReceived);
    conn.flags.syn_due = true;
    conn.rcv.irs = syn.seq;
    conn.rcv.nxt = syn.seq + 1;
    conn.rcv.last_ack_sent = conn.rcv.nxt;
    conn.negotiate(now, &syn.options, true);
    // The window in a SYN is never scaled (RFC 7323 §2.2).
    conn.set_initial_send_window(syn.window as u32, syn.seq, syn.ack);
    conn.rcv.adv = conn.rcv.nxt;
    conn
}

/// Passive open completed by a SYN-cookie ACK (RFC 4987 §3.6): ESTABLISHED at
/// once, with the options the cookie preserved, then the ACK (and any data on
/// it) processed like any segment.
pub(super) fn accept_cookie(
    now: Instant,
    params: ConnParams,
    opts: CookieOptions,
    ack: &TcpRepr,
    payload: &[u8],
) -> TcpConn {
    let mut conn = new_conn(now, params, TcpState::Established);
    let iss = conn.snd.iss;
    conn.snd.una = iss + 1;
    conn.snd.nxt = iss + 1;
    conn.snd.max = iss + 1;
    conn.flags.syn_acked = true;
    conn.rcv.irs = ack.seq - 1;
    conn.rcv.nxt = ack.seq;
    conn.rcv.last_ack_sent = ack.seq;
    let syn_opts = TcpOptions {
        mss: Some(opts.mss),
        window_scale: opts.window_scale,
        sack_permitted: opts.sack_permitted,
        timestamps: if opts.timestamps { ack.options.timestamps } else { None },
        ..TcpOptions::default()
    };
    conn.negotiate(now, &syn_opts, true);
    // The SYN-ACK advertised at most 64 KiB unscaled; the cookie ACK's own
    // window is already scaled. Let the normal ACK path take it (WL1 below SEQ).
    conn.snd.wl1 = ack.seq - 1;
    conn.snd.wl2 = iss;
    conn.rcv.adv = conn.rcv.nxt + conn.recv_buf.window().min(u16::MAX as usize);
    conn.events.insert(EventSet::CONNECTED | EventSet::WRITABLE);
    conn.arm_keepalive(now);
    super::input::on_segment(&mut conn, now, ack, payload);
    conn
}

impl TcpConn {
    /// Apply the options of the peer's SYN. `passive`: we answer with a
    /// SYN-ACK, so we enable only what the peer offered and we are configured for.
    /// Actively, we offered what is configured and keep what the peer echoed.
    pub(super) fn negotiate(&mut self, now: Instant, opts: &TcpOptions, passive: bool) {
        let config = self.config;
        // RFC 7323 §2.2: scaling applies in both directions only if both sides sent the option.
        match opts.window_scale {
            Some(shift) if config.window_scaling => {
                self.flags.wscale = true;
                self.snd.wscale = shift.min(MAX_WINDOW_SHIFT);
                if passive {
                    self.rcv.wscale = receive_window_shift(config.recv_buffer);
                }
            }
            _ => {
                self.flags.wscale = false;
                self.snd.wscale = 0;
                self.rcv.wscale = 0;
            }
        }
        self.flags.sack = config.sack && opts.sack_permitted;
        match opts.timestamps {
            Some((tsval, _)) if config.timestamps => {
                self.flags.timestamps = true;
                self.rcv.ts_recent = tsval;
                self.rcv.ts_recent_at = now;
            }
            _ => self.flags.timestamps = false,
        }
        // RFC 9293 §3.7.1: 536 if absent; clamp hostile values (Linux TCP_MIN_MSS).
        let peer_mss = opts.mss.unwrap_or(DEFAULT_MSS).max(MIN_MSS);
        self.snd.mss_clamp = peer_mss.min(self.local_mss);
        let mss = self.send_mss();
        self.rcv.mss_est = mss as u16;
        self.cc.set_mss(mss);
    }

    /// Payload bytes in a full-sized segment carrying only the timestamp option.
    pub(super) fn send_mss(&self) -> usize {
        (self.snd.mss_clamp as usize).saturating_sub(timestamp_option_len(self.flags.timestamps)).max(1)
    }

    pub(super) fn set_initial_send_window(&mut self, window: u32, seq: SeqNum, ack: SeqNum) {
        self.snd.wnd = window;
        self.snd.max_wnd = self.snd.max_wnd.max(window);
        self.snd.wl1 = seq;
        self.snd.wl2 = ack;
    }

    /// The options of our SYN or SYN-ACK.
    pub(super) fn syn_options(&self, now: Instant) -> TcpOptions {
        let syn_ack = self.state != TcpState::SynSent;
        // A SYN-ACK may carry window scale only if the SYN did (RFC 7323 §2.2).
        let offer_wscale = if syn_ack { self.flags.wscale } else { self.config.window_scaling };
        let window_scale = if offer_wscale { Some(self.rcv.wscale) } else { None };
        TcpOptions {
            mss: Some(self.local_mss),
            window_scale,
            sack_permitted: self.flags.sack,
            timestamps: if self.flags.timestamps {
                Some((ts_clock(now, self.ts_offset), if syn_ack { self.rcv.ts_recent } else { 0 }))
            } else {
                None
            },
            ..TcpOptions::default()
        }
    }

    /// SYN-SENT (RFC 9293 §3.10.7.3).
    pub(super) fn on_segment_syn_sent(&mut self, now: Instant, seg: &TcpRepr, payload: &[u8]) {
        let flags = seg.flags;
        if flags.ack() {
            // An ACK that does not acknowledge our SYN: RST <SEQ=SEG.ACK> unless it is an RST.
            if seg.ack <= self.snd.iss || seg.ack > self.snd.max {
                if !flags.rst() {
                    self.pending_rst = Some(PendingRst { seq: seg.ack, ack: None });
                }
                return;
            }
        }
        if flags.rst() {
            // RFC 5961 §3: only an RST that acknowledges our SYN is believed.
            if flags.ack() {
                self.fail(Error::ConnectionRefused, EventSet::RESET | EventSet::ERROR);
            }
            return;
        }
        if !flags.syn() {
            return;
        }
        self.rcv.irs = seg.seq;
        self.rcv.nxt = seg.seq + 1;
        self.rcv.last_ack_sent = self.rcv.nxt;
        // What our SYN offered (unscaled, RFC 7323 §2.2) is the window until our first ACK.
        self.rcv.adv = self.rcv.nxt + self.recv_buf.window().min(u16::MAX as usize);
        self.negotiate(now, &seg.options, false);
        self.set_initial_send_window(seg.window as u32, seg.seq, seg.ack);
        self.flags.ack_now = true;
        if flags.ack() {
            // Our SYN is acknowledged: ESTABLISHED.
            self.snd.una = seg.ack;
            self.flags.syn_acked = true;
            self.snd.nxt = self.snd.nxt.max(seg.ack);
            self.rtt_sample_for_syn(now, seg);
            self.timers.rto = None;
            self.rec.retries = 0;
            self.flags.syn_due = false;
            self.established(now);
            // Data on a SYN-ACK (RFC 9293 §3.10.7.3 "continue processing at the sixth step").
            if !payload.is_empty() || flags.fin() {
                let mut rest = *seg;
                rest.flags = crate::wire::TcpFlags(flags.0 & !crate::wire::TcpFlags::SYN);
                rest.seq = seg.seq + 1;
                super::input::on_segment(self, now, &rest, payload);
            }
        } else {
            // Simultaneous open (RFC 9293 §3.5 Figure 7): SYN-RECEIVED, SYN-ACK due.
            self.state = TcpState::SynReceived;
            self.flags.syn_due = true;
        }
    }

    /// An RTT sample from the handshake, unless the SYN was retransmitted (Karn).
    pub(super) fn rtt_sample_for_syn(&mut self, now: Instant, seg: &TcpRepr) {
        if self.rec.retries == 0 && self.rec.timed_seq.is_some() {
            self.rtt.on_sample(now.saturating_since(self.rec.timed_at));
        } else if let (true, Some((_, tsecr))) = (self.flags.timestamps, seg.options.timestamps) {
            self.rtt_sample_from_tsecr(now, tsecr);
        }
        self.rec.timed_seq = None;
    }

    /// The handshake completed (from SYN-SENT or SYN-RECEIVED).
    pub(super) fn established(&mut self, now: Instant) {
        self.state = TcpState::Established;
        self.events.insert(EventSet::CONNECTED | EventSet::WRITABLE);
        self.arm_keepalive(now);
        if self.flags.fin_queued {
            // shutdown(SHUT_WR) was called while connecting.
            self.state = TcpState::FinWait1;
        }
    }
}
