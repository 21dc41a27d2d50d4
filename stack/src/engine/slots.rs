//! What the engine keeps per connection and per listener (the arena slots
//! behind [`ConnId`](super::ConnId) and [`ListenerId`](super::ListenerId)).

use core::net::SocketAddrV4;

use super::accept_queue::AcceptQueue;
use super::{ConnId, ConsumerId, ListenerId};
use crate::session::event::EventSet;
use crate::session::event_queue::EventTicket;
use crate::session::timer_wheel::TimerId;
use crate::tcp::conn::TcpConn;
use crate::time::Instant;

/// Where a connection stands with respect to the application.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Origin {
    /// Opened by `tcp_connect`: the application holds its handle.
    Active,
    /// Passive, handshake in progress; counted in the listener's half-open total.
    HalfOpen(ListenerId),
    /// Passive, established, waiting in the listener's accept queue.
    Queued(ListenerId),
    /// Returned by `tcp_accept`: the application holds its handle.
    Accepted,
    /// Never reached the application (its listener went away or its queue
    /// overflowed); it only finishes sending its RST.
    Unowned,
}

/// A connection and the engine's bookkeeping for it.
pub struct ConnSlot {
    pub(crate) conn: TcpConn,
    /// The consumer whose queue gets this connection's events.
    pub(crate) owner: ConsumerId,
    pub(crate) origin: Origin,
    /// The application closed its handle: the connection is an orphan that
    /// finishes in the background and is freed when done.
    pub(crate) app_released: bool,
    /// Whether the four-tuple is in the connection table (removed as soon as
    /// the connection is finished, so the tuple can be reused).
    pub(crate) in_table: bool,
    /// `Stack::unlink` ran: the finished connection only waits to be freed.
    pub(crate) unlinked: bool,
    /// The unread entry in the owner's event queue, for coalescing.
    pub(crate) ticket: Option<EventTicket>,
    /// Events that happened before the application could see the connection
    /// (before `tcp_accept`); posted when it is accepted.
    pub(crate) unreported: EventSet,
    /// The scheduled wheel entry and its deadline.
    pub(crate) timer: Option<(TimerId, Instant)>,
    /// In `Stack::dirty`.
    pub(crate) dirty: bool,
    /// In `Stack::postponed`.
    pub(crate) postponed: bool,
    /// In `Stack::neighbour_waiters`.
    pub(crate) waiting_for_neighbour: bool,
    /// In `Stack::time_wait`.
    pub(crate) time_wait_listed: bool,
    /// Our initial sequence number, for an active open: ICMP errors about
    /// its SYN must quote it (see `unreachable`).
    pub(crate) iss: Option<crate::tcp::seq::SeqNum>,
    /// ARP resolutions of its next hop that failed with its frames waiting,
    /// and when the last one did (see `unreachable`).
    pub(crate) link_failures: (u8, Option<Instant>),
    /// An error the engine (not the connection) ended it with.
    pub(crate) error: Option<crate::error::Error>,
    /// Counters already added to the engine's stats.
    pub(crate) reported_retransmits: u64,
    pub(crate) reported_timeouts: u64,
}

impl ConnSlot {
    pub(crate) fn new(conn: TcpConn, owner: ConsumerId, origin: Origin) -> Self {
        ConnSlot {
            conn,
            owner,
            origin,
            app_released: false,
            in_table: false,
            unlinked: false,
            ticket: None,
            unreported: EventSet::EMPTY,
            timer: None,
            dirty: false,
            postponed: false,
            time_wait_listed: false,
            waiting_for_neighbour: false,
            iss: None,
            link_failures: (0, None),
            error: None,
            reported_retransmits: 0,
            reported_timeouts: 0,
        }
    }

    /// The application holds a handle to this connection.
    pub(crate) fn app_visible(&self) -> bool {
        !self.app_released && matches!(self.origin, Origin::Active | Origin::Accepted)
    }

    /// Nobody will ever need the slot again once the connection is finished.
    pub(crate) fn releasable(&self) -> bool {
        self.app_released || !matches!(self.origin, Origin::Active | Origin::Accepted)
    }
}

/// A listening socket.
pub struct ListenerSlot {
    /// Address as bound (0.0.0.0 = every local address).
    pub(crate) local: SocketAddrV4,
    pub(crate) backlog: usize,
    /// Established connections waiting for `tcp_accept`, at most `backlog`.
    pub(crate) accept_queue: AcceptQueue<ConnId>,
    /// Handshakes in progress for this listener, at most `backlog`.
    pub(crate) half_open: usize,
    pub(crate) reuse_port: bool,
    pub(crate) owner: ConsumerId,
    pub(crate) ticket: Option<EventTicket>,
    /// Set by the first `tcp_accept` (or explicitly): a reuse-port group
    /// gives new connections only to members that accept.
    pub(crate) accepting: bool,
}
