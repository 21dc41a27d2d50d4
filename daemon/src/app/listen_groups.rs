//! Listen groups (design §3.5): every listener on one local address and
//! port, from any number of app workers, is ONE engine listener. Each app
//! worker holding it is a *member* with its own listener session slot.
//! Connections are handed out round-robin, but only to members that are
//! accepting (they waited on the listener: `SET_ACCEPTING`) and have accept
//! credit; the rest wait in the engine's accept queue, so a member that
//! never accepts (nginx's master) is never given one and strands nothing.
//!
//! Joining follows the kernel (`socket(7)`, `SO_REUSEPORT`): a second
//! listener needs `SO_REUSEPORT` on both and the same uid, else
//! `EADDRINUSE`; an inherited re-creation (`LISTEN` with the inherit flag)
//! from a process recorded as a holder (its parent's `FORKED`) joins
//! whatever its flags. The group lives while it has members or holders.
//!
//! This file is the bookkeeping only; moving connections between app
//! workers is in `group_accept`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddrV4;
use std::sync::Arc;

use sluice_shm::process::PidFd;
use sluice_shm::SessionHandle;
use sluice_stack::{ConnId, ConsumerId, ListenerId};

use super::holders::Holders;
use super::AppId;

/// The engine consumer of every group listener, and of connections
/// returned to a group while they wait for a member. App worker ids are
/// handed out from 1 upwards and never reach it.
pub(super) const GROUP_CONSUMER: ConsumerId = ConsumerId(u32::MAX);

/// One member: an app worker's listener session on the group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Member {
    pub app: AppId,
    /// The app worker's process.
    pub pid: i32,
    pub handle: SessionHandle,
    /// A thread of the app worker waited on the listener (design §3.5).
    pub accepting: bool,
}

/// A connection a departing member had been given but never took, with
/// what its RX fifo held: it goes to another member instead of being reset.
#[derive(Debug)]
pub(super) struct Returned {
    pub conn: ConnId,
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
    /// Bytes that were in the departed member's RX fifo, in order.
    pub rx: Vec<u8>,
    /// The peer's FIN had been received.
    pub fin: bool,
}

pub(super) struct Group {
    pub local: SocketAddrV4,
    pub reuse_port: bool,
    /// The uid of the member that created it (reuse-port groups are one uid's).
    pub uid: u32,
    pub members: Vec<Member>,
    pub holders: Holders,
    /// Served before the engine's accept queue.
    pub returned: VecDeque<Returned>,
    /// Where the next round-robin pick starts.
    cursor: usize,
}

/// What a member's departure left.
pub(super) enum Leave {
    /// Other members or holders keep the group.
    Stays,
    /// It was the last: the caller stops the engine listener and resets the
    /// connections in the group (as Linux resets a closed listener's queue).
    Dies(Group),
}

/// The listen groups of one daemon worker, by engine listener.
#[derive(Default)]
pub(super) struct ListenGroups {
    groups: HashMap<ListenerId, Group>,
    by_addr: HashMap<SocketAddrV4, ListenerId>,
    /// Groups that may be able to hand out a connection.
    dirty: Vec<ListenerId>,
}

/// How a new listener joins an existing group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Join {
    /// A child re-creating the listener its parent holds: the port was
    /// bound (and its privilege checked) when the parent bound it, as the
    /// kernel's inherited socket needs no new `bind`.
    Inherited(ListenerId),
    /// A second `SO_REUSEPORT` listener of the same uid: a new `bind`.
    Shared(ListenerId),
}

impl Join {
    pub fn id(self) -> ListenerId {
        match self {
            Join::Inherited(id) | Join::Shared(id) => id,
        }
    }
}

impl ListenGroups {
    /// The group a new listener on `local` joins, `None` if there is none
    /// (the caller creates one), or `EADDRINUSE`. An inherited re-creation
    /// joins if process `pid` holds the group, or if its parent `ppid` is a
    /// member or holder: a child may re-create its listener before its
    /// parent's `FORKED` arrives (they race; the parent does not wait).
    pub fn joinable(
        &mut self,
        local: SocketAddrV4,
        reuse_port: bool,
        inherit: Option<(i32, Option<i32>)>,
        uid: u32,
    ) -> Result<Option<Join>, i32> {
        let Some(&id) = self.by_addr.get(&local) else { return Ok(None) };
        let Some(group) = self.groups.get_mut(&id) else { return Ok(None) };
        if let Some((pid, ppid)) = inherit {
            // A member with the same pid is the process's image before an
            // exec whose app worker the daemon has not seen go yet.
            let is_member = |p: i32| group.members.iter().any(|m| m.pid == p);
            let parent_holds = ppid.is_some_and(|pp| group.holders.contains(pp) || is_member(pp)) || is_member(pid);
            if group.holders.remove(pid) || parent_holds {
                return Ok(Some(Join::Inherited(id)));
            }
        }
        if reuse_port && group.reuse_port && group.uid == uid {
            return Ok(Some(Join::Shared(id)));
        }
        Err(libc::EADDRINUSE)
    }

