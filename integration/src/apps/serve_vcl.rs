//! A single-threaded event loop serving a [`Protocol`] over Sluice sockets
//! (`vcl`): a non-blocking listener and connections in one level-triggered
//! [`Poller`], the way an epoll server runs on the kernel.

use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use slab::Slab;
use sluice_vcl::{Errno, Interest, PollEvent, Socket, Vcl};

use super::protocol::Protocol;

/// Token of the listener; connection `k` of the slab has token `k + 1`.
const LISTENER: u64 = 0;
/// How often the loop looks at the stop flag when idle.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// What a serving run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServeStats {
    pub accepted: u64,
    pub closed: u64,
    /// Connections dropped on a socket error (reset, ...).
    pub errors: u64,
}

struct Conn<P> {
    socket: Socket,
    protocol: P,
    interest: Interest,
}

/// Listens on `addr` and serves until `stop` is set. `ready` is called once
/// the listener exists (with its bound address).
pub fn serve<P: Protocol>(
    vcl: &Arc<Vcl>,
    addr: SocketAddrV4,
    backlog: u32,
    make: impl Fn() -> P,
    stop: &AtomicBool,
    ready: impl FnOnce(SocketAddrV4),
) -> Result<ServeStats, Errno> {
    let listener = vcl.listen(addr, backlog)?;
    listener.set_nonblocking(true)?;
    let poller = vcl.poller()?;
    poller.add(&listener, LISTENER, Interest::READABLE)?;
    ready(listener.local_addr()?);
    let mut conns: Slab<Conn<P>> = Slab::new();
    let mut stats = ServeStats::default();
    let mut events: Vec<PollEvent> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        match poller.wait(&mut events, Some(STOP_CHECK)) {
            Ok(_) => {}
            Err(e) if e == Errno::EINTR => continue,
            Err(e) => return Err(e),
        }
        for ev in events.drain(..) {
            if ev.token == LISTENER {
                accept_all(&listener, &poller, &mut conns, &make, &mut stats);
                continue;
            }
            let key = (ev.token - 1) as usize;
            let Some(conn) = conns.get_mut(key) else { continue };
            match drive(conn, &mut buf) {
                Ok(true) => {
                    let conn = conns.remove(key);
                    let _ = poller.delete(&conn.socket);
                    let _ = conn.socket.close();
                    stats.closed += 1;
                }
                Ok(false) => {
                    let want = interest_of(&mut conn.protocol);
                    if want != conn.interest && poller.modify(&conn.socket, ev.token, want).is_ok() {
                        conn.interest = want;
                    }
                }
                Err(_) => {
                    let conn = conns.remove(key);
                    let _ = poller.delete(&conn.socket);
                    drop(conn.socket);
                    stats.errors += 1;
                }
            }
        }
    }
    Ok(stats)
}

fn accept_all<P: Protocol>(
    listener: &Socket,
    poller: &sluice_vcl::Poller,
    conns: &mut Slab<Conn<P>>,
    make: &impl Fn() -> P,
    stats: &mut ServeStats,
) {
    loop {
        match listener.accept() {
            Ok((socket, _peer)) => {
                stats.accepted += 1;
                if socket.set_nonblocking(true).is_err() {
                    stats.errors += 1;
                    continue;
                }
                let entry = conns.vacant_entry();
                let token = entry.key() as u64 + 1;
                if poller.add(&socket, token, Interest::READABLE).is_err() {
                    stats.errors += 1;
                    continue;
                }
                entry.insert(Conn { socket, protocol: make(), interest: Interest::READABLE });
            }
            Err(e) if e == Errno::EAGAIN => return,
            Err(e) if e == Errno::EINTR => continue,
            Err(e) => {
                log::warn!("accept failed: {e}");
                return;
            }
        }
    }
}

/// Reads what is there, writes what can be written; `Ok(true)` when the
/// connection is finished and should be closed.
fn drive<P: Protocol>(conn: &mut Conn<P>, buf: &mut [u8]) -> Result<bool, Errno> {
    while conn.protocol.wants_input() {
        match conn.socket.read(buf) {
            Ok(0) => {
                conn.protocol.on_eof();
                break;
            }
            Ok(n) => conn.protocol.on_input(&buf[..n]),
            Err(e) if e == Errno::EAGAIN => break,
            Err(e) if e == Errno::EINTR => continue,
            Err(e) => return Err(e),
        }
        // Answer as input arrives, so pipelined requests are paced by output.
        flush(conn)?;
    }
    flush(conn)?;
    Ok(conn.protocol.finished())
}

fn flush<P: Protocol>(conn: &mut Conn<P>) -> Result<(), Errno> {
    loop {
        let out = conn.protocol.output().map_err(|_| Errno::EIO)?;
        if out.is_empty() {
            return Ok(());
        }
        match conn.socket.write(out) {
            Ok(n) => conn.protocol.wrote(n),
            Err(e) if e == Errno::EAGAIN => return Ok(()),
            Err(e) if e == Errno::EINTR => continue,
            Err(e) => return Err(e),
        }
    }
}

fn interest_of<P: Protocol>(protocol: &mut P) -> Interest {
    let writable = protocol.output().is_ok_and(|o| !o.is_empty());
    Interest { readable: protocol.wants_input(), writable, ..Interest::default() }
}
