//! Two connections wired back to back through a simulated link with virtual
//! time, and tests of the state machine built on it.

mod buffers;
mod close;
mod cork;
mod handshake;
mod long_lived;
mod loss;
mod robustness;
mod sack_reporting;
mod timers;
mod transfer;

use core::net::{Ipv4Addr, SocketAddrV4};

use super::{ConnParams, SegmentOutcome, TcpConn, TcpState, TxBudget, TxReport};
use crate::config::TcpConfig;
use crate::session::event::EventSet;
use crate::tcp::seq::SeqNum;
use crate::time::{Duration, Instant};
use crate::wire::{TcpFlags, TcpRepr};

/// A segment on the simulated link.
#[derive(Clone, Debug)]
pub(super) struct Packet {
    /// Index of the sending connection (0 = A, 1 = B).
    pub from: usize,
    pub repr: TcpRepr,
    pub payload: Vec<u8>,
}

impl Packet {
    /// Carries payload (read from the header: the log may drop payloads).
    pub fn is_data(&self) -> bool {
        self.repr.payload_len > 0
    }
    pub fn has(&self, flag: u8) -> bool {
        self.repr.flags.0 & flag != 0
    }
}

/// What the link does with a segment.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Verdict {
    Deliver,
    Drop,
    /// Deliver after this much extra delay (reordering).
    Delay(Duration),
    Duplicate,
}

pub(super) type Filter = Box<dyn FnMut(Instant, &Packet) -> Verdict>;

/// Everything that was put on the wire, with when.
#[derive(Clone, Debug)]
pub(super) struct Sent {
    pub at: Instant,
    pub packet: Packet,
    pub verdict: Verdict,
}

pub(super) struct Sim {
    pub now: Instant,
    pub conns: [Option<TcpConn>; 2],
    pub params: [ConnParams; 2],
    pub latency: Duration,
    /// (arrival time, tie-breaker, destination, packet)
    queue: Vec<(Instant, u64, usize, Packet)>,
    next_id: u64,
    pub filter: Filter,
    pub log: Vec<Sent>,
    /// Keep payloads in the log (off for bulk transfers).
    pub log_payloads: bool,
    pub budget: usize,
    /// When set, the budget is refilled to this before every poll (an engine's per-dispatch cap).
    pub budget_per_poll: Option<usize>,
    /// Polls that ended with fast retransmits postponed, per side.
    pub postponed_polls: [usize; 2],
    pub reports: [TxReport; 2],
    pub events: [EventSet; 2],
    pub outcomes: Vec<(usize, SegmentOutcome)>,
}

pub(super) const A: usize = 0;
pub(super) const B: usize = 1;

pub(super) fn addr(host: u8, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, host), port)
}

pub(super) fn params(side: usize, iss: u32, config: TcpConfig) -> ConnParams {
    let (local, remote) = if side == A { (addr(1, 40000), addr(2, 80)) } else { (addr(2, 80), addr(1, 40000)) };
    ConnParams { local, remote, iss: SeqNum(iss), local_mss: 1460, ts_offset: 7_000 + side as u32 * 1_000_000, config }
}

impl Sim {
    /// A connects to B (B is created from A's SYN when it arrives).
    pub fn new(config_a: TcpConfig, config_b: TcpConfig) -> Sim {
        Sim::with_iss(config_a, config_b, 1_000, 5_000_000)
    }

    pub fn with_iss(config_a: TcpConfig, config_b: TcpConfig, iss_a: u32, iss_b: u32) -> Sim {
        let pa = params(A, iss_a, config_a);
        let pb = params(B, iss_b, config_b);
        let now = Instant::from_secs(1_000);
        let a = TcpConn::connect(now, pa);
        Sim {
            now,
            conns: [Some(a), None],
            params: [pa, pb],
            latency: Duration::from_millis(10),
            queue: Vec::new(),
            next_id: 0,
            filter: Box::new(|_, _| Verdict::Deliver),
            log: Vec::new(),
            log_payloads: true,
            budget: usize::MAX,
            budget_per_poll: None,
            postponed_polls: [0; 2],
            reports: [TxReport::default(); 2],
            events: [EventSet::EMPTY; 2],
            outcomes: Vec::new(),
        }
    }

