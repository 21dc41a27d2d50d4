//! Which AF_XDP sockets exist in this network namespace, and where they are
//! bound: the kernel's answer to a sock_diag dump (sock_diag(7), family
//! AF_XDP, `include/uapi/linux/xdp_diag.h`) — the query `ss --xdp` makes.
//!
//! `open` uses it to tell an XDP program that a live process still uses from
//! one left behind by a process that died: the kernel unbinds a socket when
//! its last descriptor closes, however the process ended.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `NETLINK_SOCK_DIAG` (linux/netlink.h).
const NETLINK_SOCK_DIAG: libc::c_int = 4;
/// `SOCK_DIAG_BY_FAMILY` (linux/sock_diag.h).
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `NLMSG_ERROR`, `NLMSG_DONE` (linux/netlink.h).
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// `NLM_F_REQUEST | NLM_F_DUMP` (NLM_F_ROOT | NLM_F_MATCH).
const DUMP_REQUEST_FLAGS: u16 = 0x1 | 0x100 | 0x200;
/// `XDP_SHOW_INFO` (linux/xdp_diag.h): ask for the `XDP_DIAG_INFO` attribute.
const XDP_SHOW_INFO: u32 = 1;
/// Attribute type of `struct xdp_diag_info { __u32 ifindex; __u32 queue_id; }`.
const XDP_DIAG_INFO: u16 = 1;
const NLMSG_HEADER_LEN: usize = 16;
/// `struct xdp_diag_msg`: family, type, pad, inode, cookie[2].
const XDP_DIAG_MSG_LEN: usize = 16;
const NLATTR_HEADER_LEN: usize = 4;

/// Where one AF_XDP socket is bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct BoundSocket {
    /// 0 for a socket that is not bound.
    pub ifindex: u32,
    pub queue: u32,
}

