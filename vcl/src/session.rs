//! One session as this process sees it (design §4.2): its state, the sticky
//! readiness bits events raised, the pending `SO_ERROR`, the daemon handle
//! once known, and the two fifo halves behind their tokens.
//!
//! The fifos are single-producer single-consumer, so one thread at a time
//! reads (`rx`) and one writes (`tx`); each half sits behind its own mutex,
//! used as a token: uncontended it is one compare-and-swap, and it is held
//! only for the copy and the flow-control words, never across a sleep. Each
//! half records the life it belongs to, so a thread that looked a session up
//! before it was closed finds, once it holds the token, that the life is
//! over (`EBADF`) and touches nothing the next life owns.
//!
//! Lock order: `rx`, then `tx`, then `setup`, then `accept`, then `watchers`.

use std::collections::VecDeque;
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Weak;
use std::time::Duration;

use parking_lot::Mutex;
use sluice_shm::protocol::{ready, SockOption};
use sluice_shm::{FifoConsumer, FifoProducer, SessionHandle};

use crate::poller::PollerShared;
use crate::table::Key;
use crate::wait::WaitList;

/// Where a session is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum State {
    /// Created, maybe bound, not yet known to the daemon.
    Candidate = 0,
    /// `LISTEN` sent, reply not yet in.
    ListenPending = 1,
    Listening = 2,
    /// `CONNECT` sent; `CONNECTED` (or a failure) not yet in.
    Connecting = 3,
    /// Connected (accepted connections start here).
    Connected = 4,
    /// The connection attempt failed.
    Failed = 5,
}

impl State {
    fn from_u8(v: u8) -> State {
        match v {
            1 => State::ListenPending,
            2 => State::Listening,
            3 => State::Connecting,
            4 => State::Connected,
            5 => State::Failed,
            _ => State::Candidate,
        }
    }
}

/// Bits of [`Session::bits`]: the low byte holds the protocol's sticky
/// readiness bits ([`ready`]) as events raised them; local shutdowns above.
pub(crate) mod bits {
    use super::ready;
    /// Event bits that stay set once raised.
    pub const STICKY: u32 =
        (ready::CONNECTED | ready::PEER_CLOSED | ready::RESET | ready::ERROR | ready::CLOSED) as u32;
    /// The connection is over (reset, failed, or fully closed).
    pub const DEAD: u32 = (ready::RESET | ready::ERROR | ready::CLOSED) as u32;
    pub const PEER_CLOSED: u32 = ready::PEER_CLOSED as u32;
    pub const CONNECTED: u32 = ready::CONNECTED as u32;
    /// `shutdown(SHUT_RD)` here.
    pub const SHUT_RD: u32 = 1 << 16;
    /// `shutdown(SHUT_WR)` here.
    pub const SHUT_WR: u32 = 1 << 17;
}

/// The reading half: RX fifo consumer.
#[derive(Default)]
pub(crate) struct RxHalf {
    /// Generation of the life this half belongs to.
    pub life: u32,
    pub fifo: Option<FifoConsumer>,
}

/// The writing half: TX fifo producer.
#[derive(Default)]
pub(crate) struct TxHalf {
    pub life: u32,
    pub fifo: Option<FifoProducer>,
}

/// What is chosen before the daemon knows the session.
#[derive(Default)]
pub(crate) struct Setup {
    /// Where to bind; once listening, the address the daemon bound (what a
    /// fork child re-creates the listener on).
    pub bound: Option<SocketAddrV4>,
    pub reuse_port: bool,
    /// `LISTEN` re-creates a listener inherited through fork ([`crate::fork`]).
    pub inherited: bool,
    /// Options set before the daemon handle existed; sent once it does.
    pub options: Vec<(SockOption, u64)>,
}

/// A listener's accepted connections not yet handed to the user.
#[derive(Default)]
pub(crate) struct AcceptQueue {
    pub life: u32,
    pub queue: VecDeque<Key>,
    /// The backlog asked for: the daemon's accept credit (protocol doc).
    pub backlog: u32,
}

#[derive(Default)]
pub(crate) struct Session {
    state: AtomicU8,
    /// Sticky event bits and local shutdowns ([`bits`]).
    pub bits: AtomicU32,
    /// Pending `SO_ERROR` (0: none); read-and-cleared as the kernel does.
    pub errno: AtomicI32,
    /// Packed daemon handle (0: none yet).
    daemon: AtomicU64,
    /// The daemon worker whose request ring serves the session (v1: the
    /// home ring; per-session so that W > 1 can move sessions later).
    worker: AtomicU32,
    /// Bumped on every change a poller may care about (events, local
    /// shutdowns, accepts): edge-triggered reporting compares it.
    pub seq: AtomicU32,
    pub nonblocking: AtomicBool,
    /// `SET_ACCEPTING` has been sent for this listener.
    pub accepting_sent: AtomicBool,
    /// `SO_RCVTIMEO` / `SO_SNDTIMEO` in microseconds (0: none).
    read_timeout_us: AtomicU64,
    write_timeout_us: AtomicU64,
    /// Length of the accept queue, for lock-free readiness.
    pub queued: AtomicU32,
    /// Who wants the connection corked ([`crate::cork`]): `TCP_CORK`, a
    /// pending `MSG_MORE`.
    pub cork: AtomicU8,
    pub rx: Mutex<RxHalf>,
    pub tx: Mutex<TxHalf>,
    pub setup: Mutex<Setup>,
    pub accept: Mutex<AcceptQueue>,
    /// Threads blocked on this session.
    pub waiters: WaitList,
    /// Pollers watching this session.
    pub watchers: Mutex<Vec<Weak<PollerShared>>>,
}

