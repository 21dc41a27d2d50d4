//! Attaching to the daemon (design §2.1–2.2): connect to its control socket,
//! say `Hello`, receive the geometry and the descriptors, map the segments.
//!
//! Never hangs: a missing daemon fails at `connect` (`ENOENT`,
//! `ECONNREFUSED`), and a daemon that does not answer within
//! [`ATTACH_TIMEOUT`] is `ETIMEDOUT`.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sluice_shm::control::{Message, Role, MAX_MESSAGE};
use sluice_shm::layout::{DownSegment, Geometry, UpSegment};
use sluice_shm::os::{self, Access, EventFd, Mapping};
use sluice_shm::poll::{ppoll, PollFd, POLLIN};
use sluice_shm::{unix_socket, Region};

use crate::error::{Errno, Error};

/// How long the daemon has to answer `Hello`.
pub const ATTACH_TIMEOUT: Duration = Duration::from_secs(5);

/// Environment variable naming the control socket.
pub const CONTROL_SOCKET_ENV: &str = "SLUICE_CONTROL_SOCKET";

/// Everything an attach hands over.
pub(crate) struct Attachment {
    /// Kept open for the attachment's life: the daemon sees the app's death
    /// as its hang-up, and the app sees the daemon's the same way.
    pub control: OwnedFd,
    pub app_worker_id: u32,
    pub geometry: Geometry,
    pub down: DownSegment,
    pub up: UpSegment,
    /// Daemon → app wake-ups (the leader sleeps on it).
    pub wake: EventFd,
    /// App → daemon worker wake-ups, one per worker.
    pub doorbells: Vec<EventFd>,
}

/// The control socket path: `SLUICE_CONTROL_SOCKET`, else
/// `/run/sluice/control.sock` for root, else
/// `$XDG_RUNTIME_DIR/sluice/control.sock` (design §2.1).
pub fn default_control_path() -> PathBuf {
    if let Some(p) = std::env::var_os(CONTROL_SOCKET_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if sluice_shm::poll::effective_uid() == 0 {
        return PathBuf::from("/run/sluice/control.sock");
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("sluice/control.sock"),
        // Without a runtime dir there is no per-user default; fall back to the
        // system path, whose error message names it.
        None => PathBuf::from("/run/sluice/control.sock"),
    }
}

fn io_error(path: &Path, what: &str, e: &std::io::Error) -> Error {
    Error::new(Errno::from_io(e), format!("{what} (control socket {}): {e}", path.display()))
}

fn protocol_error(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::new(Errno::EPROTO, format!("daemon at {} broke the attach protocol: {what}", path.display()))
}

/// Attaches this process to the daemon at `path`.
pub(crate) fn attach(path: &Path) -> Result<Attachment, Error> {
    let control = unix_socket::connect(path).map_err(|e| io_error(path, "no Sluice daemon answers", &e))?;
    let hello = Message::Hello { pid: std::process::id(), role: Role::App };
    unix_socket::send(control.as_fd(), &hello.encode(1), &[])
        .map_err(|e| io_error(path, "sending Hello failed", &e))?;

    let mut fds = [PollFd::new(control.as_fd(), POLLIN)];
    loop {
        match ppoll(&mut fds, Some(ATTACH_TIMEOUT), None) {
            Ok(0) => {
                return Err(Error::new(
                    Errno::ETIMEDOUT,
                    format!("daemon at {} did not answer within {:?}", path.display(), ATTACH_TIMEOUT),
                ))
            }
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error(path, "waiting for the daemon failed", &e)),
        }
    }
    let mut buf = vec![0u8; MAX_MESSAGE];
    let (n, received) = unix_socket::recv(control.as_fd(), &mut buf, libc::MSG_DONTWAIT)
        .map_err(|e| io_error(path, "receiving the attach reply failed", &e))?;
    if n == 0 {
        return Err(Error::new(
            Errno::ECONNRESET,
            format!("daemon at {} closed the control connection during attach", path.display()),
        ));
    }
    let (_, reply) = Message::decode(&buf[..n]).map_err(|e| protocol_error(path, e))?;
    let (app_worker_id, geometry) = match reply {
        Message::AttachOk { app_worker_id, geometry } => (app_worker_id, geometry),
        Message::Error { errno, message } => {
            return Err(Error::new(Errno(errno), format!("daemon at {} refused the attach: {message}", path.display())))
        }
        other => return Err(protocol_error(path, format_args!("unexpected reply {other:?}"))),
    };
    let expected = 3 + geometry.workers as usize;
    if received.len() != expected {
        return Err(protocol_error(path, format_args!("{} descriptors, expected {expected}", received.len())));
    }
    let mut received = received.into_iter();
    let mut next = || received.next().expect("descriptor count checked above");
    let (down_fd, up_fd) = (next(), next());
    let wake = EventFd::from_fd(next());
    let doorbells = (0..geometry.workers).map(|_| EventFd::from_fd(next())).collect();

    let down = map_segment(path, &down_fd, geometry.down_len(), Access::ReadOnly, "down")?;
    let up = map_segment(path, &up_fd, geometry.up_len(), Access::ReadWrite, "up")?;
    // The mappings keep the memory; the descriptors are not needed (§2.2).
    drop((down_fd, up_fd));
    let down = DownSegment::new(down, geometry).map_err(|e| protocol_error(path, format_args!("down segment: {e}")))?;
    let up = UpSegment::new(up, geometry).map_err(|e| protocol_error(path, format_args!("up segment: {e}")))?;
    if !down.is_valid() {
        return Err(protocol_error(path, "down segment header has the wrong magic or version"));
    }
    if down.app_worker_id() != app_worker_id {
        return Err(protocol_error(path, "down segment names another app worker"));
    }
    Ok(Attachment { control, app_worker_id, geometry, down, up, wake, doorbells })
}

fn map_segment(path: &Path, fd: &OwnedFd, len: usize, access: Access, name: &str) -> Result<Region, Error> {
    // A memfd shorter than the geometry would make accesses past its end
    // fault (SIGBUS); check before mapping.
    let size = os::file_size(fd.as_fd()).map_err(|e| io_error(path, "sizing a segment failed", &e))?;
    if size < len as u64 {
        return Err(protocol_error(path, format_args!("{name} segment is {size} bytes, the geometry needs {len}")));
    }
    let mapping = Mapping::map(fd.as_fd(), len, access).map_err(|e| io_error(path, "mapping a segment failed", &e))?;
    // A forked child must not inherit (and scribble on) the segments (§2.2).
    mapping.dont_fork().map_err(|e| io_error(path, "madvise(MADV_DONTFORK) failed", &e))?;
    Ok(Region::new(Arc::new(mapping)))
}
