//! TCP input: demultiplexing to a connection, passive opens on listeners
//! (half-open connections while under the limits, stateless SYN cookies
//! beyond them), and RSTs for segments that belong to nothing.

use core::net::SocketAddrV4;

use super::control::{reset_for, ControlSegment};
use super::slots::{ConnSlot, Origin};
use super::{ListenerId, Stack};
use crate::config::TcpConfig;
use crate::session::demux::{reuseport_pick, FourTuple};
use crate::tcp::conn::{receive_window_shift, ConnParams, SegmentOutcome, TcpConn, TcpState};
use crate::time::{Duration, Instant};
use crate::wire::{self, Ipv4Addr, TcpFlags, TcpOptions, TcpPacket, TcpRepr};

/// RFC 9293 §3.7.1: the MSS assumed when a SYN carries none.
const DEFAULT_PEER_MSS: u16 = 536;
/// Cookie ACKs are honoured this long after the last cookie was sent (two
/// cookie periods, the longest a cookie is valid).
const COOKIE_WINDOW: Duration = Duration::from_secs(128);

impl Stack {
    pub(crate) fn receive_tcp(&mut self, now: Instant, src: Ipv4Addr, dst: Ipv4Addr, segment: &[u8]) {
        let Ok(packet) = TcpPacket::new_checked(segment) else {
            self.stats.drop_malformed_tcp += 1;
            return;
        };
        // Borrowed from the parse result rather than moved out of it: the
        // move copied the repr with wide loads over its just-written narrow
        // fields, which the store buffer cannot forward (a stall per segment).
        let parsed = TcpRepr::parse(&packet, &src, &dst, true);
        let repr = match &parsed {
            Ok(repr) => repr,
            Err(wire::Error::Checksum) => {
                self.stats.drop_bad_checksum += 1;
                return;
            }
            Err(_) => {
                self.stats.drop_malformed_tcp += 1;
                return;
            }
        };
        if repr.src_port == 0 || repr.dst_port == 0 {
            self.stats.drop_malformed_tcp += 1;
            return;
        }
        self.stats.tcp_segments_in += 1;
        let payload = packet.payload();
        let tuple = FourTuple {
            local: SocketAddrV4::new(dst, repr.dst_port),
            remote: SocketAddrV4::new(src, repr.src_port),
        };
        if let Some(id) = self.conn_table.get(&tuple) {
            if self.completion_overflows(id, repr) {
                // Linux (tcp_abort_on_overflow = 0): the ACK that would
                // complete the handshake into a full accept queue is dropped,
                // not answered with RST. We stay in SYN-RECEIVED; the SYN-ACK
                // retransmission makes the client ACK again, by which time
                // the application may have made room.
                self.stats.accept_queue_overflow += 1;
                return;
            }
            let Some(slot) = self.conns.get_mut(id) else {
                // Unreachable by construction (slots leave the table before
                // they are freed), but a table entry is never trusted blindly.
                self.conn_table.remove(&tuple);
                self.receive_for_listener(now, tuple, repr, payload);
                return;
            };
            let outcome = slot.conn.on_segment(now, repr, payload);
            if outcome == SegmentOutcome::ReopenFromTimeWait && self.pick_listener(&tuple).is_none() {
                // Nobody would take the new connection: the SYN gets the
                // ordinary TIME-WAIT answer, an ACK, and TIME-WAIT stays
                // (Linux, TCP_TW_SYN without a listener).
                if let Some(slot) = self.conns.get_mut(id) {
                    slot.conn.request_ack();
                }
                self.mark_dirty(id);
                self.settle(now, id);
                return;
            }
            self.mark_dirty(id);
            self.settle(now, id);
            if outcome != SegmentOutcome::ReopenFromTimeWait {
                return;
            }
            // RFC 9293 §3.10.7.4 / RFC 6191: a new SYN may reuse a TIME-WAIT tuple.
            self.retire_time_wait(id);
        }
        self.receive_for_listener(now, tuple, repr, payload);
    }

    /// Whether `seg` would complete the passive open `id` while its
    /// listener's accept queue has no room for it.
    fn completion_overflows(&self, id: super::ConnId, seg: &TcpRepr) -> bool {
        let Some(slot) = self.conns.get(id) else { return false };
        let Origin::HalfOpen(listener) = slot.origin else { return false };
        slot.conn.state() == TcpState::SynReceived
            && completes_handshake(seg)
            && self.listeners.get(listener).is_some_and(|l| l.accept_queue.len() >= l.backlog)
    }

