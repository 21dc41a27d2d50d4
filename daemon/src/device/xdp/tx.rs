//! Transmit side: the engine writes each frame straight into a free UMEM
//! frame; `flush` submits the queued descriptors on the TX ring, kicks the
//! kernel and takes sent frames back from the completion ring.
//!
//! The TX frames circulate between the free list, the queue of filled frames,
//! the TX ring, the kernel and the completion ring; both rings have room for
//! all of them, so a submit never fails and the kernel never finds the
//! completion ring full.

use std::io;

use sluice_stack::FrameSink;
use xsk_rs::{CompQueue, FrameDesc, TxQueue, Umem};

/// Linux's copy-mode transmit (`xsk_generic_xmit`) sends at most this many
/// frames per `sendto` and answers EAGAIN if more wait (net/xdp/xsk.c,
/// TX_BATCH_SIZE).
const KERNEL_TX_BATCH: u32 = 32;
/// Completions taken off the ring per `consume` call.
const REAP_BATCH: usize = 64;

pub(super) struct TxPath {
    umem: Umem,
    tx: TxQueue,
    comp: CompQueue,
    tx_ring: u32,
    /// Bytes of UMEM: every descriptor must lie inside.
    umem_len: usize,
    /// Bytes a frame can hold.
    frame_room: usize,
    /// Frames that neither the kernel nor a queued descriptor holds.
    free: Vec<FrameDesc>,
    /// Filled frames waiting for `flush`.
    queued: Vec<FrameDesc>,
    reaped: Vec<FrameDesc>,
    pub frames: u64,
    pub bytes: u64,
    pub kicks: u64,
    /// Frames too long for a UMEM frame, dropped.
    pub oversized: u64,
    /// Completions naming an address outside the UMEM; ignored.
    pub bad_completions: u64,
}

impl TxPath {
    pub(super) fn new(
        umem: Umem,
        tx: TxQueue,
        comp: CompQueue,
        tx_ring: u32,
        umem_len: usize,
        frame_room: usize,
        frames: Vec<FrameDesc>,
    ) -> TxPath {
        TxPath {
            umem,
            tx,
            comp,
            tx_ring,
            umem_len,
            frame_room,
            queued: Vec::with_capacity(frames.len()),
            free: frames,
            reaped: vec![FrameDesc::default(); REAP_BATCH],
            frames: 0,
            bytes: 0,
            kicks: 0,
            oversized: 0,
            bad_completions: 0,
        }
    }

    /// Submits the queued frames, kicks the kernel while it makes progress
    /// and collects completions. Returns how many frames were submitted.
    pub(super) fn flush(&mut self) -> io::Result<usize> {
        self.reap();
        let mut submitted = 0;
        if !self.queued.is_empty() {
            // Why this is sound: every queued frame was taken off the free list (so no
            // ring and no other descriptor holds it) and filled; from here the
            // kernel owns it until it comes back on the completion ring.
            // SAFETY: every queued frame is ours alone until the completion ring returns it.
            let produced = unsafe { self.tx.produce(&self.queued) };
            // `produce` is all or nothing, and the ring has room for every TX
            // frame; should it not, the frames stay queued for the next flush.
            if produced == self.queued.len() {
                self.frames += produced as u64;
                self.bytes += self.queued.iter().map(|d| d.lengths().data() as u64).sum::<u64>();
                self.queued.clear();
                submitted = produced;
            }
        }
        self.kick()?;
        Ok(submitted)
    }

    /// Descriptors on the TX ring the kernel has not consumed yet.
    fn outstanding(&mut self) -> u32 {
        self.tx_ring.saturating_sub(self.tx.nb_free_exact())
    }

    /// `sendto(MSG_DONTWAIT)` while the kernel asks for it (always, in copy
    /// mode) and frames wait on the ring. One call sends at most
    /// [`KERNEL_TX_BATCH`] frames in copy mode, so it repeats while each call
    /// makes progress; a zero-copy driver sends asynchronously, so one call
    /// that appears to do nothing ends it, as does a busy device: the next
    /// flush kicks again.
    fn kick(&mut self) -> io::Result<()> {
        let mut outstanding = self.outstanding();
        for _ in 0..self.tx_ring / KERNEL_TX_BATCH + 2 {
            if outstanding == 0 || !self.tx.needs_wakeup() {
                break;
            }
            self.tx.wakeup()?;
            self.kicks += 1;
            self.reap();
            let now = self.outstanding();
            if now >= outstanding {
                break;
            }
            outstanding = now;
        }
        self.reap();
        Ok(())
    }

    /// Takes sent frames off the completion ring onto the free list.
    fn reap(&mut self) {
        loop {
            // SAFETY: `consume` only overwrites the descriptors in `reaped` with the addresses the kernel completed; those frames are ours again.
            let got = unsafe { self.comp.consume(&mut self.reaped) };
            for desc in &self.reaped[..got] {
                if desc.addr() < self.umem_len {
                    self.free.push(*desc);
                } else {
                    self.bad_completions += 1;
                    log::error!("AF_XDP completion outside the UMEM (addr {:#x}); ignored", desc.addr());
                }
            }
            if got < self.reaped.len() {
                break;
            }
        }
    }
}

impl FrameSink for TxPath {
    fn emit(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        if len > self.frame_room {
            // Cannot happen with the MTU checked at open, unless the MTU was
            // raised since. Refusing would stall the engine on this frame for
            // good; a NIC drops a frame it cannot send, and so does this.
            self.oversized += 1;
            if self.oversized == 1 {
                log::warn!("AF_XDP: dropping a {len}-byte frame, longer than a UMEM frame ({} bytes)", self.frame_room);
            }
            return true;
        }
        if self.free.is_empty() {
            self.reap();
        }
        let Some(mut desc) = self.free.pop() else { return false };
        {
            // Why this is sound: the frame came off the free list: no ring holds it and no
            // other descriptor names it, so this is the only access until it is
            // submitted; it lies inside this UMEM (checked when reaped, or one
            // of the frames the UMEM was created with).
            // SAFETY: a free-list frame inside this UMEM: this is its only access.
            let mut data = unsafe { self.umem.data_mut(&mut desc) };
            // Sets the descriptor's length; `len` fits (checked above).
            data.cursor().set_pos(len);
            fill(data.contents_mut());
        }
        self.queued.push(desc);
        true
    }
}
