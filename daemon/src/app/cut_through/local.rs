//! What an app's own requests do to its cut-through ends, in the app's
//! turn. The other end lives in another app's state, out of reach here, so
//! anything that concerns it is queued on [`CutThrough`] for `connect` and
//! `pump`, which run once every app has had its turn.

use std::net::SocketAddrV4;
use std::sync::atomic::Ordering;

use sluice_shm::layout::{app_words, desc};
use sluice_shm::protocol::ShutdownHow;
use sluice_shm::SessionHandle;
use sluice_stack::Duration;

use super::super::open::OUT_OF_SLOTS;
use super::super::session::{Finish, FinishAction, Role, Session};
use super::super::state::{App, Ctx};
use super::{CutEnd, CutThrough, Endpoint, Phase, CONNECT_TIMEOUT_SECS};

impl App {
    fn endpoint(&self, handle: SessionHandle) -> Endpoint {
        Endpoint { app: self.identity.id, handle }
    }

    fn cut_end(&mut self, handle: SessionHandle) -> Option<&mut CutEnd> {
        self.sessions.get_mut(handle).and_then(Session::cut_mut)
    }

    /// `CONNECT` hook: `None` if `remote` is for the engine. A remote on
    /// this host (the stack's address, or 127/8 with loopback interception)
    /// opens a cut-through client end; 127/8 without interception is not
    /// ours to serve and the engine would route it to the gateway, where it
    /// could only time out, so it fails at once as without a route.
    pub(in crate::app) fn cut_through_connect(
        &mut self,
        ctx: &mut Ctx<'_>,
        remote: SocketAddrV4,
        local: Option<SocketAddrV4>,
    ) -> Option<Result<u64, i32>> {
        let ip = *remote.ip();
        if ip.is_loopback() && !ctx.config.loopback {
            return Some(Err(libc::ENETUNREACH));
        }
        if !ip.is_loopback() && ip != ctx.stack.config().ip {
            return None;
        }
        Some(self.open_cut_client(ctx, remote, local))
    }

    /// The client end: published (addresses in its desc) with the reply;
    /// `CONNECTED` or `ERROR` follows once `connect` has found the listener.
    fn open_cut_client(
        &mut self,
        ctx: &mut Ctx<'_>,
        remote: SocketAddrV4,
        local: Option<SocketAddrV4>,
    ) -> Result<u64, i32> {
        if remote.port() == 0 {
            // As the engine refuses it.
            return Err(libc::EINVAL);
        }
        let handle = self.sessions.vacant().ok_or(OUT_OF_SLOTS)?;
        // The kernel's source for a loopback destination is that
        // destination's own host; for the stack's address, the address.
        let ip = *remote.ip();
        let bound = match local {
            Some(l) if !l.ip().is_unspecified() && *l.ip() != ip => return Err(libc::EADDRNOTAVAIL),
            Some(l) if l.port() != 0 => {
                let addr = SocketAddrV4::new(ip, l.port());
                if !ctx.cut.take(addr) {
                    return Err(libc::EADDRINUSE);
                }
                addr
            }
            _ => ctx.cut.take_ephemeral(ip, ctx.stack.config().ephemeral_ports).ok_or(libc::EADDRNOTAVAIL)?,
        };
        let deadline = ctx.now + Duration::from_secs(CONNECT_TIMEOUT_SECS);
        let installed = self.seg.publish_conn(handle, bound, remote).is_some_and(|slot| {
            let mut end = CutEnd::new(slot.rx, slot.tx, Phase::Connecting { remote, deadline });
            end.port = Some(bound);
            let session =
                Session { desc: slot.desc, words: slot.words, role: Role::Cut(end), backlog: Default::default() };
            self.sessions.insert(handle, session)
        });
        if !installed {
            ctx.cut.release(bound);
            log::error!("app worker {}: cannot publish session slot {}", self.identity.id.0, handle.index);
            return Err(libc::ENOMEM);
        }
        ctx.cut.pending.push(self.endpoint(handle));
        Ok(handle.to_u64())
    }

    /// `TX_READY` hook: `TX_PENDING` is cleared before the pump reads the
    /// fifo (protocol doc, TX), then the pair is queued.
    pub(in crate::app) fn cut_tx_ready(&mut self, ctx: &mut Ctx<'_>, handle: SessionHandle) -> Option<u16> {
        let session = self.sessions.get(handle).filter(|s| matches!(s.role, Role::Cut(_)))?;
        session.words.word(app_words::TX_PENDING).swap(0, Ordering::SeqCst);
        ctx.cut.kick(self.endpoint(handle));
        Some(0)
    }

