//! A virtual Ethernet segment: a learning switch with N ports, each port a
//! full-duplex cable whose two directions ([`Pipe`]s) have their own seeded
//! faults. A frame crosses the sender's uplink, is switched (source address
//! learned, destination looked up, unknown or broadcast destinations flooded),
//! then crosses the receiver's downlink. A server port's downlink is therefore
//! the shared bottleneck of all its clients, as on a real switch.
//!
//! Frames in flight sit in one priority queue keyed by (time, sequence
//! number): ties are broken by the order frames were queued, so a run is a
//! pure function of its seed and inputs.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use sluice_stack::time::Instant;

use super::fault::{Faults, Pipe, PipeCounters, Verdict};
use super::frame::{dst_mac, src_mac, Mac};
use super::trace::{Direction, PortId, Tap, WireEvent, WireEventKind};

/// The faults of one port's cable.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PortFaults {
    /// Host to switch.
    pub uplink: Faults,
    /// Switch to host.
    pub downlink: Faults,
}

impl PortFaults {
    /// The same faults both ways.
    pub fn symmetric(faults: Faults) -> PortFaults {
        PortFaults {
            uplink: faults,
            downlink: faults,
        }
    }
}

struct Port {
    uplink: Pipe,
    downlink: Pipe,
}

/// Where a frame in flight is going next.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Hop {
    /// Crossing `from`'s uplink towards the switch.
    ToSwitch { from: PortId, corrupted: bool },
    /// Crossing `to`'s downlink towards its host; `corrupted` on either hop.
    ToHost { to: PortId, corrupted: bool },
}

/// A frame on the wire, parked until it arrives.
struct InFlight {
    hop: Hop,
    frame: Vec<u8>,
}

/// Arrival order: the queue holds only these small keys (time, then the
/// order frames were queued) so that heap operations move 16 bytes, not
/// frames; the frames wait in a slab.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Arrival {
    at: Instant,
    seq: u64,
    slot: u32,
}

/// Learned addresses at most; beyond that unknown sources are not learned
/// (their frames are still forwarded, replies to them flooded).
const MAC_TABLE_LIMIT: usize = 4096;

/// Handle of a tap attached to a switch.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TapId(usize);

pub struct Switch {
    seed: u64,
    ports: Vec<Port>,
    mac_table: Vec<(Mac, PortId)>,
    arrivals: BinaryHeap<Reverse<Arrival>>,
    /// Frames in flight, indexed by `Arrival::slot`; freed slots are reused.
    parked: Vec<Option<InFlight>>,
    free_slots: Vec<u32>,
    next_seq: u64,
    /// Frame buffers handed back by receivers, reused for new frames.
    spare: Vec<Vec<u8>>,
    taps: Vec<Box<dyn Tap>>,
}

impl Switch {
    /// A switch whose pipes draw from ChaCha8 streams of `seed`.
    pub fn new(seed: u64) -> Switch {
        Switch {
            seed,
            ports: Vec::new(),
            mac_table: Vec::new(),
            arrivals: BinaryHeap::new(),
            parked: Vec::new(),
            free_slots: Vec::new(),
            next_seq: 0,
            spare: Vec::new(),
            taps: Vec::new(),
        }
    }

    /// Adds a port; its pipes use streams `2 * port` and `2 * port + 1`.
    pub fn add_port(&mut self, faults: PortFaults) -> PortId {
        let id = self.ports.len();
        let stream = 2 * id as u64;
        self.ports.push(Port {
            uplink: Pipe::new(faults.uplink, self.seed, stream),
            downlink: Pipe::new(faults.downlink, self.seed, stream + 1),
        });
        id
    }

    pub fn port_count(&self) -> usize {
        self.ports.len()
    }

    /// Replaces a port's faults from now on (frames in flight keep their fate).
    pub fn set_faults(&mut self, port: PortId, faults: PortFaults) {
        if let Some(p) = self.ports.get_mut(port) {
            p.uplink.set_faults(faults.uplink);
            p.downlink.set_faults(faults.downlink);
        }
    }

    fn pipe_mut(&mut self, port: PortId, direction: Direction) -> &mut Pipe {
        let p = &mut self.ports[port];
        match direction {
            Direction::Uplink => &mut p.uplink,
            Direction::Downlink => &mut p.downlink,
        }
    }

