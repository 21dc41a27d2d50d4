//! The client side of `sluice stats` and `sluice sessions`: connect to the
//! control socket, say `Hello{Admin}`, send the command, collect the `Text`
//! chunks of the reply.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use sluice_shm::control::{AdminCommand, Message, Role, MAX_MESSAGE};
use sluice_shm::unix_socket;

use crate::worker::epoll::{self, Epoll};

/// How long the daemon may take to answer in full.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs `command` on the daemon at `socket`; the reply's text (JSON with
/// `json`).
pub fn request(socket: &Path, command: AdminCommand, json: bool) -> io::Result<String> {
    let sock = unix_socket::connect(socket)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot reach the daemon at {}: {e}", socket.display())))?;
    let hello = Message::Hello { pid: std::process::id(), role: Role::Admin };
    unix_socket::send(sock.as_fd(), &hello.encode(1), &[])?;
    unix_socket::send(sock.as_fd(), &Message::Admin { command, json }.encode(2), &[])?;

    let mut epoll = Epoll::new(1)?;
    epoll.add(sock.as_raw_fd(), 0, epoll::IN)?;
    let deadline = Instant::now() + REPLY_TIMEOUT;
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut text = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "the daemon did not answer in time"));
        }
        let ms = i32::try_from(left.as_millis().max(1)).unwrap_or(i32::MAX);
        if epoll.wait(ms)?.count() == 0 {
            continue;
        }
        let (n, _fds) = unix_socket::recv(sock.as_fd(), &mut buf, 0)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the daemon closed the connection"));
        }
        let (_, message) =
            Message::decode(&buf[..n]).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        match message {
            Message::Text { last, text: chunk } => {
                text.push_str(&chunk);
                if last {
                    return Ok(text);
                }
            }
            Message::Error { errno, message } => {
                let kind = io::Error::from_raw_os_error(errno).kind();
                return Err(io::Error::new(kind, format!("the daemon refused: {message}")));
            }
            other => {
                return Err(io::Error::new(io::ErrorKind::InvalidData, format!("unexpected reply {other:?}")));
            }
        }
    }
}
