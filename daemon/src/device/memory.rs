//! An in-memory wire for tests: a [`MemoryDevice`] the daemon drives like a
//! NIC, and the [`WireEnd`] a test holds to play the rest of the network.
//!
//! Each direction is a bounded frame queue behind a mutex, with an eventfd
//! that is readable exactly while the queue holds frames: it is notified
//! when the queue goes from empty to non-empty and drained when it becomes
//! empty, both under the queue's lock, so a level-triggered epoll on it can
//! never miss a frame nor report one that is not there.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use log::error;
use sluice_shm::os::EventFd;
use sluice_stack::FrameSink;

use super::{Device, DeviceCounters, DeviceInfo};

/// Frames each direction holds before dropping (a NIC ring's worth).
pub const WIRE_CAPACITY: usize = 4096;

/// Frames the device's sink queues between flushes.
const TX_QUEUE: usize = 256;

/// One direction of the wire.
#[derive(Debug)]
struct FrameQueue {
    frames: Mutex<VecDeque<Vec<u8>>>,
    /// Readable while `frames` is non-empty.
    ready: EventFd,
    capacity: usize,
    /// Frames refused because the queue was full.
    dropped: AtomicU64,
}

impl FrameQueue {
    fn new(capacity: usize) -> io::Result<FrameQueue> {
        Ok(FrameQueue {
            frames: Mutex::new(VecDeque::new()),
            ready: EventFd::new()?,
            capacity,
            dropped: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Vec<u8>>> {
        // A panic while holding the lock leaves a consistent queue (every
        // operation is a single push or pop), so poisoning is ignored.
        self.frames.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a frame; `false` (and counted) when the queue is full.
    fn push(&self, frame: Vec<u8>) -> bool {
        let mut frames = self.lock();
        if frames.len() >= self.capacity {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        frames.push_back(frame);
        if frames.len() == 1 {
            if let Err(e) = self.ready.notify() {
                error!("memory wire: eventfd write failed: {e}");
            }
        }
        true
    }

    /// Moves up to `max` frames into `out`.
    fn pop_into(&self, max: usize, out: &mut Vec<Vec<u8>>) {
        let mut frames = self.lock();
        let n = max.min(frames.len());
        out.extend(frames.drain(..n));
        if n > 0 && frames.is_empty() {
            let _ = self.ready.drain();
        }
    }

    fn pop(&self) -> Option<Vec<u8>> {
        let mut frames = self.lock();
        let frame = frames.pop_front();
        if frame.is_some() && frames.is_empty() {
            let _ = self.ready.drain();
        }
        frame
    }
}

/// Frames the engine emitted, waiting for `flush`.
#[derive(Debug, Default)]
struct PendingTx {
    frames: Vec<Vec<u8>>,
}

impl FrameSink for PendingTx {
    fn emit(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        if self.frames.len() >= TX_QUEUE {
            return false;
        }
        let mut frame = vec![0u8; len];
        fill(&mut frame);
        self.frames.push(frame);
        true
    }
}

/// The daemon's side of an in-memory wire.
#[derive(Debug)]
pub struct MemoryDevice {
    label: String,
    mac: [u8; 6],
    /// Wire → device.
    inbound: Arc<FrameQueue>,
    /// Device → wire.
    outbound: Arc<FrameQueue>,
    rx: Vec<Vec<u8>>,
    tx: PendingTx,
    counters: DeviceCounters,
}

/// The test's side of an in-memory wire.
#[derive(Clone, Debug)]
pub struct WireEnd {
    inbound: Arc<FrameQueue>,
    outbound: Arc<FrameQueue>,
}

impl MemoryDevice {
    /// A device with MAC `mac` and the other end of its wire; `label` names
    /// it in `sluice stats`.
    pub fn pair(label: &str, mac: [u8; 6]) -> io::Result<(MemoryDevice, WireEnd)> {
        Self::pair_with_capacity(label, mac, WIRE_CAPACITY)
    }

    /// As [`MemoryDevice::pair`], each direction holding at most `capacity` frames.
    pub fn pair_with_capacity(label: &str, mac: [u8; 6], capacity: usize) -> io::Result<(MemoryDevice, WireEnd)> {
        let inbound = Arc::new(FrameQueue::new(capacity)?);
        let outbound = Arc::new(FrameQueue::new(capacity)?);
        let end = WireEnd { inbound: Arc::clone(&inbound), outbound: Arc::clone(&outbound) };
        let device = MemoryDevice {
            label: label.to_string(),
            mac,
            inbound,
            outbound,
            rx: Vec::with_capacity(super::RX_BATCH),
            tx: PendingTx::default(),
            counters: DeviceCounters::default(),
        };
        Ok((device, end))
    }
}

impl Device for MemoryDevice {
    fn receive(&mut self, max: usize, deliver: &mut dyn FnMut(&[&[u8]])) -> io::Result<usize> {
        self.rx.clear();
        self.inbound.pop_into(max, &mut self.rx);
        let n = self.rx.len();
        if n == 0 {
            return Ok(0);
        }
        let frames: Vec<&[u8]> = self.rx.iter().map(Vec::as_slice).collect();
        self.counters.rx_frames += n as u64;
        self.counters.rx_bytes += frames.iter().map(|f| f.len() as u64).sum::<u64>();
        deliver(&frames);
        Ok(n)
    }

    fn sink(&mut self) -> &mut dyn FrameSink {
        &mut self.tx
    }

    fn flush(&mut self) -> io::Result<usize> {
        let mut sent = 0;
        for frame in self.tx.frames.drain(..) {
            let len = frame.len() as u64;
            if self.outbound.push(frame) {
                self.counters.tx_frames += 1;
                self.counters.tx_bytes += len;
                sent += 1;
            } else {
                self.counters.tx_dropped += 1;
            }
        }
        Ok(sent)
    }

    fn wait_fd(&self) -> Option<RawFd> {
        Some(self.inbound.ready.as_raw_fd())
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn info(&self) -> DeviceInfo {
        DeviceInfo { kind: "memory".into(), name: self.label.clone(), queue: 0, mode: "memory".into() }
    }

    fn counters(&self) -> DeviceCounters {
        DeviceCounters { rx_dropped: self.inbound.dropped.load(Ordering::Relaxed), ..self.counters }
    }
}

impl WireEnd {
    /// Puts a frame on the wire towards the device; `false` when the
    /// device's queue is full (the frame is lost, as on a real link).
    pub fn send(&self, frame: &[u8]) -> bool {
        self.inbound.push(frame.to_vec())
    }

    /// The next frame the device sent, if any.
    pub fn recv(&self) -> Option<Vec<u8>> {
        self.outbound.pop()
    }

    /// Waits up to `timeout` for the device to send a frame.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(frame) = self.recv() {
                return Some(frame);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            // An interrupted or failed wait just loops until the deadline.
            let _ = self.outbound.ready.wait(Some(left));
        }
    }

    /// Frames waiting for the test.
    pub fn pending(&self) -> usize {
        self.outbound.lock().len()
    }
}

/// Readable while frames from the device wait in [`WireEnd::recv`].
impl AsFd for WireEnd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.outbound.ready.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::epoll::{self, Epoll};

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    fn receive_all(dev: &mut MemoryDevice, max: usize) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let n = dev.receive(max, &mut |frames| got.extend(frames.iter().map(|f| f.to_vec()))).unwrap();
        assert_eq!(n, got.len());
        got
    }

    #[test]
    fn frames_cross_in_both_directions_in_order() {
        let (mut dev, end) = MemoryDevice::pair("t", MAC).unwrap();
        assert!(end.send(b"one") && end.send(b"two") && end.send(b"three"));
        assert_eq!(receive_all(&mut dev, 2), vec![b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(receive_all(&mut dev, 64), vec![b"three".to_vec()]);
        assert!(receive_all(&mut dev, 64).is_empty());

        assert!(dev.sink().emit(4, &mut |b| b.copy_from_slice(b"abcd")));
        assert!(dev.sink().emit(2, &mut |b| b.copy_from_slice(b"ef")));
        assert_eq!(end.recv(), None, "nothing leaves before flush");
        assert_eq!(dev.flush().unwrap(), 2);
        assert_eq!(end.pending(), 2);
        assert_eq!(end.recv().as_deref(), Some(&b"abcd"[..]));
        assert_eq!(end.recv_timeout(Duration::from_secs(1)).as_deref(), Some(&b"ef"[..]));
        assert_eq!(end.recv(), None);

        let c = dev.counters();
        assert_eq!((c.rx_frames, c.rx_bytes, c.tx_frames, c.tx_bytes), (3, 11, 2, 6));
        assert_eq!(dev.info().kind, "memory");
        assert_eq!(dev.mac(), MAC);
    }

    #[test]
    fn the_wait_fd_is_readable_exactly_while_frames_wait() {
        let (mut dev, end) = MemoryDevice::pair("t", MAC).unwrap();
        let mut ep = Epoll::new(4).unwrap();
        ep.add(dev.wait_fd().unwrap(), 1, epoll::IN).unwrap();
        ep.add(end.as_fd().as_raw_fd(), 2, epoll::IN).unwrap();
        let ready = |ep: &mut Epoll| ep.wait(0).unwrap().map(|r| r.token).collect::<Vec<_>>();
        assert!(ready(&mut ep).is_empty());
        end.send(b"a");
        end.send(b"b");
        assert_eq!(ready(&mut ep), vec![1]);
        // A partial receive leaves it readable.
        assert_eq!(receive_all(&mut dev, 1).len(), 1);
        assert_eq!(ready(&mut ep), vec![1]);
        assert_eq!(receive_all(&mut dev, 1).len(), 1);
        assert!(ready(&mut ep).is_empty());
        // A frame sent after the queue emptied makes it readable again.
        end.send(b"c");
        assert_eq!(ready(&mut ep), vec![1]);
        receive_all(&mut dev, 64);

        dev.sink().emit(1, &mut |b| b[0] = 9);
        dev.flush().unwrap();
        assert_eq!(ready(&mut ep), vec![2]);
        assert_eq!(end.recv(), Some(vec![9]));
        assert!(ready(&mut ep).is_empty());
    }

    #[test]
    fn full_queues_drop_and_count() {
        let (mut dev, end) = MemoryDevice::pair_with_capacity("t", MAC, 2).unwrap();
        assert!(end.send(b"1") && end.send(b"2"));
        assert!(!end.send(b"3"));
        assert_eq!(dev.counters().rx_dropped, 1);
        for _ in 0..3 {
            assert!(dev.sink().emit(1, &mut |b| b[0] = 0));
        }
        assert_eq!(dev.flush().unwrap(), 2);
        assert_eq!(dev.counters().tx_dropped, 1);
        // The sink itself refuses once its own queue is full.
        let mut accepted = 0;
        while dev.sink().emit(1, &mut |_| {}) {
            accepted += 1;
        }
        assert_eq!(accepted, TX_QUEUE);
    }

    #[test]
    fn a_reader_thread_sees_every_frame_of_a_concurrent_writer() {
        let (mut dev, end) = MemoryDevice::pair("t", MAC).unwrap();
        let fd = dev.wait_fd().unwrap();
        let writer = std::thread::spawn(move || {
            for i in 0..2000u32 {
                while !end.send(&i.to_le_bytes()) {
                    std::thread::yield_now();
                }
            }
            end
        });
        let mut ep = Epoll::new(1).unwrap();
        ep.add(fd, 0, epoll::IN).unwrap();
        let mut next = 0u32;
        let deadline = Instant::now() + Duration::from_secs(20);
        while next < 2000 {
            assert!(Instant::now() < deadline, "stalled at frame {next}");
            // Sleep on the fd exactly like the worker. The writer pushes a
            // frame far more often than every 5 s, so a wait that times out
            // while frames are queued is a missed wake-up.
            let woke = ep.wait(5000).unwrap().count() > 0;
            let got = receive_all(&mut dev, 64);
            assert!(woke || got.is_empty(), "frames were queued but the fd was not readable");
            for f in got {
                assert_eq!(f, next.to_le_bytes());
                next += 1;
            }
        }
        writer.join().unwrap();
    }
}
