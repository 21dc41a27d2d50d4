//! Live packet capture for `sluice capture` (design §3.8): workers copy the
//! frames they receive (before the engine sees them) and send (as the engine
//! writes them into the device) into one bounded queue while a capture
//! client is connected; the control thread streams them to the client as
//! `CaptureFrame` messages, and the client writes pcap.
//!
//! The workers' cost with no client is one relaxed load per batch. With a
//! client, a frame that finds the queue full is dropped and counted, never
//! waited for: capture must not slow the data path down.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use sluice_shm::control::MAX_CAPTURE_BYTES;
use sluice_shm::os::EventFd;
use sluice_stack::FrameSink;

/// Frames held for the control thread at most (about 6 MiB of Ethernet frames).
const MAX_QUEUED: usize = 4096;

/// One captured frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Captured {
    /// Wall-clock time, ns since the Unix epoch.
    pub timestamp_ns: u64,
    /// The frame's length on the wire.
    pub orig_len: u32,
    /// Its first [`MAX_CAPTURE_BYTES`] bytes.
    pub data: Vec<u8>,
}

/// The queue between the workers and the control thread.
#[derive(Debug)]
pub struct CaptureTap {
    enabled: AtomicBool,
    queue: Mutex<VecDeque<Captured>>,
    dropped: AtomicU64,
    /// Readable while frames wait (in the control thread's epoll).
    bell: EventFd,
}

impl CaptureTap {
    pub fn new() -> io::Result<Arc<CaptureTap>> {
        Ok(Arc::new(CaptureTap {
            enabled: AtomicBool::new(false),
            queue: Mutex::new(VecDeque::new()),
            dropped: AtomicU64::new(0),
            bell: EventFd::new()?,
        }))
    }

    /// Whether a capture client is connected.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Turns capturing on or off; off also empties the queue.
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
        if !on {
            self.queue.lock().unwrap_or_else(PoisonError::into_inner).clear();
        }
    }

    /// Copies `frame` into the queue, or counts it dropped when full.
    pub fn record(&self, frame: &[u8]) {
        let timestamp_ns = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let captured = Captured {
            timestamp_ns,
            orig_len: u32::try_from(frame.len()).unwrap_or(u32::MAX),
            data: frame[..frame.len().min(MAX_CAPTURE_BYTES)].to_vec(),
        };
        let was_empty = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if queue.len() >= MAX_QUEUED {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            queue.push_back(captured);
            queue.len() == 1
        };
        if was_empty {
            let _ = self.bell.notify();
        }
    }

    /// Moves every queued frame into `out`.
    pub fn take(&self, out: &mut Vec<Captured>) {
        let _ = self.bell.drain();
        out.extend(self.queue.lock().unwrap_or_else(PoisonError::into_inner).drain(..));
    }

    /// Frames dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn bell(&self) -> &EventFd {
        &self.bell
    }
}

/// A [`FrameSink`] that records every frame the engine writes through it.
pub struct CaptureSink<'a> {
    pub inner: &'a mut dyn FrameSink,
    pub tap: &'a CaptureTap,
}

impl FrameSink for CaptureSink<'_> {
    fn emit(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        let tap = self.tap;
        self.inner.emit(len, &mut |buf| {
            fill(buf);
            tap.record(buf);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_queued_in_order_and_overflow_is_counted() {
        let tap = CaptureTap::new().unwrap();
        tap.set_enabled(true);
        for i in 0..MAX_QUEUED + 3 {
            tap.record(&[(i % 251) as u8; 60]);
        }
        assert_eq!(tap.dropped(), 3);
        let mut out = Vec::new();
        tap.take(&mut out);
        assert_eq!(out.len(), MAX_QUEUED);
        assert!(out.iter().enumerate().all(|(i, c)| c.data == vec![(i % 251) as u8; 60] && c.orig_len == 60));
        assert_eq!(tap.bell().drain().unwrap(), 0, "take drains the bell");
    }

    #[test]
    fn the_sink_records_what_the_engine_wrote() {
        let tap = CaptureTap::new().unwrap();
        let mut frames: Vec<Vec<u8>> = Vec::new();
        let mut sink = CaptureSink { inner: &mut frames, tap: &tap };
        assert!(sink.emit(4, &mut |buf| buf.copy_from_slice(b"abcd")));
        let mut out = Vec::new();
        tap.take(&mut out);
        assert_eq!(frames, vec![b"abcd".to_vec()]);
        assert_eq!(out[0].data, b"abcd");
    }

    #[test]
    fn disabling_discards_what_was_queued() {
        let tap = CaptureTap::new().unwrap();
        tap.set_enabled(true);
        tap.record(&[1; 10]);
        tap.set_enabled(false);
        let mut out = Vec::new();
        tap.take(&mut out);
        assert!(out.is_empty() && !tap.enabled());
    }
}
