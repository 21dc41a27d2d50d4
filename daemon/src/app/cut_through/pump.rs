//! Moving a pair's bytes, once every app has had its turn: A.tx → B.rx and
//! B.tx → A.rx, `min(readable, free)` at a time through the worker's
//! bounce buffer, with the flow-control words of `sluice_shm::protocol`:
//! a full RX fifo raises `RX_BLOCKED` (the reader's `RX_SPACE` queues the
//! pair again), draining a TX fifo answers `WANT_TX_SPACE` with
//! `WRITABLE`, and bytes added to an RX fifo raise `READABLE`.
//!
//! A shutdown or close whose bytes have all moved gives the peer
//! `PEER_CLOSED` (EOF after the last byte); a close then frees the end.
//! Bytes for a peer that is gone or closed are the kernel's data for a
//! closed socket: they are dropped and the writer is reset (RFC 793 §3.4,
//! "Reset Generation"), so nothing wedges.

use std::collections::BTreeMap;
use std::sync::atomic::{fence, Ordering};

use sluice_shm::layout::{app_words, desc};
use sluice_shm::protocol::ready;
use sluice_shm::Violation;

use super::super::session::{FinishAction, Role};
use super::super::state::{App, Ctx};
use super::super::AppId;
use super::connect::{complete_connects, end_mut};
use super::{Endpoint, Phase};

/// Runs the queued cut-through work of every app; returns the amount done
/// (0 when nothing moved, so an idle worker can sleep).
pub(in crate::app) fn run(apps: &mut BTreeMap<AppId, App>, ctx: &mut Ctx<'_>) -> usize {
    let mut work = complete_connects(apps, ctx);
    // Resets and closes found while pumping queue more work.
    while !ctx.cut.kicked.is_empty() || !ctx.cut.resets.is_empty() {
        for end in std::mem::take(&mut ctx.cut.resets) {
            work += deliver_reset(apps, ctx, end);
        }
        let mut kicked = std::mem::take(&mut ctx.cut.kicked);
        kicked.sort_unstable_by_key(|e| (e.app, e.handle));
        kicked.dedup();
        for end in kicked {
            work += pump_pair(apps, ctx, end);
        }
    }
    for app in apps.values_mut() {
        app.wake_if_published();
    }
    work
}

/// Posts `bits` to an end whose app still holds it.
pub(super) fn post(apps: &mut BTreeMap<AppId, App>, end: Endpoint, bits: u16, errno: i32) {
    let Some(app) = apps.get_mut(&end.app) else { return };
    if app.sessions.get(end.handle).is_some_and(|s| !s.released()) {
        app.outbox.post_session(&mut app.sessions, end.handle, bits, errno);
    }
}

/// The peer reset the pair: the end hears `RESET`, or, if its app closed it
/// already, its remaining bytes are dropped and the slot freed.
fn deliver_reset(apps: &mut BTreeMap<AppId, App>, ctx: &mut Ctx<'_>, end: Endpoint) -> usize {
    let Some(state) = end_mut(apps, end) else { return 0 };
    state.reset = true;
    state.peer = None;
    state.finish = None;
    if state.released {
        if let Some(app) = apps.get_mut(&end.app) {
            app.free_cut(ctx.cut, end.handle);
        }
        return 1;
    }
    post(apps, end, ready::RESET, 0);
    1
}

/// Whether `peer` is a live, open end paired with `of` that still reads.
fn peer_reads(apps: &mut BTreeMap<AppId, App>, of: Endpoint, peer: Endpoint) -> bool {
    end_mut(apps, peer).is_some_and(|p| p.peer == Some(of) && !p.released && !p.reset)
}

/// Both directions of the pair `end` belongs to.
fn pump_pair(apps: &mut BTreeMap<AppId, App>, ctx: &mut Ctx<'_>, end: Endpoint) -> usize {
    let Some(state) = end_mut(apps, end) else { return 0 };
    if state.phase != Phase::Open {
        return 0;
    }
    let peer = state.peer;
    let mut work = transfer(apps, ctx, end, peer);
    if let Some(peer) = peer {
        if end_mut(apps, peer).is_some_and(|p| p.peer == Some(end)) {
            work += transfer(apps, ctx, peer, Some(end));
        }
    }
    work
}

/// `src`'s TX fifo into `dst`'s RX fifo, then `src`'s pending shutdown or
/// close. Returns the bytes moved plus the events raised.
fn transfer(apps: &mut BTreeMap<AppId, App>, ctx: &mut Ctx<'_>, src: Endpoint, dst: Option<Endpoint>) -> usize {
    let dst = dst.filter(|&dst| peer_reads(apps, src, dst));
    let moved = match dst {
        Some(dst) => move_bytes(apps, ctx, src, dst),
        None => drop_unreadable(apps, ctx, src),
    };
    let moved = match moved {
        Ok(moved) => moved,
        Err((end, violation)) => {
            abort_for_violation(apps, ctx, end, violation);
            return 1;
        }
    };
    let mut work = moved;
    if moved > 0 {
        if let Some(dst) = dst {
            post(apps, dst, ready::READABLE, 0);
        }
        work += answer_want_space(apps, src);
    }
    work + finish_if_drained(apps, ctx, src, dst)
}