    /// RFC 9293 §3.10.7.2 (LISTEN state), or §3.10.7.1 (CLOSED) if nobody listens.
    fn receive_for_listener(&mut self, now: Instant, tuple: FourTuple, seg: &TcpRepr, payload: &[u8]) {
        let Some(listener) = self.pick_listener(&tuple) else {
            self.stats.tcp_no_socket += 1;
            self.queue_reset(&tuple, seg);
            return;
        };
        if seg.flags.rst() {
            // "An incoming RST segment could not be valid ... should be ignored."
            self.stats.tcp_listen_dropped += 1;
            return;
        }
        if seg.flags.ack() {
            // "Any acknowledgment is bad if it arrives on a connection still in
            // the LISTEN state" — unless it completes a SYN-cookie handshake.
            if !seg.flags.syn() && self.accept_cookie_ack(now, listener, tuple, seg, payload) {
                return;
            }
            self.queue_reset(&tuple, seg);
            return;
        }
        if !seg.flags.syn() || seg.flags.fin() {
            // "Any other control or text-bearing segment ... drop it." SYN+FIN
            // is no valid opening (a scanner's probe); Linux drops it too.
            self.stats.tcp_listen_dropped += 1;
            return;
        }
        self.accept_syn(now, listener, tuple, seg);
    }

    /// The listener for a new flow: the only one, or (SO_REUSEPORT) one
    /// chosen by keyed hash among the members that accept, else among all.
    fn pick_listener(&self, tuple: &FourTuple) -> Option<ListenerId> {
        let group = self.listener_table.lookup(*tuple.local.ip(), tuple.local.port());
        if group.len() <= 1 {
            return group.first().copied();
        }
        let hasher = self.listener_table.hasher();
        let is_accepting = |l: &&ListenerId| self.listeners.get(**l).is_some_and(|s| s.accepting);
        let accepting = group.iter().filter(is_accepting).count();
        if accepting == 0 {
            return group.get(reuseport_pick(hasher, tuple, group.len())).copied();
        }
        group.iter().filter(is_accepting).nth(reuseport_pick(hasher, tuple, accepting)).copied()
    }

    /// A SYN for a listener: a half-open connection while under the limits,
    /// else a SYN cookie (RFC 4987 §3.6).
    fn accept_syn(&mut self, now: Instant, listener: ListenerId, tuple: FourTuple, syn: &TcpRepr) {
        let Some(l) = self.listeners.get(listener) else { return };
        if l.accept_queue.len() >= l.backlog {
            // Like Linux: while the accept queue is full, SYNs are dropped and
            // the client retries later.
            self.stats.syn_dropped_accept_queue_full += 1;
            return;
        }
        let owner = l.owner;
        let over_half_open = self.half_open >= self.config.max_half_open || l.half_open >= l.backlog;
        // TIME-WAIT may be recycled for a real handshake, not for a cookie.
        let over_connections = !over_half_open && !self.make_room_for_connection();
        if over_connections {
            self.stats.connection_limit_hit += 1;
        }
        if over_half_open || over_connections {
            self.send_syn_cookie(now, tuple, syn);
            return;
        }
        let params = self.conn_params(now, tuple, self.config.tcp);
        let conn = TcpConn::accept_syn(now, params, syn);
        let Ok(id) = self.conns.insert(ConnSlot::new(conn, owner, Origin::HalfOpen(listener))) else {
            self.stats.connection_limit_hit += 1;
            return;
        };
        if self.conn_table.insert(tuple, id).is_err() {
            self.conns.remove(id);
            return;
        }
        if let Some(slot) = self.conns.get_mut(id) {
            slot.in_table = true;
        }
        self.half_open += 1;
        if let Some(l) = self.listeners.get_mut(listener) {
            l.half_open += 1;
        }
        self.stats.connections_opened += 1;
        self.mark_dirty(id);
        self.settle(now, id);
    }

    pub(crate) fn conn_params(&self, now: Instant, tuple: FourTuple, config: TcpConfig) -> ConnParams {
        ConnParams {
            local: tuple.local,
            remote: tuple.remote,
            iss: self.isn.isn(now, tuple.local, tuple.remote),
            local_mss: self.config.mss(),
            ts_offset: self.isn.ts_offset(tuple.local, tuple.remote),
            config,
        }
    }