    /// Counters of one direction of a port's cable.
    pub fn counters(&self, port: PortId, direction: Direction) -> PipeCounters {
        self.ports
            .get(port)
            .map(|p| match direction {
                Direction::Uplink => *p.uplink.counters(),
                Direction::Downlink => *p.downlink.counters(),
            })
            .unwrap_or_default()
    }

    pub fn add_tap(&mut self, tap: impl Tap) -> TapId {
        self.taps.push(Box::new(tap));
        TapId(self.taps.len() - 1)
    }

    /// The tap `id` as its concrete type.
    pub fn tap<T: Tap>(&self, id: TapId) -> Option<&T> {
        (**self.taps.get(id.0)?).as_any().downcast_ref()
    }

    pub fn tap_mut<T: Tap>(&mut self, id: TapId) -> Option<&mut T> {
        (**self.taps.get_mut(id.0)?).as_any_mut().downcast_mut()
    }

    fn report(&mut self, at: Instant, kind: WireEventKind, frame: &[u8]) {
        let event = WireEvent { at, kind, frame };
        for tap in &mut self.taps {
            tap.record(&event);
        }
    }

    /// An empty buffer of `len` bytes (reused when possible).
    pub fn take_buffer(&mut self, len: usize) -> Vec<u8> {
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.resize(len, 0);
        buf
    }

