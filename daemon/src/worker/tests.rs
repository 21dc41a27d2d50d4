//! The worker loop over the memory wire, with stand-in app layers: frames
//! both ways through the engine, sleeping when idle, device errors, and a
//! thread that dies telling the daemon.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use sluice_shm::os::EventFd;
use sluice_stack::wire::EthernetAddress;
use sluice_stack::{FrameSink, Instant, Stack, StackConfig};

use super::*;
use crate::app::{AppId, AppStats, NewApp, SessionRow};
use crate::device::memory::{MemoryDevice, WireEnd};
use crate::device::{Device, DeviceCounters, DeviceInfo};

const DAEMON_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const DAEMON_IP: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const WAIT: Duration = Duration::from_secs(10);

/// No apps at all.
struct NoApps;

impl AppWork for NoApps {
    fn attach(&mut self, _: NewApp) {}
    fn detach(&mut self, _: AppId, _: &mut Stack, _: Instant) {}
    fn poll(&mut self, _: &mut Stack, _: Instant) -> usize {
        0
    }
    fn sleep_unless_work(&self, block: &mut dyn FnMut()) -> bool {
        block();
        true
    }
    fn take_killed(&mut self) -> Vec<AppId> {
        Vec::new()
    }
    fn stats(&self) -> Vec<AppStats> {
        Vec::new()
    }
    fn sessions(&self, _: &Stack) -> Vec<SessionRow> {
        Vec::new()
    }
}

/// Panics in `poll` once `armed` is set.
struct PanickyApps(Arc<AtomicBool>);

impl AppWork for PanickyApps {
    fn attach(&mut self, _: NewApp) {}
    fn detach(&mut self, _: AppId, _: &mut Stack, _: Instant) {}
    fn poll(&mut self, _: &mut Stack, _: Instant) -> usize {
        assert!(!self.0.load(Ordering::Relaxed), "stand-in app layer failing on purpose");
        0
    }
    fn sleep_unless_work(&self, block: &mut dyn FnMut()) -> bool {
        block();
        true
    }
    fn take_killed(&mut self) -> Vec<AppId> {
        Vec::new()
    }
    fn stats(&self) -> Vec<AppStats> {
        Vec::new()
    }
    fn sessions(&self, _: &Stack) -> Vec<SessionRow> {
        Vec::new()
    }
}

/// A device whose receive always fails (an interface that went away).
struct BrokenDevice {
    sink: Vec<Vec<u8>>,
    bell: EventFd,
}

impl Device for BrokenDevice {
    fn receive(&mut self, _: usize, _: &mut dyn FnMut(&[&[u8]])) -> io::Result<usize> {
        Err(io::Error::from_raw_os_error(libc::ENETDOWN))
    }
    fn sink(&mut self) -> &mut dyn FrameSink {
        &mut self.sink
    }
    fn flush(&mut self) -> io::Result<usize> {
        Ok(std::mem::take(&mut self.sink).len())
    }
    fn wait_fd(&self) -> Option<RawFd> {
        use std::os::fd::AsRawFd;
        Some(self.bell.as_raw_fd())
    }
    fn mac(&self) -> [u8; 6] {
        DAEMON_MAC
    }
    fn info(&self) -> DeviceInfo {
        DeviceInfo::default()
    }
    fn counters(&self) -> DeviceCounters {
        DeviceCounters::default()
    }
}

struct Running {
    worker: WorkerHandle,
    failure: Arc<EventFd>,
    _reports: mpsc::Receiver<WorkerReport>,
}

fn start<A: AppWork + 'static>(
    device: Box<dyn Device>,
    mode: PollMode,
    apps: impl FnOnce() -> A + Send + 'static,
) -> Running {
    let (reports, rx, _bell) = ReportSender::channel().unwrap();
    let failure = Arc::new(EventFd::new().unwrap());
    let setup = WorkerSetup {
        index: 0,
        stack: StackConfig::new(EthernetAddress(DAEMON_MAC), DAEMON_IP, 24, [7; 32]),
        device,
        poll_mode: mode,
        idle_spin_us: 50,
        reports,
        failure: Arc::clone(&failure),
        capture: crate::capture::CaptureTap::new().unwrap(),
    };
    Running { worker: WorkerHandle::spawn(setup, apps).unwrap(), failure, _reports: rx }
}

