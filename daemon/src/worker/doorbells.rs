//! The app doorbells a worker sleeps on: one eventfd per attached app
//! worker, in the worker's epoll set.
//!
//! The worker registers its *own duplicate* of each doorbell, not the
//! descriptor the app set holds: epoll keys an entry on the open file, and
//! the app holds a copy of that file, so if the app set closed its
//! descriptor before the entry was removed, the entry would stay in the set
//! for good (epoll(7), Q6) and a hostile app could keep waking the worker.
//! With a private duplicate the worker removes the entry itself, whatever
//! the app set did with its descriptor.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use log::warn;
use sluice_shm::os::EventFd;

use super::epoll::{self, Epoll};
use crate::app::AppId;

/// Tokens below this are the worker's own descriptors.
pub const FIRST_DOORBELL_TOKEN: u64 = 16;

/// The epoll token of an app's doorbell.
pub fn token(id: AppId) -> u64 {
    FIRST_DOORBELL_TOKEN + u64::from(id.0)
}

/// The app a doorbell token belongs to.
pub fn app_of(token: u64) -> Option<AppId> {
    token.checked_sub(FIRST_DOORBELL_TOKEN).and_then(|v| u32::try_from(v).ok()).map(AppId)
}

/// Doorbells in the epoll set, by app.
#[derive(Debug, Default)]
pub struct Doorbells {
    bells: HashMap<AppId, EventFd>,
}

impl Doorbells {
    /// Watches a duplicate of `doorbell` for app `id`.
    pub fn add(&mut self, epoll: &Epoll, id: AppId, doorbell: BorrowedFd<'_>) -> io::Result<()> {
        if self.bells.contains_key(&id) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("app {} is already attached", id.0)));
        }
        let own = EventFd::from_fd(doorbell.try_clone_to_owned()?);
        epoll.add(own.as_raw_fd(), token(id), epoll::IN)?;
        self.bells.insert(id, own);
        Ok(())
    }

    /// Stops watching app `id`'s doorbell; whether it was watched.
    pub fn remove(&mut self, epoll: &Epoll, id: AppId) -> bool {
        let Some(bell) = self.bells.remove(&id) else {
            return false;
        };
        if let Err(e) = epoll.delete(bell.as_raw_fd()) {
            // Cannot happen for a descriptor we added and still hold open.
            warn!("removing app {}'s doorbell from epoll: {e}", id.0);
        }
        true
    }

    /// Resets a doorbell that fired (level-triggered: it would fire again).
    pub fn drain(&self, id: AppId) {
        if let Some(bell) = self.bells.get(&id) {
            let _ = bell.drain();
        }
    }

    /// Every app with a doorbell.
    pub fn apps(&self) -> Vec<AppId> {
        let mut ids: Vec<AppId> = self.bells.keys().copied().collect();
        ids.sort();
        ids
    }

    pub fn is_empty(&self) -> bool {
        self.bells.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn tokens_map_back_to_apps() {
        assert_eq!(app_of(token(AppId(0))), Some(AppId(0)));
        assert_eq!(app_of(token(AppId(u32::MAX))), Some(AppId(u32::MAX)));
        assert_eq!(app_of(3), None);
    }

    #[test]
    fn a_doorbell_keeps_firing_through_the_duplicate_until_removed_even_after_the_original_closes() {
        let mut ep = Epoll::new(4).unwrap();
        let mut bells = Doorbells::default();
        let original = EventFd::new().unwrap();
        // The app's copy of the same file.
        let app_copy = EventFd::from_fd(original.as_fd().try_clone_to_owned().unwrap());
        bells.add(&ep, AppId(3), original.as_fd()).unwrap();
        assert_eq!(bells.add(&ep, AppId(3), original.as_fd()).unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        drop(original);
        app_copy.notify().unwrap();
        let ready: Vec<u64> = ep.wait(1000).unwrap().map(|r| r.token).collect();
        assert_eq!(ready, vec![token(AppId(3))]);
        bells.drain(AppId(3));
        assert_eq!(ep.wait(0).unwrap().count(), 0, "drained");
        assert!(bells.remove(&ep, AppId(3)));
        assert!(!bells.remove(&ep, AppId(3)));
        app_copy.notify().unwrap();
        assert_eq!(ep.wait(0).unwrap().count(), 0, "no stale entry after removal");
        assert!(bells.is_empty());
    }
}
