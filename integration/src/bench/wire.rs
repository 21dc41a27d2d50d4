//! The in-memory wire between the two endpoints of a benchmark run.
//!
//! Each endpoint owns a [`Port`]: frames it transmits go to `outbound`, frames
//! addressed to it wait in `inbound`. Between rounds the [`Wire`] moves every
//! outbound frame to the other port's inbound queue, dropping a seeded fraction
//! of them. Frame buffers are recycled (a consumed frame goes back to the pool of
//! the port that sent it), so after warm-up the wire itself allocates nothing and
//! both stacks pay the same, small, per-frame cost for it.

use std::collections::VecDeque;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One endpoint's side of the wire.
#[derive(Default)]
pub struct Port {
    /// Frames delivered to this endpoint, oldest first.
    pub inbound: VecDeque<Vec<u8>>,
    /// Frames this endpoint transmitted and the wire has not moved yet.
    pub outbound: VecDeque<Vec<u8>>,
    /// Empty buffers this endpoint may fill with outgoing frames.
    free: Vec<Vec<u8>>,
    /// Inbound frames this endpoint has consumed, to be returned to the sender's pool.
    spent: Vec<Vec<u8>>,
}

impl Port {
    /// Queue one outgoing frame of `len` bytes written by `fill`.
    pub fn transmit<R>(&mut self, len: usize, fill: impl FnOnce(&mut [u8]) -> R) -> R {
        transmit_into(&mut self.outbound, &mut self.free, len, fill)
    }

    /// Take the oldest delivered frame; hand it back with [`Port::recycle`].
    pub fn next_inbound(&mut self) -> Option<Vec<u8>> {
        self.inbound.pop_front()
    }

    /// Return a consumed inbound frame's buffer for reuse.
    pub fn recycle(&mut self, frame: Vec<u8>) {
        self.spent.push(frame);
    }

    /// Split into the parts a device driver borrows separately (receive and
    /// transmit tokens live at the same time in smoltcp's `Device` API).
    pub fn split(&mut self) -> PortParts<'_> {
        PortParts { inbound: &mut self.inbound, outbound: &mut self.outbound, free: &mut self.free, spent: &mut self.spent }
    }

    /// Free every pooled buffer (so heap measurements see only the stacks).
    pub fn release_buffers(&mut self) {
        self.free = Vec::new();
        self.spent = Vec::new();
    }

    fn is_idle(&self) -> bool {
        self.inbound.is_empty() && self.outbound.is_empty()
    }
}

/// Disjoint mutable borrows of a [`Port`]'s queues.
pub struct PortParts<'a> {
    pub inbound: &'a mut VecDeque<Vec<u8>>,
    pub outbound: &'a mut VecDeque<Vec<u8>>,
    pub free: &'a mut Vec<Vec<u8>>,
    pub spent: &'a mut Vec<Vec<u8>>,
}

/// Queue a frame on a split port (same behaviour as [`Port::transmit`]).
pub fn transmit_into<R>(outbound: &mut VecDeque<Vec<u8>>, free: &mut Vec<Vec<u8>>, len: usize, fill: impl FnOnce(&mut [u8]) -> R) -> R {
    let mut frame = free.pop().unwrap_or_default();
    frame.clear();
    frame.resize(len, 0);
    let result = fill(&mut frame);
    outbound.push_back(frame);
    result
}

/// Frame counters of one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WireStats {
    pub delivered: u64,
    pub dropped: u64,
}

impl WireStats {
    /// Counts accumulated since `earlier` was read.
    pub fn since(self, earlier: WireStats) -> WireStats {
        WireStats { delivered: self.delivered - earlier.delivered, dropped: self.dropped - earlier.dropped }
    }
}

/// The link between the client port and the server port.
pub struct Wire {
    pub client: Port,
    pub server: Port,
    /// Drop probability scaled to `u32::MAX` (0 = lossless).
    drop_threshold: u32,
    rng: ChaCha8Rng,
    pub stats: WireStats,
}

impl Wire {
    /// A wire dropping each frame independently with probability `loss`
    /// (0.0..=1.0), reproducibly for a given `seed`.
    pub fn new(loss: f64, seed: u64) -> Wire {
        let loss = loss.clamp(0.0, 1.0);
        Wire {
            client: Port::default(),
            server: Port::default(),
            drop_threshold: (loss * f64::from(u32::MAX)) as u32,
            rng: ChaCha8Rng::seed_from_u64(seed),
            stats: WireStats::default(),
        }
    }

    /// Move every outbound frame across (client→server, then server→client) and
    /// return consumed buffers to their senders. Returns the frames moved,
    /// dropped ones included.
    pub fn carry(&mut self) -> usize {
        let moved = self.client.outbound.len() + self.server.outbound.len();
        Self::carry_one_way(&mut self.client, &mut self.server, self.drop_threshold, &mut self.rng, &mut self.stats);
        Self::carry_one_way(&mut self.server, &mut self.client, self.drop_threshold, &mut self.rng, &mut self.stats);
        moved
    }

    /// Whether no frame is queued anywhere on the wire.
    pub fn is_idle(&self) -> bool {
        self.client.is_idle() && self.server.is_idle()
    }

    /// Free all pooled frame buffers on both ports.
    pub fn release_buffers(&mut self) {
        self.client.release_buffers();
        self.server.release_buffers();
    }

    fn carry_one_way(from: &mut Port, to: &mut Port, drop_threshold: u32, rng: &mut ChaCha8Rng, stats: &mut WireStats) {
        // Buffers the receiver consumed were sent by `from`: give them back.
        from.free.append(&mut to.spent);
        while let Some(frame) = from.outbound.pop_front() {
            if drop_threshold != 0 && rng.gen::<u32>() < drop_threshold {
                stats.dropped += 1;
                from.free.push(frame);
            } else {
                stats.delivered += 1;
                to.inbound.push_back(frame);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_frames(wire: &mut Wire, n: usize) {
        for i in 0..n {
            wire.client.transmit(4, |f| f.copy_from_slice(&(i as u32).to_be_bytes()));
        }
    }

    #[test]
    fn lossless_wire_delivers_every_frame_in_order() {
        let mut wire = Wire::new(0.0, 1);
        send_frames(&mut wire, 100);
        assert_eq!(wire.carry(), 100);
        let got: Vec<u32> = wire.server.inbound.iter().map(|f| u32::from_be_bytes([f[0], f[1], f[2], f[3]])).collect();
        assert_eq!(got, (0..100).collect::<Vec<u32>>());
        assert_eq!(wire.stats, WireStats { delivered: 100, dropped: 0 });
    }

    #[test]
    fn loss_rate_is_close_to_requested_and_reproducible() {
        let run = |seed| {
            let mut wire = Wire::new(0.01, seed);
            send_frames(&mut wire, 100_000);
            wire.carry();
            let kept: Vec<Vec<u8>> = wire.server.inbound.drain(..).collect();
            (wire.stats, kept)
        };
        let (stats, kept) = run(7);
        assert_eq!(stats.delivered + stats.dropped, 100_000);
        assert!((700..1300).contains(&stats.dropped), "dropped {}", stats.dropped);
        assert_eq!(run(7), (stats, kept));
        assert_ne!(run(8).0, stats);
    }

    #[test]
    fn consumed_buffers_return_to_the_sender() {
        let mut wire = Wire::new(0.0, 1);
        send_frames(&mut wire, 3);
        wire.carry();
        while let Some(f) = wire.server.next_inbound() {
            wire.server.recycle(f);
        }
        wire.carry();
        assert_eq!(wire.client.free.len(), 3);
        assert!(wire.is_idle());
    }
}
