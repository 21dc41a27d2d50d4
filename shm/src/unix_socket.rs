//! The control socket's transport: `SOCK_SEQPACKET` Unix sockets that carry
//! descriptors (`SCM_RIGHTS`) and tell who is on the other end
//! (`SO_PEERCRED`).

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// Most descriptors one message carries (attach: 2 memfds, the wake fd and
/// one doorbell per daemon worker).
pub const MAX_FDS: usize = 40;

macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        // SAFETY: see the call site; the macro adds nothing beyond the call.
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

/// The peer's process credentials, as the kernel recorded them at connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCred {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

fn sockaddr(path: &Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: sockaddr_un is plain data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() || bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "control socket path is empty, too long or contains NUL"));
    }
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    let len = mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    Ok((addr, len as libc::socklen_t))
}

fn seqpacket() -> io::Result<OwnedFd> {
    // SAFETY: integer arguments only.
    let fd = syscall!(socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0))?;
    // SAFETY: socket returned a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Binds and listens on `path` (which must not exist).
pub fn listen(path: &Path, backlog: i32) -> io::Result<OwnedFd> {
    let fd = seqpacket()?;
    let (addr, len) = sockaddr(path)?;
    // SAFETY: addr is a valid sockaddr_un of `len` bytes, live for the call.
    syscall!(bind(fd.as_raw_fd(), (&addr as *const libc::sockaddr_un).cast(), len))?;
    // SAFETY: integer arguments on a descriptor we own.
    syscall!(listen(fd.as_raw_fd(), backlog))?;
    Ok(fd)
}

/// Connects to the listener at `path` (blocking; the local connect of a
/// Unix socket completes or fails at once).
pub fn connect(path: &Path) -> io::Result<OwnedFd> {
    let fd = seqpacket()?;
    let (addr, len) = sockaddr(path)?;
    // SAFETY: as in `listen`.
    syscall!(connect(fd.as_raw_fd(), (&addr as *const libc::sockaddr_un).cast(), len))?;
    Ok(fd)
}

/// Accepts one connection, close-on-exec; `flags` may add `SOCK_NONBLOCK`.
pub fn accept(listener: BorrowedFd<'_>, flags: i32) -> io::Result<OwnedFd> {
    // SAFETY: null address pointers are allowed by accept4.
    let fd = syscall!(accept4(listener.as_raw_fd(), std::ptr::null_mut(), std::ptr::null_mut(), flags | libc::SOCK_CLOEXEC))?;
    // SAFETY: accept4 returned a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The connected peer's credentials.
pub fn peer_cred(sock: BorrowedFd<'_>) -> io::Result<PeerCred> {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: cred and len are live locals of the sizes given.
    syscall!(getsockopt(
        sock.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_PEERCRED,
        (&mut cred as *mut libc::ucred).cast(),
        &mut len
    ))?;
    Ok(PeerCred { pid: cred.pid, uid: cred.uid, gid: cred.gid })
}

/// Room for `MAX_FDS` descriptors in a control message, aligned for cmsghdr.
#[repr(C)]
struct CmsgBuf {
    _align: [libc::cmsghdr; 0],
    bytes: [u8; 256],
}

/// Sends one message with `fds` attached. `MSG_NOSIGNAL`: a dead peer is an
/// `EPIPE` error, not a signal.
pub fn send(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "too many descriptors for one message"));
    }
    let mut iov = libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() };
    let mut cmsg = CmsgBuf { _align: [], bytes: [0; 256] };
    // SAFETY: msghdr is plain data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let payload = (fds.len() * mem::size_of::<RawFd>()) as u32;
        // SAFETY: pure arithmetic on a length.
        let space = unsafe { libc::CMSG_SPACE(payload) } as usize;
        msg.msg_control = cmsg.bytes.as_mut_ptr().cast();
        msg.msg_controllen = space;
        // SAFETY: msg_control points at `space` ≤ 256 writable, aligned bytes, so the first header and its data (CMSG_LEN(payload) ≤ space) fit.
        unsafe {
            let hdr = libc::CMSG_FIRSTHDR(&msg);
            (*hdr).cmsg_level = libc::SOL_SOCKET;
            (*hdr).cmsg_type = libc::SCM_RIGHTS;
            (*hdr).cmsg_len = libc::CMSG_LEN(payload) as usize;
            let data = libc::CMSG_DATA(hdr).cast::<RawFd>();
            for (i, fd) in fds.iter().enumerate() {
                data.add(i).write_unaligned(fd.as_raw_fd());
            }
        }
    }
    // SAFETY: msg points at live iov/cmsg buffers for the call.
    let sent = syscall!(sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL))?;
    if sent as usize != bytes.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "control message sent partially"));
    }
    Ok(())
}

