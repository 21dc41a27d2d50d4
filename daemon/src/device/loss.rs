//! The daemon's own loss injector (`--loss`, `SLUICE_LOSS`): a [`Device`]
//! wrapper that drops a share of the frames it receives and of the frames
//! the engine sends, at random from a seeded generator (after smoltcp's
//! `phy::FaultInjector`). It is how a test or a CI run puts Sluice under
//! packet loss where netem is not available, without touching the network
//! around it; nft on a bridge does the same from outside.
//!
//! A dropped outgoing frame is still built (the engine's `fill` runs into a
//! scratch buffer) and reported sent, exactly as a frame lost on the wire
//! after the NIC took it: the engine's state must not learn of the loss
//! other than by its own timers and the peer's acknowledgements.

use std::io;
use std::os::fd::RawFd;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sluice_stack::FrameSink;

use super::{Device, DeviceCounters, DeviceInfo};

/// Loss rates are in parts per million.
pub const PPM: u32 = 1_000_000;

/// A device that loses `ppm` per million frames in each direction.
pub struct LossyDevice {
    inner: Box<dyn Device>,
    ppm: u32,
    rng: ChaCha8Rng,
    /// Frames dropped on receive and on send.
    dropped: u64,
    /// Where a dropped outgoing frame is built.
    scratch: Vec<u8>,
    /// The frames of a received batch that survive.
    kept: Vec<usize>,
}

impl LossyDevice {
    /// Wraps `inner`; `ppm` above [`PPM`] is taken as [`PPM`] (all lost).
    pub fn new(inner: Box<dyn Device>, ppm: u32, seed: u64) -> LossyDevice {
        LossyDevice {
            inner,
            ppm: ppm.min(PPM),
            rng: ChaCha8Rng::seed_from_u64(seed),
            dropped: 0,
            scratch: Vec::new(),
            kept: Vec::new(),
        }
    }

    /// Draws whether the next frame is lost.
    fn lose(rng: &mut ChaCha8Rng, ppm: u32) -> bool {
        rng.gen_range(0..PPM) < ppm
    }
}

impl Device for LossyDevice {
    fn receive(&mut self, max: usize, deliver: &mut dyn FnMut(&[&[u8]])) -> io::Result<usize> {
        let LossyDevice { inner, ppm, rng, dropped, kept, .. } = self;
        inner.receive(max, &mut |batch| {
            kept.clear();
            kept.extend((0..batch.len()).filter(|_| !LossyDevice::lose(rng, *ppm)));
            *dropped += (batch.len() - kept.len()) as u64;
            if kept.len() == batch.len() {
                deliver(batch);
            } else if !kept.is_empty() {
                let survivors: Vec<&[u8]> = kept.iter().map(|&i| batch[i]).collect();
                deliver(&survivors);
            }
        })
    }

    fn sink(&mut self) -> &mut dyn FrameSink {
        self
    }

    fn flush(&mut self) -> io::Result<usize> {
        self.inner.flush()
    }

    fn wait_fd(&self) -> Option<RawFd> {
        self.inner.wait_fd()
    }

    fn mac(&self) -> [u8; 6] {
        self.inner.mac()
    }

    fn info(&self) -> DeviceInfo {
        let mut info = self.inner.info();
        info.mode = format!("{}, {} ppm loss injected", info.mode, self.ppm);
        info
    }

    fn counters(&self) -> DeviceCounters {
        DeviceCounters { injected_drops: self.dropped, ..self.inner.counters() }
    }
}

impl FrameSink for LossyDevice {
    fn emit(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        if !LossyDevice::lose(&mut self.rng, self.ppm) {
            return self.inner.sink().emit(len, fill);
        }
        self.scratch.clear();
        self.scratch.resize(len, 0);
        fill(&mut self.scratch);
        self.dropped += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::memory::MemoryDevice;

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    fn frame(n: u32) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[..4].copy_from_slice(&n.to_be_bytes());
        f
    }

    /// Which of `count` frames sent into a lossy device (`ppm`, `seed`) it
    /// delivers, by number.
    fn received(ppm: u32, seed: u64, count: u32) -> Vec<u32> {
        let (memory, wire) = MemoryDevice::pair("loss", MAC).unwrap();
        let mut lossy = LossyDevice::new(Box::new(memory), ppm, seed);
        for n in 0..count {
            assert!(wire.send(&frame(n)));
        }
        let mut got = Vec::new();
        while lossy
            .receive(64, &mut |batch| {
                got.extend(batch.iter().map(|f| u32::from_be_bytes(f[..4].try_into().unwrap())))
            })
            .unwrap()
            > 0
        {}
        assert_eq!(lossy.counters().injected_drops, u64::from(count) - got.len() as u64);
        got
    }

    #[test]
    fn received_frames_are_lost_at_the_rate_and_in_order() {
        let got = received(100_000, 7, 2000);
        // 10% of 2000: well inside 150..=250 for any fair generator.
        let lost = 2000 - got.len();
        assert!((150..=250).contains(&lost), "lost {lost} of 2000 at 10%");
        assert!(got.windows(2).all(|w| w[0] < w[1]), "survivors keep their order");
    }

    #[test]
    fn a_seed_replays_the_same_losses() {
        assert_eq!(received(50_000, 3, 500), received(50_000, 3, 500));
        assert_ne!(received(50_000, 3, 500), received(50_000, 4, 500));
    }

    #[test]
    fn no_loss_and_total_loss_are_exact() {
        assert_eq!(received(0, 1, 300), (0..300).collect::<Vec<_>>());
        assert!(received(PPM, 1, 300).is_empty());
    }

    #[test]
    fn dropped_outgoing_frames_are_built_and_reported_sent() {
        let (memory, wire) = MemoryDevice::pair("loss", MAC).unwrap();
        let mut lossy = LossyDevice::new(Box::new(memory), 250_000, 11);
        let mut built = 0;
        for n in 0..400u32 {
            let sent = lossy.sink().emit(60, &mut |buf| {
                buf.copy_from_slice(&frame(n));
                built += 1;
            });
            assert!(sent, "a lost frame still counts as sent");
            lossy.flush().unwrap();
        }
        assert_eq!(built, 400, "the engine's fill runs for every frame");
        let mut on_wire = 0;
        while wire.recv().is_some() {
            on_wire += 1;
        }
        let lost = lossy.counters().injected_drops;
        assert_eq!(on_wire + lost, 400);
        assert!((60..=140).contains(&lost), "lost {lost} of 400 at 25%");
    }
}