/// The copy loop. Errors name the end whose fifo index was impossible.
fn move_bytes(
    apps: &mut BTreeMap<AppId, App>,
    ctx: &mut Ctx<'_>,
    src: Endpoint,
    dst: Endpoint,
) -> Result<usize, (Endpoint, Violation)> {
    let mut moved = 0usize;
    while let Some(s) = end_mut(apps, src) {
        let limit = s.finish.map_or(ctx.bounce.len(), |f| (f.remaining as usize).min(ctx.bounce.len()));
        let available = s.tx.readable().map_err(|v| (src, v))? as usize;
        if limit == 0 || available == 0 {
            break;
        }
        let free = rx_free_or_block(apps, dst)?;
        if free == 0 {
            break;
        }
        let want = limit.min(available).min(free);
        let Some(s) = end_mut(apps, src) else { break };
        let n = s.tx.peek(&mut ctx.bounce[..want]).map_err(|v| (src, v))?;
        let Some(d) = end_mut(apps, dst) else { break };
        // `free` only grows until the daemon writes, so all of it fits.
        let written = d.rx.write(&ctx.bounce[..n]).map_err(|v| (dst, v))?;
        let Some(s) = end_mut(apps, src) else { break };
        s.tx.consume(written);
        if let Some(finish) = s.finish.as_mut() {
            finish.remaining -= written as u32;
        }
        moved += written;
        if written < n {
            break;
        }
    }
    Ok(moved)
}

/// `dst`'s free RX space; when there is none, `RX_BLOCKED` is raised and
/// the space checked again (Dekker with the reader: either this sees the
/// space it freed, or it sees `RX_BLOCKED` and sends `RX_SPACE`).
fn rx_free_or_block(apps: &mut BTreeMap<AppId, App>, dst: Endpoint) -> Result<usize, (Endpoint, Violation)> {
    let Some(app) = apps.get_mut(&dst.app) else { return Ok(0) };
    let Some(session) = app.sessions.get_mut(dst.handle) else { return Ok(0) };
    let blocked = session.desc.shared(desc::RX_BLOCKED);
    let Role::Cut(d) = &mut session.role else { return Ok(0) };
    let free = d.rx.free().map_err(|v| (dst, v))?;
    if free > 0 {
        return Ok(free as usize);
    }
    blocked.store(1, Ordering::Relaxed);
    fence(Ordering::SeqCst);
    let free = d.rx.free().map_err(|v| (dst, v))?;
    if free > 0 {
        blocked.store(0, Ordering::Relaxed);
    }
    Ok(free as usize)
}

/// Bytes with no reader: dropped, and the writer reset once, as the
/// kernel's closed peer answers data with RST. Returns the bytes dropped.
fn drop_unreadable(
    apps: &mut BTreeMap<AppId, App>,
    ctx: &mut Ctx<'_>,
    src: Endpoint,
) -> Result<usize, (Endpoint, Violation)> {
    let Some(s) = end_mut(apps, src) else { return Ok(0) };
    let available = s.tx.readable().map_err(|v| (src, v))?;
    let limit = s.finish.map_or(available, |f| f.remaining.min(available));
    s.tx.consume(limit as usize);
    if let Some(finish) = s.finish.as_mut() {
        finish.remaining -= limit;
    }
    if available > 0 && !s.reset {
        s.reset = true;
        s.peer = None;
        if s.released {
            s.finish = None;
            if let Some(app) = apps.get_mut(&src.app) {
                app.free_cut(ctx.cut, src.handle);
            }
        } else {
            post(apps, src, ready::RESET, 0);
        }
    }
    Ok(limit as usize)
}

/// After a drain: fences and swaps `WANT_TX_SPACE`, and reports `WRITABLE`
/// if the app was waiting for room (protocol doc, TX space).
fn answer_want_space(apps: &mut BTreeMap<AppId, App>, src: Endpoint) -> usize {
    let Some(session) = apps.get_mut(&src.app).and_then(|app| app.sessions.get_mut(src.handle)) else { return 0 };
    fence(Ordering::SeqCst);
    if session.words.word(app_words::WANT_TX_SPACE).swap(0, Ordering::Relaxed) == 1 {
        post(apps, src, ready::WRITABLE, 0);
        return 1;
    }
    0
}

/// Carries out `src`'s shutdown or close once its bytes have all moved:
/// `PEER_CLOSED` to a reading peer, and a close frees the slot.
fn finish_if_drained(
    apps: &mut BTreeMap<AppId, App>,
    ctx: &mut Ctx<'_>,
    src: Endpoint,
    dst: Option<Endpoint>,
) -> usize {
    let Some(s) = end_mut(apps, src) else { return 0 };
    let Some(finish) = s.finish else { return 0 };
    if finish.remaining > 0 {
        // A hostile app can rewind its tail below the snapshot: what it
        // took back cannot be sent, so the finish does not wait for it.
        match s.tx.readable() {
            Ok(0) => {}
            _ => return 0,
        }
    }
    s.finish = None;
    // A close after a shutdown has told the peer already.
    let tell_peer = !std::mem::replace(&mut s.write_shut, true);
    if let Some(dst) = dst.filter(|_| tell_peer) {
        if let Some(d) = end_mut(apps, dst) {
            d.peer_fin = true;
        }
        post(apps, dst, ready::PEER_CLOSED | ready::READABLE, 0);
    }
    if finish.then == FinishAction::Close {
        if let Some(app) = apps.get_mut(&src.app) {
            app.free_cut(ctx.cut, src.handle);
        }
    }
    1
}

fn abort_for_violation(apps: &mut BTreeMap<AppId, App>, ctx: &mut Ctx<'_>, end: Endpoint, violation: Violation) {
    let Some(app) = apps.get_mut(&end.app) else { return };
    app.record_violation(ctx.now, &format_args!("session {}: {violation}", end.handle.index));
    app.cut_abort(ctx, end.handle);
}