/// Receives one message into `buf`; returns its length and the descriptors
/// that came with it (close-on-exec). Length 0 means the peer closed. A
/// message longer than `buf` is an error (`MSG_TRUNC`), and so is a
/// truncated descriptor list (those that did arrive are closed).
pub fn recv(sock: BorrowedFd<'_>, buf: &mut [u8], flags: i32) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let mut cmsg = CmsgBuf { _align: [], bytes: [0; 256] };
    // SAFETY: msghdr is plain data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.bytes.as_mut_ptr().cast();
    msg.msg_controllen = cmsg.bytes.len();
    // SAFETY: msg points at live iov/cmsg buffers for the call.
    let n = syscall!(recvmsg(sock.as_raw_fd(), &mut msg, flags | libc::MSG_CMSG_CLOEXEC))?;
    let mut fds = Vec::new();
    // Why this is sound: the kernel filled msg_control with well-formed headers within
    // msg_controllen; CMSG_NXTHDR stays inside it. Each SCM_RIGHTS descriptor
    // is a new one owned by this process, taken exactly once here.
    // SAFETY: headers come from the kernel within msg_controllen; each fd is taken once.
    unsafe {
        let mut hdr = libc::CMSG_FIRSTHDR(&msg);
        while !hdr.is_null() {
            if (*hdr).cmsg_level == libc::SOL_SOCKET && (*hdr).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(hdr).cast::<RawFd>();
                let header = libc::CMSG_LEN(0) as usize;
                let count = ((*hdr).cmsg_len as usize).saturating_sub(header) / mem::size_of::<RawFd>();
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            hdr = libc::CMSG_NXTHDR(&msg, hdr);
        }
    }
    if msg.msg_flags & libc::MSG_TRUNC != 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "control message larger than the buffer"));
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "control message carried too many descriptors"));
    }
    Ok((n as usize, fds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::EventFd;
    use std::os::fd::AsFd;

    #[test]
    fn descriptors_and_credentials_cross_the_socket() {
        let dir = std::env::temp_dir().join(format!("sluice-us-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let listener = listen(&dir, 4).unwrap();
        let client = connect(&dir).unwrap();
        let server = accept(listener.as_fd(), 0).unwrap();
        let cred = peer_cred(server.as_fd()).unwrap();
        assert_eq!(cred.pid as u32, std::process::id());
        // SAFETY: getuid has no preconditions.
        assert_eq!(cred.uid, unsafe { libc::getuid() });

        let efd = EventFd::new().unwrap();
        send(server.as_fd(), b"attach", &[efd.as_fd(), efd.as_fd()]).unwrap();
        let mut buf = [0u8; 64];
        let (n, fds) = recv(client.as_fd(), &mut buf, 0).unwrap();
        assert_eq!(&buf[..n], b"attach");
        assert_eq!(fds.len(), 2);
        // The received descriptor names the same eventfd.
        let got = EventFd::from_fd(fds.into_iter().next().unwrap());
        efd.notify().unwrap();
        assert_eq!(got.drain().unwrap(), 1);

        drop(server);
        let (n, fds) = recv(client.as_fd(), &mut buf, 0).unwrap();
        assert_eq!((n, fds.len()), (0, 0), "peer close reads as length 0");
        std::fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn an_oversized_message_is_an_error() {
        let mut pair = [0; 2];
        // SAFETY: pair is a live 2-int array.
        syscall!(socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, pair.as_mut_ptr())).unwrap();
        // SAFETY: socketpair returned two new descriptors.
        let (a, b) = unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) };
        send(a.as_fd(), &[7u8; 100], &[]).unwrap();
        let mut small = [0u8; 10];
        assert!(recv(b.as_fd(), &mut small, 0).is_err());
    }
}
