//! Making a session slot visible to the app, and retiring it (design §2.2).
//!
//! Publication resets the app's words and the daemon's fifo indices, writes
//! the desc, and stores the desc's generation last (Release): an app that
//! loads the generation with Acquire and finds its handle's sees the rest.
//! Retirement stores the next generation, so every handle of the old life
//! stops matching, and punches the slot's fifo pages out of the memfds.

use std::net::SocketAddrV4;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;

use sluice_shm::layout::{self, app_words, desc, DownSegment, SessionAppWords, SessionDesc, SessionKind, UpSegment};
use sluice_shm::punch::punch_hole;
use sluice_shm::{FifoConsumer, FifoProducer, SessionHandle};

/// An app worker's two segments and the memfds behind them.
pub(super) struct Segments {
    pub down: DownSegment,
    pub up: UpSegment,
    down_fd: Option<OwnedFd>,
    up_fd: Option<OwnedFd>,
}

/// The daemon's views of a published connection slot.
pub(super) struct ConnSlot {
    pub desc: SessionDesc,
    pub words: SessionAppWords,
    pub rx: FifoProducer,
    pub tx: FifoConsumer,
}

impl Segments {
    pub fn new(down: DownSegment, up: UpSegment, down_fd: Option<OwnedFd>, up_fd: Option<OwnedFd>) -> Segments {
        Segments { down, up, down_fd, up_fd }
    }

    /// Publishes a connection in `handle`'s slot. `None` only if the slot
    /// lies outside the geometry (a daemon bug: the table is sized by it).
    pub fn publish_conn(&self, handle: SessionHandle, local: SocketAddrV4, remote: SocketAddrV4) -> Option<ConnSlot> {
        let (desc, words) = self.views(handle)?;
        reset_app_words(&words);
        // Both fifos start empty at index 0: the app's index words were
        // just reset, and the constructors store the daemon's.
        let rx = FifoProducer::new(layout::rx_fifo(&self.down, &self.up, handle.index)?, 0).ok()?;
        let tx = FifoConsumer::new(layout::tx_fifo(&self.down, &self.up, handle.index)?, 0).ok()?;
        write_desc(&desc, handle, SessionKind::Connection, local, remote);
        Some(ConnSlot { desc, words, rx, tx })
    }

    /// Publishes a listener bound to `local` in `handle`'s slot.
    pub fn publish_listener(
        &self,
        handle: SessionHandle,
        local: SocketAddrV4,
    ) -> Option<(SessionDesc, SessionAppWords)> {
        let (desc, words) = self.views(handle)?;
        reset_app_words(&words);
        for word in [desc::RX_TAIL, desc::TX_HEAD] {
            desc.word(word).store(0, Ordering::Relaxed);
        }
        let unbound = SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0);
        write_desc(&desc, handle, SessionKind::Listener, local, unbound);
        Some((desc, words))
    }

    /// Retires slot `index`: stores `next_gen` into its desc and, for a
    /// connection, returns its fifo pages to the kernel.
    pub fn retire(&self, desc: &SessionDesc, index: u32, next_gen: u32, had_fifos: bool) {
        desc.word(desc::GEN).store(next_gen, Ordering::Release);
        if !had_fifos {
            return;
        }
        let geo = self.down.geometry();
        for (fd, (offset, len)) in [(&self.down_fd, geo.rx_area(index)), (&self.up_fd, geo.tx_area(index))] {
            if let Some(fd) = fd {
                if let Err(e) = punch_hole(fd.as_fd(), offset, len) {
                    // Only memory is at stake: the pages stay allocated
                    // until the slot is reused or the app detaches.
                    log::warn!("cannot punch a freed fifo ({len} bytes at {offset}): {e}");
                }
            }
        }
    }

    fn views(&self, handle: SessionHandle) -> Option<(SessionDesc, SessionAppWords)> {
        Some((self.down.desc(handle.index)?, self.up.app_words(handle.index)?))
    }
}

/// Zeroes every word the app writes for a slot, so nothing of the slot's
/// previous life carries over.
fn reset_app_words(words: &SessionAppWords) {
    for word in [
        app_words::RX_HEAD,
        app_words::TX_TAIL,
        app_words::TX_PENDING,
        app_words::WANT_TX_SPACE,
        app_words::ACCEPT_TAKEN,
        app_words::RX_NOTE_SENT,
    ] {
        words.word(word).store(0, Ordering::Relaxed);
    }
}