    /// `RX_SPACE` hook: both words are cleared before the refill (protocol
    /// doc, RX), then the pair is queued.
    pub(in crate::app) fn cut_rx_space(&mut self, ctx: &mut Ctx<'_>, handle: SessionHandle) -> Option<u16> {
        let session = self.sessions.get(handle).filter(|s| matches!(s.role, Role::Cut(_)))?;
        session.words.word(app_words::RX_NOTE_SENT).store(0, Ordering::Relaxed);
        session.desc.word(desc::RX_BLOCKED).store(0, Ordering::Relaxed);
        ctx.cut.kick(self.endpoint(handle));
        Some(0)
    }

    /// `SHUTDOWN` hook. Writing ends with `PEER_CLOSED` to the peer after
    /// every byte already in the TX fifo. `SHUT_RD` changes nothing the
    /// peer sees, as on a kernel TCP socket (no segment is sent for it).
    pub(in crate::app) fn cut_shutdown(
        &mut self,
        ctx: &mut Ctx<'_>,
        handle: SessionHandle,
        how: ShutdownHow,
    ) -> Option<u16> {
        let end = self.cut_end(handle)?;
        if how == ShutdownHow::Read || end.write_shut || end.finish.is_some() || end.phase != Phase::Open {
            return Some(0);
        }
        match end.tx.readable() {
            Ok(remaining) => end.finish = Some(Finish { remaining, then: FinishAction::ShutdownWrite }),
            Err(violation) => {
                self.record_violation(ctx.now, &format_args!("session {}: {violation}", handle.index));
                self.cut_abort(ctx, handle);
                return Some(0);
            }
        }
        ctx.cut.kick(self.endpoint(handle));
        Some(0)
    }

    /// `CLOSE` hook (also the reaper's): unread bytes in the RX fifo or
    /// `SO_LINGER` 0 reset the pair (RFC 2525 §2.17); otherwise the end
    /// drains its TX fifo into the peer, then the peer gets `PEER_CLOSED`
    /// and the slot is freed. False if `handle` is not a cut-through end.
    pub(in crate::app) fn cut_close(&mut self, ctx: &mut Ctx<'_>, handle: SessionHandle) -> bool {
        let Some(end) = self.cut_end(handle) else { return false };
        if end.phase != Phase::Open || end.reset || end.peer.is_none() {
            // Nothing to tell a peer (never connected, failed, or reset).
            self.free_cut(ctx.cut, handle);
            return true;
        }
        let unread = match end.rx.free() {
            Ok(free) => free < end.rx.size(),
            Err(violation) => {
                self.record_violation(ctx.now, &format_args!("session {}: {violation}", handle.index));
                return self.cut_abort(ctx, handle);
            }
        };
        if unread || end.linger_zero {
            return self.cut_abort(ctx, handle);
        }
        match end.tx.readable() {
            Ok(remaining) => {
                // A pending SHUT_WR's bytes are a prefix of these.
                end.released = true;
                end.finish = Some(Finish { remaining, then: FinishAction::Close });
            }
            Err(violation) => {
                self.record_violation(ctx.now, &format_args!("session {}: {violation}", handle.index));
                return self.cut_abort(ctx, handle);
            }
        }
        self.outbox_forget(handle);
        ctx.cut.kick(self.endpoint(handle));
        true
    }

    /// `ABORT` hook (also a violation's, and a closing listener's for its
    /// untaken ends): the peer gets `RESET`, the slot is freed at once.
    /// False if `handle` is not a cut-through end.
    pub(in crate::app) fn cut_abort(&mut self, ctx: &mut Ctx<'_>, handle: SessionHandle) -> bool {
        let Some(end) = self.cut_end(handle) else { return false };
        if let Some(peer) = end.peer.filter(|_| !end.reset) {
            ctx.cut.resets.push(peer);
        }
        self.free_cut(ctx.cut, handle);
        true
    }

    /// Frees a cut-through end's slot and the port it held.
    pub(super) fn free_cut(&mut self, cut: &mut CutThrough, handle: SessionHandle) {
        if let Some(port) = self.cut_end(handle).and_then(|end| end.port) {
            cut.release(port);
        }
        self.free(handle);
    }
}
