//! The fake daemon's side of the shared-memory protocol: sessions, requests,
//! accept credit, the fifo pump and the event ring.

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::OwnedFd;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use sluice_shm::event_ring::Event;
use sluice_shm::layout::{self, app_words, desc, DownSegment, SessionKind, UpSegment};
use sluice_shm::os::EventFd;
use sluice_shm::protocol::{ready, AppEvent, Request, ShutdownHow, SockOption};
use sluice_shm::{EventProducer, FifoConsumer, FifoProducer, RequestConsumer, SessionHandle, SleepFlag, Waker};

use super::{Ended, Policy, DAEMON_IP};

pub(super) struct Conn {
    pub(super) handle: SessionHandle,
    pub(super) rx: FifoProducer,
    pub(super) tx: FifoConsumer,
    /// Peer bytes not yet in the RX fifo.
    pub(super) to_app: VecDeque<u8>,
    /// Bytes the app wrote, as the peer received them.
    pub(super) from_app: Vec<u8>,
    pub(super) echo: bool,
    /// The peer sent FIN; `PEER_CLOSED` goes once `to_app` is empty.
    pub(super) fin_pending: bool,
    pub(super) tx_ready: bool,
    pub(super) tx_paused: bool,
    pub(super) rx_blocked: bool,
    pub(super) readable_event: bool,
    pub(super) app_shutdown: Option<ShutdownHow>,
    pub(super) rx_space_requests: u32,
    pub(super) rx_blocked_times: u32,
}

pub(super) struct Listener {
    pub(super) handle: SessionHandle,
    pub(super) local: SocketAddrV4,
    pub(super) credit: u32,
    pub(super) accepting: bool,
    pub(super) pushed: u32,
    pub(super) taken_seen: u32,
    /// Connections waiting for credit (slot indices).
    pub(super) pending: VecDeque<u32>,
    /// Credit is looked at again only when something may have changed it
    /// (a new connection, `SET_ACCEPTING`, `RX_SPACE` on the listener), as
    /// the real daemon does: an app that never says it took one stalls.
    pub(super) recheck: bool,
}

pub(super) struct Seg {
    pub(super) down: DownSegment,
    pub(super) up: UpSegment,
    pub(super) events: EventProducer,
    pub(super) requests: RequestConsumer,
    pub(super) wake: EventFd,
    pub(super) doorbell: Arc<EventFd>,
    pub(super) app: Waker,
    pub(super) own_flag: SleepFlag,
    pub(super) control: Option<OwnedFd>,
}

/// The fake daemon's state, shared by its worker and the test.
pub(super) struct State {
    pub(super) seg: Option<Seg>,
    pub(super) credit_cap: u32,
    pub(super) gens: Vec<u32>,
    pub(super) in_use: Vec<bool>,
    pub(super) free: Vec<u32>,
    pub(super) conns: HashMap<u32, Conn>,
    pub(super) listeners: HashMap<u32, Listener>,
    pub(super) backlog: VecDeque<Event>,
    pub(super) policies: HashMap<u16, Policy>,
    pub(super) held: VecDeque<(SessionHandle, SocketAddrV4)>,
    pub(super) next_port: u16,
    pub(super) log: Vec<Request>,
    pub(super) ended: HashMap<SessionHandle, Ended>,
    /// What the peer received of each ended connection.
    pub(super) ended_data: HashMap<SessionHandle, Vec<u8>>,
    pub(super) errors: Vec<String>,
    pub(super) passes: u64,
}

impl State {
    pub(super) fn new(credit_cap: u32, max_sessions: u32) -> State {
        let n = max_sessions as usize;
        State {
            seg: None,
            credit_cap,
            gens: vec![0; n],
            in_use: vec![false; n],
            free: (0..max_sessions).rev().collect(),
            conns: HashMap::new(),
            listeners: HashMap::new(),
            backlog: VecDeque::new(),
            policies: HashMap::new(),
            held: VecDeque::new(),
            next_port: 40000,
            log: Vec::new(),
            ended: HashMap::new(),
            ended_data: HashMap::new(),
            errors: Vec::new(),
            passes: 0,
        }
    }

    pub(super) fn seg(&self) -> &Seg {
        self.seg.as_ref().expect("attached")
    }

    pub(super) fn conn(&mut self, h: SessionHandle) -> &mut Conn {
        match self.conns.get_mut(&h.index) {
            Some(c) if c.handle == h => c,
            _ => panic!("no live connection {h:?}"),
        }
    }

    pub(super) fn event(&mut self, e: AppEvent) {
        self.backlog.push_back(e.encode());
    }

