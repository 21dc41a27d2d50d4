//! The event consumer (design §4.3): whoever gets the drain token (a
//! try-only lock, never waited on) pops events and applies them, in ring
//! order, to sessions, listeners' accept queues and the replies table, and
//! wakes the threads and pollers each change concerns.
//!
//! Events name daemon handles. A handle whose slot has no live local session,
//! or whose generation is not the one the session was bound to, belongs to a
//! life that ended here (closed) and its event is dropped.

use std::sync::atomic::Ordering;

use sluice_shm::protocol::{ready, AppEvent, Request};
use sluice_shm::{Event, SessionHandle};

use crate::replies::Purpose;
use crate::session::{bits, Session, State};
use crate::table::Key;
use crate::Vcl;

/// Events popped per token hold (their slots are freed together).
const BATCH: usize = 64;
/// Events one call applies at most, so a caller's own operation is not
/// delayed without bound by a busy daemon.
const MAX_PER_CALL: usize = 1024;

impl Vcl {
    /// Applies waiting events, if no other thread is doing it.
    pub(crate) fn drain(&self) {
        if self.is_stale() {
            // A fork child's copy: the event ring is not mapped here.
            return;
        }
        let mut total = 0;
        while total < MAX_PER_CALL {
            let Some(mut consumer) = self.events.try_lock() else { return };
            self.release_ended();
            if !consumer.is_ready() {
                return;
            }
            let mut batch = [Event::default(); BATCH];
            let mut n = 0;
            consumer.drain(BATCH, |e| {
                batch[n] = e;
                n += 1;
            });
            // Applied before the token is released, so events of one session
            // are never applied out of order by two threads.
            for e in &batch[..n] {
                self.apply(e);
            }
            drop(consumer);
            total += n;
        }
    }

    /// Makes the slots of ended lives allocatable (drain token held).
    fn release_ended(&self) {
        let mut released = self.released.lock();
        if released.is_empty() {
            return;
        }
        for key in released.drain(..) {
            self.table.release(key);
        }
    }

    /// Whether events wait in the ring. With the token held elsewhere the
    /// answer is "yes": that thread is applying them, and the caller must
    /// not sleep as if nothing were pending.
    pub(crate) fn events_pending(&self) -> bool {
        match self.events.try_lock() {
            Some(c) => c.is_ready(),
            None => {
                std::thread::yield_now();
                true
            }
        }
    }

    fn apply(&self, e: &Event) {
        match AppEvent::decode(e) {
            Some(AppEvent::Session { handle, bits, errno }) => self.on_session_event(handle, bits, errno),
            Some(AppEvent::Accepted { listener, conn }) => self.on_accepted(listener, conn),
            Some(AppEvent::Reply { req_id, result }) => self.on_reply(req_id, result),
            None => log::debug!("skipping an event this version does not know: {e:?}"),
        }
    }

    /// The live session bound to `h`, if any.
    fn lookup(&self, h: SessionHandle) -> Option<(Key, &Session)> {
        let key = self.slots.owner(h)?;
        let s = self.table.get(key)?;
        (s.daemon() == Some(h)).then_some((key, s))
    }

    fn on_session_event(&self, h: SessionHandle, raised: u16, errno: i32) {
        let Some((key, s)) = self.lookup(h) else {
            log::trace!("event for closed session {h:?} dropped");
            return;
        };
        let raised = u32::from(raised);
        let fatal = raised & u32::from(ready::RESET | ready::ERROR) != 0;
        let before = s.bits.load(Ordering::Acquire);
        let state = s.state();
        // Order: error, then bits, then state. Readers that see the bits (or
        // a connect waiter that sees the state) then find the error.
        if fatal && before & u32::from(ready::RESET | ready::ERROR) == 0 {
            let e = if raised & u32::from(ready::ERROR) != 0 && errno > 0 {
                errno
            } else if state == State::Connecting {
                // tcp_reset(): a reset answering a SYN is a refusal.
                libc::ECONNREFUSED
            } else {
                libc::ECONNRESET
            };
            s.errno.store(e, Ordering::Release);
        }
        s.bits.fetch_or(raised & bits::STICKY, Ordering::AcqRel);
        if state == State::Connecting {
            if fatal || raised & bits::DEAD != 0 {
                s.transition(State::Connecting, State::Failed);
            } else if raised & bits::CONNECTED != 0 {
                s.transition(State::Connecting, State::Connected);
            }
        }
        s.changed(key);
    }