    /// Gives a delivered frame's buffer back for reuse.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        // Bounded so a burst does not pin its peak memory forever.
        if self.spare.len() < 4096 {
            self.spare.push(buf);
        }
    }

    fn schedule(&mut self, at: Instant, hop: Hop, frame: Vec<u8>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let parked = Some(InFlight { hop, frame });
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.parked[slot as usize] = parked;
                slot
            }
            None => {
                self.parked.push(parked);
                (self.parked.len() - 1) as u32
            }
        };
        self.arrivals.push(Reverse(Arrival { at, seq, slot }));
    }

    /// The host at `port` sends `frame` at `now`.
    pub fn send(&mut self, now: Instant, port: PortId, mut frame: Vec<u8>) {
        assert!(port < self.ports.len(), "send on unknown port {port}");
        self.report(now, WireEventKind::Sent { port }, &frame);
        if self
            .enter_pipe(now, port, Direction::Uplink, &mut frame, |c| {
                Hop::ToSwitch {
                    from: port,
                    corrupted: c,
                }
            })
            .is_none()
        {
            self.recycle(frame);
        }
    }

    /// Puts `frame` into the pipe `(port, direction)`; schedules its arrival
    /// (and a duplicate's). Returns `None` and leaves `frame` to the caller if
    /// it was dropped; otherwise `frame` is moved into the queue and left empty.
    fn enter_pipe(
        &mut self,
        now: Instant,
        port: PortId,
        direction: Direction,
        frame: &mut Vec<u8>,
        hop: impl Fn(bool) -> Hop,
    ) -> Option<()> {
        match self.pipe_mut(port, direction).admit(now, frame) {
            Verdict::Dropped(reason) => {
                self.report(
                    now,
                    WireEventKind::Dropped {
                        port,
                        direction,
                        reason,
                    },
                    frame,
                );
                None
            }
            Verdict::Deliver {
                at,
                duplicate_at,
                corrupted_bit,
            } => {
                let corrupted = corrupted_bit.is_some();
                if let Some(dup_at) = duplicate_at {
                    let mut copy = self.take_buffer(0);
                    copy.extend_from_slice(frame);
                    self.schedule(dup_at, hop(corrupted), copy);
                }
                self.schedule(at, hop(corrupted), core::mem::take(frame));
                Some(())
            }
        }
    }

    /// When the next frame arrives somewhere (switch or host).
    pub fn next_arrival(&self) -> Option<Instant> {
        self.arrivals.peek().map(|a| a.0.at)
    }

    /// Frames (and duplicates) still on the wire.
    pub fn frames_in_flight(&self) -> usize {
        self.arrivals.len()
    }

    /// The next frame due at a host by `now`: `(port, frame)`. Frames reaching
    /// the switch on the way are forwarded as they come due.
    pub fn pop_delivery(&mut self, now: Instant) -> Option<(PortId, Vec<u8>)> {
        while self.arrivals.peek().is_some_and(|a| a.0.at <= now) {
            let Reverse(Arrival { at, slot, .. }) = self.arrivals.pop()?;
            let InFlight { hop, frame } = self.parked[slot as usize]
                .take()
                .expect("a queued arrival has its frame parked");
            self.free_slots.push(slot);
            match hop {
                Hop::ToSwitch { from, corrupted } => {
                    self.pipe_mut(from, Direction::Uplink)
                        .delivered(frame.len());
                    self.forward(at, from, frame, corrupted);
                }
                Hop::ToHost { to, corrupted } => {
                    self.pipe_mut(to, Direction::Downlink)
                        .delivered(frame.len());
                    self.report(
                        at,
                        WireEventKind::Delivered {
                            port: to,
                            corrupted,
                        },
                        &frame,
                    );
                    return Some((to, frame));
                }
            }
        }
        None
    }

    /// Switches a frame that arrived from `from` at `at` (`was_corrupted` on the uplink).
    fn forward(&mut self, at: Instant, from: PortId, mut frame: Vec<u8>, was_corrupted: bool) {
        if let Some(src) = src_mac(&frame) {
            self.learn(src, from);
        }
        let known = dst_mac(&frame)
            .filter(|d| d[0] & 1 == 0)
            .and_then(|d| self.lookup(d));
        match known {
            Some(to) if to == from => {
                self.report(at, WireEventKind::Filtered { port: from }, &frame);
                self.recycle(frame);
            }
            Some(to) => {
                if self
                    .enter_pipe(at, to, Direction::Downlink, &mut frame, |c| Hop::ToHost {
                        to,
                        corrupted: c || was_corrupted,
                    })
                    .is_none()
                {
                    self.recycle(frame);
                }
            }
            None => {
                // Broadcast, multicast or not yet learned: flood to every other port.
                for to in (0..self.ports.len()).filter(|&p| p != from) {
                    let mut copy = self.take_buffer(0);
                    copy.extend_from_slice(&frame);
                    if self
                        .enter_pipe(at, to, Direction::Downlink, &mut copy, |c| Hop::ToHost {
                            to,
                            corrupted: c || was_corrupted,
                        })
                        .is_none()
                    {
                        self.recycle(copy);
                    }
                }
                self.recycle(frame);
            }
        }
    }

    fn learn(&mut self, mac: Mac, port: PortId) {
        if mac[0] & 1 != 0 {
            return; // a group address is never a source (IEEE 802.1D §7.8)
        }
        if let Some(entry) = self.mac_table.iter_mut().find(|(m, _)| *m == mac) {
            entry.1 = port;
        } else if self.mac_table.len() < MAC_TABLE_LIMIT {
            self.mac_table.push((mac, port));
        }
    }

    fn lookup(&self, mac: Mac) -> Option<PortId> {
        self.mac_table
            .iter()
            .find(|(m, _)| *m == mac)
            .map(|&(_, p)| p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::fault::DropReason;
    use sluice_stack::time::Duration;

    fn mac(n: u8) -> Mac {
        [2, 0, 0, 0, 0, n]
    }

    fn frame(dst: Mac, src: Mac, tag: u8) -> Vec<u8> {
        let mut f = vec![0u8; 64];
        f[0..6].copy_from_slice(&dst);
        f[6..12].copy_from_slice(&src);
        f[12] = 0x08;
        f[20] = tag;
        f
    }

    fn drain(sw: &mut Switch, now: Instant) -> Vec<(PortId, u8)> {
        let mut out = Vec::new();
        while let Some((port, f)) = sw.pop_delivery(now) {
            out.push((port, f[20]));
        }
        out
    }

    #[test]
    fn floods_unknown_then_forwards_learned_unicast() {
        let mut sw = Switch::new(1);
        for _ in 0..3 {
            sw.add_port(PortFaults::default());
        }
        let t = Instant::ZERO;
        sw.send(t, 0, frame(mac(2), mac(1), 1));
        assert_eq!(
            drain(&mut sw, t),
            vec![(1, 1), (2, 1)],
            "unknown destination floods"
        );
        sw.send(t, 1, frame(mac(1), mac(2), 2));
        assert_eq!(
            drain(&mut sw, t),
            vec![(0, 2)],
            "host 1 was learned on port 0"
        );
        sw.send(t, 0, frame(mac(2), mac(1), 3));
        assert_eq!(
            drain(&mut sw, t),
            vec![(1, 3)],
            "host 2 was learned on port 1"
        );
        sw.send(t, 2, frame(crate::sim::frame::BROADCAST_MAC, mac(3), 4));
        assert_eq!(
            drain(&mut sw, t),
            vec![(0, 4), (1, 4)],
            "broadcast goes everywhere else"
        );
    }

    #[test]
    fn delays_add_across_both_hops_and_ties_keep_send_order() {
        let mut sw = Switch::new(1);
        sw.add_port(PortFaults {
            uplink: Faults::delay(Duration::from_millis(1)),
            downlink: Faults::default(),
        });
        sw.add_port(PortFaults {
            uplink: Faults::default(),
            downlink: Faults::delay(Duration::from_millis(2)),
        });
        // Teach the switch where host 2 is.
        sw.send(Instant::ZERO, 1, frame(mac(1), mac(2), 0));
        assert_eq!(drain(&mut sw, Instant::ZERO), vec![(0, 0)]);
        for tag in 1..=5 {
            sw.send(Instant::ZERO, 0, frame(mac(2), mac(1), tag));
        }
        assert_eq!(sw.next_arrival(), Some(Instant::from_millis(1)));
        assert!(drain(&mut sw, Instant::from_micros(2999)).is_empty());
        assert_eq!(sw.next_arrival(), Some(Instant::from_millis(3)));
        assert_eq!(
            drain(&mut sw, Instant::from_millis(3)),
            (1..=5).map(|t| (1, t)).collect::<Vec<_>>()
        );
        assert_eq!(sw.next_arrival(), None);
    }

    #[derive(Default)]
    struct Log(Vec<WireEventKind>);
    impl Tap for Log {
        fn record(&mut self, e: &WireEvent<'_>) {
            self.0.push(e.kind);
        }
    }

    #[test]
    fn taps_see_sends_drops_and_deliveries() {
        let mut sw = Switch::new(1);
        sw.add_port(PortFaults {
            uplink: Faults::lossy(1.0, Duration::ZERO),
            downlink: Faults::default(),
        });
        sw.add_port(PortFaults::default());
        let log = sw.add_tap(Log::default());
        sw.send(Instant::ZERO, 0, frame(mac(2), mac(1), 1));
        sw.send(Instant::ZERO, 1, frame(mac(1), mac(2), 2));
        assert_eq!(drain(&mut sw, Instant::ZERO), vec![(0, 2)]);
        assert_eq!(
            sw.tap::<Log>(log).unwrap().0,
            vec![
                WireEventKind::Sent { port: 0 },
                WireEventKind::Dropped {
                    port: 0,
                    direction: Direction::Uplink,
                    reason: DropReason::Loss
                },
                WireEventKind::Sent { port: 1 },
                WireEventKind::Delivered {
                    port: 0,
                    corrupted: false
                },
            ]
        );
        assert_eq!(sw.counters(0, Direction::Uplink).dropped_loss, 1);
        assert_eq!(sw.counters(0, Direction::Downlink).delivered, 1);
    }

    #[test]
    fn seeded_loss_over_two_hops_compounds() {
        // 10% on each hop: a frame survives with probability 0.81.
        let lossy = PortFaults::symmetric(Faults::lossy(0.1, Duration::ZERO));
        let mut sw = Switch::new(77);
        sw.add_port(lossy);
        sw.add_port(lossy);
        // Learn both addresses through a lossless moment.
        sw.set_faults(0, PortFaults::default());
        sw.set_faults(1, PortFaults::default());
        sw.send(Instant::ZERO, 0, frame(mac(2), mac(1), 0));
        sw.send(Instant::ZERO, 1, frame(mac(1), mac(2), 0));
        drain(&mut sw, Instant::ZERO);
        sw.set_faults(0, lossy);
        sw.set_faults(1, lossy);
        let n = 50_000;
        for _ in 0..n {
            sw.send(Instant::ZERO, 0, frame(mac(2), mac(1), 9));
        }
        let got = drain(&mut sw, Instant::ZERO).len();
        let rate = got as f64 / n as f64;
        assert!((rate - 0.81).abs() < 0.01, "delivered {rate}");
    }

    #[test]
    fn duplicates_arrive_twice() {
        let mut sw = Switch::new(5);
        sw.add_port(PortFaults {
            uplink: Faults {
                duplicate: 1.0,
                ..Faults::default()
            },
            downlink: Faults::default(),
        });
        sw.add_port(PortFaults::default());
        sw.send(Instant::ZERO, 0, frame(mac(2), mac(1), 7));
        assert_eq!(drain(&mut sw, Instant::ZERO), vec![(1, 7), (1, 7)]);
    }
}
