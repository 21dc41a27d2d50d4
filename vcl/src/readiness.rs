//! A session's readiness, computed exactly the way Linux's `tcp_poll` does
//! from the socket's state, here from the fifo index words and the sticky
//! event bits (design §4.2):
//!
//! * readable: RX bytes, the peer's FIN reached the app (`PEER_CLOSED` with
//!   nothing held back in the daemon), a local `SHUT_RD`, a reset/failure,
//!   a pending error, or (listener) queued connections;
//! * writable: connected with at least a quarter of the TX fifo free
//!   (`sk_stream_is_writeable`), or writes would fail at once (local
//!   `SHUT_WR`, reset, failure);
//! * rdhup: the receive side is shut (`RCV_SHUTDOWN`);
//! * hup: both sides are shut or the connection is over, and a socket that
//!   was never connected (Linux: `TCP_CLOSE` polls `POLLOUT | POLLHUP`);
//! * error: `SO_ERROR` is pending.

use std::sync::atomic::Ordering;

use crate::session::{bits, Session, State};
use crate::Vcl;

/// What `poll(2)` would report for a socket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Readiness {
    /// `POLLIN`: a read (or accept) would not block.
    pub readable: bool,
    /// `POLLOUT`: a write would not block.
    pub writable: bool,
    /// `POLLRDHUP`: the peer shut its sending side (or this side shut
    /// reading).
    pub rdhup: bool,
    /// `POLLHUP`: both directions are shut, or the connection is over.
    pub hup: bool,
    /// `POLLERR`: an error is pending (`take_error`).
    pub error: bool,
}

impl Readiness {
    /// Nothing to report.
    pub fn is_empty(&self) -> bool {
        *self == Readiness::default()
    }
}

impl Vcl {
    /// `s`'s current readiness.
    pub(crate) fn readiness_of(&self, s: &Session) -> Readiness {
        let error = s.has_errno();
        let state = s.state();
        match state {
            State::Candidate => Readiness { writable: true, hup: true, error, ..Readiness::default() },
            State::ListenPending | State::Connecting => Readiness { error, ..Readiness::default() },
            State::Listening => {
                Readiness { readable: s.queued.load(Ordering::Acquire) > 0 || error, error, ..Readiness::default() }
            }
            State::Connected | State::Failed => {
                let b = s.bits.load(Ordering::Acquire);
                let words = s.daemon().and_then(|h| self.slots.words(h.index));
                let (rx, blocked, tx_writable) = match words {
                    Some(w) => (
                        w.rx_readable(),
                        w.rx_blocked.load(Ordering::Acquire) != 0,
                        w.tx_free() >= (w.tx_size / 4).max(1),
                    ),
                    None => (0, false, false),
                };
                let dead = b & bits::DEAD != 0 || state == State::Failed;
                // The FIN counts once every byte before it is in the fifo: the
                // daemon holds bytes back while RX_BLOCKED is set.
                let rd_shut = dead || b & bits::SHUT_RD != 0 || (b & bits::PEER_CLOSED != 0 && !blocked);
                let wr_shut = dead || b & bits::SHUT_WR != 0;
                Readiness {
                    readable: rx > 0 || rd_shut || error,
                    writable: wr_shut || tx_writable,
                    rdhup: rd_shut,
                    hup: dead || (rd_shut && wr_shut),
                    error,
                }
            }
        }
    }
}
