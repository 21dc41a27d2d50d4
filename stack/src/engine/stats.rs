//! Engine counters: every drop has a reason and a counter.

/// Monotonic counters since the engine started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub frames_in: u64,
    pub frames_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Frames dropped because parsing failed, by layer.
    pub drop_malformed_ethernet: u64,
    pub drop_malformed_arp: u64,
    pub drop_malformed_ipv4: u64,
    pub drop_malformed_tcp: u64,
    pub drop_malformed_icmp: u64,
    pub drop_bad_checksum: u64,
    /// Not for us (other MAC/IP), or a protocol we do not serve.
    pub drop_not_for_us: u64,
    pub drop_unsupported: u64,
    /// IPv4 sources that cannot be a host (RFC 1122 §3.2.1.3), or our own address.
    pub drop_bad_source: u64,
    /// Packets not sent because no route leads to the destination.
    pub ip_no_route: u64,
    pub ipv4_fragments_in: u64,
    pub ipv4_reassembled: u64,
    pub ipv4_fragments_dropped: u64,
    /// Datagrams dropped because a fragment overlapped data already received.
    pub ipv4_reassembly_overlaps: u64,
    /// Fragments repeating data already received, dropped alone.
    pub ipv4_fragments_duplicate: u64,
    /// Fragments inconsistent with their datagram (two ends, data past the end,
    /// misaligned, larger than an IPv4 datagram can be).
    pub ipv4_reassembly_invalid: u64,
    /// Datagrams evicted or refused because the reassembly buffer was full.
    pub ipv4_reassembly_no_room: u64,
    pub ipv4_reassembly_timeouts: u64,
    pub arp_requests_out: u64,
    pub arp_replies_out: u64,
    pub arp_pending_dropped: u64,
    /// Packets for a neighbour being resolved that found its queue full.
    pub arp_queue_full: u64,
    /// Packets for a neighbour whose resolution just failed, dropped.
    pub arp_unresolved_dropped: u64,
    /// Connection attempts whose SYN waited for a neighbour's resolution
    /// instead of being dropped (sent as soon as it settles).
    pub arp_syn_waits: u64,
    /// Requests for us not answered because too many were queued between polls.
    pub arp_replies_dropped: u64,
    /// Neighbours given up on after `max_requests` unanswered requests.
    pub arp_failed: u64,
    /// Entries evicted to make room (the cache is full).
    pub arp_evicted: u64,
    pub icmp_echo_replies: u64,
    /// Echo replies not sent (reply queue full, larger than the MTU, no route).
    pub icmp_dropped: u64,
    /// "Fragmentation needed" received (counted; path MTU discovery is not done).
    pub icmp_frag_needed_in: u64,
    /// Destination unreachable (other than "fragmentation needed") received.
    pub icmp_unreachable_in: u64,
    /// Connection attempts (SYN-SENT) failed by an ICMP destination
    /// unreachable or by ARP failing for the next hop.
    pub tcp_connect_unreachable: u64,
    /// Other ICMP messages, read and ignored.
    pub icmp_ignored: u64,
    pub tcp_segments_in: u64,
    pub tcp_segments_out: u64,
    pub tcp_rst_out: u64,
    /// RSTs and SYN-cookie SYN-ACKs dropped (queue full between polls, or no route).
    pub tcp_control_dropped: u64,
    /// Segments to a listener that are neither SYN nor ACK, are RSTs (RFC
    /// 9293 §3.10.7.2), or are SYN+FIN.
    pub tcp_listen_dropped: u64,
    /// Segments for no connection or listener (answered with RST).
    pub tcp_no_socket: u64,
    pub tcp_retransmits: u64,
    pub tcp_fast_retransmits: u64,
    pub tcp_timeouts: u64,
    /// Fast retransmits postponed to a later poll because the per-poll budget ran out.
    pub tcp_fast_retransmits_postponed: u64,
    /// Postponed-retransmit entries whose connection was gone or reused when reached.
    pub tcp_postponed_stale: u64,
    /// Timer entries whose connection was gone or reused when they fired.
    pub tcp_timer_stale: u64,
    /// Events never delivered because their socket was released first.
    pub events_stale: u64,
    pub events_coalesced: u64,
    /// Events lost because a consumer queue was full (capacity below the socket count).
    pub events_dropped_queue_full: u64,
    pub syn_cookies_sent: u64,
    pub syn_cookies_accepted: u64,
    pub syn_cookies_rejected: u64,
    pub accept_queue_overflow: u64,
    /// SYNs dropped because the listener's accept queue was full (the client retries).
    pub syn_dropped_accept_queue_full: u64,
    pub half_open_dropped: u64,
    pub connections_opened: u64,
    pub connections_closed: u64,
    pub connections_reset: u64,
    pub connections_timed_out: u64,
    pub connection_limit_hit: u64,
    /// TIME-WAIT connections freed early to make room for a new connection.
    pub time_wait_recycled: u64,
}
