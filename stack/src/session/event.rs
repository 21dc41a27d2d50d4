//! What the engine tells an application: event kinds and the event value.

use core::fmt;

/// A set of event kinds, coalesced per socket.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct EventSet(pub u16);

impl EventSet {
    pub const EMPTY: EventSet = EventSet(0);
    /// A listener has a connection ready to accept.
    pub const ACCEPTABLE: EventSet = EventSet(1 << 0);
    /// An active open completed.
    pub const CONNECTED: EventSet = EventSet(1 << 1);
    /// New data (or end of stream) can be read.
    pub const READABLE: EventSet = EventSet(1 << 2);
    /// Send-buffer space became available.
    pub const WRITABLE: EventSet = EventSet(1 << 3);
    /// The peer sent FIN: reads will hit end of stream after the buffered data.
    pub const PEER_CLOSED: EventSet = EventSet(1 << 4);
    /// The connection was reset (by the peer, or aborted locally after errors).
    pub const RESET: EventSet = EventSet(1 << 5);
    /// An error is pending (refused, timed out); read it with the socket's error call.
    pub const ERROR: EventSet = EventSet(1 << 6);
    /// The connection is fully closed; its handle may be released.
    pub const CLOSED: EventSet = EventSet(1 << 7);

    pub const fn contains(self, other: EventSet) -> bool {
        self.0 & other.0 == other.0
    }
    pub const fn intersects(self, other: EventSet) -> bool {
        self.0 & other.0 != 0
    }
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub const fn union(self, other: EventSet) -> EventSet {
        EventSet(self.0 | other.0)
    }
    pub fn insert(&mut self, other: EventSet) {
        self.0 |= other.0
    }
    pub fn take(&mut self) -> EventSet {
        core::mem::take(self)
    }
}

impl core::ops::BitOr for EventSet {
    type Output = EventSet;
    fn bitor(self, o: EventSet) -> EventSet {
        self.union(o)
    }
}
impl core::ops::BitOrAssign for EventSet {
    fn bitor_assign(&mut self, o: EventSet) {
        self.insert(o)
    }
}

impl fmt::Debug for EventSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Self::ACCEPTABLE, "ACCEPTABLE"), (Self::CONNECTED, "CONNECTED"), (Self::READABLE, "READABLE"),
            (Self::WRITABLE, "WRITABLE"), (Self::PEER_CLOSED, "PEER_CLOSED"), (Self::RESET, "RESET"),
            (Self::ERROR, "ERROR"), (Self::CLOSED, "CLOSED"),
        ];
        let mut first = true;
        f.write_str("{")?;
        for (bit, n) in names {
            if self.contains(bit) {
                if !first { f.write_str("|")?; }
                f.write_str(n)?;
                first = false;
            }
        }
        f.write_str("}")
    }
}

/// Priority carried by events (and later by packets); 0 is the default class.
/// Application-defined priority (seeds 000, 002) will set it; the queue keeps it.
pub type Priority = u8;

/// One event, stored by value: the socket it is about (a generation-checked
/// key, so an event that outlives its socket cannot reach another), what
/// happened, and the priority of the socket when it was posted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Event<K> {
    pub key: K,
    pub kinds: EventSet,
    pub priority: Priority,
}
