//! The control socket's file (design §2.1): its directory is created, a
//! socket file left by a daemon that died is replaced, a live daemon's is
//! not, and the file gets the configured mode. On stop the file is removed,
//! but only if it is still the one this daemon bound.

use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use log::info;
use sluice_shm::unix_socket;

/// Pending connections the kernel queues before `accept` (listen(2)).
const BACKLOG: i32 = 128;

/// A bound, listening control socket.
#[derive(Debug)]
pub struct ControlListener {
    fd: OwnedFd,
    path: PathBuf,
    /// Device and inode of the socket file we created.
    file_id: (u64, u64),
}

fn with_path(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

impl ControlListener {
    /// Binds `SOCK_SEQPACKET` at `path` and listens, with file mode `mode`.
    pub fn bind(path: &Path, mode: u32) -> io::Result<ControlListener> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // 0755: anyone may reach the socket; its own mode decides who may connect.
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(|e| with_path(e, "cannot create the control socket's directory", dir))?;
        }
        remove_if_stale(path)?;
        let fd = unix_socket::listen(path, BACKLOG).map_err(|e| with_path(e, "cannot listen on", path))?;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| with_path(e, "cannot set the mode of", path))?;
        let meta = fs::symlink_metadata(path).map_err(|e| with_path(e, "cannot stat", path))?;
        Ok(ControlListener { fd, path: path.to_path_buf(), file_id: (meta.dev(), meta.ino()) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the socket file if it is still ours (another daemon may have
    /// replaced it after deciding ours was stale).
    pub fn remove_file(&self) {
        if let Ok(meta) = fs::symlink_metadata(&self.path) {
            if (meta.dev(), meta.ino()) == self.file_id {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

impl AsFd for ControlListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Removes a socket file nobody listens on; refuses to touch a live socket
/// or anything that is not a socket.
fn remove_if_stale(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(with_path(e, "cannot stat", path)),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket; not replacing it", path.display()),
        ));
    }
    match unix_socket::connect(path) {
        Ok(_) => {
            Err(io::Error::new(io::ErrorKind::AddrInUse, format!("another daemon is listening on {}", path.display())))
        }
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
            info!("removing stale control socket {}", path.display());
            match fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(with_path(e, "cannot remove stale", path)),
                _ => Ok(()),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(with_path(e, "cannot probe existing", path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sluice-listener-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn creates_the_directory_and_applies_the_mode() {
        let dir = temp_dir("mode");
        let path = dir.join("a/b/control.sock");
        let l = ControlListener::bind(&path, 0o660).unwrap();
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o660);
        assert!(unix_socket::connect(&path).is_ok());
        l.remove_file();
        assert!(!path.exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_stale_socket_is_replaced_but_a_live_one_is_not() {
        let dir = temp_dir("stale");
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("control.sock");
        // A socket file whose listener is gone (closed): stale.
        drop(unix_socket::listen(&path, 1).unwrap());
        assert!(path.exists());
        let first = ControlListener::bind(&path, 0o666).unwrap();
        // Now someone answers: refused, and the file is left alone.
        let err = ControlListener::bind(&path, 0o666).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
        assert!(unix_socket::connect(&path).is_ok(), "the live daemon's socket still works");
        first.remove_file();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_that_is_not_a_socket_is_never_removed() {
        let dir = temp_dir("file");
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("control.sock");
        fs::write(&path, b"precious").unwrap();
        let err = ControlListener::bind(&path, 0o666).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"precious");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn remove_file_leaves_a_successors_socket_alone() {
        let dir = temp_dir("successor");
        let path = dir.join("control.sock");
        let old = ControlListener::bind(&path, 0o666).unwrap();
        // Another daemon replaced the file (as if ours had been judged stale).
        fs::remove_file(&path).unwrap();
        let new = ControlListener::bind(&path, 0o666).unwrap();
        old.remove_file();
        assert!(path.exists(), "the successor's socket file survives");
        new.remove_file();
        assert!(!path.exists());
        drop((old, new));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_path_too_long_for_sockaddr_un_is_an_error() {
        let path = PathBuf::from(format!("/tmp/{}", "x".repeat(200)));
        assert!(ControlListener::bind(&path, 0o666).is_err());
    }
}
