//! The fake daemon's thread: the attach handshake, then worker passes.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use sluice_shm::control::{Message, Role, MAX_MESSAGE};
use sluice_shm::layout::{self, DownSegment, Geometry, UpSegment};
use sluice_shm::os::{self, Access, EventFd, Mapping};
use sluice_shm::poll::{ppoll, PollFd, POLLIN};
use sluice_shm::{unix_socket, EventProducer, Region, RequestConsumer, SleepFlag, Waker};

use super::protocol::Seg;
use super::{Shared, DEADLINE};

fn map(fd: &OwnedFd, len: usize) -> Region {
    Region::new(Arc::new(Mapping::map(fd.as_fd(), len, Access::ReadWrite).unwrap()))
}

/// Accepts the app's control connection and answers its `Hello`.
fn handshake(shared: &Shared, listener: &OwnedFd, geo: Geometry) -> Option<Seg> {
    loop {
        if shared.stop.load(Ordering::Acquire) {
            return None;
        }
        let mut fds = [PollFd::new(listener.as_fd(), POLLIN), PollFd::new(shared.poke.as_fd(), POLLIN)];
        ppoll(&mut fds, None, None).unwrap();
        let _ = shared.poke.drain();
        if fds[0].revents != 0 {
            break;
        }
    }
    let control = unix_socket::accept(listener.as_fd(), 0).unwrap();
    let mut fds = [PollFd::new(control.as_fd(), POLLIN)];
    ppoll(&mut fds, Some(DEADLINE), None).unwrap();
    let mut buf = vec![0u8; MAX_MESSAGE];
    let (n, _) = unix_socket::recv(control.as_fd(), &mut buf, 0).unwrap();
    match Message::decode(&buf[..n]).unwrap().1 {
        Message::Hello { role: Role::App, pid } => assert_eq!(pid, std::process::id()),
        other => panic!("expected Hello, got {other:?}"),
    }
    let down_fd = os::memfd_create("fake-down", geo.down_len() as u64).unwrap();
    let up_fd = os::memfd_create("fake-up", geo.up_len() as u64).unwrap();
    os::add_seals(down_fd.as_fd(), os::SEGMENT_SEALS).unwrap();
    os::add_seals(up_fd.as_fd(), os::SEGMENT_SEALS).unwrap();
    let down = DownSegment::new(map(&down_fd, geo.down_len()), geo).unwrap();
    let up = UpSegment::new(map(&up_fd, geo.up_len()), geo).unwrap();
    up.init().unwrap();
    down.init(7);
    let wake = EventFd::new().unwrap();
    let doorbell = Arc::new(EventFd::new().unwrap());
    let reply = Message::AttachOk { app_worker_id: 7, geometry: geo }.encode(1);
    unix_socket::send(control.as_fd(), &reply, &[down_fd.as_fd(), up_fd.as_fd(), wake.as_fd(), doorbell.as_fd()])
        .unwrap();
    let events = EventProducer::new(layout::event_ring(&down, &up)).unwrap();
    let requests = RequestConsumer::new(up.request_ring(0).unwrap().slots).unwrap();
    let app = Waker::new(up.app_sleep_flag());
    let own_flag = SleepFlag::new(down.daemon_sleep_flag(0).unwrap());
    Some(Seg { down, up, events, requests, wake, doorbell, app, own_flag, control: Some(control) })
}

/// The worker: handshake, then passes until stopped.
pub(super) fn run(shared: &Shared, listener: OwnedFd, geo: Geometry) {
    let Some(seg) = handshake(shared, &listener, geo) else { return };
    shared.state.lock().unwrap().seg = Some(seg);
    shared.changed.notify_all();
    while !shared.stop.load(Ordering::Acquire) {
        let (work, backlogged) = {
            let mut st = shared.state.lock().unwrap();
            let mut work = st.requests();
            work += st.push_accepts();
            work += st.pump();
            work += st.flush_events();
            st.passes += 1;
            (work, !st.backlog.is_empty())
        };
        shared.changed.notify_all();
        if work > 0 {
            continue;
        }
        // Sleep until a doorbell or a test change; while events wait for
        // ring room, look again soon (the layout has no "room" signal).
        let timeout = backlogged.then(|| Duration::from_millis(1));
        let st = shared.state.lock().unwrap();
        let seg = st.seg.as_ref().unwrap();
        let (flag, doorbell) = (seg.own_flag.clone(), Arc::clone(&seg.doorbell));
        drop(st);
        flag.sleep_unless(
            || shared.state.lock().unwrap().seg.as_ref().unwrap().requests.is_ready(),
            || {
                let mut fds = [PollFd::new(doorbell.as_fd(), POLLIN), PollFd::new(shared.poke.as_fd(), POLLIN)];
                let _ = ppoll(&mut fds, timeout, None);
            },
        );
        let _ = doorbell.drain();
        let _ = shared.poke.drain();
    }
}
