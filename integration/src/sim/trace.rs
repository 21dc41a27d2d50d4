//! What happens on the simulated wire, reported to observers ("taps"): pcap
//! writers, the determinism digest, test-specific counters.

use std::any::Any;

use sluice_stack::time::Instant;

use super::fault::DropReason;

/// Index of a switch port (and of the node attached to it).
pub type PortId = usize;

/// Which way a frame crosses a port's cable.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Direction {
    /// Host to switch.
    Uplink,
    /// Switch to host.
    Downlink,
}

/// One thing that happened to a frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WireEventKind {
    /// The host at `port` put the frame on its cable.
    Sent { port: PortId },
    /// The pipe `(port, direction)` dropped it.
    Dropped {
        port: PortId,
        direction: Direction,
        reason: DropReason,
    },
    /// The switch had nowhere to send it (destination learned on the arrival port).
    Filtered { port: PortId },
    /// The host at `port` received it (as delivered: possibly corrupted or a duplicate).
    Delivered { port: PortId, corrupted: bool },
}

#[derive(Clone, Copy, Debug)]
pub struct WireEvent<'a> {
    pub at: Instant,
    pub kind: WireEventKind,
    pub frame: &'a [u8],
}

/// Lets taps (and apps) be downcast to their concrete type by tests.
pub trait AsAny: Any {
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Any> AsAny for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// An observer of wire events.
pub trait Tap: AsAny {
    fn record(&mut self, event: &WireEvent<'_>);
}

/// A 64-bit FNV-1a digest of every wire event (time, kind, port, bytes):
/// two runs with equal digests put identical frames on the wire at identical times.
#[derive(Clone, Debug)]
pub struct TraceDigest {
    state: u64,
    events: u64,
}

impl Default for TraceDigest {
    fn default() -> Self {
        TraceDigest {
            state: 0xcbf2_9ce4_8422_2325,
            events: 0,
        }
    }
}

impl TraceDigest {
    pub fn new() -> TraceDigest {
        TraceDigest::default()
    }
    pub fn digest(&self) -> u64 {
        self.state
    }
    pub fn events(&self) -> u64 {
        self.events
    }
    fn mix(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.state ^= u64::from(b);
            self.state = self.state.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl Tap for TraceDigest {
    fn record(&mut self, e: &WireEvent<'_>) {
        self.events += 1;
        self.mix(&e.at.total_micros().to_le_bytes());
        let (code, port, extra) = match e.kind {
            WireEventKind::Sent { port } => (0u8, port, 0u8),
            WireEventKind::Dropped {
                port,
                direction,
                reason,
            } => (
                1,
                port,
                (direction == Direction::Downlink) as u8
                    | ((reason == DropReason::QueueFull) as u8) << 1,
            ),
            WireEventKind::Filtered { port } => (2, port, 0),
            WireEventKind::Delivered { port, corrupted } => (3, port, corrupted as u8),
        };
        self.mix(&[code, extra]);
        self.mix(&(port as u64).to_le_bytes());
        self.mix(&(e.frame.len() as u64).to_le_bytes());
        self.mix(e.frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_depends_on_time_kind_and_bytes() {
        let ev = |at, kind, frame: &'static [u8]| WireEvent {
            at: Instant::from_micros(at),
            kind,
            frame,
        };
        let digest = |events: &[WireEvent<'_>]| {
            let mut d = TraceDigest::new();
            events.iter().for_each(|e| d.record(e));
            d.digest()
        };
        let base = [ev(1, WireEventKind::Sent { port: 0 }, b"abc")];
        assert_eq!(digest(&base), digest(&base));
        assert_ne!(
            digest(&base),
            digest(&[ev(2, WireEventKind::Sent { port: 0 }, b"abc")])
        );
        assert_ne!(
            digest(&base),
            digest(&[ev(1, WireEventKind::Sent { port: 1 }, b"abc")])
        );
        assert_ne!(
            digest(&base),
            digest(&[ev(
                1,
                WireEventKind::Delivered {
                    port: 0,
                    corrupted: false
                },
                b"abc"
            )])
        );
        assert_ne!(
            digest(&base),
            digest(&[ev(1, WireEventKind::Sent { port: 0 }, b"abd")])
        );
    }
}
