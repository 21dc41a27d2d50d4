//! Draining an app's request ring: copy, decode, check the handle against
//! the daemon's own table, act, reply (design §2.3–2.4). A body that does
//! not decode, or a handle that names no live session of the right kind,
//! is refused and counted; a request that carries a `req_id` still gets its
//! one `REPLY` (EINVAL / EBADF), so the app's caller is never left waiting.

use std::sync::OnceLock;

use sluice_shm::protocol::{AppEvent, Request, SockOption};
use sluice_shm::request_ring::RequestBody;
use sluice_shm::SessionHandle;

use super::session::Role;
use super::state::{App, Ctx};

/// What a request's handle must name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Conn,
    Listener,
    Any,
}

/// The opcodes whose requests carry a `req_id` (and expect a reply), read
/// off the codec's own encoding so they cannot drift from it.
fn replying_opcodes() -> &'static [u16; 4] {
    static OPCODES: OnceLock<[u16; 4]> = OnceLock::new();
    OPCODES.get_or_init(|| {
        let any = std::net::SocketAddrV4::new(std::net::Ipv4Addr::new(10, 0, 0, 1), 1);
        let handle = SessionHandle::new(0, 1).expect("generation 1 is valid");
        [
            Request::Listen { req_id: 0, local: any, backlog: 1, reuse_port: false },
            Request::Connect { req_id: 0, remote: any, local: None },
            Request::SetOption { req_id: 0, handle, option: SockOption::NoDelay, value: 0 },
            Request::Forked { req_id: 0, child_pid: 1 },
        ]
        .map(|r| opcode(&r.encode()))
    })
}

fn opcode(body: &RequestBody) -> u16 {
    u16::from_le_bytes([body[0], body[1]])
}

fn req_id(body: &RequestBody) -> u32 {
    u32::from_le_bytes([body[4], body[5], body[6], body[7]])
}

impl App {
    /// Serves up to the request budget from the app's ring; returns how
    /// many requests were taken. Stops early while replies wait for ring
    /// room, so an app that does not read its events cannot make the daemon
    /// queue replies without bound: its own ring fills instead.
    pub(super) fn drain_requests(&mut self, ctx: &mut Ctx<'_>) -> usize {
        let budget = ctx.config.request_budget.max(1);
        let reply_limit = self.geometry.request_cap as usize;
        let mut taken = 0;
        while taken < budget && self.outbox.urgent_len() < reply_limit && !self.killed {
            let Some(body) = self.requests.pop() else { break };
            taken += 1;
            self.requests_taken += 1;
            match Request::decode(&body) {
                Ok(request) => self.dispatch(ctx, request),
                Err(e) => {
                    log::debug!("app worker {}: undecodable request: {e:?}", self.identity.id.0);
                    self.bad_requests += 1;
                    if replying_opcodes().contains(&opcode(&body)) {
                        self.reply(req_id(&body), Err(libc::EINVAL));
                    }
                }
            }
        }
        taken
    }