    /// A and B connected and established with default settings.
    pub fn established(config_a: TcpConfig, config_b: TcpConfig) -> Sim {
        let mut sim = Sim::new(config_a, config_b);
        assert!(sim.run_until(Duration::from_secs(5), |s| s.both_in(TcpState::Established)));
        sim
    }

    pub fn conn(&mut self, i: usize) -> &mut TcpConn {
        self.conns[i].as_mut().expect("connection exists")
    }
    pub fn a(&mut self) -> &mut TcpConn {
        self.conn(A)
    }
    pub fn b(&mut self) -> &mut TcpConn {
        self.conn(B)
    }
    pub fn state(&self, i: usize) -> Option<TcpState> {
        self.conns[i].as_ref().map(|c| c.state())
    }
    pub fn both_in(&self, state: TcpState) -> bool {
        self.state(A) == Some(state) && self.state(B) == Some(state)
    }

    /// Poll both connections once and put what they emit on the link.
    pub fn transmit(&mut self) {
        for i in 0..2 {
            let Some(conn) = self.conns[i].as_mut() else { continue };
            if let Some(per_poll) = self.budget_per_poll {
                self.budget = per_poll;
            }
            let mut out = Vec::new();
            let mut budget = TxBudget { fast_retransmits: self.budget };
            let report = conn.poll_transmit(self.now, &mut budget, &mut |repr, first, second| {
                let mut payload = first.to_vec();
                payload.extend_from_slice(second);
                assert_eq!(payload.len(), repr.payload_len);
                out.push(Packet { from: i, repr: *repr, payload });
                true
            });
            if self.budget != usize::MAX {
                self.budget = budget.fast_retransmits;
            }
            let ev = conn.take_events();
            self.events[i] |= ev;
            self.reports[i] = report;
            self.postponed_polls[i] += report.fast_retransmit_postponed as usize;
            for packet in out {
                self.route(packet);
            }
        }
    }

    fn route(&mut self, packet: Packet) {
        let verdict = (self.filter)(self.now, &packet);
        let mut logged = packet.clone();
        if !self.log_payloads {
            logged.payload = Vec::new();
        }
        self.log.push(Sent { at: self.now, packet: logged, verdict });
        let to = 1 - packet.from;
        let at = self.now + self.latency;
        match verdict {
            Verdict::Drop => {}
            Verdict::Deliver => self.enqueue(at, to, packet),
            Verdict::Delay(extra) => self.enqueue(at + extra, to, packet),
            Verdict::Duplicate => {
                self.enqueue(at, to, packet.clone());
                self.enqueue(at, to, packet);
            }
        }
    }

    fn enqueue(&mut self, at: Instant, to: usize, packet: Packet) {
        self.queue.push((at, self.next_id, to, packet));
        self.next_id += 1;
    }

    /// Hand a segment straight to connection `to` (bypassing the link).
    pub fn inject(&mut self, to: usize, repr: TcpRepr, payload: &[u8]) -> SegmentOutcome {
        let now = self.now;
        let outcome = self.conn(to).on_segment(now, &repr, payload);
        let ev = self.conn(to).take_events();
        self.events[to] |= ev;
        outcome
    }

    fn deliver(&mut self, to: usize, packet: Packet) {
        let now = self.now;
        match self.conns[to].as_mut() {
            Some(conn) => {
                let outcome = conn.on_segment(now, &packet.repr, &packet.payload);
                self.outcomes.push((to, outcome));
            }
            None if packet.repr.flags.syn() && !packet.repr.flags.ack() => {
                self.conns[to] = Some(TcpConn::accept_syn(now, self.params[to], &packet.repr));
            }
            None => {}
        }
        if let Some(conn) = self.conns[to].as_mut() {
            let ev = conn.take_events();
            self.events[to] |= ev;
        }
    }