fn memory_worker(mode: PollMode) -> (Running, WireEnd) {
    let (dev, end) = MemoryDevice::pair("test", DAEMON_MAC).unwrap();
    (start(Box::new(dev), mode, || NoApps), end)
}

/// An ARP request from the peer for `target`.
fn arp_request(target: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&[0x08, 0x06]);
    f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&PEER_IP.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f
}

fn assert_arp_reply(frame: &[u8]) {
    assert!(frame.len() >= 42, "{frame:?}");
    assert_eq!(&frame[0..6], &PEER_MAC, "to the asker");
    assert_eq!(&frame[6..12], &DAEMON_MAC);
    assert_eq!(&frame[12..14], &[0x08, 0x06], "ARP");
    assert_eq!(&frame[20..22], &[0, 2], "a reply");
    assert_eq!(&frame[22..28], &DAEMON_MAC, "sender hardware address");
    assert_eq!(&frame[28..32], &DAEMON_IP.octets(), "sender protocol address");
    assert_eq!(&frame[32..38], &PEER_MAC);
    assert_eq!(&frame[38..42], &PEER_IP.octets());
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = StdInstant::now() + WAIT;
    while !cond() {
        assert!(StdInstant::now() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

fn snapshot(r: &Running) -> WorkerStats {
    r.worker.link().snapshot(WAIT).unwrap()
}

#[test]
fn answers_arp_in_every_poll_mode() {
    for mode in [PollMode::Adaptive, PollMode::Busy, PollMode::Sleep] {
        let (running, end) = memory_worker(mode);
        // Several requests, some after the worker has had time to fall asleep.
        for round in 0..3 {
            assert!(end.send(&arp_request(DAEMON_IP)));
            let reply = end.recv_timeout(WAIT).unwrap_or_else(|| panic!("{mode:?}: no reply to request {round}"));
            assert_arp_reply(&reply);
            if mode != PollMode::Busy {
                let sleeps = snapshot(&running).poller.sleeps;
                wait_for("the worker to sleep", || snapshot(&running).poller.sleeps > sleeps);
            }
        }
        // Not for us: no reply.
        assert!(end.send(&arp_request(Ipv4Addr::new(10, 9, 0, 77))));
        assert!(end.send(&arp_request(DAEMON_IP)));
        assert_arp_reply(&end.recv_timeout(WAIT).unwrap());
        assert_eq!(end.recv(), None);
        let s = snapshot(&running);
        assert_eq!(s.device_counters.rx_frames, 5);
        assert_eq!(s.device_counters.tx_frames, 4);
        assert_eq!(s.engine.frames_in, 5);
        assert_eq!(s.device.kind, "memory");
        assert_eq!(s.mac, "02:00:00:00:00:02");
        running.worker.stop();
    }
}

#[test]
fn an_idle_sleep_mode_worker_blocks_instead_of_spinning() {
    let (running, _end) = memory_worker(PollMode::Sleep);
    wait_for("the first sleep", || snapshot(&running).poller.sleeps > 0);
    let before = snapshot(&running);
    std::thread::sleep(Duration::from_millis(300));
    let after = snapshot(&running);
    // Each snapshot command wakes it once; nothing else does (no timers are
    // pending: no traffic). A spinning worker would count millions.
    let iterations = after.poller.iterations - before.poller.iterations;
    assert!(iterations <= 10, "{iterations} iterations in 300 ms of idleness");
    assert!(after.poller.busy_iterations - before.poller.busy_iterations <= 2, "only the snapshot commands were work");
    running.worker.stop();
}

#[test]
fn an_idle_adaptive_worker_falls_asleep_after_spinning() {
    let (running, _end) = memory_worker(PollMode::Adaptive);
    wait_for("the first sleep", || snapshot(&running).poller.sleeps > 0);
    let before = snapshot(&running);
    std::thread::sleep(Duration::from_millis(300));
    let after = snapshot(&running);
    // A spin of 50 µs per wake-up (one per snapshot), then sleep.
    assert!(after.poller.sleeps > before.poller.sleeps);
    assert!(after.poller.wakeups > before.poller.wakeups, "the snapshot command woke it");
    running.worker.stop();
}

#[test]
fn device_errors_are_counted_and_the_worker_keeps_going() {
    let dev = BrokenDevice { sink: Vec::new(), bell: EventFd::new().unwrap() };
    let running = start(Box::new(dev), PollMode::Busy, || NoApps);
    wait_for("device errors", || snapshot(&running).poller.device_errors > 100);
    assert_eq!(running.failure.drain().unwrap(), 0, "not a failure of the worker");
    running.worker.stop();
}

#[test]
fn a_panicking_app_layer_signals_the_failure_fd() {
    let armed = Arc::new(AtomicBool::new(false));
    let (dev, _end) = MemoryDevice::pair("test", DAEMON_MAC).unwrap();
    let flag = Arc::clone(&armed);
    let running = start(Box::new(dev), PollMode::Sleep, move || PanickyApps(flag));
    assert!(!running.failure.wait(Some(Duration::ZERO)).unwrap());
    armed.store(true, Ordering::Relaxed);
    // Wake it so it polls.
    let _ = running.worker.link().send(WorkerCommand::Detach(AppId(1)));
    assert!(running.failure.wait(Some(WAIT)).unwrap(), "failure fd not notified");
    assert!(running.worker.link().snapshot(Duration::from_secs(1)).is_err(), "the worker is gone");
    running.worker.stop();
}

#[test]
fn stop_returns_promptly_from_a_sleeping_worker() {
    let (running, _end) = memory_worker(PollMode::Sleep);
    wait_for("the first sleep", || snapshot(&running).poller.sleeps > 0);
    let link = running.worker.link();
    let t0 = StdInstant::now();
    running.worker.stop();
    // The Shutdown command's eventfd woke it; it did not wait out its 1 s timeout.
    assert!(t0.elapsed() < Duration::from_millis(900), "{:?}", t0.elapsed());
    assert_eq!(running.failure.drain().unwrap(), 0, "a requested stop is not a failure");
    assert_eq!(link.send(WorkerCommand::Shutdown).unwrap_err().kind(), io::ErrorKind::BrokenPipe);
}

#[test]
fn an_attached_apps_doorbell_wakes_the_worker_until_it_is_detached() {
    use crate::app::AppIdentity;
    use crate::control::attach::Attachment;
    use sluice_shm::layout::Geometry;

    let (running, end) = memory_worker(PollMode::Sleep);
    let link = running.worker.link();
    let geo = Geometry { workers: 1, event_cap: 64, request_cap: 8, max_sessions: 4, rx_fifo: 4096, tx_fifo: 4096 };
    let attachment = Attachment::create(5, geo).unwrap();
    // The app's copy of its doorbell.
    let doorbell = EventFd::from_fd(attachment.fds()[3].try_clone_to_owned().unwrap());
    let identity = AppIdentity { id: AppId(5), pid: 1, uid: 0, gid: 0 };
    link.send(WorkerCommand::Attach(Box::new(attachment.into_new_app(identity, 0).unwrap()))).unwrap();
    // The stand-in app layer dropped the app's descriptors at once; the
    // worker watches its own duplicate, and drains it when it fires.
    for _ in 0..3 {
        doorbell.notify().unwrap();
        wait_for("the worker to drain the doorbell", || !doorbell.wait(Some(Duration::ZERO)).unwrap());
    }
    link.send(WorkerCommand::Detach(AppId(5))).unwrap();
    // A snapshot is answered after the detach (commands run in order).
    snapshot(&running);
    doorbell.notify().unwrap();
    snapshot(&running);
    assert!(doorbell.wait(Some(Duration::ZERO)).unwrap(), "a detached app's doorbell is not watched");
    // A detach of an app the worker does not serve is ignored.
    link.send(WorkerCommand::Detach(AppId(99))).unwrap();
    assert!(end.send(&arp_request(DAEMON_IP)));
    assert_arp_reply(&end.recv_timeout(WAIT).unwrap());
    running.worker.stop();
}