    /// A stateless SYN-ACK whose ISN is the cookie. Window scale and
    /// SACK-permitted survive only in the timestamp (Linux's
    /// `cookie_init_timestamp`), so without timestamps neither is offered.
    fn send_syn_cookie(&mut self, now: Instant, tuple: FourTuple, syn: &TcpRepr) {
        let tcp = self.config.tcp;
        let client_mss = syn.options.mss.unwrap_or(DEFAULT_PEER_MSS);
        let (cookie, _mss) = self.cookies.encode(now, tuple.local, tuple.remote, syn.seq, client_mss);
        let mut options = TcpOptions { mss: Some(self.config.mss().min(u16::MAX as usize) as u16), ..TcpOptions::default() };
        if let (Some((tsval, _)), true) = (syn.options.timestamps, tcp.timestamps) {
            let peer_wscale = if tcp.window_scaling { syn.options.window_scale } else { None };
            let sack = tcp.sack && syn.options.sack_permitted;
            let ts_now = (now.total_millis() as u32).wrapping_add(self.isn.ts_offset(tuple.local, tuple.remote));
            options.timestamps = Some((self.cookies.ts_encode(ts_now, peer_wscale, sack), tsval));
            // The same shift `TcpConn::accept_cookie` will assume.
            options.window_scale = peer_wscale.map(|_| receive_window_shift(tcp.recv_buffer));
            options.sack_permitted = sack;
        }
        let repr = TcpRepr {
            src_port: tuple.local.port(),
            dst_port: tuple.remote.port(),
            seq: cookie,
            ack: syn.seq + 1,
            flags: TcpFlags(TcpFlags::SYN | TcpFlags::ACK),
            // RFC 7323 §2.2: the window of a SYN segment is never scaled.
            window: tcp.recv_buffer.min(u16::MAX as usize) as u16,
            options,
            ..TcpRepr::default()
        };
        if self.control.push(ControlSegment { local: tuple.local, remote: tuple.remote, repr }) {
            self.stats.syn_cookies_sent += 1;
            self.last_cookie_sent = Some(now);
        } else {
            self.stats.tcp_control_dropped += 1;
        }
    }

    /// An ACK for no connection that carries a valid cookie opens the
    /// connection straight into the accept queue. False if it is not one
    /// (the caller answers with RST); true if it was used or, for want of
    /// room in the accept queue, dropped.
    fn accept_cookie_ack(&mut self, now: Instant, listener: ListenerId, tuple: FourTuple, ack: &TcpRepr, payload: &[u8]) -> bool {
        let recent = self.last_cookie_sent.is_some_and(|sent| now.saturating_since(sent) < COOKIE_WINDOW);
        if !recent {
            return false;
        }
        let Some(options) = self.cookies.decode(now, tuple.local, tuple.remote, ack) else {
            self.stats.syn_cookies_rejected += 1;
            return false;
        };
        let Some(l) = self.listeners.get(listener) else { return false };
        if l.accept_queue.len() >= l.backlog {
            // As for a stateful handshake (see `receive_tcp`): dropped, not
            // reset. The client's next segment (a request, or a
            // retransmission of it) carries the cookie again.
            self.stats.accept_queue_overflow += 1;
            return true;
        }
        let owner = l.owner;
        if !self.make_room_for_connection() {
            self.stats.connection_limit_hit += 1;
            return false;
        }
        let mut params = self.conn_params(now, tuple, self.config.tcp);
        params.iss = ack.ack - 1;
        let conn = TcpConn::accept_cookie(now, params, options, ack, payload);
        let Ok(id) = self.conns.insert(ConnSlot::new(conn, owner, Origin::Queued(listener))) else {
            self.stats.connection_limit_hit += 1;
            return false;
        };
        if self.conn_table.insert(tuple, id).is_err() {
            self.conns.remove(id);
            return false;
        }
        if let Some(slot) = self.conns.get_mut(id) {
            slot.in_table = true;
        }
        self.push_accepted(listener, id);
        self.stats.syn_cookies_accepted += 1;
        self.stats.connections_opened += 1;
        self.mark_dirty(id);
        self.settle(now, id);
        true
    }

    fn queue_reset(&mut self, tuple: &FourTuple, seg: &TcpRepr) {
        let Some(repr) = reset_for(seg) else { return };
        if !self.control.push(ControlSegment { local: tuple.local, remote: tuple.remote, repr }) {
            self.stats.tcp_control_dropped += 1;
        }
    }
}

/// A segment that moves SYN-RECEIVED to ESTABLISHED if acceptable (RFC 9293
/// §3.10.7.4): an ACK without SYN or RST.
fn completes_handshake(seg: &TcpRepr) -> bool {
    seg.flags.ack() && !seg.flags.syn() && !seg.flags.rst()
}
