//! A SYN flooder standing in for a router: it answers ARP for its own
//! (gateway) address, so the victim routes replies to the spoofed,
//! off-link sources through it, and it swallows those replies (counting them).
//! SYNs go out at a fixed rate from random spoofed addresses and ports.

use core::net::Ipv4Addr;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sluice_stack::time::Instant;

use crate::sim::frame::{
    build_arp_reply, build_tcp_frame, parse_arp, parse_tcp, Mac, TcpSegmentSpec, TCP_ACK, TCP_RST,
    TCP_SYN,
};
use crate::sim::world::RawHost;

#[derive(Clone, Copy, Debug)]
pub struct SynFloodConfig {
    /// The flooder's own (gateway) addresses.
    pub mac: Mac,
    pub ip: Ipv4Addr,
    pub victim_mac: Mac,
    pub victim_ip: Ipv4Addr,
    pub victim_port: u16,
    /// Spoofed sources are drawn from `spoof_base` + 0..65536 (keep it off the victim's subnet).
    pub spoof_base: Ipv4Addr,
    /// SYNs per second of virtual time.
    pub rate: u64,
    pub start: Instant,
    pub stop: Instant,
    pub seed: u64,
}

/// What the flooder saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FloodTally {
    pub syns_sent: u64,
    pub syn_acks_seen: u64,
    pub rsts_seen: u64,
    pub arp_replies_sent: u64,
}

pub struct SynFlood {
    config: SynFloodConfig,
    rng: ChaCha8Rng,
    /// Next SYN is due at this many nanoseconds of virtual time.
    next_ns: u64,
    tally: FloodTally,
    arp_replies: Vec<Vec<u8>>,
}

impl SynFlood {
    pub fn new(config: SynFloodConfig) -> SynFlood {
        let next_ns = config.start.total_micros() * 1000;
        SynFlood {
            config,
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            next_ns,
            tally: FloodTally::default(),
            arp_replies: Vec::new(),
        }
    }
    pub fn tally(&self) -> FloodTally {
        self.tally
    }
    fn interval_ns(&self) -> u64 {
        (1_000_000_000 / self.config.rate.max(1)).max(1)
    }
    fn next_due(&self) -> Instant {
        Instant::from_micros(self.next_ns.div_ceil(1000))
    }
}

impl RawHost for SynFlood {
    fn on_frame(&mut self, _now: Instant, frame: &[u8]) {
        if let Some(arp) = parse_arp(frame) {
            if arp.operation == 1 && arp.target_ip == self.config.ip {
                self.arp_replies.push(build_arp_reply(
                    self.config.mac,
                    self.config.ip,
                    arp.sender_mac,
                    arp.sender_ip,
                ));
            }
        } else if let Some(tcp) = parse_tcp(frame) {
            if tcp.has(TCP_SYN | TCP_ACK) {
                self.tally.syn_acks_seen += 1;
            } else if tcp.has(TCP_RST) {
                self.tally.rsts_seen += 1;
            }
        }
    }

    fn poll(&mut self, now: Instant, send: &mut dyn FnMut(Vec<u8>)) {
        for reply in self.arp_replies.drain(..) {
            self.tally.arp_replies_sent += 1;
            send(reply);
        }
        let stop_ns = self.config.stop.total_micros() * 1000;
        let now_ns = now.total_micros() * 1000;
        while self.next_ns <= now_ns && self.next_ns < stop_ns {
            let host: u16 = self.rng.gen();
            let base = u32::from(self.config.spoof_base);
            let spec = TcpSegmentSpec {
                src_mac: self.config.mac,
                dst_mac: self.config.victim_mac,
                src_ip: Ipv4Addr::from(base.wrapping_add(u32::from(host))),
                dst_ip: self.config.victim_ip,
                src_port: self.rng.gen_range(1024..=65535),
                dst_port: self.config.victim_port,
                seq: self.rng.gen(),
                ack: 0,
                flags: TCP_SYN,
                window: 65_535,
                mss: Some(1460),
            };
            send(build_tcp_frame(&spec));
            self.tally.syns_sent += 1;
            self.next_ns += self.interval_ns();
        }
    }

    fn next_wakeup(&self) -> Option<Instant> {
        let pending_arp = !self.arp_replies.is_empty();
        let flooding = self.next_ns < self.config.stop.total_micros() * 1000;
        match (pending_arp, flooding) {
            (true, _) => Some(Instant::ZERO),
            (false, true) => Some(self.next_due()),
            (false, false) => None,
        }
    }
}
