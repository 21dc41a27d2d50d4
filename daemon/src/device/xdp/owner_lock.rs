//! Which processes have a Sluice AF_XDP device open on an interface: each
//! holds a shared `flock(2)` on a lock file named after the network
//! namespace and the interface index, for as long as its device lives.
//!
//! A process that dies loses its locks with its descriptors, so a process
//! that gets the lock *exclusively* knows no other live Sluice device is on
//! the interface, and that an AF_XDP program still attached there was left
//! by one that died. (The kernel's own list of AF_XDP sockets, sock_diag,
//! would say so too, but kernels built without `CONFIG_XDP_SOCKETS_DIAG`
//! do not offer it.)

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

/// Where the lock files live: a tmpfs, so none survives a reboot.
const LOCK_DIR: &str = "/run/sluice-xdp";

/// A held lock on one interface of one network namespace.
pub(super) struct OwnerLock {
    file: File,
    path: PathBuf,
    /// Held exclusively (until [`OwnerLock::share`]).
    sole: bool,
}

impl OwnerLock {
    /// Locks the interface exclusively if no other device holds it, shared
    /// otherwise (waiting for an exclusive holder, which holds it only
    /// while it opens, to share).
    pub(super) fn take(ifindex: u32) -> io::Result<OwnerLock> {
        let path = lock_path(ifindex)?;
        fs::DirBuilder::new().recursive(true).mode(0o700).create(LOCK_DIR)?;
        loop {
            let file =
                OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(&path)?;
            let sole = match flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
                Ok(()) => true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    flock(&file, libc::LOCK_SH)?;
                    false
                }
                Err(e) => return Err(e),
            };
            // A holder that found itself the last one removes the file when
            // it closes (see Drop); a lock on a removed file excludes nobody,
            // so take the lock again on the file now at the path.
            if is_same_file(&file, &path) {
                return Ok(OwnerLock { file, path, sole });
            }
        }
    }

    /// Whether no other live Sluice device is on the interface.
    pub(super) fn is_sole(&self) -> bool {
        self.sole
    }

    /// Lets other devices open while this one lives. Called before the
    /// socket is bound: the conversion releases the lock for a moment
    /// (flock(2)), and an opener that got it exclusively then must not find
    /// a program of ours to take for a dead one.
    pub(super) fn share(&mut self) -> io::Result<()> {
        if self.sole {
            flock(&self.file, libc::LOCK_SH)?;
            self.sole = false;
        }
        Ok(())
    }
}

impl Drop for OwnerLock {
    fn drop(&mut self) {
        // The last holder removes the file, so lock files do not pile up
        // (one per namespace and interface ever used).
        if flock(&self.file, libc::LOCK_EX | libc::LOCK_NB).is_ok() && is_same_file(&self.file, &self.path) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn flock(file: &File, operation: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: flock(2) on a descriptor `file` keeps open for the call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), operation) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

fn is_same_file(file: &File, path: &PathBuf) -> bool {
    match (file.metadata(), fs::metadata(path)) {
        (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
        _ => false,
    }
}

/// `/run/sluice-xdp/<netns inode>-<ifindex>.lock`: interface indexes repeat
/// across namespaces; the calling thread's namespace is the socket's.
fn lock_path(ifindex: u32) -> io::Result<PathBuf> {
    let netns = fs::metadata("/proc/thread-self/ns/net")?;
    Ok(PathBuf::from(LOCK_DIR).join(format!("{}-{}-{ifindex}.lock", netns.dev(), netns.ino())))
}

#[cfg(test)]
mod tests {
    use super::*;

    // An interface index no interface has, so these locks meet no device.
    const IFINDEX: u32 = u32::MAX - 7;

    #[test]
    fn the_first_holder_is_sole_and_later_ones_share() {
        let mut first = OwnerLock::take(IFINDEX).unwrap();
        assert!(first.is_sole());
        first.share().unwrap();
        let second = OwnerLock::take(IFINDEX).unwrap();
        assert!(!second.is_sole(), "a second holder while the first lives must not be sole");
        drop(first);
        drop(second);
        let third = OwnerLock::take(IFINDEX).unwrap();
        assert!(third.is_sole(), "after every holder is gone the next is sole");
        let path = third.path.clone();
        drop(third);
        assert!(!path.exists(), "the last holder removes the lock file");
    }
}
