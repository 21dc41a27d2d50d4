//! What the daemon keeps privately per session slot: the engine socket
//! behind it, the daemon's halves of its fifos, and its flow-control state.
//! Nothing here is read back from shared memory; the shared words are
//! reached through the fifo halves and the desc/app-word views.

use std::collections::VecDeque;

use sluice_shm::layout::{SessionAppWords, SessionDesc};
use sluice_shm::protocol::SockOption;
use sluice_shm::{FifoConsumer, FifoProducer, SessionHandle};
use sluice_stack::{ConnId, ListenerId, SocketId};

use super::cut_through::CutEnd;

/// One live session slot.
pub(super) struct Session {
    /// The slot's desc (daemon-written) and app words (app-written).
    pub desc: SessionDesc,
    pub words: SessionAppWords,
    pub role: Role,
    /// Its entry in the coalescing event backlog.
    pub backlog: BacklogEntry,
}

/// A session's pending `SESSION` event while it waits in the backlog.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct BacklogEntry {
    /// In the backlog queue (at most once).
    pub queued: bool,
    /// Readiness bits ORed since it was queued.
    pub bits: u16,
    /// The errno of the last `ERROR` among them.
    pub errno: i32,
}

pub(super) enum Role {
    Conn(Conn),
    Listener(Listener),
    /// One end of a cut-through pair (no engine connection, `cut_through`).
    Cut(CutEnd),
}

impl Session {
    /// The engine socket behind the session (none for a cut-through end).
    pub fn socket(&self) -> Option<SocketId> {
        match &self.role {
            Role::Conn(c) => Some(SocketId::Conn(c.id)),
            Role::Listener(l) => Some(SocketId::Listener(l.id)),
            Role::Cut(_) => None,
        }
    }

    pub fn conn_mut(&mut self) -> Option<&mut Conn> {
        match &mut self.role {
            Role::Conn(c) => Some(c),
            _ => None,
        }
    }

    pub fn listener_mut(&mut self) -> Option<&mut Listener> {
        match &mut self.role {
            Role::Listener(l) => Some(l),
            _ => None,
        }
    }

    pub fn cut_mut(&mut self) -> Option<&mut CutEnd> {
        match &mut self.role {
            Role::Cut(c) => Some(c),
            _ => None,
        }
    }

    /// The app has given the handle up (CLOSE, or its app worker is gone):
    /// the slot only waits for its TX fifo to drain.
    pub fn released(&self) -> bool {
        match &self.role {
            Role::Conn(c) => c.released,
            Role::Cut(c) => c.released,
            Role::Listener(_) => false,
        }
    }
}

/// Whether the peer's FIN has reached the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fin {
    /// Not received.
    None,
    /// Received by the engine; reported once every byte before it is in
    /// the RX fifo.
    Pending,
    /// Reported.
    Delivered,
}

/// A connection session.
pub(super) struct Conn {
    pub id: ConnId,
    /// RX fifo: the daemon produces (engine → app).
    pub rx: FifoProducer,
    /// TX fifo: the daemon consumes (app → engine).
    pub tx: FifoConsumer,
    /// The engine holds bytes that did not fit in the RX fifo; the desc's
    /// `RX_BLOCKED` word is 1 and the app will send `RX_SPACE`.
    pub rx_blocked: bool,
    pub fin: Fin,
    /// The engine took less than the TX fifo held: the rest moves when the
    /// engine reports `WRITABLE` (the retry list is this flag plus that event).
    pub tx_waiting: bool,
    /// A shutdown or close waiting for the TX fifo to drain.
    pub finish: Option<Finish>,
    /// `SHUTDOWN(Write)` has reached the engine.
    pub write_shut: bool,
    /// The app closed the handle: no events are sent for it any more.
    pub released: bool,
}

/// What follows once `remaining` more TX fifo bytes have reached the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Finish {
    /// TX fifo bytes still to move. A snapshot of what the fifo held when
    /// the request arrived, so an app that keeps writing after its close
    /// cannot keep the slot alive.
    pub remaining: u32,
    pub then: FinishAction,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FinishAction {
    /// `tcp_shutdown(Write)`: FIN after the data.
    ShutdownWrite,
    /// `tcp_close` and free the slot.
    Close,
}

