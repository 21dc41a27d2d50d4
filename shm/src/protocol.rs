//! What the rings carry: requests (app → daemon) and events (daemon → app),
//! and the flow-control rules around the session words (design §2.4–2.5).
//!
//! # Requests
//! A request is 56 bytes: `opcode u16 | flags u16 | req_id u32 | handle u64 |
//! args [40]`, little-endian. [`Request::decode`] is the only way the daemon
//! reads one, after copying the slot out of shared memory: every field is
//! checked, so a garbage body is an error, never a wrong action. Requests
//! that carry a `req_id` get exactly one `REPLY` event.
//!
//! # Events
//! * `SESSION`: `bits` = readiness bits ([`ready`]) that rose; with
//!   [`ready::ERROR`], `aux` = the errno (`ECONNREFUSED`, `ETIMEDOUT`, ...).
//! * `ACCEPTED`: `handle` = listener, `value` = the new connection's handle;
//!   its addresses are in its desc.
//! * `REPLY`: `aux` = req_id, `bits` = [`REPLY_OK`] with `value` = result
//!   (a handle, a port, an option value) or [`REPLY_ERR`] with `value` = errno.
//!
//! # Flow control (no lost wake-up in either direction)
//! * **TX**: the app writes into the TX fifo, then swaps `TX_PENDING` 0 → 1
//!   and sends `TX_READY` only on that transition. The daemon stores
//!   `TX_PENDING = 0` *before* it drains the fifo into the engine, so bytes
//!   written after the drain produce a new `TX_READY`. When the engine has
//!   no room the daemon keeps the session on its own retry list.
//! * **TX space**: an app that finds the TX fifo full stores
//!   `WANT_TX_SPACE = 1`, fences (SeqCst), and re-checks the fifo before
//!   sleeping. The daemon, after draining, fences and swaps `WANT_TX_SPACE`
//!   to 0; if it was 1 it sends `SESSION{WRITABLE}`.
//! * **RX**: the daemon writes engine bytes into the RX fifo and sends
//!   `SESSION{READABLE}` (coalesced per session). When bytes did not fit it
//!   stores `RX_BLOCKED = 1`, fences, and re-checks the fifo's free space.
//!   The app, after reading, fences and loads `RX_BLOCKED`; if set it swaps
//!   `RX_NOTE_SENT` 0 → 1 and on that transition sends `RX_SPACE`. The
//!   daemon clears both words before it refills the fifo.
//! * **Accepts**: the daemon pushes `ACCEPTED` while `ACCEPT_PUSHED −
//!   ACCEPT_TAKEN < backlog` (the listener's credit); the app bumps
//!   `ACCEPT_TAKEN` when it hands a connection to the user and sends
//!   `RX_SPACE` on the listener when it took the last credited one.

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::event_ring::Event;
use crate::handle::SessionHandle;
use crate::request_ring::{RequestBody, REQUEST_BODY_SIZE};

/// Event kinds.
pub mod event_kind {
    pub const SESSION: u16 = 1;
    pub const ACCEPTED: u16 = 2;
    pub const REPLY: u16 = 3;
}

/// Readiness bits of `SESSION` events; the values are the engine's
/// `EventSet` bits (a test in the daemon checks they stay equal).
pub mod ready {
    pub const ACCEPTABLE: u16 = 1 << 0;
    pub const CONNECTED: u16 = 1 << 1;
    pub const READABLE: u16 = 1 << 2;
    pub const WRITABLE: u16 = 1 << 3;
    pub const PEER_CLOSED: u16 = 1 << 4;
    pub const RESET: u16 = 1 << 5;
    pub const ERROR: u16 = 1 << 6;
    pub const CLOSED: u16 = 1 << 7;
}

/// `bits` of a successful reply.
pub const REPLY_OK: u16 = 0;
/// `bits` of a failed reply (`value` is the errno).
pub const REPLY_ERR: u16 = 1;

/// Which directions a `SHUTDOWN` closes (`SHUT_RD`, `SHUT_WR`, `SHUT_RDWR`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownHow {
    Read = 0,
    Write = 1,
    Both = 2,
}

