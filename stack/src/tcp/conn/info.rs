//! `TcpInfo` (a subset of Linux's `tcp_info`) and run-time option changes.

use super::{TcpConn, TcpInfo, TcpState};
use crate::config::TcpConfig;
use crate::tcp::cc::CongestionControl;
use crate::time::Instant;

fn micros_u32(d: Option<crate::time::Duration>) -> u32 {
    d.map_or(0, |d| d.total_micros().min(u32::MAX as u64) as u32)
}

pub(super) fn info(conn: &TcpConn) -> TcpInfo {
    let c = &conn.counters;
    TcpInfo {
        state: Some(conn.state),
        snd_mss: conn.send_mss() as u32,
        rcv_mss: conn.rcv.mss_est as u32,
        cwnd_bytes: conn.cc.cwnd().min(u32::MAX as usize) as u32,
        ssthresh_bytes: conn.cc.ssthresh().min(u32::MAX as usize) as u32,
        srtt_us: micros_u32(conn.rtt.srtt()),
        rttvar_us: micros_u32(conn.rtt.rttvar()),
        rto_us: micros_u32(Some(conn.rtt.rto())),
        bytes_sent: c.bytes_sent,
        bytes_acked: c.bytes_acked,
        bytes_received: c.bytes_received,
        segs_out: c.segs_out,
        segs_in: c.segs_in,
        retransmits: c.retransmits,
        fast_retransmits: c.fast_retransmits,
        timeouts: c.timeouts,
        snd_wscale: conn.snd.wscale,
        rcv_wscale: conn.rcv.wscale,
        sack_enabled: conn.flags.sack,
        timestamps_enabled: conn.flags.timestamps,
        unacked: conn.snd.max.distance_from(conn.snd.una) as u32,
        send_queue: conn.send_buf.len() as u32,
        recv_queue: conn.recv_buf.readable() as u32,
    }
}

impl TcpConn {
    /// Retransmissions and retransmission timeouts so far: the two counters
    /// the engine folds into its stats after every poll that sent something,
    /// without assembling a whole `TcpInfo` each time.
    pub fn loss_counters(&self) -> (u64, u64) {
        (self.counters.retransmits, self.counters.timeouts)
    }
}

/// Apply what may change now; handshake-time choices stay as negotiated.
pub(super) fn set_config(conn: &mut TcpConn, now: Instant, config: TcpConfig) {
    let old = conn.config;
    let before_handshake = matches!(conn.state, TcpState::SynSent | TcpState::SynReceived);
    let mut next = old;
    next.nodelay = config.nodelay;
    // Clearing cork needs nothing more: the engine polls the connection after
    // a change, and the held partial segment leaves at once (Linux's
    // `__tcp_sock_set_cork(sk, false)` pushes the pending frames).
    next.cork = config.cork;
    next.keepalive = config.keepalive;
    next.keepalive_defaults = config.keepalive_defaults;
    next.linger_zero = config.linger_zero;
    next.delayed_ack = config.delayed_ack;
    next.time_wait = config.time_wait;
    next.fin_wait2_timeout = config.fin_wait2_timeout;
    next.data_retries = config.data_retries;
    next.orphan_retries = config.orphan_retries;
    next.syn_retries = config.syn_retries;
    next.synack_retries = config.synack_retries;
    next.send_buffer = config.send_buffer;
    conn.send_buf.set_limit(config.send_buffer);
    // The receive buffer may grow, but never below the window already
    // advertised (RFC 7323 §2.4: the right edge does not move left).
    let promised = conn.rcv.adv.distance_from(conn.rcv.nxt) + conn.recv_buf.readable();
    next.recv_buffer = config.recv_buffer.max(promised);
    conn.recv_buf.set_limit(next.recv_buffer);
    if before_handshake && config.congestion != old.congestion {
        next.congestion = config.congestion;
        conn.cc = CongestionControl::new(config.congestion, conn.send_mss(), old.initial_cwnd_segments);
    }
    conn.config = next;
    if config.keepalive != old.keepalive {
        conn.arm_keepalive(now);
    }
}