    /// A new group around engine listener `id` (bound to `local`).
    pub fn create(&mut self, id: ListenerId, local: SocketAddrV4, reuse_port: bool, uid: u32) {
        let group = Group {
            local,
            reuse_port,
            uid,
            members: Vec::new(),
            holders: Holders::default(),
            returned: VecDeque::new(),
            cursor: 0,
        };
        self.by_addr.insert(local, id);
        self.groups.insert(id, group);
    }

    /// Forgets a group that never got a member (its publication failed).
    pub fn discard_if_empty(&mut self, id: ListenerId) -> bool {
        let empty = self.groups.get(&id).is_some_and(|g| g.members.is_empty() && g.holders.len() == 0);
        if empty {
            self.remove(id);
        }
        empty
    }

    pub fn add_member(&mut self, id: ListenerId, app: AppId, pid: i32, handle: SessionHandle) {
        if let Some(group) = self.groups.get_mut(&id) {
            group.members.push(Member { app, pid, handle, accepting: false });
        }
    }

    /// `SET_ACCEPTING`; a member that starts accepting may take what waits.
    pub fn set_accepting(&mut self, id: ListenerId, app: AppId, handle: SessionHandle, accepting: bool) {
        let Some(group) = self.groups.get_mut(&id) else { return };
        if let Some(m) = group.members.iter_mut().find(|m| m.app == app && m.handle == handle) {
            m.accepting = accepting;
        }
        self.mark_dirty(id);
    }

    /// Removes a member; the group dies with its last member unless a
    /// holder still lives.
    pub fn leave(&mut self, id: ListenerId, app: AppId, handle: SessionHandle) -> Leave {
        let Some(group) = self.groups.get_mut(&id) else { return Leave::Stays };
        group.members.retain(|m| !(m.app == app && m.handle == handle));
        if !group.members.is_empty() || group.holders.prune_exited() {
            self.mark_dirty(id);
            return Leave::Stays;
        }
        match self.remove(id) {
            Some(group) => Leave::Dies(group),
            None => Leave::Stays,
        }
    }

    /// Groups without members whose holders have all exited: removed and
    /// returned, for the caller to stop and reset.
    pub fn take_abandoned(&mut self) -> Vec<(ListenerId, Group)> {
        let mut abandoned = Vec::new();
        for (id, group) in self.groups.iter_mut() {
            if group.members.is_empty() && !group.holders.prune_exited() {
                abandoned.push(*id);
            }
        }
        abandoned.into_iter().filter_map(|id| self.remove(id).map(|g| (id, g))).collect()
    }

    /// `FORKED` from app worker `app` of process `pid`: the child holds
    /// every group the process is a member or a holder of.
    pub fn add_holder(&mut self, app: AppId, pid: i32, child: &Arc<PidFd>) -> usize {
        let mut held = 0;
        for group in self.groups.values_mut() {
            if group.members.iter().any(|m| m.app == app) || group.holders.contains(pid) {
                group.holders.add(child);
                held += 1;
            }
        }
        held
    }

    /// Groups app worker `app` is a member of.
    pub fn member_of(&self, app: AppId) -> usize {
        self.groups.values().filter(|g| g.members.iter().any(|m| m.app == app)).count()
    }

    /// App worker `app` goes while its process `holder` execs: the process
    /// holds every group the app is a member of, except those its new image
    /// already joined (a member of the same pid from another app worker).
    pub fn hold_across_exec(&mut self, app: AppId, holder: &Arc<PidFd>) -> usize {
        let mut held = 0;
        for group in self.groups.values_mut() {
            let member = group.members.iter().any(|m| m.app == app);
            let rejoined = group.members.iter().any(|m| m.app != app && m.pid == holder.pid());
            if member && !rejoined {
                group.holders.add(holder);
                held += 1;
            }
        }
        held
    }

    /// The next member to give a connection to: round-robin among the
    /// accepting members for which `can_take` holds (credit and a slot).
    /// The turn passes only when the member is given one ([`Self::gave`]):
    /// a pick that finds nothing to hand out must not skip the member, or
    /// connections arriving one at a time would all go to the same member.
    pub fn pick(&mut self, id: ListenerId, mut can_take: impl FnMut(&Member) -> bool) -> Option<Member> {
        let group = self.groups.get(&id)?;
        let n = group.members.len();
        (0..n).map(|i| group.members[(group.cursor + i) % n]).find(|m| m.accepting && can_take(m))
    }

