//! `getsockopt`/`setsockopt` of vcl sessions, with the kernel's rules for a
//! TCP/IPv4 socket (net/core/sock.c `sk_setsockopt`/`sk_getsockopt`,
//! net/ipv4/tcp.c `do_tcp_setsockopt`, net/ipv4/ip_sockglue.c).
//!
//! Options with an effect in the daemon go to it (`TCP_NODELAY`,
//! `TCP_CORK`, `SO_KEEPALIVE`, `TCP_KEEPIDLE/INTVL/CNT`, `SO_LINGER` with a
//! zero timeout); timeouts, `O_NONBLOCK`-like state and `SO_REUSEPORT` are vcl's;
//! every other known option is accepted and remembered so `getsockopt`
//! reports what was set (the daemon has no use for it). Unknown options
//! give `ENOPROTOOPT`, as the kernel.

use std::time::Duration;

use libc::c_int;
use sluice_vcl::SockOption;

use super::{records, vcl_errno, Handle};
use crate::backend::SessionRef;
use crate::errno::Errno;

const INT: usize = std::mem::size_of::<c_int>();

/// Integer options the kernel stores and this backend only remembers.
fn remembered(level: c_int, name: c_int) -> bool {
    match level {
        libc::SOL_SOCKET => matches!(
            name,
            libc::SO_REUSEADDR
                | libc::SO_OOBINLINE
                | libc::SO_BROADCAST
                | libc::SO_DONTROUTE
                | libc::SO_PRIORITY
                | libc::SO_RCVLOWAT
                | libc::SO_SNDLOWAT
                | libc::SO_MARK
                | libc::SO_BUSY_POLL
                | libc::SO_INCOMING_CPU
                | libc::SO_TIMESTAMP
                | libc::SO_ZEROCOPY
        ),
        libc::IPPROTO_TCP => matches!(
            name,
            libc::TCP_DEFER_ACCEPT
                | libc::TCP_QUICKACK
                | libc::TCP_FASTOPEN
                | libc::TCP_USER_TIMEOUT
                | libc::TCP_NOTSENT_LOWAT
                | libc::TCP_MAXSEG
                | libc::TCP_SYNCNT
                | libc::TCP_LINGER2
                | libc::TCP_WINDOW_CLAMP
                | libc::TCP_THIN_LINEAR_TIMEOUTS
                | libc::TCP_FASTOPEN_CONNECT
        ),
        libc::IPPROTO_IP => matches!(
            name,
            libc::IP_TOS
                | libc::IP_TTL
                | libc::IP_RECVERR
                | libc::IP_MTU_DISCOVER
                | libc::IP_FREEBIND
                | libc::IP_BIND_ADDRESS_NO_PORT
                | libc::IP_TRANSPARENT
        ),
        _ => false,
    }
}

fn int_of(value: &[u8]) -> Result<c_int, Errno> {
    // Integer options need at least an int (`copy_from_sockptr` of optlen
    // < sizeof(int) is EINVAL).
    let bytes: [u8; INT] = value.get(..INT).and_then(|b| b.try_into().ok()).ok_or(Errno::EINVAL)?;
    Ok(c_int::from_ne_bytes(bytes))
}

fn timeval_of(value: &[u8]) -> Result<Option<Duration>, Errno> {
    let size = std::mem::size_of::<libc::timeval>();
    if value.len() < size {
        return Err(Errno::EINVAL);
    }
    let sec = i64::from_ne_bytes(value[..8].try_into().map_err(|_| Errno::EINVAL)?);
    let usec = i64::from_ne_bytes(value[8..16].try_into().map_err(|_| Errno::EINVAL)?);
    if !(0..1_000_000).contains(&usec) {
        return Err(Errno(libc::EDOM));
    }
    // A negative timeout is "no timeout" (sock_set_timeout), as is zero.
    if sec < 0 || (sec == 0 && usec == 0) {
        return Ok(None);
    }
    Ok(Some(Duration::new(sec as u64, usec as u32 * 1000)))
}

fn daemon_option(h: &Handle, option: SockOption, value: u64) -> Result<(), Errno> {
    h.set_option(option, value).map_err(vcl_errno)
}