    fn on_accepted(&self, listener: SessionHandle, conn: SessionHandle) {
        let home = self.link.home();
        let Some((lkey, ls)) = self.lookup(listener).filter(|(_, ls)| ls.state() == State::Listening) else {
            // The listener was closed here after the daemon queued this one
            // (or the handle is no listener: the daemon's bug).
            self.send_or_log(home, &Request::Abort { handle: conn });
            return;
        };
        let published = self.slots.words(conn.index).is_some_and(|w| w.gen.load(Ordering::Acquire) == conn.gen);
        if !published {
            log::error!("ACCEPTED names {conn:?}, whose desc is not published; resetting it");
            self.send_or_log(home, &Request::Abort { handle: conn });
            return;
        }
        let Some((ckey, cs)) = self.table.alloc() else {
            log::warn!("session table full: resetting an accepted connection");
            self.send_or_log(home, &Request::Abort { handle: conn });
            return;
        };
        cs.begin_life(ckey.gen);
        cs.set_state(State::Connected);
        cs.bits.store(bits::CONNECTED, Ordering::Release);
        if !self.bind(ckey, cs, conn) {
            self.discard(ckey);
            self.send_or_log(home, &Request::Abort { handle: conn });
            return;
        }
        {
            let mut q = ls.accept.lock();
            if q.life != lkey.gen {
                drop(q);
                self.discard(ckey);
                return;
            }
            q.queue.push_back(ckey);
            ls.queued.fetch_add(1, Ordering::AcqRel);
        }
        ls.changed(lkey);
    }

    fn on_reply(&self, req_id: u32, result: Result<u64, i32>) {
        let Some(purpose) = self.replies.purpose(req_id) else {
            log::debug!("reply to unknown request {req_id} dropped");
            return;
        };
        match purpose {
            Purpose::Listen(key) => self.on_open_reply(key, result, State::ListenPending),
            Purpose::Connect(key) => self.on_open_reply(key, result, State::Connecting),
            Purpose::Wait => {}
            Purpose::Discard => {
                if let Err(e) = result {
                    log::warn!("request {req_id} failed in the daemon: {}", std::io::Error::from_raw_os_error(e));
                }
            }
        }
        if self.replies.finish(req_id, result) {
            self.replies.waiters.notify_all();
        }
    }

    /// The reply to the `LISTEN`/`CONNECT` of `key` (in state `opening`).
    fn on_open_reply(&self, key: Key, result: Result<u64, i32>, opening: State) {
        let home = self.link.home();
        let handle = match result {
            Ok(raw) => match SessionHandle::from_u64(raw) {
                Some(h) => Ok(h),
                None => {
                    log::error!("daemon replied with an invalid handle {raw:#x}");
                    Err(libc::EPROTO)
                }
            },
            Err(e) => Err(e),
        };
        let Some(s) = self.table.get(key) else {
            // Closed while the request was in flight: release what it made.
            if let Ok(handle) = handle {
                let req =
                    if opening == State::Connecting { Request::Abort { handle } } else { Request::Close { handle } };
                self.send_or_log(home, &req);
            }
            return;
        };
        match handle {
            Ok(h) if self.bind(key, s, h) => {
                if opening == State::ListenPending {
                    s.transition(State::ListenPending, State::Listening);
                }
            }
            Ok(handle) => {
                let req =
                    if opening == State::Connecting { Request::Abort { handle } } else { Request::Close { handle } };
                self.send_or_log(home, &req);
            }
            Err(e) if opening == State::Connecting => {
                s.errno.store(e, Ordering::Release);
                s.bits.fetch_or(u32::from(ready::ERROR), Ordering::AcqRel);
                s.transition(State::Connecting, State::Failed);
            }
            // The listen caller reports the errno; the socket is unbound again.
            Err(_) => {
                s.transition(State::ListenPending, State::Candidate);
            }
        }
        s.changed(key);
    }
}