/// Socket options that take effect in the daemon (design §5.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockOption {
    /// `TCP_NODELAY`: value 0/1.
    NoDelay = 1,
    /// `SO_KEEPALIVE`: value 0/1.
    KeepAlive = 2,
    /// `TCP_KEEPIDLE`, seconds.
    KeepIdle = 3,
    /// `TCP_KEEPINTVL`, seconds.
    KeepInterval = 4,
    /// `TCP_KEEPCNT`.
    KeepCount = 5,
    /// `SO_LINGER` with `l_onoff = 1, l_linger = 0`: close sends RST.
    LingerZero = 6,
    /// `TCP_CORK`: value 0/1; clearing it sends the held partial segment.
    Cork = 7,
}

impl SockOption {
    fn from_u16(v: u16) -> Option<SockOption> {
        Some(match v {
            1 => SockOption::NoDelay,
            2 => SockOption::KeepAlive,
            3 => SockOption::KeepIdle,
            4 => SockOption::KeepInterval,
            5 => SockOption::KeepCount,
            6 => SockOption::LingerZero,
            7 => SockOption::Cork,
            _ => return None,
        })
    }
}

/// One app request, decoded and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Create a listener; replies with its handle.
    Listen { req_id: u32, local: SocketAddrV4, backlog: u32, reuse_port: bool },
    /// Start an active open; replies with the connection's handle at once,
    /// completion comes as `SESSION{CONNECTED}` or `SESSION{ERROR}`.
    Connect { req_id: u32, remote: SocketAddrV4, local: Option<SocketAddrV4> },
    /// The app started (or stopped) waiting on a listener (design §3.5).
    SetAccepting { handle: SessionHandle, accepting: bool },
    /// New bytes in the TX fifo.
    TxReady { handle: SessionHandle },
    /// The app freed RX fifo space the daemon was waiting for (or, on a
    /// listener, accept credit).
    RxSpace { handle: SessionHandle },
    Shutdown { handle: SessionHandle, how: ShutdownHow },
    /// Close; the daemon sends what is in the TX fifo first, then FIN, and
    /// frees the slot (the app must not use the handle again).
    Close { handle: SessionHandle },
    /// Reset and free the slot.
    Abort { handle: SessionHandle },
    /// Set an option; replies with 0 or an errno.
    SetOption { req_id: u32, handle: SessionHandle, option: SockOption, value: u64 },
    /// A forked child re-creates a listener it inherited (design §4.5):
    /// `LISTEN` with the [`LISTEN_INHERIT`] flag. It joins the listen group
    /// on `local` whatever `reuse_port` says, if the daemon knows the app
    /// worker's process as a holder of that group (reported by its parent's
    /// [`Request::Forked`]); otherwise it is a plain `LISTEN`. Replies like
    /// `Listen`.
    ListenInherited { req_id: u32, local: SocketAddrV4, backlog: u32, reuse_port: bool },
    /// The app worker's process forked `child_pid` (design §4.5): the child
    /// holds every listener the process holds until it exits or re-creates
    /// them. Replies with the number of listen groups the child now holds.
    /// The parent waits for the reply: the daemon checks that the child is
    /// the app's own (its parent pid), which it cannot once the parent has
    /// exited (nginx's P0 exits right after its fork). `child_pid` naming
    /// the app's own process announces an `execve`: the process keeps the
    /// app worker's listen groups when the app worker goes (its new image
    /// re-creates the listeners); replies with their number.
    Forked { req_id: u32, child_pid: u32 },
}

/// `LISTEN` flag bits: `SO_REUSEPORT`, and (additive) inherited re-creation.
pub const LISTEN_REUSE_PORT: u16 = 1;
pub const LISTEN_INHERIT: u16 = 2;

/// Why a request body was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    UnknownOpcode(u16),
    /// The handle word is 0 or has generation 0.
    BadHandle,
    /// An address or port that cannot be right (port 0 to connect to).
    BadAddress,
    /// A flag or option value out of range.
    BadArgument,
}