pub(super) fn set(h: &Handle, s: SessionRef, level: c_int, name: c_int, value: &[u8]) -> Result<(), Errno> {
    match (level, name) {
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => {
            daemon_option(h, SockOption::KeepAlive, (int_of(value)? != 0) as u64)?
        }
        (libc::SOL_SOCKET, libc::SO_REUSEPORT) => h.set_reuse_port(int_of(value)? != 0).map_err(vcl_errno)?,
        (libc::SOL_SOCKET, libc::SO_RCVBUF | libc::SO_SNDBUF | libc::SO_RCVBUFFORCE | libc::SO_SNDBUFFORCE) => {
            // Fifo sizes are fixed per attachment: accepted, and getsockopt
            // reports the real size.
            int_of(value)?;
            return Ok(());
        }
        (libc::SOL_SOCKET, libc::SO_LINGER) => {
            if value.len() < std::mem::size_of::<libc::linger>() {
                return Err(Errno::EINVAL);
            }
            let onoff = int_of(&value[..INT])?;
            let secs = int_of(&value[INT..])?;
            // Only a zero linger has an effect Sluice implements: RST at close.
            daemon_option(h, SockOption::LingerZero, (onoff != 0 && secs == 0) as u64)?;
        }
        (libc::SOL_SOCKET, libc::SO_RCVTIMEO | libc::SO_RCVTIMEO_NEW) => {
            h.set_read_timeout(timeval_of(value)?).map_err(vcl_errno)?;
            return Ok(());
        }
        (libc::SOL_SOCKET, libc::SO_SNDTIMEO | libc::SO_SNDTIMEO_NEW) => {
            h.set_write_timeout(timeval_of(value)?).map_err(vcl_errno)?;
            return Ok(());
        }
        (libc::IPPROTO_TCP, libc::TCP_NODELAY) => daemon_option(h, SockOption::NoDelay, (int_of(value)? != 0) as u64)?,
        (libc::IPPROTO_TCP, libc::TCP_CORK) => daemon_option(h, SockOption::Cork, (int_of(value)? != 0) as u64)?,
        (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE | libc::TCP_KEEPINTVL | libc::TCP_KEEPCNT) => {
            let v = int_of(value)?;
            // tcp_sock_set_keepidle & co.: 1..=32767 (MAX_TCP_KEEP*), count ≤ 127.
            let max = if name == libc::TCP_KEEPCNT { 127 } else { 32767 };
            if !(1..=max).contains(&v) {
                return Err(Errno::EINVAL);
            }
            let option = match name {
                libc::TCP_KEEPIDLE => SockOption::KeepIdle,
                libc::TCP_KEEPINTVL => SockOption::KeepInterval,
                _ => SockOption::KeepCount,
            };
            daemon_option(h, option, v as u64)?;
        }
        (libc::IPPROTO_TCP, libc::TCP_CONGESTION) => {
            let name_len = value.iter().position(|&b| b == 0).unwrap_or(value.len());
            if name_len == 0 {
                return Err(Errno(libc::ENOENT));
            }
        }
        (
            libc::SOL_SOCKET,
            libc::SO_TYPE | libc::SO_PROTOCOL | libc::SO_DOMAIN | libc::SO_ERROR | libc::SO_ACCEPTCONN,
        ) => {
            return Err(Errno::ENOPROTOOPT);
        }
        _ if remembered(level, name) => {
            int_of(value)?;
        }
        _ => return Err(Errno::ENOPROTOOPT),
    }
    records::store_option(s, level, name, value);
    Ok(())
}

/// Copies `bytes` into `out` as the kernel does (truncated to the caller's
/// length), returning the length stored back.
fn put(out: &mut [u8], bytes: &[u8]) -> usize {
    let n = out.len().min(bytes.len());
    out[..n].copy_from_slice(&bytes[..n]);
    n
}

fn put_int(out: &mut [u8], v: c_int) -> usize {
    put(out, &v.to_ne_bytes())
}

fn put_timeval(out: &mut [u8], d: Option<Duration>) -> usize {
    let d = d.unwrap_or(Duration::ZERO);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&(d.as_secs() as i64).to_ne_bytes());
    bytes[8..].copy_from_slice(&(d.subsec_micros() as i64).to_ne_bytes());
    put(out, &bytes)
}

/// The stored integer, or `default`.
fn stored_int(s: SessionRef, level: c_int, name: c_int, default: c_int) -> c_int {
    records::option(s, level, name).and_then(|v| int_of(&v).ok()).unwrap_or(default)
}