    fn dispatch(&mut self, ctx: &mut Ctx<'_>, request: Request) {
        match request {
            Request::Listen { req_id, local, backlog, reuse_port } => {
                let result = self.listen(ctx, local, backlog, reuse_port, false);
                self.reply(req_id, result);
            }
            Request::ListenInherited { req_id, local, backlog, reuse_port } => {
                let result = self.listen(ctx, local, backlog, reuse_port, true);
                self.reply(req_id, result);
            }
            Request::Forked { req_id, child_pid } => {
                let result = self.forked(ctx, child_pid as i32);
                self.reply(req_id, result);
            }
            Request::Connect { req_id, remote, local } => {
                let result = self.connect(ctx, remote, local);
                self.reply(req_id, result);
            }
            Request::SetOption { req_id, handle, option, value } => {
                let result = match self.resolve(handle, Target::Any) {
                    Some(_) => self.set_option(ctx, handle, option, value),
                    None => Err(libc::EBADF),
                };
                self.reply(req_id, result);
            }
            Request::SetAccepting { handle, accepting } => {
                if let Some(id) = self.resolve(handle, Target::Listener).and_then(|r| r.listener()) {
                    ctx.groups.set_accepting(id, self.identity.id, handle, accepting);
                }
            }
            Request::TxReady { handle } => {
                if self.resolve(handle, Target::Conn).is_some() {
                    let bits = self.tx_ready(ctx, handle);
                    self.outbox.post_session(&mut self.sessions, handle, bits, 0);
                }
            }
            Request::RxSpace { handle } => match self.resolve(handle, Target::Any) {
                Some(Resolved::Conn) => {
                    let bits = self.rx_space(ctx, handle);
                    self.outbox.post_session(&mut self.sessions, handle, bits, 0);
                }
                Some(Resolved::Listener(_)) => {
                    self.accept_ready(ctx, handle);
                }
                None => {}
            },
            Request::Shutdown { handle, how } => {
                if self.resolve(handle, Target::Conn).is_some() {
                    let bits = self.shutdown(ctx, handle, how);
                    self.outbox.post_session(&mut self.sessions, handle, bits, 0);
                }
            }
            Request::Close { handle } => match self.resolve(handle, Target::Any) {
                Some(Resolved::Conn) => self.close(ctx, handle),
                Some(Resolved::Listener(_)) => self.close_listener(ctx, handle),
                None => {}
            },
            Request::Abort { handle } => match self.resolve(handle, Target::Any) {
                Some(Resolved::Conn) => self.abort(ctx, handle),
                Some(Resolved::Listener(_)) => self.close_listener(ctx, handle),
                None => {}
            },
        }
    }

    /// The session `handle` names if it is live, not given up by the app,
    /// and of the `target` kind; otherwise the request is counted refused.
    fn resolve(&mut self, handle: SessionHandle, target: Target) -> Option<Resolved> {
        let resolved = match self.sessions.get(handle) {
            Some(s) if s.released() => None,
            Some(s) => match (&s.role, target) {
                (Role::Conn(_) | Role::Cut(_), Target::Conn | Target::Any) => Some(Resolved::Conn),
                (Role::Listener(l), Target::Listener | Target::Any) => Some(Resolved::Listener(l.id)),
                _ => None,
            },
            None => None,
        };
        if resolved.is_none() {
            log::debug!(
                "app worker {}: refused handle {}/{} ({:?}, wanted {target:?})",
                self.identity.id.0,
                handle.index,
                handle.gen,
                self.sessions.check(handle)
            );
            self.bad_requests += 1;
        }
        resolved
    }

    fn reply(&mut self, req_id: u32, result: Result<u64, i32>) {
        self.outbox.push_urgent(AppEvent::Reply { req_id, result });
    }
}

/// A resolved request target.
#[derive(Clone, Copy, Debug)]
enum Resolved {
    Conn,
    Listener(sluice_stack::ListenerId),
}

impl Resolved {
    fn listener(self) -> Option<sluice_stack::ListenerId> {
        match self {
            Resolved::Listener(id) => Some(id),
            Resolved::Conn => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_shm::protocol::ShutdownHow;

    #[test]
    fn the_replying_opcodes_are_those_of_listen_connect_set_option_and_forked() {
        let ops = replying_opcodes();
        let handle = SessionHandle::new(0, 1).unwrap();
        for silent in [
            Request::TxReady { handle },
            Request::RxSpace { handle },
            Request::Close { handle },
            Request::Abort { handle },
            Request::Shutdown { handle, how: ShutdownHow::Both },
            Request::SetAccepting { handle, accepting: true },
        ] {
            assert!(!ops.contains(&opcode(&silent.encode())), "{silent:?}");
        }
        let mut distinct = ops.to_vec();
        distinct.dedup();
        assert_eq!(distinct.len(), 4);
    }
}
