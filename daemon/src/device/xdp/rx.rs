//! Receive side: frames come in on the RX ring, are lent to the engine where
//! they lie in the UMEM, and go straight back to the fill ring.
//!
//! The RX frames circulate between the fill ring, the kernel, the RX ring and
//! the batch being delivered; the fill ring has room for all of them, so
//! handing a batch back always succeeds and the kernel never starves for
//! lack of a frame we hold.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use xsk_rs::socket::XdpStatistics;
use xsk_rs::{FillQueue, FrameDesc, RxQueue, Umem};

use crate::device::RX_BATCH;

pub(super) struct RxPath {
    umem: Umem,
    rx: RxQueue,
    fill: FillQueue,
    /// Bytes of UMEM: every descriptor must lie inside.
    umem_len: usize,
    /// Descriptors of the batch being received.
    batch: Vec<FrameDesc>,
    /// Frames the fill ring had no room for (see the module doc: none,
    /// unless the kernel misbehaves); retried before every receive.
    unfilled: Vec<FrameDesc>,
    pub frames: u64,
    pub bytes: u64,
    pub kicks: u64,
    /// Times frames had to wait for room in the fill ring.
    pub fill_waits: u64,
    /// Descriptors the kernel gave that point outside the UMEM; dropped.
    pub bad_descriptors: u64,
}

impl RxPath {
    /// Puts every frame of `frames` on the fill ring.
    pub(super) fn new(
        umem: Umem,
        rx: RxQueue,
        fill: FillQueue,
        umem_len: usize,
        frames: Vec<FrameDesc>,
    ) -> io::Result<RxPath> {
        let mut path = RxPath {
            umem,
            rx,
            fill,
            umem_len,
            batch: vec![FrameDesc::default(); RX_BATCH],
            unfilled: frames,
            frames: 0,
            bytes: 0,
            kicks: 0,
            fill_waits: 0,
            bad_descriptors: 0,
        };
        let count = path.unfilled.len();
        path.refill_waiting()?;
        if !path.unfilled.is_empty() {
            return Err(io::Error::other(format!(
                "the fill ring took {} of the {count} RX frames",
                count - path.unfilled.len()
            )));
        }
        Ok(path)
    }

    /// The AF_XDP socket: readable while the RX ring holds frames.
    pub(super) fn fd(&self) -> RawFd {
        self.rx.fd().as_raw_fd()
    }

    /// The kernel's drop counters for this socket (`XDP_STATISTICS`).
    pub(super) fn kernel_statistics(&self) -> io::Result<XdpStatistics> {
        self.rx.fd().xdp_statistics()
    }

    /// Lends up to `max` (at most [`RX_BATCH`]) received frames to `deliver`
    /// as one batch, then gives them back to the fill ring.
    pub(super) fn receive(&mut self, max: usize, deliver: &mut dyn FnMut(&[&[u8]])) -> io::Result<usize> {
        if !self.unfilled.is_empty() {
            self.refill_waiting()?;
        }
        let max = max.min(RX_BATCH);
        if max == 0 {
            return Ok(0);
        }
        // Why this is sound: `consume` only overwrites the descriptors in `batch` with the
        // ones the kernel produced; every frame they name is ours (off the
        // fill ring) until it is produced to the fill ring again below.
        // SAFETY: the frames named are ours until they go back on the fill ring.
        let got = unsafe { self.rx.consume(&mut self.batch[..max]) };
        if got == 0 {
            // A driver that went idle waiting for fill-ring frames needs a
            // syscall to look again (only zero-copy drivers set the flag).
            self.wake_fill_if_needed()?;
            return Ok(0);
        }
        let valid = self.keep_descriptors_inside_umem(got);

        let mut frames: [&[u8]; RX_BATCH] = [&[]; RX_BATCH];
        for (slot, desc) in frames.iter_mut().zip(&self.batch[..valid]) {
            // Why this is sound: the descriptor came off the RX ring, so the kernel has
            // finished writing the frame and will not touch it until it is back
            // on the fill ring, which happens only after `deliver` returns and
            // `frames` is gone; it lies inside this UMEM (checked above).
            // SAFETY: an RX descriptor inside this UMEM, not touched by the kernel until refilled.
            let data = unsafe { self.umem.data(desc) };
            *slot = data.contents();
            self.bytes += slot.len() as u64;
        }
        if valid > 0 {
            deliver(&frames[..valid]);
        }
        self.frames += valid as u64;

        // SAFETY: the frames were received on this UMEM's RX ring and nothing refers to them any more (the slices above ended with `deliver`).
        let returned = unsafe { self.fill.produce(&self.batch[..valid]) };
        if returned != valid {
            // `produce` is all or nothing.
            self.fill_waits += 1;
            self.unfilled.extend_from_slice(&self.batch[..valid]);
        }
        self.wake_fill_if_needed()?;
        Ok(valid)
    }

    /// Moves the descriptors of `batch[..got]` that lie inside the UMEM to the
    /// front and returns how many there are. The kernel checks every address
    /// it hands out; this guards the slices built from them all the same.
    fn keep_descriptors_inside_umem(&mut self, got: usize) -> usize {
        let mut valid = 0;
        for i in 0..got {
            let desc = self.batch[i];
            let inside = desc.addr().checked_add(desc.lengths().data()).is_some_and(|end| end <= self.umem_len);
            if inside {
                self.batch[valid] = desc;
                valid += 1;
            } else {
                self.bad_descriptors += 1;
                log::error!(
                    "AF_XDP RX descriptor outside the UMEM (addr {:#x}, len {}); frame dropped",
                    desc.addr(),
                    desc.lengths().data()
                );
            }
        }
        valid
    }

    /// Gives the frames waiting in `unfilled` to the fill ring, as many as fit.
    fn refill_waiting(&mut self) -> io::Result<()> {
        let room = self.fill.nb_free(self.unfilled.len() as u32) as usize;
        let take = room.min(self.unfilled.len());
        if take > 0 {
            // SAFETY: the frames in `unfilled` are owned by no ring and referenced by nothing; they belong to this UMEM.
            let produced = unsafe { self.fill.produce(&self.unfilled[..take]) };
            self.unfilled.drain(..produced);
        }
        self.wake_fill_if_needed()
    }

    fn wake_fill_if_needed(&mut self) -> io::Result<()> {
        if self.fill.needs_wakeup() {
            self.fill.wakeup(self.rx.fd_mut(), 0)?;
            self.kicks += 1;
        }
        Ok(())
    }
}