fn flag(s: SessionRef, level: c_int, name: c_int) -> c_int {
    (stored_int(s, level, name, 0) != 0) as c_int
}

/// `struct tcp_info` with the state and the basics a program looks at
/// (`tcpi_state` first byte; the rest zero: unknown here).
fn tcp_info(h: &Handle, listening: bool) -> [u8; 232] {
    let mut info = [0u8; 232];
    // include/net/tcp_states.h: ESTABLISHED 1, CLOSE 7, LISTEN 10.
    info[0] = if listening {
        10
    } else if h.peer_addr().is_ok() {
        1
    } else {
        7
    };
    info
}

pub(super) fn get(h: &Handle, s: SessionRef, level: c_int, name: c_int, out: &mut [u8]) -> Result<usize, Errno> {
    let geometry = h.vcl().geometry();
    let listening = records::is_listening(s);
    let n = match (level, name) {
        (libc::SOL_SOCKET, libc::SO_TYPE) => put_int(out, libc::SOCK_STREAM),
        (libc::SOL_SOCKET, libc::SO_PROTOCOL) => put_int(out, libc::IPPROTO_TCP),
        (libc::SOL_SOCKET, libc::SO_DOMAIN) => put_int(out, libc::AF_INET),
        (libc::SOL_SOCKET, libc::SO_ACCEPTCONN) => put_int(out, listening as c_int),
        (libc::SOL_SOCKET, libc::SO_ERROR) => {
            let e = h.take_error().map_err(vcl_errno)?.map_or(0, |e| e.raw());
            put_int(out, e)
        }
        // What a buffer holds is its fifo (the kernel reports its doubled
        // sk_rcvbuf/sk_sndbuf; a program reads this as "bytes of buffer").
        (libc::SOL_SOCKET, libc::SO_RCVBUF) => put_int(out, geometry.rx_fifo as c_int),
        (libc::SOL_SOCKET, libc::SO_SNDBUF) => put_int(out, geometry.tx_fifo as c_int),
        (libc::SOL_SOCKET, libc::SO_RCVTIMEO | libc::SO_RCVTIMEO_NEW) => {
            put_timeval(out, h.read_timeout().map_err(vcl_errno)?)
        }
        (libc::SOL_SOCKET, libc::SO_SNDTIMEO | libc::SO_SNDTIMEO_NEW) => {
            put_timeval(out, h.write_timeout().map_err(vcl_errno)?)
        }
        (libc::SOL_SOCKET, libc::SO_LINGER) => {
            let stored = records::option(s, level, name).unwrap_or_default();
            let mut bytes = [0u8; 8];
            let n = stored.len().min(8);
            bytes[..n].copy_from_slice(&stored[..n]);
            put(out, &bytes)
        }
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE | libc::SO_REUSEPORT) => put_int(out, flag(s, level, name)),
        (libc::IPPROTO_TCP, libc::TCP_NODELAY | libc::TCP_CORK) => put_int(out, flag(s, level, name)),
        // Linux defaults (net.ipv4.tcp_keepalive_*).
        (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE) => put_int(out, stored_int(s, level, name, 7200)),
        (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL) => put_int(out, stored_int(s, level, name, 75)),
        (libc::IPPROTO_TCP, libc::TCP_KEEPCNT) => put_int(out, stored_int(s, level, name, 9)),
        (libc::IPPROTO_TCP, libc::TCP_MAXSEG) => put_int(out, stored_int(s, level, name, 536)),
        (libc::IPPROTO_TCP, libc::TCP_INFO) => put(out, &tcp_info(h, listening)),
        (libc::IPPROTO_TCP, libc::TCP_CONGESTION) => {
            let mut name16 = [0u8; 16];
            let stored = records::option(s, level, name).unwrap_or_else(|| b"reno".to_vec());
            let n = stored.iter().position(|&b| b == 0).unwrap_or(stored.len()).min(15);
            name16[..n].copy_from_slice(&stored[..n]);
            put(out, &name16)
        }
        (libc::IPPROTO_IP, libc::IP_TTL) => put_int(out, stored_int(s, level, name, 64)),
        _ if remembered(level, name) => put_int(out, stored_int(s, level, name, 0)),
        _ => return Err(Errno::ENOPROTOOPT),
    };
    Ok(n)
}
