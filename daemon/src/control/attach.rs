//! An app worker's attach (design §2.1–§2.2): two sealed memfd segments
//! mapped and initialised by the daemon, the app's wake eventfd and one
//! doorbell eventfd per daemon worker.
//!
//! Sealing: both memfds get `F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`, so
//! the app can never truncate a segment under the daemon (which would make
//! the daemon's accesses SIGBUS). The down segment (daemon-written) also gets
//! `F_SEAL_FUTURE_WRITE` once the daemon has mapped it: the daemon's
//! existing writable mapping keeps working, but no new writable mapping and
//! no `write(2)` is allowed (memfd_create(2), "File sealing"), so the app
//! can only map it read-only. It is added together with `F_SEAL_SEAL`,
//! which freezes the seal set.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use sluice_shm::layout::{DownSegment, Geometry, UpSegment};
use sluice_shm::os::{self, Access, EventFd, Mapping};
use sluice_shm::Region;

use crate::app::{AppIdentity, NewApp};

/// Everything made for one app worker, before it is handed out.
pub struct Attachment {
    down_fd: OwnedFd,
    up_fd: OwnedFd,
    down: DownSegment,
    up: UpSegment,
    wake: EventFd,
    doorbells: Vec<EventFd>,
}

fn layout_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("segment layout: {e}"))
}

/// Creates a memfd of `len` bytes and maps it read-write into the daemon.
fn segment(name: &str, len: usize) -> io::Result<(OwnedFd, Region)> {
    let fd = os::memfd_create(name, len as u64)?;
    let map = Mapping::map(fd.as_fd(), len, Access::ReadWrite)?;
    Ok((fd, Region::new(Arc::new(map))))
}

impl Attachment {
    /// Builds the segments of app worker `app_worker_id` for `geo` (already
    /// validated) with one doorbell per daemon worker.
    pub fn create(app_worker_id: u32, geo: Geometry) -> io::Result<Attachment> {
        let (down_fd, down_region) = segment(&format!("sluice-down-{app_worker_id}"), geo.down_len())?;
        let (up_fd, up_region) = segment(&format!("sluice-up-{app_worker_id}"), geo.up_len())?;
        let down = DownSegment::new(down_region, geo).map_err(layout_error)?;
        let up = UpSegment::new(up_region, geo).map_err(layout_error)?;
        down.init(app_worker_id);
        up.init().map_err(layout_error)?;
        os::add_seals(down_fd.as_fd(), os::SEGMENT_SEALS | libc::F_SEAL_FUTURE_WRITE)?;
        os::add_seals(up_fd.as_fd(), os::SEGMENT_SEALS)?;
        let wake = EventFd::new()?;
        let doorbells = (0..geo.workers).map(|_| EventFd::new()).collect::<io::Result<Vec<_>>>()?;
        Ok(Attachment { down_fd, up_fd, down, up, wake, doorbells })
    }

    /// The descriptors of `AttachOk`, in protocol order: down memfd, up
    /// memfd, wake eventfd, then each worker's doorbell.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        let mut fds = vec![self.down_fd.as_fd(), self.up_fd.as_fd(), self.wake.as_fd()];
        fds.extend(self.doorbells.iter().map(AsFd::as_fd));
        fds
    }

    /// What worker `worker` needs to serve the app (its doorbell; the other
    /// workers' doorbells are closed here: in v1 only the home worker serves
    /// an app, and the app's rings for other workers stay unused).
    pub fn into_new_app(mut self, identity: AppIdentity, worker: usize) -> io::Result<NewApp> {
        if worker >= self.doorbells.len() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("no worker {worker}")));
        }
        let doorbell = self.doorbells.swap_remove(worker);
        Ok(NewApp {
            identity,
            down: self.down,
            up: self.up,
            // F_SEAL_FUTURE_WRITE (the app may only read the down segment)
            // also refuses hole punching, so freed RX areas stay allocated
            // and are reused by the next session in that slot (the free list
            // is LIFO, so memory follows the peak number of sessions).
            down_fd: None,
            up_fd: Some(self.up_fd),
            wake: self.wake,
            doorbell,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::AppId;

    fn geo() -> Geometry {
        Geometry { workers: 2, event_cap: 64, request_cap: 8, max_sessions: 4, rx_fifo: 4096, tx_fifo: 4096 }
    }

    #[test]
    fn segments_are_initialised_sealed_and_the_down_one_refuses_writable_maps() {
        let a = Attachment::create(9, geo()).unwrap();
        assert_eq!(a.fds().len(), 3 + 2);
        assert_eq!(os::file_size(a.down_fd.as_fd()).unwrap(), geo().down_len() as u64);
        assert_eq!(os::file_size(a.up_fd.as_fd()).unwrap(), geo().up_len() as u64);
        let down_seals = os::seals(a.down_fd.as_fd()).unwrap();
        assert_eq!(down_seals & os::SEGMENT_SEALS, os::SEGMENT_SEALS);
        assert_ne!(down_seals & libc::F_SEAL_FUTURE_WRITE, 0);
        let up_seals = os::seals(a.up_fd.as_fd()).unwrap();
        assert_eq!(up_seals & os::SEGMENT_SEALS, os::SEGMENT_SEALS);
        assert_eq!(up_seals & libc::F_SEAL_FUTURE_WRITE, 0);

        let err = Mapping::map(a.down_fd.as_fd(), geo().down_len(), Access::ReadWrite).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM));
        // The app's view: read-only down, read-write up, both initialised.
        let down = DownSegment::new(
            Region::new(Arc::new(Mapping::map(a.down_fd.as_fd(), geo().down_len(), Access::ReadOnly).unwrap())),
            geo(),
        )
        .unwrap();
        assert!(down.is_valid());
        assert_eq!(down.app_worker_id(), 9);
        assert!(Mapping::map(a.up_fd.as_fd(), geo().up_len(), Access::ReadWrite).is_ok());
        // The daemon's own mapping still writes.
        a.down.desc(0).unwrap().word(0).store(5, std::sync::atomic::Ordering::Release);
        assert_eq!(down.desc(0).unwrap().word(0).load(std::sync::atomic::Ordering::Acquire), 5);
    }

    #[test]
    fn the_new_app_gets_its_workers_doorbell() {
        let a = Attachment::create(1, geo()).unwrap();
        let id = AppIdentity { id: AppId(1), pid: 1, uid: 0, gid: 0 };
        assert!(Attachment::create(1, geo()).unwrap().into_new_app(id, 2).is_err());
        // The app's copies of worker 0's and worker 1's doorbells.
        let bell0 = EventFd::from_fd(a.fds()[3].try_clone_to_owned().unwrap());
        let bell1 = EventFd::from_fd(a.fds()[4].try_clone_to_owned().unwrap());
        let app = a.into_new_app(id, 1).unwrap();
        // The sealed down memfd cannot be punched, so only the up one is handed over.
        assert!(app.down_fd.is_none() && app.up_fd.is_some());
        assert_eq!(app.identity, id);
        bell0.notify().unwrap();
        assert_eq!(app.doorbell.drain().unwrap(), 0, "worker 0's doorbell is not worker 1's");
        bell1.notify().unwrap();
        assert_eq!(app.doorbell.drain().unwrap(), 1);
    }
}
