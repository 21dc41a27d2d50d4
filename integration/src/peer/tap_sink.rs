//! Hands the engine's outgoing frames to a TAP device.

use std::io;

use sluice_stack::FrameSink;

use crate::tap::{TapDevice, MAX_FRAME};

/// A `FrameSink` writing straight to the TAP device. When the device cannot
/// take a frame (EAGAIN) the frame is held and the sink refuses further frames
/// until `flush` gets it out, so the engine keeps the rest for a later poll.
pub struct TapSink<'a> {
    tap: &'a TapDevice,
    buf: &'a mut Vec<u8>,
    /// Length of a written-but-refused frame waiting in `buf`.
    held: &'a mut Option<usize>,
    error: Option<io::Error>,
    frames: u64,
}

impl<'a> TapSink<'a> {
    /// `buf` and `held` belong to the driver so a held frame survives between polls.
    pub fn new(tap: &'a TapDevice, buf: &'a mut Vec<u8>, held: &'a mut Option<usize>) -> Self {
        if buf.len() < MAX_FRAME {
            buf.resize(MAX_FRAME, 0);
        }
        TapSink { tap, buf, held, error: None, frames: 0 }
    }

    /// Try to send a held frame. Returns whether the sink is free again.
    pub fn flush(&mut self) -> io::Result<bool> {
        let Some(len) = *self.held else { return Ok(true) };
        if self.tap.send(&self.buf[..len])? {
            *self.held = None;
            self.frames += 1;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    pub fn is_blocked(&self) -> bool {
        self.held.is_some()
    }

    /// Frames written to the device through this sink.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The device error that stopped transmission, if any.
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.error.take()
    }
}

impl FrameSink for TapSink<'_> {
    fn emit(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        if self.held.is_some() || self.error.is_some() {
            return false;
        }
        let Some(frame) = self.buf.get_mut(..len) else {
            self.error = Some(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("engine emitted a {len}-byte frame, larger than a TAP frame ({MAX_FRAME})"),
            ));
            return false;
        };
        fill(frame);
        match self.tap.send(frame) {
            Ok(true) => self.frames += 1,
            // Accepted from the engine's point of view: we own it now.
            Ok(false) => *self.held = Some(len),
            Err(e) => self.error = Some(e),
        }
        true
    }
}