    /// Allocates a slot and publishes a session in it: words zeroed, desc
    /// filled, GEN last.
    pub(super) fn publish(
        &mut self,
        kind: SessionKind,
        local: SocketAddrV4,
        remote: SocketAddrV4,
    ) -> Option<SessionHandle> {
        let index = self.free.pop()?;
        let gen = SessionHandle::next_gen(self.gens[index as usize]);
        self.gens[index as usize] = gen;
        self.in_use[index as usize] = true;
        let seg = self.seg();
        let a = seg.up.app_words(index).unwrap();
        for off in [
            app_words::RX_HEAD,
            app_words::TX_TAIL,
            app_words::TX_PENDING,
            app_words::WANT_TX_SPACE,
            app_words::ACCEPT_TAKEN,
            app_words::RX_NOTE_SENT,
        ] {
            a.word(off).store(0, Ordering::Relaxed);
        }
        let d = seg.down.desc(index).unwrap();
        d.word(desc::KIND).store(kind as u32, Ordering::Relaxed);
        d.word(desc::LOCAL_IP).store(u32::from(*local.ip()), Ordering::Relaxed);
        d.word(desc::LOCAL_PORT).store(u32::from(local.port()), Ordering::Relaxed);
        d.word(desc::REMOTE_IP).store(u32::from(*remote.ip()), Ordering::Relaxed);
        d.word(desc::REMOTE_PORT).store(u32::from(remote.port()), Ordering::Relaxed);
        d.word(desc::RX_BLOCKED).store(0, Ordering::Relaxed);
        d.word(desc::ACCEPT_PUSHED).store(0, Ordering::Relaxed);
        let rx = FifoProducer::new(layout::rx_fifo(&seg.down, &seg.up, index).unwrap(), 0).unwrap();
        let tx = FifoConsumer::new(layout::tx_fifo(&seg.down, &seg.up, index).unwrap(), 0).unwrap();
        d.word(desc::GEN).store(gen, Ordering::Release);
        let handle = SessionHandle::new(index, gen).unwrap();
        if kind == SessionKind::Connection {
            self.conns.insert(
                index,
                Conn {
                    handle,
                    rx,
                    tx,
                    to_app: VecDeque::new(),
                    from_app: Vec::new(),
                    echo: false,
                    fin_pending: false,
                    tx_ready: false,
                    tx_paused: false,
                    rx_blocked: false,
                    readable_event: false,
                    app_shutdown: None,
                    rx_space_requests: 0,
                    rx_blocked_times: 0,
                },
            );
        }
        Some(handle)
    }

    pub(super) fn free_slot(&mut self, index: u32) {
        self.in_use[index as usize] = false;
        self.conns.remove(&index);
        self.listeners.remove(&index);
        self.free.push(index);
    }

    /// The handle names a live session of this app.
    pub(super) fn valid(&mut self, h: SessionHandle) -> bool {
        let ok = (h.index as usize) < self.gens.len()
            && self.in_use[h.index as usize]
            && self.gens[h.index as usize] == h.gen;
        if !ok {
            self.errors.push(format!("request with stale or unknown handle {h:?}"));
        }
        ok
    }