mod opcode {
    pub const LISTEN: u16 = 1;
    pub const CONNECT: u16 = 2;
    pub const SET_ACCEPTING: u16 = 3;
    pub const TX_READY: u16 = 4;
    pub const RX_SPACE: u16 = 5;
    pub const SHUTDOWN: u16 = 6;
    pub const CLOSE: u16 = 7;
    pub const ABORT: u16 = 8;
    pub const SET_OPTION: u16 = 9;
    pub const FORKED: u16 = 10;
}

struct Writer([u8; REQUEST_BODY_SIZE]);

impl Writer {
    fn new(op: u16, flags: u16, req_id: u32, handle: u64) -> Writer {
        let mut w = Writer([0; REQUEST_BODY_SIZE]);
        w.u16(0, op);
        w.u16(2, flags);
        w.u32(4, req_id);
        w.u64(8, handle);
        w
    }
    fn u16(&mut self, at: usize, v: u16) {
        self.0[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, at: usize, v: u32) {
        self.0[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, at: usize, v: u64) {
        self.0[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
    fn addr(&mut self, at: usize, a: SocketAddrV4) {
        self.u32(at, u32::from(*a.ip()));
        self.u16(at + 4, a.port());
    }
}

fn rd16(b: &RequestBody, at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn rd32(b: &RequestBody, at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn rd64(b: &RequestBody, at: usize) -> u64 {
    u64::from(rd32(b, at)) | (u64::from(rd32(b, at + 4)) << 32)
}
fn rd_addr(b: &RequestBody, at: usize) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from(rd32(b, at)), rd16(b, at + 4))
}

impl Request {
    /// The body to push on a request ring.
    pub fn encode(&self) -> RequestBody {
        let h = |h: &SessionHandle| h.to_u64();
        match self {
            Request::Listen { req_id, local, backlog, reuse_port } => {
                let mut w = Writer::new(opcode::LISTEN, u16::from(*reuse_port), *req_id, 0);
                w.addr(16, *local);
                w.u32(24, *backlog);
                w.0
            }
            Request::Connect { req_id, remote, local } => {
                let mut w = Writer::new(opcode::CONNECT, u16::from(local.is_some()), *req_id, 0);
                w.addr(16, *remote);
                if let Some(local) = local {
                    w.addr(24, *local);
                }
                w.0
            }
            Request::SetAccepting { handle, accepting } => {
                Writer::new(opcode::SET_ACCEPTING, u16::from(*accepting), 0, h(handle)).0
            }
            Request::TxReady { handle } => Writer::new(opcode::TX_READY, 0, 0, h(handle)).0,
            Request::RxSpace { handle } => Writer::new(opcode::RX_SPACE, 0, 0, h(handle)).0,
            Request::Shutdown { handle, how } => Writer::new(opcode::SHUTDOWN, *how as u16, 0, h(handle)).0,
            Request::Close { handle } => Writer::new(opcode::CLOSE, 0, 0, h(handle)).0,
            Request::Abort { handle } => Writer::new(opcode::ABORT, 0, 0, h(handle)).0,
            Request::SetOption { req_id, handle, option, value } => {
                let mut w = Writer::new(opcode::SET_OPTION, *option as u16, *req_id, h(handle));
                w.u64(16, *value);
                w.0
            }
            Request::ListenInherited { req_id, local, backlog, reuse_port } => {
                let flags = LISTEN_INHERIT | if *reuse_port { LISTEN_REUSE_PORT } else { 0 };
                let mut w = Writer::new(opcode::LISTEN, flags, *req_id, 0);
                w.addr(16, *local);
                w.u32(24, *backlog);
                w.0
            }
            Request::Forked { req_id, child_pid } => {
                let mut w = Writer::new(opcode::FORKED, 0, *req_id, 0);
                w.u32(16, *child_pid);
                w.0
            }
        }
    }

    /// Decodes a body copied out of a request ring. Never panics.
    pub fn decode(body: &RequestBody) -> Result<Request, DecodeError> {
        let op = rd16(body, 0);
        let flags = rd16(body, 2);
        let req_id = rd32(body, 4);
        let handle = || SessionHandle::from_u64(rd64(body, 8)).ok_or(DecodeError::BadHandle);
        let flag = || match flags {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::BadArgument),
        };
        Ok(match op {
            opcode::LISTEN => {
                if flags & !(LISTEN_REUSE_PORT | LISTEN_INHERIT) != 0 {
                    return Err(DecodeError::BadArgument);
                }
                let (local, backlog, reuse_port) = (rd_addr(body, 16), rd32(body, 24), flags & LISTEN_REUSE_PORT != 0);
                if flags & LISTEN_INHERIT != 0 {
                    Request::ListenInherited { req_id, local, backlog, reuse_port }
                } else {
                    Request::Listen { req_id, local, backlog, reuse_port }
                }
            }
            opcode::CONNECT => {
                let remote = rd_addr(body, 16);
                if remote.port() == 0 || remote.ip().is_unspecified() || remote.ip().is_broadcast() {
                    return Err(DecodeError::BadAddress);
                }
                let local = flag()?.then(|| rd_addr(body, 24));
                Request::Connect { req_id, remote, local }
            }
            opcode::SET_ACCEPTING => Request::SetAccepting { handle: handle()?, accepting: flag()? },
            opcode::TX_READY => Request::TxReady { handle: handle()? },
            opcode::RX_SPACE => Request::RxSpace { handle: handle()? },
            opcode::SHUTDOWN => Request::Shutdown {
                handle: handle()?,
                how: match flags {
                    0 => ShutdownHow::Read,
                    1 => ShutdownHow::Write,
                    2 => ShutdownHow::Both,
                    _ => return Err(DecodeError::BadArgument),
                },
            },
            opcode::CLOSE => Request::Close { handle: handle()? },
            opcode::ABORT => Request::Abort { handle: handle()? },
            opcode::SET_OPTION => Request::SetOption {
                req_id,
                handle: handle()?,
                option: SockOption::from_u16(flags).ok_or(DecodeError::BadArgument)?,
                value: rd64(body, 16),
            },
            opcode::FORKED => {
                // pid_t is positive; 0 and the negative range are no process.
                let child_pid = rd32(body, 16);
                if flags != 0 || child_pid == 0 || child_pid > i32::MAX as u32 {
                    return Err(DecodeError::BadArgument);
                }
                Request::Forked { req_id, child_pid }
            }
            other => return Err(DecodeError::UnknownOpcode(other)),
        })
    }
}

/// An event as the app reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppEvent {
    /// Readiness bits rose; `errno` is set with [`ready::ERROR`].
    Session { handle: SessionHandle, bits: u16, errno: i32 },
    Accepted { listener: SessionHandle, conn: SessionHandle },
    Reply { req_id: u32, result: Result<u64, i32> },
}

impl AppEvent {
    /// The ring form.
    pub fn encode(&self) -> Event {
        match *self {
            AppEvent::Session { handle, bits, errno } => Event {
                handle: handle.to_u64(),
                kind: event_kind::SESSION,
                bits,
                aux: errno as u32,
                value: 0,
            },
            AppEvent::Accepted { listener, conn } => Event {
                handle: listener.to_u64(),
                kind: event_kind::ACCEPTED,
                bits: 0,
                aux: 0,
                value: conn.to_u64(),
            },
            AppEvent::Reply { req_id, result } => {
                let (bits, value) = match result {
                    Ok(v) => (REPLY_OK, v),
                    Err(errno) => (REPLY_ERR, errno as u32 as u64),
                };
                Event { handle: 0, kind: event_kind::REPLY, bits, aux: req_id, value }
            }
        }
    }

    /// Decodes a ring event; `None` for a kind or handle this version does
    /// not know (the app skips it).
    pub fn decode(e: &Event) -> Option<AppEvent> {
        match e.kind {
            event_kind::SESSION => Some(AppEvent::Session {
                handle: SessionHandle::from_u64(e.handle)?,
                bits: e.bits,
                errno: e.aux as i32,
            }),
            event_kind::ACCEPTED => Some(AppEvent::Accepted {
                listener: SessionHandle::from_u64(e.handle)?,
                conn: SessionHandle::from_u64(e.value)?,
            }),
            event_kind::REPLY => Some(AppEvent::Reply {
                req_id: e.aux,
                result: match e.bits {
                    REPLY_OK => Ok(e.value),
                    _ => Err(e.value as i32),
                },
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(i: u32, g: u32) -> SessionHandle {
        SessionHandle::new(i, g).unwrap()
    }

    #[test]
    fn every_request_round_trips() {
        let a = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 8080);
        let all = [
            Request::Listen { req_id: 1, local: a, backlog: 511, reuse_port: true },
            Request::Connect { req_id: 2, remote: a, local: None },
            Request::Connect { req_id: 3, remote: a, local: Some(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 0)) },
            Request::SetAccepting { handle: h(1, 2), accepting: true },
            Request::TxReady { handle: h(3, 4) },
            Request::RxSpace { handle: h(5, 6) },
            Request::Shutdown { handle: h(7, 8), how: ShutdownHow::Write },
            Request::Close { handle: h(9, 10) },
            Request::Abort { handle: h(11, 12) },
            Request::SetOption { req_id: 4, handle: h(13, 14), option: SockOption::KeepIdle, value: 75 },
            Request::SetOption { req_id: 8, handle: h(13, 14), option: SockOption::Cork, value: 1 },
            Request::ListenInherited { req_id: 5, local: a, backlog: 16, reuse_port: false },
            Request::ListenInherited { req_id: 6, local: a, backlog: 16, reuse_port: true },
            Request::Forked { req_id: 7, child_pid: 4242 },
        ];
        for r in all {
            assert_eq!(Request::decode(&r.encode()), Ok(r), "{r:?}");
        }
    }

    #[test]
    fn bad_bodies_are_refused() {
        let mut b = Request::TxReady { handle: h(1, 1) }.encode();
        b[8..16].copy_from_slice(&0u64.to_le_bytes());
        assert_eq!(Request::decode(&b), Err(DecodeError::BadHandle));
        let mut b = Request::Shutdown { handle: h(1, 1), how: ShutdownHow::Both }.encode();
        b[2] = 3;
        assert_eq!(Request::decode(&b), Err(DecodeError::BadArgument));
        let b = Request::Connect { req_id: 1, remote: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 0), local: None }.encode();
        assert_eq!(Request::decode(&b), Err(DecodeError::BadAddress));
        let mut b = Request::Listen { req_id: 1, local: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), backlog: 1, reuse_port: false }.encode();
        b[2] = 4;
        assert_eq!(Request::decode(&b), Err(DecodeError::BadArgument), "unknown LISTEN flag");
        for pid in [0u32, u32::MAX] {
            let mut b = Request::Forked { req_id: 1, child_pid: 1 }.encode();
            b[16..20].copy_from_slice(&pid.to_le_bytes());
            assert_eq!(Request::decode(&b), Err(DecodeError::BadArgument), "pid {pid}");
        }
        let mut b = [0u8; REQUEST_BODY_SIZE];
        b[0] = 200;
        assert_eq!(Request::decode(&b), Err(DecodeError::UnknownOpcode(200)));
    }

    #[test]
    fn events_round_trip() {
        for e in [
            AppEvent::Session { handle: h(1, 2), bits: ready::READABLE | ready::ERROR, errno: 111 },
            AppEvent::Accepted { listener: h(1, 2), conn: h(3, 4) },
            AppEvent::Reply { req_id: 9, result: Ok(h(5, 6).to_u64()) },
            AppEvent::Reply { req_id: 10, result: Err(98) },
        ] {
            assert_eq!(AppEvent::decode(&e.encode()), Some(e));
        }
    }

    proptest! {
        #[test]
        fn decode_never_panics_and_accepted_bodies_reencode(body in proptest::collection::vec(any::<u8>(), REQUEST_BODY_SIZE)) {
            let mut b = [0u8; REQUEST_BODY_SIZE];
            b.copy_from_slice(&body);
            if let Ok(r) = Request::decode(&b) {
                prop_assert_eq!(Request::decode(&r.encode()), Ok(r));
            }
        }
    }
}