/// Every AF_XDP socket of the calling thread's network namespace.
pub(super) fn xdp_sockets() -> io::Result<Vec<BoundSocket>> {
    // SAFETY: plain socket(2) call; the returned descriptor is checked below.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, NETLINK_SOCK_DIAG) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a freshly created descriptor nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };

    let request = dump_request();
    let (raw, kernel) = (socket.as_raw_fd(), std::ptr::null());
    // SAFETY: the buffer is valid for reads of its length for the whole call; a NULL destination address sends to the kernel (netlink(7)).
    let sent = unsafe { libc::sendto(raw, request.as_ptr().cast(), request.len(), 0, kernel, 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }

    let mut sockets = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: the buffer is valid for writes of its length for the whole call.
        let got = unsafe { libc::recv(socket.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if got < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        // `got` is non-negative and at most buf.len() here.
        let datagram = &buf[..got as usize];
        if parse_datagram(datagram, &mut sockets)? == Dump::Done {
            return Ok(sockets);
        }
    }
}

/// `struct nlmsghdr` + `struct xdp_diag_req` asking for every socket.
fn dump_request() -> Vec<u8> {
    let len = NLMSG_HEADER_LEN + 20;
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&(len as u32).to_ne_bytes());
    msg.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    msg.extend_from_slice(&DUMP_REQUEST_FLAGS.to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // sequence number
    msg.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
    msg.push(libc::AF_XDP as u8); // sdiag_family
    msg.push(0); // sdiag_protocol
    msg.extend_from_slice(&0u16.to_ne_bytes()); // pad
    msg.extend_from_slice(&0u32.to_ne_bytes()); // xdiag_ino: a dump ignores it
    msg.extend_from_slice(&XDP_SHOW_INFO.to_ne_bytes());
    msg.extend_from_slice(&[0xff; 8]); // xdiag_cookie: INET_DIAG_NOCOOKIE
    msg
}

#[derive(Debug, PartialEq, Eq)]
enum Dump {
    More,
    Done,
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("malformed sock_diag answer: {what}"))
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// Netlink messages and attributes start on 4-byte boundaries (NLMSG_ALIGN).
fn align4(len: usize) -> usize {
    (len + 3) & !3
}

/// Reads every message of one datagram of the dump into `sockets`.
fn parse_datagram(datagram: &[u8], sockets: &mut Vec<BoundSocket>) -> io::Result<Dump> {
    let mut at = 0;
    while at < datagram.len() {
        let len = u32_at(datagram, at).ok_or_else(|| malformed("truncated message header"))? as usize;
        let kind = u16_at(datagram, at + 4).ok_or_else(|| malformed("truncated message header"))?;
        if len < NLMSG_HEADER_LEN || len > datagram.len() - at {
            return Err(malformed("message length out of bounds"));
        }
        let body = &datagram[at + NLMSG_HEADER_LEN..at + len];
        match kind {
            NLMSG_DONE => return Ok(Dump::Done),
            NLMSG_ERROR => {
                // struct nlmsgerr: a negative errno (0 is an acknowledgement).
                let code = u32_at(body, 0).ok_or_else(|| malformed("truncated error"))? as i32;
                if code != 0 {
                    return Err(io::Error::from_raw_os_error(code.wrapping_neg()));
                }
            }
            SOCK_DIAG_BY_FAMILY => sockets.push(parse_socket(body)?),
            _ => {}
        }
        at += align4(len);
    }
    Ok(Dump::More)
}

/// One `struct xdp_diag_msg` and its attributes.
fn parse_socket(body: &[u8]) -> io::Result<BoundSocket> {
    let mut attrs = body.get(XDP_DIAG_MSG_LEN..).ok_or_else(|| malformed("truncated xdp_diag_msg"))?;
    let mut socket = BoundSocket { ifindex: 0, queue: 0 };
    while attrs.len() >= NLATTR_HEADER_LEN {
        let len = u16_at(attrs, 0).ok_or_else(|| malformed("truncated attribute"))? as usize;
        let kind = u16_at(attrs, 2).ok_or_else(|| malformed("truncated attribute"))?;
        if len < NLATTR_HEADER_LEN || len > attrs.len() {
            return Err(malformed("attribute length out of bounds"));
        }
        if kind == XDP_DIAG_INFO {
            let payload = &attrs[NLATTR_HEADER_LEN..len];
            socket.ifindex = u32_at(payload, 0).ok_or_else(|| malformed("short XDP_DIAG_INFO"))?;
            socket.queue = u32_at(payload, 4).ok_or_else(|| malformed("short XDP_DIAG_INFO"))?;
        }
        attrs = attrs.get(align4(len)..).unwrap_or(&[]);
    }
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u16, body: &[u8]) -> Vec<u8> {
        let len = NLMSG_HEADER_LEN + body.len();
        let mut msg = Vec::new();
        msg.extend_from_slice(&(len as u32).to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&[0; 10]);
        msg.extend_from_slice(body);
        msg.resize(align4(msg.len()), 0);
        msg
    }

    fn socket_body(info: Option<(u32, u32)>) -> Vec<u8> {
        let mut body = vec![libc::AF_XDP as u8, 3, 0, 0, 7, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
        // An attribute the parser does not know comes first and is skipped.
        body.extend_from_slice(&8u16.to_ne_bytes());
        body.extend_from_slice(&2u16.to_ne_bytes());
        body.extend_from_slice(&1000u32.to_ne_bytes());
        if let Some((ifindex, queue)) = info {
            body.extend_from_slice(&12u16.to_ne_bytes());
            body.extend_from_slice(&XDP_DIAG_INFO.to_ne_bytes());
            body.extend_from_slice(&ifindex.to_ne_bytes());
            body.extend_from_slice(&queue.to_ne_bytes());
        }
        body
    }

    #[test]
    fn request_is_a_dump_for_af_xdp_with_info() {
        let req = dump_request();
        assert_eq!(u32_at(&req, 0), Some(req.len() as u32));
        assert_eq!(u16_at(&req, 4), Some(SOCK_DIAG_BY_FAMILY));
        assert_eq!(u16_at(&req, 6), Some(0x301));
        assert_eq!(req[16], libc::AF_XDP as u8);
        assert_eq!(u32_at(&req, 24), Some(XDP_SHOW_INFO));
    }

    #[test]
    fn sockets_are_read_until_done() {
        let mut datagram = message(SOCK_DIAG_BY_FAMILY, &socket_body(Some((5, 2))));
        datagram.extend(message(SOCK_DIAG_BY_FAMILY, &socket_body(None)));
        let mut sockets = Vec::new();
        assert_eq!(parse_datagram(&datagram, &mut sockets).unwrap(), Dump::More);
        assert_eq!(parse_datagram(&message(NLMSG_DONE, &[0; 4]), &mut sockets).unwrap(), Dump::Done);
        assert_eq!(sockets, [BoundSocket { ifindex: 5, queue: 2 }, BoundSocket { ifindex: 0, queue: 0 }]);
    }

    #[test]
    fn a_kernel_error_is_returned() {
        let err = parse_datagram(&message(NLMSG_ERROR, &(-libc::ENOENT).to_ne_bytes()), &mut Vec::new()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn lengths_that_overrun_the_datagram_are_errors_not_panics() {
        let mut datagram = message(SOCK_DIAG_BY_FAMILY, &socket_body(Some((1, 0))));
        datagram[0] = 200; // message longer than the datagram
        assert!(parse_datagram(&datagram, &mut Vec::new()).is_err());

        let mut body = socket_body(Some((1, 0)));
        body[XDP_DIAG_MSG_LEN] = 200; // attribute longer than the message
        assert!(parse_datagram(&message(SOCK_DIAG_BY_FAMILY, &body), &mut Vec::new()).is_err());

        assert!(parse_datagram(&[1, 2, 3], &mut Vec::new()).is_err());
        assert!(parse_datagram(&message(SOCK_DIAG_BY_FAMILY, &[0; 4]), &mut Vec::new()).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..160)) {
            let _ = parse_datagram(&bytes, &mut Vec::new());
        }
    }
}