    pub(super) fn handle_request(&mut self, req: Request) {
        self.log.push(req);
        match req {
            Request::Listen { req_id, mut local, backlog, reuse_port }
            | Request::ListenInherited { req_id, mut local, backlog, reuse_port } => {
                // The fake serves one process: an inherited re-creation joins.
                let inherit = matches!(req, Request::ListenInherited { .. });
                if local.port() == 0 {
                    local.set_port(self.ephemeral());
                }
                let clash = self.listeners.values().any(|l| l.local.port() == local.port());
                if clash && !reuse_port && !inherit {
                    self.event(AppEvent::Reply { req_id, result: Err(libc::EADDRINUSE) });
                    return;
                }
                let Some(h) = self.publish(SessionKind::Listener, local, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))
                else {
                    self.event(AppEvent::Reply { req_id, result: Err(libc::ENOBUFS) });
                    return;
                };
                let credit = backlog.clamp(1, self.credit_cap);
                self.listeners.insert(
                    h.index,
                    Listener {
                        handle: h,
                        local,
                        credit,
                        accepting: false,
                        pushed: 0,
                        taken_seen: 0,
                        pending: VecDeque::new(),
                        recheck: false,
                    },
                );
                self.event(AppEvent::Reply { req_id, result: Ok(h.to_u64()) });
            }
            Request::Connect { req_id, remote, local } => {
                let port = self.ephemeral();
                let local = local.map_or(SocketAddrV4::new(DAEMON_IP, port), |l| {
                    SocketAddrV4::new(
                        if l.ip().is_unspecified() { DAEMON_IP } else { *l.ip() },
                        if l.port() == 0 { port } else { l.port() },
                    )
                });
                let Some(h) = self.publish(SessionKind::Connection, local, remote) else {
                    self.event(AppEvent::Reply { req_id, result: Err(libc::ENOBUFS) });
                    return;
                };
                self.event(AppEvent::Reply { req_id, result: Ok(h.to_u64()) });
                match self.policies.get(&remote.port()).copied().unwrap_or(Policy::Hold) {
                    Policy::Hold => self.held.push_back((h, remote)),
                    Policy::Accept | Policy::Echo => {
                        self.conn(h).echo = self.policies.get(&remote.port()) == Some(&Policy::Echo);
                        self.event(AppEvent::Session { handle: h, bits: ready::CONNECTED | ready::WRITABLE, errno: 0 });
                    }
                    Policy::Refuse(errno) => self.event(AppEvent::Session {
                        handle: h,
                        bits: ready::RESET | ready::ERROR | ready::CLOSED,
                        errno,
                    }),
                }
            }
            // Kept in the log for tests to look at; the fake has no holders.
            Request::Forked { req_id, .. } => self.event(AppEvent::Reply { req_id, result: Ok(0) }),
            Request::SetAccepting { handle, accepting } => {
                if self.valid(handle) {
                    match self.listeners.get_mut(&handle.index) {
                        Some(l) => {
                            l.accepting = accepting;
                            l.recheck = true;
                        }
                        None => self.errors.push(format!("SET_ACCEPTING on a connection {handle:?}")),
                    }
                }
            }
            Request::TxReady { handle } => {
                if self.valid(handle) {
                    match self.conns.get_mut(&handle.index) {
                        Some(c) => c.tx_ready = true,
                        None => self.errors.push(format!("TX_READY on a listener {handle:?}")),
                    }
                }
            }
            Request::RxSpace { handle } => {
                if self.valid(handle) {
                    let a = self.seg().up.app_words(handle.index).unwrap();
                    let d = self.seg().down.desc(handle.index).unwrap();
                    // Clear both words before refilling (protocol: RX).
                    d.word(desc::RX_BLOCKED).store(0, Ordering::SeqCst);
                    a.word(app_words::RX_NOTE_SENT).store(0, Ordering::SeqCst);
                    if let Some(c) = self.conns.get_mut(&handle.index) {
                        c.rx_blocked = false;
                        c.rx_space_requests += 1;
                    }
                    if let Some(l) = self.listeners.get_mut(&handle.index) {
                        l.recheck = true;
                    }
                }
            }
            Request::Shutdown { handle, how } => {
                if self.valid(handle) {
                    if let Some(c) = self.conns.get_mut(&handle.index) {
                        c.app_shutdown = Some(how);
                    }
                }
            }
            Request::Close { handle } | Request::Abort { handle } => {
                if self.valid(handle) {
                    let kind = if matches!(req, Request::Close { .. }) { Ended::Close } else { Ended::Abort };
                    if let Some(c) = self.conns.get_mut(&handle.index) {
                        if kind == Ended::Close {
                            // What the app wrote before closing still goes out.
                            drain_tx(c);
                        }
                        let data = std::mem::take(&mut c.from_app);
                        self.ended_data.insert(handle, data);
                    }
                    self.ended.insert(handle, kind);
                    self.free_slot(handle.index);
                }
            }
            Request::SetOption { req_id, handle, option, value } => {
                if !self.valid(handle) {
                    self.event(AppEvent::Reply { req_id, result: Err(libc::EBADF) });
                    return;
                }
                let result = if option == SockOption::KeepIdle && value == 0 { Err(libc::EINVAL) } else { Ok(0) };
                self.event(AppEvent::Reply { req_id, result });
            }
        }
    }

    pub(super) fn ephemeral(&mut self) -> u16 {
        self.next_port += 1;
        self.next_port
    }

    /// Accept credit: push `ACCEPTED` while the listener accepts and has some.
    pub(super) fn push_accepts(&mut self) -> usize {
        let mut pushed = Vec::new();
        let seg = self.seg.as_ref().unwrap();
        for (index, l) in self.listeners.iter_mut() {
            if !l.accepting || !std::mem::take(&mut l.recheck) {
                continue;
            }
            let taken = seg.up.app_words(*index).unwrap().word(app_words::ACCEPT_TAKEN).load(Ordering::Acquire);
            // Clamp to [taken seen, pushed]: a lying app only stalls itself.
            if taken.wrapping_sub(l.taken_seen) > l.pushed.wrapping_sub(l.taken_seen) {
                self.errors.push(format!("ACCEPT_TAKEN {taken} beyond pushed {}", l.pushed));
            } else {
                l.taken_seen = taken;
            }
            while l.pushed.wrapping_sub(l.taken_seen) < l.credit {
                let Some(conn) = l.pending.pop_front() else { break };
                l.pushed = l.pushed.wrapping_add(1);
                seg.down.desc(*index).unwrap().word(desc::ACCEPT_PUSHED).store(l.pushed, Ordering::Release);
                let ch = SessionHandle::new(conn, self.gens[conn as usize]).unwrap();
                pushed.push(AppEvent::Accepted { listener: l.handle, conn: ch });
            }
        }
        let n = pushed.len();
        for e in pushed {
            self.event(e);
        }
        n
    }

    /// Moves bytes for every connection; returns the work done.
    pub(super) fn pump(&mut self) -> usize {
        let mut work = 0;
        let mut events = Vec::new();
        let seg = self.seg.as_ref().unwrap();
        for (index, c) in self.conns.iter_mut() {
            let a = seg.up.app_words(*index).unwrap();
            let d = seg.down.desc(*index).unwrap();
            if c.tx_ready && !c.tx_paused {
                c.tx_ready = false;
                // Clear before draining: bytes written after this produce a
                // new TX_READY (protocol: TX).
                a.word(app_words::TX_PENDING).store(0, Ordering::SeqCst);
                fence(Ordering::SeqCst);
                work += drain_tx(c);
                fence(Ordering::SeqCst);
                if a.word(app_words::WANT_TX_SPACE).swap(0, Ordering::SeqCst) == 1 {
                    events.push(AppEvent::Session { handle: c.handle, bits: ready::WRITABLE, errno: 0 });
                }
            }
            while !c.rx_blocked && !c.to_app.is_empty() {
                let (front, _) = c.to_app.as_slices();
                let n = c.rx.write(front).expect("app RX head within bounds");
                if n > 0 {
                    c.to_app.drain(..n);
                    c.readable_event = true;
                    work += n;
                    continue;
                }
                // Full: block, fence, re-check (protocol: RX).
                d.word(desc::RX_BLOCKED).store(1, Ordering::SeqCst);
                fence(Ordering::SeqCst);
                if c.rx.free().expect("app RX head within bounds") == 0 {
                    c.rx_blocked = true;
                    c.rx_blocked_times += 1;
                }
            }
            let mut bits = 0;
            if c.readable_event {
                c.readable_event = false;
                bits |= ready::READABLE;
            }
            if c.fin_pending && c.to_app.is_empty() && !c.rx_blocked {
                c.fin_pending = false;
                bits |= ready::PEER_CLOSED | ready::READABLE;
            }
            if bits != 0 {
                events.push(AppEvent::Session { handle: c.handle, bits, errno: 0 });
            }
        }
        work += events.len();
        for e in events {
            self.event(e);
        }
        work
    }

    /// Pops and handles every request.
    pub(super) fn requests(&mut self) -> usize {
        let mut n = 0;
        while let Some(body) = self.seg.as_mut().unwrap().requests.pop() {
            n += 1;
            match Request::decode(&body) {
                Ok(req) => self.handle_request(req),
                Err(e) => self.errors.push(format!("undecodable request: {e:?}")),
            }
        }
        n
    }

    /// Moves the backlog into the ring; wakes the app if anything went.
    pub(super) fn flush_events(&mut self) -> usize {
        let seg = self.seg.as_ref().unwrap();
        let mut n = 0;
        while let Some(e) = self.backlog.front() {
            if seg.events.push(e, 0).is_err() {
                break;
            }
            self.backlog.pop_front();
            n += 1;
        }
        if n > 0 {
            seg.app.wake(|| seg.wake.notify().unwrap());
        }
        n
    }
}

/// Drains a connection's TX fifo to its peer (or back, for an echo).
pub(super) fn drain_tx(c: &mut Conn) -> usize {
    let mut buf = [0u8; 4096];
    let mut total = 0;
    loop {
        let n = c.tx.read(&mut buf).expect("app TX tail within bounds");
        if n == 0 {
            return total;
        }
        total += n;
        if c.echo {
            c.to_app.extend(&buf[..n]);
        } else {
            c.from_app.extend_from_slice(&buf[..n]);
        }
    }
}