    /// `member` was given a connection: the turn passes to the next one.
    pub fn gave(&mut self, id: ListenerId, member: &Member) {
        let Some(group) = self.groups.get_mut(&id) else { return };
        if let Some(at) = group.members.iter().position(|m| m.app == member.app && m.handle == member.handle) {
            group.cursor = (at + 1) % group.members.len();
        }
    }

    pub fn push_returned(&mut self, id: ListenerId, conn: Returned) {
        if let Some(group) = self.groups.get_mut(&id) {
            group.returned.push_back(conn);
        }
        self.mark_dirty(id);
    }

    pub fn pop_returned(&mut self, id: ListenerId) -> Option<Returned> {
        self.groups.get_mut(&id)?.returned.pop_front()
    }

    /// Puts a returned connection back at the front (the pick failed).
    pub fn unpop_returned(&mut self, id: ListenerId, conn: Returned) {
        if let Some(group) = self.groups.get_mut(&id) {
            group.returned.push_front(conn);
        }
    }

    /// A returned connection ended while it waited: it is dropped from its
    /// group; true if it was one.
    pub fn forget_returned(&mut self, conn: ConnId) -> bool {
        for group in self.groups.values_mut() {
            let before = group.returned.len();
            group.returned.retain(|r| r.conn != conn);
            if group.returned.len() != before {
                return true;
            }
        }
        false
    }

    /// A returned connection's peer closed while it waited.
    pub fn note_returned_fin(&mut self, conn: ConnId) {
        for group in self.groups.values_mut() {
            if let Some(r) = group.returned.iter_mut().find(|r| r.conn == conn) {
                r.fin = true;
            }
        }
    }

    pub fn mark_dirty(&mut self, id: ListenerId) {
        if self.groups.contains_key(&id) && !self.dirty.contains(&id) {
            self.dirty.push(id);
        }
    }

    pub fn take_dirty(&mut self) -> Vec<ListenerId> {
        std::mem::take(&mut self.dirty)
    }

    #[cfg(test)]
    pub fn get(&self, id: ListenerId) -> Option<&Group> {
        self.groups.get(&id)
    }

    fn remove(&mut self, id: ListenerId) -> Option<Group> {
        let group = self.groups.remove(&id)?;
        if self.by_addr.get(&group.local) == Some(&id) {
            self.by_addr.remove(&group.local);
        }
        self.dirty.retain(|d| *d != id);
        Some(group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const PORT: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80);

    fn h(i: u32) -> SessionHandle {
        SessionHandle::new(i, 1).unwrap()
    }

    fn group_of(members: &[(u32, bool)]) -> (ListenGroups, ListenerId) {
        let mut groups = ListenGroups::default();
        let id = ListenerId::from_parts(0, 0);
        groups.create(id, PORT, true, 1000);
        for &(app, accepting) in members {
            groups.add_member(id, AppId(app), 100 + app as i32, h(app));
            groups.set_accepting(id, AppId(app), h(app), accepting);
        }
        (groups, id)
    }

    /// Connections arriving one at a time: each hand-out gives one and then
    /// finds nothing more; the turn must still alternate.
    #[test]
    fn the_turn_passes_only_when_a_member_is_given_a_connection() {
        let (mut groups, id) = group_of(&[(1, true), (2, true)]);
        let mut given = Vec::new();
        for _ in 0..6 {
            let member = groups.pick(id, |_| true).unwrap();
            groups.gave(id, &member);
            given.push(member.app.0);
            // The next pick finds the engine's accept queue empty: no turn taken.
            let idle = groups.pick(id, |_| true).unwrap();
            assert_ne!(idle.app, member.app);
        }
        assert_eq!(given, [1, 2, 1, 2, 1, 2]);
    }

    #[test]
    fn a_member_that_is_not_accepting_is_never_picked() {
        let (mut groups, id) = group_of(&[(1, false), (2, true), (3, true)]);
        let mut give = || {
            let member = groups.pick(id, |_| true).unwrap();
            groups.gave(id, &member);
            member.app.0
        };
        let picks: Vec<u32> = (0..6).map(|_| give()).collect();
        assert_eq!(picks, [2, 3, 2, 3, 2, 3], "round-robin over the accepting members only");
        let (mut groups, id) = group_of(&[(1, false)]);
        assert_eq!(groups.pick(id, |_| true), None, "a lone non-accepting member (nginx's master) gets nothing");
    }

    #[test]
    fn a_member_without_credit_is_skipped() {
        let (mut groups, id) = group_of(&[(1, true), (2, true)]);
        for _ in 0..3 {
            assert_eq!(groups.pick(id, |m| m.app != AppId(1)).unwrap().app, AppId(2));
        }
        assert_eq!(groups.pick(id, |_| false), None);
    }

    #[test]
    fn joining_follows_the_kernel_reuseport_rules() {
        let (mut groups, id) = group_of(&[(1, true)]);
        assert_eq!(groups.joinable(PORT, true, None, 1000), Ok(Some(Join::Shared(id))));
        assert_eq!(groups.joinable(PORT, true, None, 1001), Err(libc::EADDRINUSE), "another uid");
        assert_eq!(groups.joinable(PORT, false, None, 1000), Err(libc::EADDRINUSE), "no SO_REUSEPORT");
        let stranger = Some((10, Some(1)));
        assert_eq!(groups.joinable(PORT, false, stranger, 1000), Err(libc::EADDRINUSE), "inherit, no holder");
        let member_child = Some((10, Some(101)));
        assert_eq!(groups.joinable(PORT, false, member_child, 1000), Ok(Some(Join::Inherited(id))), "a member's child re-creates");
        let elsewhere = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 81);
        assert_eq!(groups.joinable(elsewhere, false, None, 1000), Ok(None));
    }

