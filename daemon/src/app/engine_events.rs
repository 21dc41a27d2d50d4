//! Engine events of an app's sockets, turned into fifo work and app events.
//!
//! The engine's readiness bits are about its own buffers; the app's are
//! about its fifos. So `READABLE` is reported only when bytes reached the
//! RX fifo, the engine's `WRITABLE` only resumes the TX drain (the app
//! hears `WRITABLE` through `WANT_TX_SPACE`), and `PEER_CLOSED` waits until
//! every byte before the FIN is in the RX fifo. `CONNECTED`, `RESET`,
//! `ERROR` (with its errno) and `CLOSED` pass through.

use sluice_shm::protocol::ready;
use sluice_shm::SessionHandle;
use sluice_stack::{EventSet, SocketId};

use super::errno::errno;
use super::session::Fin;
use super::state::{App, Ctx};

/// The errno reported when the engine flags an error but has none to give.
const UNKNOWN_ERROR: i32 = libc::ECONNABORTED;

impl App {
    /// Handles every event waiting in the app's engine queue; returns how many.
    pub(super) fn collect_engine_events(&mut self, ctx: &mut Ctx<'_>) -> usize {
        let mut handled = 0;
        while let Some(event) = ctx.stack.poll_event(self.consumer) {
            handled += 1;
            let Some(&handle) = self.by_socket.get(&event.key) else { continue };
            match event.key {
                SocketId::Listener(_) => {
                    if event.kinds.contains(EventSet::ACCEPTABLE) {
                        self.accept_ready(ctx, handle);
                    }
                }
                SocketId::Conn(_) => self.on_conn_event(ctx, handle, event.kinds),
            }
        }
        handled
    }

    fn on_conn_event(&mut self, ctx: &mut Ctx<'_>, handle: SessionHandle, kinds: EventSet) {
        let Some(conn) = self.sessions.get_mut(handle).and_then(|s| s.conn_mut()) else { return };
        let id = conn.id;
        if conn.released {
            // Only the drain before the close is left to do; a connection
            // that ended meanwhile takes its unsent bytes with it.
            let ended = kinds.intersects(EventSet::RESET | EventSet::ERROR | EventSet::CLOSED);
            if ended {
                conn.finish = None;
                let _ = ctx.stack.tcp_close(ctx.now, id);
                self.free(handle);
            } else if kinds.contains(EventSet::WRITABLE) {
                self.transmit(ctx, handle);
            }
            return;
        }
        if kinds.contains(EventSet::PEER_CLOSED) && conn.fin == Fin::None {
            conn.fin = Fin::Pending;
        }
        let tx_pending = conn.tx_waiting || conn.finish.is_some();
        let mut bits = 0;
        if kinds.contains(EventSet::CONNECTED) {
            bits |= ready::CONNECTED;
        }
        if kinds.intersects(EventSet::READABLE | EventSet::PEER_CLOSED) {
            bits |= self.receive(ctx, handle);
        }
        if kinds.contains(EventSet::WRITABLE) && tx_pending {
            bits |= self.transmit(ctx, handle);
        }
        let mut error = 0;
        if kinds.contains(EventSet::ERROR) {
            bits |= ready::ERROR;
            error = match ctx.stack.tcp_take_error(id) {
                Ok(Some(e)) => errno(e),
                _ => UNKNOWN_ERROR,
            };
        }
        if kinds.contains(EventSet::RESET) {
            bits |= ready::RESET;
        }
        if kinds.contains(EventSet::CLOSED) {
            bits |= ready::CLOSED;
        }
        self.outbox.post_session(&mut self.sessions, handle, bits, error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The protocol's readiness bits are the engine's `EventSet` bits.
    #[test]
    fn protocol_bits_equal_engine_bits() {
        let pairs = [
            (ready::ACCEPTABLE, EventSet::ACCEPTABLE),
            (ready::CONNECTED, EventSet::CONNECTED),
            (ready::READABLE, EventSet::READABLE),
            (ready::WRITABLE, EventSet::WRITABLE),
            (ready::PEER_CLOSED, EventSet::PEER_CLOSED),
            (ready::RESET, EventSet::RESET),
            (ready::ERROR, EventSet::ERROR),
            (ready::CLOSED, EventSet::CLOSED),
        ];
        for (ours, engine) in pairs {
            assert_eq!(ours, engine.0);
        }
    }
}