/// Writes the desc's fields, the generation last (Release).
fn write_desc(d: &SessionDesc, handle: SessionHandle, kind: SessionKind, local: SocketAddrV4, remote: SocketAddrV4) {
    let fields = [
        (desc::KIND, kind as u32),
        (desc::LOCAL_IP, u32::from(*local.ip())),
        (desc::LOCAL_PORT, u32::from(local.port())),
        (desc::REMOTE_IP, u32::from(*remote.ip())),
        (desc::REMOTE_PORT, u32::from(remote.port())),
        (desc::RX_BLOCKED, 0),
        (desc::ACCEPT_PUSHED, 0),
    ];
    for (offset, value) in fields {
        d.word(offset).store(value, Ordering::Relaxed);
    }
    d.word(desc::GEN).store(handle.gen, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_shm::layout::Geometry;
    use sluice_shm::os::{memfd_create, Access, Mapping};
    use sluice_shm::Region;
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    fn geo() -> Geometry {
        Geometry { workers: 1, event_cap: 8, request_cap: 4, max_sessions: 4, rx_fifo: 4096, tx_fifo: 8192 }
    }

    fn heap() -> Segments {
        let g = geo();
        let down = DownSegment::new(Region::heap(g.down_len()), g).unwrap();
        let up = UpSegment::new(Region::heap(g.up_len()), g).unwrap();
        Segments::new(down, up, None, None)
    }

    #[test]
    fn a_published_conn_has_fresh_words_and_its_generation_last() {
        let seg = heap();
        let words = seg.up.app_words(2).unwrap();
        for w in [app_words::RX_HEAD, app_words::TX_TAIL, app_words::TX_PENDING, app_words::ACCEPT_TAKEN] {
            words.word(w).store(77, Ordering::Relaxed);
        }
        let h = SessionHandle::new(2, 5).unwrap();
        let local = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80);
        let remote = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 40000);
        let slot = seg.publish_conn(h, local, remote).unwrap();
        for w in [app_words::RX_HEAD, app_words::TX_TAIL, app_words::TX_PENDING, app_words::ACCEPT_TAKEN] {
            assert_eq!(words.word(w).load(Ordering::Relaxed), 0);
        }
        let d = &slot.desc;
        assert_eq!(d.word(desc::GEN).load(Ordering::Acquire), 5);
        assert_eq!(SessionKind::from_u32(d.word(desc::KIND).load(Ordering::Relaxed)), Some(SessionKind::Connection));
        assert_eq!(d.word(desc::LOCAL_PORT).load(Ordering::Relaxed), 80);
        assert_eq!(d.word(desc::REMOTE_IP).load(Ordering::Relaxed), u32::from(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(slot.rx.size(), 4096);
        assert_eq!(slot.tx.size(), 8192);
        assert!(seg.publish_conn(SessionHandle::new(4, 1).unwrap(), local, remote).is_none(), "outside the geometry");
    }

    #[test]
    fn retiring_bumps_the_generation_and_punches_the_fifos() {
        let g = geo();
        let down_fd = memfd_create("sluice-test-down", g.down_len() as u64).unwrap();
        let up_fd = memfd_create("sluice-test-up", g.up_len() as u64).unwrap();
        let map = |fd: &OwnedFd, len| Region::new(Arc::new(Mapping::map(fd.as_fd(), len, Access::ReadWrite).unwrap()));
        let down = DownSegment::new(map(&down_fd, g.down_len()), g).unwrap();
        let up = UpSegment::new(map(&up_fd, g.up_len()), g).unwrap();
        let seg = Segments::new(down.clone(), up.clone(), Some(down_fd), Some(up_fd));
        let h = SessionHandle::new(1, 1).unwrap();
        let any = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 1);
        let mut slot = seg.publish_conn(h, any, any).unwrap();
        assert_eq!(slot.rx.write(b"unread bytes").unwrap(), 12);
        up.tx_data(1).unwrap().write_at(0, b"app bytes").unwrap();
        seg.retire(&slot.desc, 1, 2, true);
        assert_eq!(slot.desc.word(desc::GEN).load(Ordering::Acquire), 2);
        let mut buf = [0xffu8; 12];
        down.rx_data(1).unwrap().read_at(0, &mut buf).unwrap();
        assert_eq!(buf, [0; 12], "RX pages punched");
        up.tx_data(1).unwrap().read_at(0, &mut buf[..9]).unwrap();
        assert_eq!(buf[..9], [0; 9], "TX pages punched");
    }
}
