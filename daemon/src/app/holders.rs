//! Holders (design §4.5): processes that hold a listen group through a
//! descriptor inherited by `fork`, without being a member of it. A holder
//! keeps the group (its port and queued connections) alive while it lives,
//! so that nginx's `daemon()` chain works: P0 listens, forks P1 and exits,
//! P1 forks the workers that re-create the listener. Each holder is watched
//! through a pidfd, which names the process for its whole life and never a
//! later one that reuses the pid. A process that announced an `execve`
//! becomes a holder of its own app worker's groups when that app worker
//! goes, so its new image finds them (`App::hold_across_exec`).

use std::sync::Arc;

use sluice_shm::process::PidFd;

/// The holders of one group.
#[derive(Debug, Default)]
pub(super) struct Holders(Vec<Arc<PidFd>>);

impl Holders {
    pub fn contains(&self, pid: i32) -> bool {
        self.0.iter().any(|h| h.pid() == pid)
    }

    /// Adds `holder` unless its pid is already one.
    pub fn add(&mut self, holder: &Arc<PidFd>) {
        if !self.contains(holder.pid()) {
            self.0.push(Arc::clone(holder));
        }
    }

    /// The process stopped holding (it re-created its listener, which makes
    /// it a member instead).
    pub fn remove(&mut self, pid: i32) -> bool {
        let before = self.0.len();
        self.0.retain(|h| h.pid() != pid);
        self.0.len() != before
    }

    /// Forgets holders that have exited; returns whether any is left.
    pub fn prune_exited(&mut self) -> bool {
        self.0.retain(|h| !h.has_exited());
        !self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_is_kept_while_its_process_lives() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "read x"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut holders = Holders::default();
        let pidfd = Arc::new(PidFd::open(child.id() as i32).unwrap());
        holders.add(&pidfd);
        holders.add(&pidfd);
        assert_eq!(holders.len(), 1, "one entry per process");
        assert!(holders.prune_exited());
        drop(child.stdin.take());
        child.wait().unwrap();
        assert!(!holders.prune_exited());
        assert!(!holders.contains(child.id() as i32));
    }
}

impl super::state::App {
    /// `FORKED{child_pid}`: the child holds every listen group this app
    /// worker's process holds (design §4.5). The child must be this
    /// process's own child, so an app cannot make an unrelated process pin
    /// its ports; a child that already exited holds nothing.
    /// Replies with the number of groups the child holds, `ECHILD` if it is
    /// not this process's child, `ESRCH` if it already exited.
    ///
    /// `FORKED` naming the app's own process announces an `execve`: the
    /// process keeps holding the groups it is a member of when its app
    /// worker goes (the control socket closes on exec), so the new image
    /// re-creates its inherited listeners on a port that stayed bound and
    /// connections arriving meanwhile wait in the group. Replies with the
    /// number of groups the app is a member of.
    pub(super) fn forked(&mut self, ctx: &mut super::state::Ctx<'_>, child_pid: i32) -> Result<u64, i32> {
        let parent = self.identity.pid;
        if child_pid == parent {
            let pidfd = PidFd::open(parent).map_err(|e| e.raw_os_error().unwrap_or(libc::ESRCH))?;
            self.exec_holder = Some(Arc::new(pidfd));
            let groups = ctx.groups.member_of(self.identity.id);
            log::debug!("pid {parent} execs: it holds its {groups} listen groups across the exec");
            return Ok(groups as u64);
        }
        if parent_of(child_pid) != Some(parent) {
            log::debug!("app worker {}: FORKED names {child_pid}, not a child of {parent}", self.identity.id.0);
            self.bad_requests += 1;
            return Err(libc::ECHILD);
        }
        let pidfd = PidFd::open(child_pid).map_err(|e| e.raw_os_error().unwrap_or(libc::ESRCH))?;
        let held = ctx.groups.add_holder(self.identity.id, parent, &Arc::new(pidfd));
        log::debug!("pid {child_pid} (forked by {parent}) holds {held} listen groups");
        Ok(held as u64)
    }

    /// The app worker is going (see [`Self::forked`]): if its process
    /// announced an exec and still lives, it holds the groups the app is a
    /// member of, unless its new image already re-created its listener there.
    pub(super) fn hold_across_exec(&mut self, ctx: &mut super::state::Ctx<'_>) {
        let Some(pidfd) = self.exec_holder.take().filter(|p| !p.has_exited()) else { return };
        let held = ctx.groups.hold_across_exec(self.identity.id, &pidfd);
        log::debug!("pid {} holds {held} listen groups across its exec", pidfd.pid());
    }
}

/// The parent pid of `pid`, from `/proc/PID/status` (`proc(5)`, `PPid:`).
pub(super) fn parent_of(pid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("PPid:")).and_then(|v| v.trim().parse().ok())
}
