//! `TCP_CORK` and `MSG_MORE`, both carried to the daemon as
//! [`SockOption::Cork`].
//!
//! Linux corks a connection for two reasons (net/ipv4/tcp.c): the socket
//! option (`TCP_NAGLE_CORK` in `tp->nonagle`, `__tcp_sock_set_cork`) and a
//! `send` with `MSG_MORE`, whose push at the end of the call is corked
//! (`tcp_push`: `if (flags & MSG_MORE) nonagle = TCP_NAGLE_CORK`). The next
//! send without the flag pushes with the socket's own state, so the data
//! written with `MSG_MORE` goes out with it. The TX fifo carries bytes, not
//! per-write flags, so a `MSG_MORE` write corks the daemon's connection
//! before its bytes are queued and the next write without it uncorks after
//! its bytes: requests are handled in ring order, so the cork is in place
//! before the daemon drains the first byte, and no byte is queued behind a
//! cork nobody clears. The daemon's connection is corked while either
//! reason holds; only changes are sent, so a program that never uses
//! either pays nothing.
//!
//! Difference from Linux: an ACK arriving while `MSG_MORE` data waits
//! pushes it there if Nagle allows (`tcp_data_snd_check`); here it waits
//! for the next write without the flag, or the cork ceiling (the daemon's
//! probe timer, at most max(RTO, 200 ms) after the last ACK).

use std::sync::atomic::Ordering;

use sluice_shm::protocol::SockOption;

use crate::error::Result;
use crate::socket::Socket;

/// The application set `TCP_CORK`.
const USER: u8 = 1;
/// The last write had `MSG_MORE`.
const MORE: u8 = 2;

impl Socket {
    /// `TCP_CORK`. Clearing it also ends a `MSG_MORE` hold: Linux pushes
    /// everything pending when the option is cleared.
    pub(crate) fn set_cork(&self, on: bool) -> Result<()> {
        let s = self.session()?;
        let reasons = if on { USER | (s.cork.load(Ordering::Relaxed) & MORE) } else { 0 };
        s.cork.store(reasons, Ordering::Relaxed);
        self.send_option(SockOption::Cork, on as u64)
    }

    /// `MSG_MORE` of a write: call with `true` before a write that has the
    /// flag, and with `false` after one that has not (or after `sendfile`,
    /// which ends with a push). A change costs one `SET_OPTION` round trip;
    /// no change costs nothing.
    pub fn set_more(&self, more: bool) -> Result<()> {
        let s = self.session()?;
        let reasons = s.cork.load(Ordering::Relaxed);
        if (reasons & MORE != 0) == more {
            return Ok(());
        }
        let next = if more { reasons | MORE } else { reasons & !MORE };
        s.cork.store(next, Ordering::Relaxed);
        if reasons & USER != 0 {
            // Corked by TCP_CORK anyway: the daemon's state does not change.
            return Ok(());
        }
        self.send_option(SockOption::Cork, more as u64)
    }
}