    #[test]
    fn the_last_member_takes_the_group_with_it_unless_held() {
        let (mut groups, id) = group_of(&[(1, true), (2, true)]);
        assert!(matches!(groups.leave(id, AppId(1), h(1)), Leave::Stays));
        match groups.leave(id, AppId(2), h(2)) {
            Leave::Dies(g) => assert!(g.members.is_empty()),
            Leave::Stays => panic!("the last member's leave ends the group"),
        }
        assert!(groups.get(id).is_none());
        assert_eq!(groups.joinable(PORT, false, None, 1000), Ok(None), "the port is free again");
    }

    #[test]
    fn a_live_holder_keeps_the_group_and_may_rejoin_it() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "read x"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let (mut groups, id) = group_of(&[(1, true)]);
        let pidfd = Arc::new(PidFd::open(pid).unwrap());
        assert_eq!(groups.add_holder(AppId(1), 1, &pidfd), 1);
        assert!(matches!(groups.leave(id, AppId(1), h(1)), Leave::Stays), "the child still holds it");
        assert!(groups.take_abandoned().is_empty());
        assert_eq!(
            groups.joinable(PORT, false, Some((pid, None)), 1000),
            Ok(Some(Join::Inherited(id))),
            "the holder re-creates it"
        );
        groups.add_member(id, AppId(7), pid, h(7));
        assert_eq!(groups.get(id).unwrap().holders.len(), 0, "a member now, no longer a holder");
        drop(child.stdin.take());
        child.wait().unwrap();
    }

    #[test]
    fn a_process_that_execs_holds_its_groups_for_its_new_image() {
        // The test process stands for the app's process (pid 101 in the group).
        let me = std::process::id() as i32;
        let pidfd = Arc::new(PidFd::open(me).unwrap());
        let mut groups = ListenGroups::default();
        let id = ListenerId::from_parts(0, 0);
        groups.create(id, PORT, false, 1000);
        groups.add_member(id, AppId(1), me, h(1));
        assert_eq!(groups.member_of(AppId(1)), 1);
        assert_eq!(
            groups.joinable(PORT, false, Some((me, None)), 1000),
            Ok(Some(Join::Inherited(id))),
            "the new image, early"
        );
        assert_eq!(groups.joinable(PORT, false, None, 1000), Err(libc::EADDRINUSE), "a stranger without reuse");
        // The old image's app worker goes: the process holds the group.
        assert_eq!(groups.hold_across_exec(AppId(1), &pidfd), 1);
        assert!(matches!(groups.leave(id, AppId(1), h(1)), Leave::Stays), "held across the exec");
        assert!(groups.take_abandoned().is_empty());
        assert_eq!(
            groups.joinable(PORT, false, Some((me, None)), 1000),
            Ok(Some(Join::Inherited(id))),
            "the new image re-creates it"
        );
        groups.add_member(id, AppId(2), me, h(2));
        assert_eq!(groups.get(id).unwrap().holders.len(), 0, "a member again, no longer a holder");
        // Had the new image joined first, the old app's going holds nothing.
        groups.add_member(id, AppId(3), me, h(3));
        assert_eq!(groups.hold_across_exec(AppId(3), &pidfd), 0);
    }

    #[test]
    fn a_group_whose_holders_exited_is_abandoned() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pidfd = Arc::new(PidFd::open(child.id() as i32).unwrap());
        let (mut groups, id) = group_of(&[(1, false)]);
        groups.add_holder(AppId(1), 1, &pidfd);
        child.wait().unwrap();
        assert!(matches!(groups.leave(id, AppId(1), h(1)), Leave::Dies(_)), "an exited holder holds nothing");
        let (mut groups, id) = group_of(&[]);
        assert_eq!(groups.take_abandoned().len(), 1);
        assert!(groups.get(id).is_none());
    }
}