fn micros(d: Option<Duration>) -> u64 {
    // Zero means "no timeout" (SO_RCVTIMEO with a zero timeval), so a
    // positive duration below a microsecond rounds up.
    d.map_or(0, |d| (d.as_micros().min(u128::from(u64::MAX)) as u64).max(u64::from(!d.is_zero())))
}

fn duration(us: u64) -> Option<Duration> {
    (us != 0).then(|| Duration::from_micros(us))
}

impl Session {
    /// Starts life `life` from a clean state (the slot was just allocated).
    pub(crate) fn begin_life(&self, life: u32) {
        self.state.store(State::Candidate as u8, Ordering::Relaxed);
        self.bits.store(0, Ordering::Relaxed);
        self.errno.store(0, Ordering::Relaxed);
        self.daemon.store(0, Ordering::Relaxed);
        self.worker.store(0, Ordering::Relaxed);
        self.nonblocking.store(false, Ordering::Relaxed);
        self.accepting_sent.store(false, Ordering::Relaxed);
        self.read_timeout_us.store(0, Ordering::Relaxed);
        self.write_timeout_us.store(0, Ordering::Relaxed);
        self.queued.store(0, Ordering::Relaxed);
        self.cork.store(0, Ordering::Relaxed);
        *self.rx.lock() = RxHalf { life, fifo: None };
        *self.tx.lock() = TxHalf { life, fifo: None };
        *self.setup.lock() = Setup::default();
        *self.accept.lock() = AcceptQueue { life, ..AcceptQueue::default() };
        self.watchers.lock().clear();
        // Publishes the stores above to whoever reads `seq` first.
        self.seq.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Acquire))
    }

    pub(crate) fn set_state(&self, s: State) {
        self.state.store(s as u8, Ordering::Release);
    }

    /// Moves `from` → `to`; whether this call did.
    pub(crate) fn transition(&self, from: State, to: State) -> bool {
        self.state.compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    pub(crate) fn daemon(&self) -> Option<SessionHandle> {
        SessionHandle::from_u64(self.daemon.load(Ordering::Acquire))
    }

    /// Binds (or, with `None`, unbinds) the daemon handle. Called with the
    /// `rx` token held, so binding and closing cannot miss each other.
    pub(crate) fn set_daemon(&self, h: Option<SessionHandle>) {
        self.daemon.store(h.map_or(0, SessionHandle::to_u64), Ordering::Release);
    }

    pub(crate) fn worker(&self) -> u32 {
        self.worker.load(Ordering::Relaxed)
    }

    pub(crate) fn set_worker(&self, w: u32) {
        self.worker.store(w, Ordering::Relaxed);
    }

    /// Takes the pending error (`SO_ERROR` semantics: read once).
    pub(crate) fn take_errno(&self) -> Option<i32> {
        match self.errno.swap(0, Ordering::AcqRel) {
            0 => None,
            e => Some(e),
        }
    }

    pub(crate) fn has_errno(&self) -> bool {
        self.errno.load(Ordering::Acquire) != 0
    }

    pub(crate) fn read_timeout(&self) -> Option<Duration> {
        duration(self.read_timeout_us.load(Ordering::Relaxed))
    }

    pub(crate) fn write_timeout(&self) -> Option<Duration> {
        duration(self.write_timeout_us.load(Ordering::Relaxed))
    }

    pub(crate) fn set_read_timeout(&self, d: Option<Duration>) {
        self.read_timeout_us.store(micros(d), Ordering::Relaxed);
    }

    pub(crate) fn set_write_timeout(&self, d: Option<Duration>) {
        self.write_timeout_us.store(micros(d), Ordering::Relaxed);
    }

    /// Records a change and wakes whoever waits on or watches the session.
    pub(crate) fn changed(&self, key: Key) {
        self.seq.fetch_add(1, Ordering::AcqRel);
        self.waiters.notify_all();
        let watchers = self.watchers.lock();
        for w in watchers.iter() {
            if let Some(p) = w.upgrade() {
                p.mark_ready(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_keep_zero_for_none() {
        let s = Session::default();
        s.set_read_timeout(Some(Duration::from_nanos(1)));
        assert_eq!(s.read_timeout(), Some(Duration::from_micros(1)), "sub-microsecond rounds up, not to none");
        s.set_read_timeout(Some(Duration::ZERO));
        assert_eq!(s.read_timeout(), None, "zero is no timeout, as SO_RCVTIMEO");
        s.set_write_timeout(Some(Duration::from_millis(1500)));
        assert_eq!(s.write_timeout(), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn transitions_happen_once() {
        let s = Session::default();
        s.begin_life(1);
        assert_eq!(s.state(), State::Candidate);
        assert!(s.transition(State::Candidate, State::Connecting));
        assert!(!s.transition(State::Candidate, State::Connecting));
        assert_eq!(s.state(), State::Connecting);
    }
}
