//! An app worker is gone (design §3.6): its sockets are closed as the
//! kernel closes an exiting process's. Listeners stop listening and reset
//! the connections pushed to the app but never taken; every other
//! connection gets the app's `CLOSE`: reset if unread bytes remain (RX fifo
//! or engine), otherwise what is left in its TX fifo drains into the engine
//! and FIN follows. Slots still draining keep the app's state alive,
//! detached, until they are done; the segments are released with it.

use super::session::Role;
use super::state::{App, Ctx};

impl App {
    /// Closes every session of a departed app worker.
    pub(super) fn reap(&mut self, ctx: &mut Ctx<'_>) {
        self.detached = true;
        // Before its listeners leave their groups: a process that execs
        // keeps them (`holders.rs`).
        self.hold_across_exec(ctx);
        let (listeners, conns): (Vec<_>, Vec<_>) = self
            .sessions
            .handles()
            .into_iter()
            .partition(|h| matches!(self.sessions.get(*h).map(|s| &s.role), Some(Role::Listener(_))));
        for handle in listeners {
            self.close_listener(ctx, handle);
        }
        for handle in conns {
            // Connections already closed by the app are draining already;
            // those reset with their listener are gone.
            if self.sessions.get(handle).is_some_and(|s| !s.released()) {
                self.close(ctx, handle);
            }
        }
    }
}
