//! The same event loop as [`super::serve_vcl`] over kernel sockets (mio), so
//! benchmarks compare Sluice with the kernel running identical server code.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::protocol::Protocol;
use super::serve_vcl::ServeStats;

const LISTENER: Token = Token(usize::MAX);
const STOP_CHECK: Duration = Duration::from_millis(100);

struct Conn<P> {
    stream: TcpStream,
    protocol: P,
    interest: Interest,
}

/// Listens on `addr` and serves until `stop` is set.
pub fn serve<P: Protocol>(
    addr: SocketAddr,
    make: impl Fn() -> P,
    stop: &AtomicBool,
    ready: impl FnOnce(SocketAddr),
) -> io::Result<ServeStats> {
    let mut listener = TcpListener::bind(addr)?;
    let mut poll = Poll::new()?;
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
    ready(listener.local_addr()?);
    let mut conns: Slab<Conn<P>> = Slab::new();
    let mut stats = ServeStats::default();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        if let Err(e) = poll.poll(&mut events, Some(STOP_CHECK)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            stats.accepted += 1;
                            let entry = conns.vacant_entry();
                            let token = Token(entry.key());
                            if poll.registry().register(&mut stream, token, Interest::READABLE).is_err() {
                                stats.errors += 1;
                                continue;
                            }
                            entry.insert(Conn { stream, protocol: make(), interest: Interest::READABLE });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            log::warn!("accept failed: {e}");
                            break;
                        }
                    }
                }
                continue;
            }
            let key = ev.token().0;
            let Some(conn) = conns.get_mut(key) else { continue };
            match drive(conn, &mut buf) {
                Ok(true) => {
                    let mut conn = conns.remove(key);
                    let _ = poll.registry().deregister(&mut conn.stream);
                    stats.closed += 1;
                }
                Ok(false) => {
                    let want = interest_of(&mut conn.protocol);
                    if want != conn.interest
                        && poll.registry().reregister(&mut conn.stream, ev.token(), want).is_ok()
                    {
                        conn.interest = want;
                    }
                }
                Err(_) => {
                    let mut conn = conns.remove(key);
                    let _ = poll.registry().deregister(&mut conn.stream);
                    stats.errors += 1;
                }
            }
        }
    }
    Ok(stats)
}

/// mio is edge-triggered: read and write until `WouldBlock` every time.
fn drive<P: Protocol>(conn: &mut Conn<P>, buf: &mut [u8]) -> io::Result<bool> {
    loop {
        flush(conn)?;
        if !conn.protocol.wants_input() {
            break;
        }
        match conn.stream.read(buf) {
            Ok(0) => {
                conn.protocol.on_eof();
                break;
            }
            Ok(n) => conn.protocol.on_input(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    flush(conn)?;
    Ok(conn.protocol.finished())
}

fn flush<P: Protocol>(conn: &mut Conn<P>) -> io::Result<()> {
    loop {
        let out = conn.protocol.output()?;
        if out.is_empty() {
            return Ok(());
        }
        match conn.stream.write(out) {
            Ok(n) => conn.protocol.wrote(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

fn interest_of<P: Protocol>(protocol: &mut P) -> Interest {
    let writable = protocol.output().is_ok_and(|o| !o.is_empty());
    match (protocol.wants_input(), writable) {
        (_, true) if !protocol.wants_input() => Interest::WRITABLE,
        (true, true) => Interest::READABLE | Interest::WRITABLE,
        _ => Interest::READABLE,
    }
}