impl Conn {
    pub fn new(id: ConnId, rx: FifoProducer, tx: FifoConsumer) -> Conn {
        Conn {
            id,
            rx,
            tx,
            rx_blocked: false,
            fin: Fin::None,
            tx_waiting: false,
            finish: None,
            write_shut: false,
            released: false,
        }
    }
}

/// A listener session.
pub(super) struct Listener {
    pub id: ListenerId,
    /// Most connections pushed to the app and not yet taken (its backlog).
    pub credit: u32,
    /// `ACCEPTED` events pushed (wrapping), mirrored in the desc's `ACCEPT_PUSHED`.
    pub pushed: u32,
    /// The last valid `ACCEPT_TAKEN` the app wrote.
    pub taken: u32,
    /// Connections pushed that the app may not have taken yet, as
    /// (push number, handle), oldest first: reset if the listener closes.
    pub unaccepted: VecDeque<(u32, SessionHandle)>,
    /// Options set on the listener, which accepted connections inherit
    /// (as `tcp(7)` options set on a listening socket are).
    pub inherited: Vec<(SockOption, u64)>,
}

impl Listener {
    pub fn new(id: ListenerId, credit: u32) -> Listener {
        Listener { id, credit, pushed: 0, taken: 0, unaccepted: VecDeque::new(), inherited: Vec::new() }
    }

    /// Connections pushed and not taken.
    pub fn outstanding(&self) -> u32 {
        self.pushed.wrapping_sub(self.taken)
    }

    /// Takes the app's `ACCEPT_TAKEN` word if it lies in `[taken, pushed]`
    /// (wrapping); false (and no change) otherwise, a violation.
    pub fn update_taken(&mut self, raw: u32) -> bool {
        if raw.wrapping_sub(self.taken) > self.outstanding() {
            return false;
        }
        self.taken = raw;
        while let Some(&(seq, _)) = self.unaccepted.front() {
            // Entries before `taken` were taken by the app.
            if seq.wrapping_sub(self.taken) < self.outstanding() {
                break;
            }
            self.unaccepted.pop_front();
        }
        true
    }

    /// Remembers an option for connections accepted later.
    pub fn inherit(&mut self, option: SockOption, value: u64) {
        self.inherited.retain(|(o, _)| *o != option);
        self.inherited.push((option, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener() -> Listener {
        Listener::new(ListenerId::from_parts(0, 0), 4)
    }

    #[test]
    fn taken_moves_only_within_what_was_pushed() {
        let mut l = listener();
        for i in 0..3u32 {
            l.unaccepted.push_back((i, SessionHandle::new(i, 1).unwrap()));
        }
        l.pushed = 3;
        assert!(!l.update_taken(4), "beyond pushed");
        assert!(l.update_taken(2));
        assert_eq!(l.outstanding(), 1);
        assert_eq!(l.unaccepted.len(), 1, "the two taken are forgotten");
        assert!(!l.update_taken(1), "backwards");
        assert!(!l.update_taken(u32::MAX), "far backwards (wrapping)");
        assert_eq!(l.taken, 2);
    }

    #[test]
    fn taken_wraps_with_pushed() {
        let mut l = listener();
        l.pushed = u32::MAX;
        l.taken = u32::MAX - 1;
        l.pushed = l.pushed.wrapping_add(2); // 1
        assert!(l.update_taken(0));
        assert_eq!(l.outstanding(), 1);
    }

    #[test]
    fn inherited_options_keep_the_last_value() {
        let mut l = listener();
        l.inherit(SockOption::NoDelay, 1);
        l.inherit(SockOption::KeepIdle, 30);
        l.inherit(SockOption::NoDelay, 0);
        assert_eq!(l.inherited, vec![(SockOption::KeepIdle, 30), (SockOption::NoDelay, 0)]);
    }
}
