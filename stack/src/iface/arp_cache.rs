//! The ARP cache (RFC 826) with a bounded queue of frames waiting for
//! resolution.
//!
//! * Entries are bounded (`max_entries`); when full, the oldest entry is
//!   evicted (insertion order), so a flood of new neighbours cannot grow it.
//! * A resolved entry is trusted for `entry_ttl`; after that it is still used
//!   while a refresh request is outstanding (Linux's STALE/PROBE states), so a
//!   busy flow does not stall every `entry_ttl`. If no reply comes within
//!   `max_requests` intervals it is resolved from scratch.
//! * An unresolved neighbour gets a request at once and then one every
//!   `request_interval`; after `max_requests` unanswered requests its waiting
//!   frames are dropped (counted) and it is held as failed for one interval.
//! * Frames for an unresolved neighbour are copied into a preallocated pool,
//!   at most `pending_per_neighbor` per neighbour and `pending_total` overall.
//!   When the reply arrives their destination MAC is filled in and they move to
//!   the ready list, which the engine transmits first.

use std::collections::{HashMap, VecDeque};

use super::packet_pool::{PacketList, PacketPool};
use crate::config::ArpConfig;
use crate::engine::Stats;
use crate::time::Instant;
use crate::wire::{ArpOperation, EthernetAddress, Ipv4Addr};

/// Replies waiting for `poll_transmit`; more requests than this between two
/// polls are not answered (the requester retries).
const MAX_QUEUED_REPLIES: usize = 64;

/// An ARP packet the cache wants sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArpMessage {
    /// Broadcast "who has `target`".
    Request { target: Ipv4Addr },
    /// Unicast "we are at our MAC" to the requester.
    Reply { to_mac: EthernetAddress, to_ip: Ipv4Addr },
}

/// The fields of a received ARP packet the cache needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpInput {
    pub operation: ArpOperation,
    pub sender_mac: EthernetAddress,
    pub sender_ip: Ipv4Addr,
    pub target_ip: Ipv4Addr,
}

#[derive(Clone, Copy, Debug)]
enum State {
    Resolved {
        mac: EthernetAddress,
        expires_at: Instant,
        /// Set while a refresh request for a stale entry is scheduled or outstanding.
        refresh_requested_at: Option<Instant>,
    },
    Incomplete {
        requests_sent: u32,
        next_request_at: Instant,
        pending: PacketList,
    },
    Failed {
        until: Instant,
    },
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    state: State,
    /// Tags this entry's insertion in `insertion_order` and its request schedule.
    tag: u64,
}

/// A copy of one fresh entry, so the per-frame `lookup` and `confirm` of the
/// neighbour a flow talks to skip the hash map. Invariant: when set, the map
/// holds exactly `Resolved { mac, expires_at, refresh_requested_at: None }`
/// for `ip`; every other change to the map clears it.
#[derive(Clone, Copy, Debug)]
struct Recent {
    ip: Ipv4Addr,
    mac: EthernetAddress,
    expires_at: Instant,
}

pub struct ArpCache {
    config: ArpConfig,
    entries: HashMap<Ipv4Addr, Entry>,
    recent: Option<Recent>,
    /// Insertion order for eviction; items whose tag no longer matches are skipped.
    insertion_order: VecDeque<(Ipv4Addr, u64)>,
    /// Insertion order of entries created unresolved; evicted first, so
    /// traffic to many non-existent neighbours (a spoofed-source SYN flood
    /// answered with cookies) cannot push out neighbours we talk to.
    unresolved_order: VecDeque<(Ipv4Addr, u64)>,
    /// Neighbours with a request to send, earliest first (stale items skipped by tag).
    request_schedule: VecDeque<(Ipv4Addr, u64, Instant)>,
    replies: VecDeque<(EthernetAddress, Ipv4Addr)>,
    /// Requests `handle_timeout` found due, waiting for the next poll.
    due_requests: VecDeque<Ipv4Addr>,
    next_tag: u64,
    pool: PacketPool,
    pending_total: usize,
    /// Frames whose neighbour got resolved, complete and ready to send.
    ready: PacketList,
    /// Frames whose neighbour could not be resolved, to be reported and freed.
    failed: PacketList,
}