    /// The next moment something happens, if anything ever does.
    pub fn next_event(&self) -> Option<Instant> {
        let arrivals = self.queue.iter().map(|q| q.0);
        let timers = self.conns.iter().flatten().filter_map(|c| c.poll_timeout());
        arrivals.chain(timers).min()
    }

    /// Transmit, then advance to the next event and process it. False when idle.
    pub fn step(&mut self) -> bool {
        self.transmit();
        let Some(next) = self.next_event() else { return false };
        if next > self.now {
            self.now = next;
        }
        self.queue.sort_by_key(|q| (q.0, q.1));
        while self.queue.first().is_some_and(|q| q.0 <= self.now) {
            let (_, _, to, packet) = self.queue.remove(0);
            self.deliver(to, packet);
        }
        for i in 0..2 {
            let now = self.now;
            if let Some(conn) = self.conns[i].as_mut() {
                if conn.poll_timeout().is_some_and(|t| t <= now) {
                    conn.on_timeout(now);
                    let ev = conn.take_events();
                    self.events[i] |= ev;
                }
            }
        }
        true
    }

    /// Step until `done` holds or `limit` of virtual time passes.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Sim) -> bool) -> bool {
        let deadline = self.now + limit;
        loop {
            if done(self) {
                return true;
            }
            if self.now > deadline || !self.step() {
                self.transmit();
                return done(self);
            }
        }
    }

    /// Step until nothing is left to do or `limit` passes.
    pub fn run_idle(&mut self, limit: Duration) {
        let deadline = self.now + limit;
        while self.now <= deadline && self.step() {}
    }

    /// Segments sent by `from` matching `pred`.
    pub fn sent_by(&self, from: usize, pred: impl Fn(&Sent) -> bool) -> Vec<Sent> {
        self.log.iter().filter(|s| s.packet.from == from && pred(s)).cloned().collect()
    }
}

/// A deterministic byte pattern for transfer checks.
pub(super) fn pattern(offset: usize, len: usize, salt: u8) -> Vec<u8> {
    (offset..offset + len).map(|i| (i % 251) as u8 ^ salt).collect()
}

/// Stream `total` bytes from `from` to `to` (and optionally back), checking
/// every byte. Returns false if it did not finish within `limit`.
pub(super) fn transfer(sim: &mut Sim, from: usize, total: usize, limit: Duration) -> bool {
    transfer_both(sim, &[(from, total)], limit)
}

pub(super) fn transfer_both(sim: &mut Sim, flows: &[(usize, usize)], limit: Duration) -> bool {
    let mut written = [0usize; 2];
    let mut read = [0usize; 2];
    let mut buf = vec![0u8; 64 * 1024];
    let totals = {
        let mut t = [0usize; 2];
        for &(from, total) in flows {
            t[from] = total;
        }
        t
    };
    sim.run_until(limit, |s| {
        for from in 0..2 {
            let to = 1 - from;
            if written[from] < totals[from] {
                let chunk = pattern(written[from], (totals[from] - written[from]).min(32 * 1024), from as u8);
                if let Ok(n) = s.conn(from).send(&chunk) {
                    written[from] += n;
                }
            }
            while read[to] < totals[from] {
                match s.conn(to).recv(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        assert_eq!(&buf[..n], &pattern(read[to], n, from as u8)[..], "corrupt stream at {}", read[to]);
                        read[to] += n;
                    }
                }
            }
        }
        (0..2).all(|from| read[1 - from] == totals[from])
    })
}

/// A segment from B to A at B's current position (for injection tests).
pub(super) fn segment_from(conn: &TcpConn, flags: u8) -> TcpRepr {
    TcpRepr {
        src_port: conn.remote().port(),
        dst_port: conn.local().port(),
        seq: conn.rcv.nxt,
        ack: conn.snd.max,
        flags: TcpFlags(flags),
        window: 1000,
        ..TcpRepr::default()
    }
}