impl ArpCache {
    /// `frame_size` is the largest Ethernet frame that may wait for resolution.
    pub fn new(config: ArpConfig, frame_size: usize) -> Self {
        ArpCache {
            config,
            entries: HashMap::with_capacity(config.max_entries.min(4096)),
            recent: None,
            insertion_order: VecDeque::new(),
            unresolved_order: VecDeque::new(),
            request_schedule: VecDeque::new(),
            replies: VecDeque::with_capacity(MAX_QUEUED_REPLIES),
            due_requests: VecDeque::new(),
            next_tag: 0,
            pool: PacketPool::new(config.pending_total, frame_size),
            pending_total: 0,
            ready: PacketList::default(),
            failed: PacketList::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The MAC of `ip` if known. Otherwise resolution is started (a request
    /// scheduled at once) and None returned; the caller may `hold` its frame.
    pub fn lookup(&mut self, now: Instant, ip: Ipv4Addr, stats: &mut Stats) -> Option<EthernetAddress> {
        if let Some(recent) = self.recent.filter(|r| r.ip == ip && now < r.expires_at) {
            return Some(recent.mac);
        }
        // Everything below may change the entry.
        self.recent = None;
        let grace = self.config.request_interval.saturating_mul(self.config.max_requests.max(1) as u64);
        let interval = self.config.request_interval;
        if let Some(entry) = self.entries.get_mut(&ip) {
            match &mut entry.state {
                State::Resolved { mac, expires_at, refresh_requested_at } => {
                    if now < *expires_at {
                        if refresh_requested_at.is_none() {
                            self.recent = Some(Recent { ip, mac: *mac, expires_at: *expires_at });
                        }
                        return Some(*mac);
                    }
                    if now < *expires_at + grace {
                        let due = refresh_requested_at.is_none_or(|at| now >= at + interval);
                        let mac = *mac;
                        if due {
                            *refresh_requested_at = Some(now);
                            self.request_schedule.push_front((ip, entry.tag, now));
                        }
                        return Some(mac);
                    }
                    // Stale beyond the grace period: resolve from scratch below.
                }
                State::Incomplete { .. } => return None,
                State::Failed { until } => {
                    if now < *until {
                        return None;
                    }
                }
            }
            self.entries.remove(&ip);
        }
        self.start_resolution(now, ip, stats);
        None
    }

    /// A frame from `ip` arrived from `mac`: if that is the entry we hold,
    /// the neighbour is evidently reachable and the entry is trusted for
    /// another `entry_ttl` (in the spirit of Linux's reachability
    /// confirmation by upper layers, RFC 4861 §7.3.1), so busy neighbours are
    /// never re-probed and never go through a refresh that loss could fail.
    pub fn confirm(&mut self, now: Instant, ip: Ipv4Addr, mac: EthernetAddress) {
        let expires = now + self.config.entry_ttl;
        // Already confirmed at this instant (a burst of frames from one peer).
        if self.recent.is_some_and(|r| r.ip == ip && r.mac == mac && r.expires_at == expires) {
            return;
        }
        if let Some(Entry { state: State::Resolved { mac: known, expires_at, refresh_requested_at }, .. }) = self.entries.get_mut(&ip) {
            if *known == mac {
                *expires_at = expires;
                *refresh_requested_at = None;
                self.recent = Some(Recent { ip, mac, expires_at: expires });
            }
        }
    }

    /// Holds a frame of `len` bytes (written by `fill`; its destination MAC is
    /// filled in on resolution) until `next_hop` is resolved. False if the
    /// neighbour is not being resolved or a limit is reached; the frame is then
    /// the caller's to drop or retry.
    pub fn hold(&mut self, next_hop: Ipv4Addr, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        if self.pending_total >= self.config.pending_total {
            return false;
        }
        let per_neighbor = self.config.pending_per_neighbor;
        let Some(Entry { state: State::Incomplete { pending, .. }, .. }) = self.entries.get_mut(&next_hop) else {
            return false;
        };
        if pending.len() >= per_neighbor {
            return false;
        }
        if !self.pool.push_with(pending, len, fill) {
            return false;
        }
        self.pending_total += 1;
        true
    }

    /// A received ARP packet, following RFC 826's "Packet Reception" merge
    /// rule: an existing entry for the sender is updated; a new one is added
    /// only when the packet is addressed to us; requests for us are answered.
    /// Returns true if the packet was addressed to `our_ip`.
    pub fn on_arp(&mut self, now: Instant, our_ip: Ipv4Addr, pkt: &ArpInput, stats: &mut Stats) -> bool {
        // May learn, replace or evict entries.
        self.recent = None;
        // A sender without a usable unicast identity (RFC 5227 probes use
        // 0.0.0.0) teaches us nothing.
        let learnable = !pkt.sender_ip.is_unspecified()
            && !pkt.sender_ip.is_broadcast()
            && pkt.sender_mac.is_unicast()
            && pkt.sender_ip != our_ip;
        let mut merged = false;
        if learnable && self.entries.contains_key(&pkt.sender_ip) {
            self.learn(now, pkt.sender_ip, pkt.sender_mac, stats);
            merged = true;
        }
        let for_us = pkt.target_ip == our_ip;
        if for_us {
            if learnable && !merged {
                self.learn(now, pkt.sender_ip, pkt.sender_mac, stats);
            }
            if pkt.operation == ArpOperation::Request && pkt.sender_mac.is_unicast() {
                if self.replies.len() < MAX_QUEUED_REPLIES {
                    self.replies.push_back((pkt.sender_mac, pkt.sender_ip));
                } else {
                    stats.arp_replies_dropped += 1;
                }
            }
        }
        for_us
    }

    /// The next ARP packet to send (replies first, then due requests), or None.
    /// Also gives up on neighbours whose requests ran out.
    pub fn poll_message(&mut self, now: Instant, stats: &mut Stats) -> Option<ArpMessage> {
        if let Some((to_mac, to_ip)) = self.replies.pop_front() {
            return Some(ArpMessage::Reply { to_mac, to_ip });
        }
        if let Some(target) = self.due_requests.pop_front() {
            return Some(ArpMessage::Request { target });
        }
        self.next_due_request(now, stats).map(|target| ArpMessage::Request { target })
    }

    /// Takes every request due by `now` off the schedule (and gives up on
    /// neighbours whose requests ran out), so `has_output` reports them: a
    /// caller that polls only when there is output must not wait on a
    /// deadline that only a poll can move.
    pub fn handle_timeout(&mut self, now: Instant, stats: &mut Stats) {
        while let Some(target) = self.next_due_request(now, stats) {
            if self.due_requests.len() < self.config.max_entries.max(1) {
                self.due_requests.push_back(target);
            }
            // Else the neighbour is asked again at its next interval.
        }
    }

    /// The next neighbour on the schedule whose request is due.
    fn next_due_request(&mut self, now: Instant, stats: &mut Stats) -> Option<Ipv4Addr> {
        while let Some(&(ip, tag, at)) = self.request_schedule.front() {
            let Some(entry) = self.entries.get_mut(&ip) else {
                self.request_schedule.pop_front();
                continue;
            };
            if entry.tag != tag {
                self.request_schedule.pop_front();
                continue;
            }
            match &mut entry.state {
                State::Resolved { refresh_requested_at, .. } => {
                    // A refresh of a stale entry: one request; `lookup` asks
                    // again if needed. Items left over from the entry's
                    // unresolved days do not match and are skipped.
                    self.request_schedule.pop_front();
                    if *refresh_requested_at == Some(at) {
                        return Some(ip);
                    }
                }
                State::Failed { .. } => {
                    self.request_schedule.pop_front();
                }
                State::Incomplete { requests_sent, next_request_at, pending } => {
                    if at != *next_request_at {
                        self.request_schedule.pop_front();
                        continue;
                    }
                    if at > now {
                        return None;
                    }
                    self.request_schedule.pop_front();
                    if *requests_sent >= self.config.max_requests.max(1) {
                        // The waiting frames go to `failed` for the engine to
                        // report to their senders (Linux's arp_error_report).
                        self.pending_total -= pending.len();
                        stats.arp_pending_dropped += pending.len() as u64;
                        stats.arp_failed += 1;
                        let mut failed = self.failed;
                        self.pool.append(&mut failed, pending);
                        self.failed = failed;
                        entry.state = State::Failed { until: now + self.config.request_interval };
                        continue;
                    }
                    *requests_sent += 1;
                    *next_request_at = now + self.config.request_interval;
                    self.request_schedule.push_back((ip, tag, *next_request_at));
                    return Some(ip);
                }
            }
        }
        None
    }

    /// The next frame whose neighbour could not be resolved (dropped; the
    /// engine reads it to tell the connection that sent it).
    pub fn failed_frame(&self) -> Option<&[u8]> {
        self.pool.front(&self.failed)
    }
    /// Frees the frame `failed_frame` returned.
    pub fn pop_failed_frame(&mut self) {
        self.pool.pop_front(&mut self.failed);
    }

    /// The next frame released by a resolution, complete with its destination MAC.
    pub fn ready_frame(&self) -> Option<&[u8]> {
        self.pool.front(&self.ready)
    }
    /// Drops the frame `ready_frame` returned (after it was sent).
    pub fn pop_ready_frame(&mut self) {
        self.pool.pop_front(&mut self.ready);
    }
    /// Whether `ip` is being resolved (frames for it may be held).
    pub fn is_resolving(&self, ip: Ipv4Addr) -> bool {
        self.entries.get(&ip).is_some_and(|e| matches!(e.state, State::Incomplete { .. }))
    }
    pub fn has_output(&self) -> bool {
        !self.ready.is_empty() || !self.replies.is_empty() || !self.due_requests.is_empty()
    }

    /// When a request falls due (the engine then calls `poll_message`).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.request_schedule.front().map(|&(_, _, at)| at)
    }

    fn start_resolution(&mut self, now: Instant, ip: Ipv4Addr, stats: &mut Stats) {
        let tag = self.insert(ip, State::Incomplete { requests_sent: 0, next_request_at: now, pending: PacketList::default() }, stats);
        self.unresolved_order.push_back((ip, tag));
        if self.unresolved_order.len() > 2 * self.config.max_entries + 16 {
            let entries = &self.entries;
            self.unresolved_order.retain(|(ip, tag)| entries.get(ip).is_some_and(|e| e.tag == *tag));
        }
        // Due now: in front of everything scheduled later.
        self.request_schedule.push_front((ip, tag, now));
    }

    /// Records `ip` at `mac`; frames waiting for it become ready.
    fn learn(&mut self, now: Instant, ip: Ipv4Addr, mac: EthernetAddress, stats: &mut Stats) {
        let resolved = State::Resolved { mac, expires_at: now + self.config.entry_ttl, refresh_requested_at: None };
        let Some(entry) = self.entries.get_mut(&ip) else {
            self.insert(ip, resolved, stats);
            return;
        };
        let previous = core::mem::replace(&mut entry.state, resolved);
        if let State::Incomplete { mut pending, .. } = previous {
            self.pending_total -= pending.len();
            self.release(&mut pending, mac);
        }
    }

    /// Stamps the destination MAC on every frame of `pending` and moves them to `ready`.
    fn release(&mut self, pending: &mut PacketList, mac: EthernetAddress) {
        self.pool.for_each_mut(pending, &mut |frame| {
            if let Some(dst) = frame.get_mut(..6) {
                dst.copy_from_slice(&mac.0);
            }
        });
        let mut ready = self.ready;
        self.pool.append(&mut ready, pending);
        self.ready = ready;
    }

    /// Inserts a new entry, evicting the oldest if full; returns its tag.
    fn insert(&mut self, ip: Ipv4Addr, state: State, stats: &mut Stats) -> u64 {
        if self.entries.len() >= self.config.max_entries.max(1) && !self.entries.contains_key(&ip) {
            self.evict_oldest(stats);
        }
        let tag = self.next_tag;
        self.next_tag += 1;
        if let Some(old) = self.entries.insert(ip, Entry { state, tag }) {
            self.drop_pending(old, stats);
        }
        self.insertion_order.push_back((ip, tag));
        if self.insertion_order.len() > 2 * self.config.max_entries + 16 {
            let entries = &self.entries;
            self.insertion_order.retain(|(ip, tag)| entries.get(ip).is_some_and(|e| e.tag == *tag));
        }
        tag
    }

    /// Evicts the oldest unresolved (incomplete or failed) entry, else the oldest entry.
    fn evict_oldest(&mut self, stats: &mut Stats) {
        while let Some((ip, tag)) = self.unresolved_order.pop_front() {
            let unresolved = self
                .entries
                .get(&ip)
                .is_some_and(|e| e.tag == tag && !matches!(e.state, State::Resolved { .. }));
            if unresolved {
                self.evict(ip, stats);
                return;
            }
        }
        while let Some((ip, tag)) = self.insertion_order.pop_front() {
            if self.entries.get(&ip).is_some_and(|e| e.tag == tag) {
                self.evict(ip, stats);
                return;
            }
        }
    }

    fn evict(&mut self, ip: Ipv4Addr, stats: &mut Stats) {
        if let Some(old) = self.entries.remove(&ip) {
            stats.arp_evicted += 1;
            self.drop_pending(old, stats);
        }
    }

    fn drop_pending(&mut self, entry: Entry, stats: &mut Stats) {
        if let State::Incomplete { mut pending, .. } = entry.state {
            let dropped = self.pool.clear(&mut pending);
            self.pending_total -= dropped;
            stats.arp_pending_dropped += dropped as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const PEER_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);

    fn config() -> ArpConfig {
        ArpConfig {
            entry_ttl: Duration::from_secs(60),
            request_interval: Duration::from_secs(1),
            max_requests: 3,
            max_entries: 4,
            pending_per_neighbor: 2,
            pending_total: 3,
        }
    }

    fn reply_from(ip: Ipv4Addr, mac: EthernetAddress) -> ArpInput {
        ArpInput { operation: ArpOperation::Reply, sender_mac: mac, sender_ip: ip, target_ip: US }
    }

    fn frame(tag: u8) -> Vec<u8> {
        let mut f = vec![0u8; 20];
        f[19] = tag;
        f
    }

    #[test]
    fn miss_requests_then_reply_releases_held_frames_with_mac() {
        let mut stats = Stats::default();
        let mut arp = ArpCache::new(config(), 64);
        let t0 = Instant::from_secs(1);
        assert_eq!(arp.lookup(t0, PEER, &mut stats), None);
        for tag in 1..=2 {
            let f = frame(tag);
            assert!(arp.hold(PEER, f.len(), &mut |b| b.copy_from_slice(&f)));
        }
        assert!(!arp.hold(PEER, 20, &mut |_| {}), "per-neighbour limit");
        assert_eq!(arp.poll_message(t0, &mut stats), Some(ArpMessage::Request { target: PEER }));
        assert_eq!(arp.poll_message(t0, &mut stats), None, "rate limited");
        assert_eq!(arp.poll_timeout(), Some(t0 + Duration::from_secs(1)));

        assert!(arp.on_arp(t0, US, &reply_from(PEER, PEER_MAC), &mut stats));
        assert_eq!(arp.lookup(t0, PEER, &mut stats), Some(PEER_MAC));
        for tag in 1..=2 {
            let f = arp.ready_frame().expect("released frame");
            assert_eq!(&f[..6], &PEER_MAC.0);
            assert_eq!(f[19], tag);
            arp.pop_ready_frame();
        }
        assert!(arp.ready_frame().is_none());
        assert_eq!(arp.poll_message(t0 + Duration::from_secs(5), &mut stats), None, "no more requests once resolved");
    }

    #[test]
    fn unanswered_requests_give_up_and_drop_held_frames() {
        let mut stats = Stats::default();
        let mut arp = ArpCache::new(config(), 64);
        let mut now = Instant::from_secs(1);
        assert_eq!(arp.lookup(now, PEER, &mut stats), None);
        assert!(arp.hold(PEER, 20, &mut |_| {}));
        let mut requests = 0;
        for _ in 0..10 {
            while let Some(m) = arp.poll_message(now, &mut stats) {
                assert_eq!(m, ArpMessage::Request { target: PEER });
                requests += 1;
            }
            now += Duration::from_secs(1);
        }
        assert_eq!(requests, 3);
        assert_eq!(stats.arp_pending_dropped, 1);
        assert_eq!(stats.arp_failed, 1);
        assert!(arp.failed_frame().is_some(), "the held frame is handed back for error reporting");
        arp.pop_failed_frame();
        assert!(arp.failed_frame().is_none());
        assert!(arp.pool.free_slots() == 3, "pool slots returned");
    }

    #[test]
    fn due_requests_are_reported_as_output_after_handle_timeout() {
        let mut stats = Stats::default();
        let mut arp = ArpCache::new(config(), 64);
        let now = Instant::from_secs(1);
        assert_eq!(arp.lookup(now, PEER, &mut stats), None);
        assert_eq!(arp.poll_message(now, &mut stats), Some(ArpMessage::Request { target: PEER }));
        assert!(!arp.has_output());
        let retry = arp.poll_timeout().expect("a retry is scheduled");
        arp.handle_timeout(retry, &mut stats);
        assert!(arp.has_output(), "the due retry is output a caller must poll for");
        assert!(arp.poll_timeout().is_none_or(|next| next > retry), "the deadline moved on");
        assert_eq!(arp.poll_message(retry, &mut stats), Some(ArpMessage::Request { target: PEER }));
        assert!(!arp.has_output());
    }

    #[test]
    fn merge_rule_learns_only_when_targeted_and_answers_requests() {
        let mut stats = Stats::default();
        let mut arp = ArpCache::new(config(), 64);
        let now = Instant::from_secs(1);
        let other = ArpInput {
            operation: ArpOperation::Request,
            sender_mac: PEER_MAC,
            sender_ip: PEER,
            target_ip: Ipv4Addr::new(10, 0, 0, 9),
        };
        assert!(!arp.on_arp(now, US, &other, &mut stats));
        assert!(arp.is_empty(), "not addressed to us: not learned");
        let to_us = ArpInput { target_ip: US, ..other };
        assert!(arp.on_arp(now, US, &to_us, &mut stats));
        assert_eq!(arp.lookup(now, PEER, &mut stats), Some(PEER_MAC));
        assert_eq!(arp.poll_message(now, &mut stats), Some(ArpMessage::Reply { to_mac: PEER_MAC, to_ip: PEER }));
        // Now known, a packet to someone else updates the entry (merge).
        let new_mac = EthernetAddress([2, 0, 0, 0, 0, 3]);
        assert!(!arp.on_arp(now, US, &ArpInput { sender_mac: new_mac, ..other }, &mut stats));
        assert_eq!(arp.lookup(now, PEER, &mut stats), Some(new_mac));
    }

    #[test]
    fn stale_entry_is_used_while_refreshed_then_dropped() {
        let mut stats = Stats::default();
        let mut arp = ArpCache::new(config(), 64);
        let t0 = Instant::from_secs(1);
        arp.on_arp(t0, US, &reply_from(PEER, PEER_MAC), &mut stats);
        let stale = t0 + Duration::from_secs(61);
        assert_eq!(arp.lookup(stale, PEER, &mut stats), Some(PEER_MAC));
        assert_eq!(arp.poll_message(stale, &mut stats), Some(ArpMessage::Request { target: PEER }));
        assert_eq!(arp.lookup(stale, PEER, &mut stats), Some(PEER_MAC));
        assert_eq!(arp.poll_message(stale, &mut stats), None, "one refresh per interval");
        let gone = t0 + Duration::from_secs(70);
        assert_eq!(arp.lookup(gone, PEER, &mut stats), None, "past the grace period: resolve again");
        assert_eq!(arp.poll_message(gone, &mut stats), Some(ArpMessage::Request { target: PEER }));
    }

    #[test]
    fn traffic_from_the_known_mac_keeps_an_entry_fresh() {
        let mut stats = Stats::default();
        let mut arp = ArpCache::new(config(), 64);
        let t0 = Instant::from_secs(1);
        arp.on_arp(t0, US, &reply_from(PEER, PEER_MAC), &mut stats);
        arp.confirm(t0 + Duration::from_secs(50), PEER, EthernetAddress([2, 0, 0, 0, 0, 66]));
        arp.confirm(t0 + Duration::from_secs(55), PEER, PEER_MAC);
        let later = t0 + Duration::from_secs(100);
        assert_eq!(arp.lookup(later, PEER, &mut stats), Some(PEER_MAC));
        assert_eq!(arp.poll_message(later, &mut stats), None, "fresh: no refresh request");
        let stale = t0 + Duration::from_secs(116);
        assert_eq!(arp.lookup(stale, PEER, &mut stats), Some(PEER_MAC));
        assert_eq!(arp.poll_message(stale, &mut stats), Some(ArpMessage::Request { target: PEER }));
    }

    #[test]
    fn remembered_neighbour_follows_mac_changes_and_eviction() {
        let mut stats = Stats::default();
        let mut arp = ArpCache::new(config(), 64);
        let t0 = Instant::from_secs(1);
        arp.on_arp(t0, US, &reply_from(PEER, PEER_MAC), &mut stats);
        // Confirmed and looked up twice at one instant: the second of each is
        // answered from the remembered entry.
        arp.confirm(t0, PEER, PEER_MAC);
        arp.confirm(t0, PEER, PEER_MAC);
        assert_eq!(arp.lookup(t0, PEER, &mut stats), Some(PEER_MAC));
        assert_eq!(arp.lookup(t0, PEER, &mut stats), Some(PEER_MAC));
        // The neighbour moves: the old MAC neither resolves nor confirms.
        let new_mac = EthernetAddress([2, 0, 0, 0, 0, 3]);
        arp.on_arp(t0, US, &reply_from(PEER, new_mac), &mut stats);
        arp.confirm(t0 + Duration::from_secs(50), PEER, PEER_MAC);
        assert_eq!(arp.lookup(t0, PEER, &mut stats), Some(new_mac));
        let stale = t0 + Duration::from_secs(61);
        assert_eq!(arp.lookup(stale, PEER, &mut stats), Some(new_mac));
        assert_eq!(
            arp.poll_message(stale, &mut stats),
            Some(ArpMessage::Request { target: PEER }),
            "old MAC did not refresh it"
        );
        // Evicted by a flood of other neighbours: resolved from scratch.
        for i in 0..8u8 {
            arp.on_arp(
                stale,
                US,
                &reply_from(Ipv4Addr::new(10, 0, 1, i), PEER_MAC),
                &mut stats,
            );
        }
        assert_eq!(arp.lookup(stale, PEER, &mut stats), None);
    }

    #[test]
    fn entries_and_pending_frames_are_bounded() {
        let mut stats = Stats::default();
        let mut arp = ArpCache::new(config(), 64);
        let now = Instant::from_secs(1);
        for i in 0..10u8 {
            let ip = Ipv4Addr::new(10, 0, 1, i);
            assert_eq!(arp.lookup(now, ip, &mut stats), None);
            arp.hold(ip, 20, &mut |_| {});
            assert!(arp.len() <= 4);
            assert!(arp.pending_total <= 3);
        }
        assert_eq!(stats.arp_evicted, 6);
        assert_eq!(arp.pending_total + arp.pool.free_slots(), 3);
        assert!(stats.arp_pending_dropped > 0);
    }

    #[test]
    fn unresolved_entries_are_evicted_before_resolved_ones() {
        let mut stats = Stats::default();
        let mut arp = ArpCache::new(config(), 64);
        let now = Instant::from_secs(1);
        // Two neighbours we talk to, learned first (the oldest entries).
        arp.on_arp(now, US, &reply_from(PEER, PEER_MAC), &mut stats);
        let other = Ipv4Addr::new(10, 0, 0, 3);
        let other_mac = EthernetAddress([2, 0, 0, 0, 0, 3]);
        arp.on_arp(now, US, &reply_from(other, other_mac), &mut stats);
        // Then a stream of addresses that never answer.
        for i in 0..100u8 {
            assert_eq!(arp.lookup(now, Ipv4Addr::new(10, 0, 2, i), &mut stats), None);
            assert!(arp.len() <= 4);
        }
        assert_eq!(arp.lookup(now, PEER, &mut stats), Some(PEER_MAC));
        assert_eq!(arp.lookup(now, other, &mut stats), Some(other_mac));
        assert_eq!(stats.arp_evicted, 98);
    }

    #[test]
    fn oversized_frame_is_not_held() {
        let mut stats = Stats::default();
        let mut arp = ArpCache::new(config(), 32);
        arp.lookup(Instant::ZERO, PEER, &mut stats);
        assert!(!arp.hold(PEER, 33, &mut |_| {}));
    }
}
