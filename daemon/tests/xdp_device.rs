//! The AF_XDP device against the Linux kernel, over a veth pair
//! (`scripts/netns-xdp.sh`): the engine on `XdpDevice` in one namespace
//! answers ping and echoes 1 MiB over TCP for a kernel client in the other.
//!
//! Needs root (namespaces, XDP programs); CI runs as root. Every test builds
//! its own topology (unique namespace names) and tears it down on drop.

use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration as StdDuration;

use sluice_daemon::config::XdpMode;
use sluice_daemon::device::xdp::XdpDevice;
use sluice_daemon::device::{Device, DeviceCounters, DeviceInfo, RX_BATCH};
use sluice_stack::wire::EthernetAddress;
use sluice_stack::{ConnId, ConsumerId, Error, Instant, ListenerId, Stack, StackConfig};

const DUT_IF: &str = "sxdut0";
const SLUICE_IP: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 2);
const ECHO_PORT: u16 = 7;
const ECHO_BYTES: usize = 1 << 20;
const CONSUMER: ConsumerId = ConsumerId(0);
/// Environment variable that turns the crash test's child run into the
/// process that opens the device and dies.
const CRASH_CHILD_ENV: &str = "SLUICE_XDP_TEST_CRASH_IN_NETNS";

fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(relative)
}

fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let euid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|r| r.split_whitespace().nth(1));
    assert_eq!(euid, Some("0"), "AF_XDP tests need root (namespaces, XDP programs); run them as root");
}

/// Runs `cmd`, killing it if it outlives `limit`.
fn run_with_limit(mut cmd: Command, limit: StdDuration) -> Output {
    let what = format!("{cmd:?}");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let pid = child.id();
    let (done_tx, done_rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = done_tx.send(child.wait_with_output());
    });
    match done_rx.recv_timeout(limit) {
        Ok(output) => output.unwrap_or_else(|e| panic!("wait for {what}: {e}")),
        Err(_) => {
            // SAFETY: kill(2) on the pid of a child this function started and has not reaped (the waiting thread reaps it after the kill).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            let output = done_rx.recv().expect("waiter thread").expect("wait after kill");
            panic!(
                "{what} overran {limit:?} and was killed\n--- stdout\n{}\n--- stderr\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

fn expect_success(output: Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed ({})\n--- stdout\n{stdout}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The namespaces and veth pair of `netns-xdp.sh`, under names of this test
/// only; removed on drop, also when the test panics.
struct Topology {
    prefix: String,
}

impl Topology {
    fn up(queues: u32) -> Topology {
        require_root();
        // RUST_LOG=debug shows what the device tried.
        let _ = env_logger::builder().is_test(true).try_init();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let prefix = format!("sxt{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let topology = Topology { prefix };
        let output = run_with_limit(topology.script(&["up", &queues.to_string()]), StdDuration::from_secs(30));
        expect_success(output, "netns-xdp.sh up");
        topology
    }

    fn script(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(repo_path("scripts/netns-xdp.sh")).args(args).env("SLUICE_XDP_NETNS_PREFIX", &self.prefix);
        cmd
    }

    fn dut_ns(&self) -> String {
        format!("{}-dut", self.prefix)
    }

    fn peer_ns(&self) -> String {
        format!("{}-peer", self.prefix)
    }

    /// Whether `ip link` shows an XDP program on the device under test.
    fn xdp_attached(&self) -> bool {
        let mut cmd = Command::new("ip");
        cmd.args(["-n", &self.dut_ns(), "link", "show", DUT_IF]);
        let link = expect_success(run_with_limit(cmd, StdDuration::from_secs(10)), "ip link show");
        link.contains("xdp")
    }

    fn in_peer(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.peer_ns(), program]);
        cmd
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let output = run_with_limit(self.script(&["down"]), StdDuration::from_secs(30));
        if !output.status.success() {
            eprintln!("netns-xdp.sh down failed: {}", String::from_utf8_lossy(&output.stderr));
        }
    }
}

/// Moves the calling thread into the named network namespace.
fn enter_netns(ns: &str) {
    let file = File::open(format!("/var/run/netns/{ns}")).unwrap_or_else(|e| panic!("open netns {ns}: {e}"));
    // SAFETY: setns(2) with a namespace descriptor that is open for the whole call; CLONE_NEWNET moves only the calling thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns into {ns}: {}", io::Error::last_os_error());
}

/// One echoed connection.
struct EchoConn {
    id: ConnId,
    pending: Vec<u8>,
    peer_fin: bool,
    done: bool,
}

/// Port 7: every byte goes back; the peer's FIN is answered with ours.
struct Echo {
    listener: ListenerId,
    conns: Vec<EchoConn>,
    buf: Vec<u8>,
    accepted: usize,
    echoed: u64,
    errors: Vec<String>,
}

impl Echo {
    const MAX_PENDING: usize = 256 * 1024;

    fn listen(stack: &mut Stack) -> Echo {
        let listener = stack
            .tcp_listen(CONSUMER, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, ECHO_PORT), 16, false)
            .expect("listen on the echo port");
        Echo { listener, conns: Vec::new(), buf: vec![0; 64 * 1024], accepted: 0, echoed: 0, errors: Vec::new() }
    }

    fn pump(&mut self, stack: &mut Stack, now: Instant) {
        // Every connection is looked at on every turn, so the events only
        // need draining.
        while stack.poll_event(CONSUMER).is_some() {}
        while let Ok((id, _peer)) = stack.tcp_accept(self.listener) {
            self.accepted += 1;
            self.conns.push(EchoConn { id, pending: Vec::new(), peer_fin: false, done: false });
        }
        for conn in &mut self.conns {
            while !conn.peer_fin && conn.pending.len() < Self::MAX_PENDING {
                let room = (Self::MAX_PENDING - conn.pending.len()).min(self.buf.len());
                match stack.tcp_recv(conn.id, &mut self.buf[..room]) {
                    Ok(0) => conn.peer_fin = true,
                    Ok(n) => conn.pending.extend_from_slice(&self.buf[..n]),
                    Err(Error::WouldBlock) => break,
                    Err(e) => {
                        self.errors.push(format!("recv: {e}"));
                        conn.done = true;
                        break;
                    }
                }
            }
            while !conn.done && !conn.pending.is_empty() {
                match stack.tcp_send(conn.id, &conn.pending) {
                    Ok(0) | Err(Error::WouldBlock) => break,
                    Ok(n) => {
                        conn.pending.drain(..n);
                        self.echoed += n as u64;
                    }
                    Err(e) => {
                        self.errors.push(format!("send: {e}"));
                        conn.done = true;
                    }
                }
            }
            if !conn.done && conn.peer_fin && conn.pending.is_empty() {
                // Like close(2): queued data and our FIN still go out.
                if let Err(e) = stack.tcp_close(now, conn.id) {
                    self.errors.push(format!("close: {e}"));
                }
                conn.done = true;
            }
        }
        self.conns.retain(|c| !c.done);
    }
}

/// What the server thread saw.
struct ServerReport {
    info: DeviceInfo,
    counters: DeviceCounters,
    accepted: usize,
    echoed: u64,
    errors: Vec<String>,
}

/// The engine on an `XdpDevice` in its own thread, inside the DUT namespace.
struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<io::Result<ServerReport>>>,
}

impl Server {
    /// Opens the device and starts serving; returns once the device is open.
    fn start(ns: String, mode: XdpMode) -> io::Result<(Server, DeviceInfo)> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let stop_flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            enter_netns(&ns);
            let device = match XdpDevice::open(DUT_IF, 0, mode, None, 1024) {
                Ok(device) => device,
                Err(e) => {
                    let _ = ready_tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                    return Err(e);
                }
            };
            let _ = ready_tx.send(Ok(device.info()));
            serve(device, &stop_flag)
        });
        let server = Server { stop, thread: Some(thread) };
        match ready_rx.recv_timeout(StdDuration::from_secs(30)) {
            Ok(Ok(info)) => Ok((server, info)),
            Ok(Err(e)) => {
                server.stop.store(true, Ordering::Release);
                Err(e)
            }
            Err(_) => panic!("the device did not open within 30 s"),
        }
    }

    fn finish(mut self) -> ServerReport {
        self.stop.store(true, Ordering::Release);
        let thread = self.thread.take().expect("joined once");
        thread.join().expect("server thread panicked").expect("server loop failed")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The driver loop: frames in, timers, the echo app, frames out, then sleep
/// on the AF_XDP socket until a frame or the next engine deadline.
fn serve(mut device: XdpDevice, stop: &AtomicBool) -> io::Result<ServerReport> {
    let mut secret = [0u8; 32];
    io::Read::read_exact(&mut File::open("/dev/urandom")?, &mut secret)?;
    let config = StackConfig::new(EthernetAddress(device.mac()), SLUICE_IP, 24, secret);
    let start = std::time::Instant::now();
    let clock = || Instant::from_micros(start.elapsed().as_micros() as u64);
    let mut stack = Stack::new(config, clock());
    let mut echo = Echo::listen(&mut stack);
    let fd = device.wait_fd().expect("an AF_XDP device has a descriptor to wait on");
    while !stop.load(Ordering::Acquire) {
        let now = clock();
        device.receive(RX_BATCH, &mut |frames| stack.handle_frames(now, frames))?;
        if stack.poll_timeout().is_some_and(|due| due <= now) {
            stack.handle_timeout(now);
        }
        echo.pump(&mut stack, now);
        stack.poll_transmit(now, device.sink());
        device.flush()?;

        // Wake for the next frame, the next engine deadline, or within 20 ms
        // to see the stop flag.
        let mut wait_ms: i32 = 20;
        if stack.wants_transmit() {
            wait_ms = 0;
        } else if let Some(due) = stack.poll_timeout() {
            wait_ms = wait_ms.min(due.saturating_since(clock()).total_millis() as i32);
        }
        let mut pollfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd, exclusively borrowed for the call.
        let rc = unsafe { libc::poll(&mut pollfd, 1, wait_ms) };
        if rc < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return Err(io::Error::last_os_error());
        }
    }
    let report = ServerReport {
        info: device.info(),
        counters: device.counters(),
        accepted: echo.accepted,
        echoed: echo.echoed,
        errors: echo.errors,
    };
    drop(device);
    Ok(report)
}

/// From the peer: ping answers, and 1 MiB comes back intact over TCP.
fn ping_and_echo(topology: &Topology) {
    let mut ping = topology.in_peer("ping");
    ping.args(["-c", "3", "-i", "0.2", "-W", "2", &SLUICE_IP.to_string()]);
    let out = expect_success(run_with_limit(ping, StdDuration::from_secs(30)), "ping 10.78.0.2");
    assert!(out.contains("3 received"), "ping: {out}");

    let mut client = topology.in_peer("python3");
    client.arg(repo_path("scripts/netns-peer.py"));
    client.args(["connect", &SLUICE_IP.to_string(), &ECHO_PORT.to_string(), "--send", &ECHO_BYTES.to_string()]);
    let out = expect_success(run_with_limit(client, StdDuration::from_secs(120)), "echo client");
    let last = out.lines().last().unwrap_or_default();
    let result: serde_json::Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("client output {out:?}: {e}"));
    assert_eq!(result["ok"], true, "client: {result}");
    assert_eq!(result["received"], ECHO_BYTES, "client: {result}");
    assert_eq!(result["sent_sha256"], result["recv_sha256"], "echo differs from what was sent: {result}");
}

/// The whole scenario in one mode; returns the mode the device reported.
fn serve_ping_and_echo(topology: &Topology, mode: XdpMode) -> String {
    let (server, info) = Server::start(topology.dut_ns(), mode).expect("open the AF_XDP device");
    assert_eq!((info.kind.as_str(), info.name.as_str(), info.queue), ("xdp", DUT_IF, 0));
    assert!(topology.xdp_attached(), "no XDP program on {DUT_IF} while the device is open");

    ping_and_echo(topology);

    let report = server.finish();
    assert!(report.errors.is_empty(), "echo errors: {:?}", report.errors);
    assert_eq!(report.accepted, 1);
    assert_eq!(report.echoed, ECHO_BYTES as u64);
    let c = report.counters;
    assert!(c.rx_frames > 0 && c.tx_frames > 0, "{c:?}");
    assert!(c.rx_bytes >= ECHO_BYTES as u64 && c.tx_bytes >= ECHO_BYTES as u64, "{c:?}");
    assert!(c.kicks > 0, "copy mode needs sendto kicks: {c:?}");
    assert_eq!(c.tx_dropped, 0, "{c:?}");
    assert!(!topology.xdp_attached(), "the XDP program outlived the device");
    report.info.mode
}

#[test]
fn skb_mode_answers_ping_and_echoes_a_mebibyte() {
    let topology = Topology::up(1);
    assert_eq!(serve_ping_and_echo(&topology, XdpMode::Skb), "skb copy");
}

#[test]
fn auto_mode_chooses_native_copy_on_veth_and_echoes_a_mebibyte() {
    let topology = Topology::up(1);
    // veth runs XDP in its driver but refuses zero-copy.
    assert_eq!(serve_ping_and_echo(&topology, XdpMode::Auto), "native copy");
}

#[test]
fn required_zero_copy_is_an_error_on_veth_and_leaves_no_program() {
    let topology = Topology::up(1);
    let ns = topology.dut_ns();
    let result = thread::spawn(move || {
        enter_netns(&ns);
        XdpDevice::open(DUT_IF, 0, XdpMode::Auto, Some(true), 256).map(|d| d.info())
    })
    .join()
    .expect("open thread");
    let err = result.expect_err("veth offers no zero-copy");
    assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{err}");
    assert!(err.to_string().contains("zero-copy is unavailable on sxdut0"), "{err}");
    assert!(!topology.xdp_attached(), "a failed open left an XDP program");
}

#[test]
fn two_queues_share_the_program_until_the_last_is_dropped() {
    let topology = Topology::up(2);
    let ns = topology.dut_ns();
    let (step_tx, step_rx) = mpsc::channel::<()>();
    let (seen_tx, seen_rx) = mpsc::channel::<Result<(String, String), String>>();
    let owner = thread::spawn(move || {
        enter_netns(&ns);
        let open = |queue| XdpDevice::open(DUT_IF, queue, XdpMode::Skb, None, 256).map_err(|e| e.to_string());
        let first = match open(0) {
            Ok(d) => d,
            Err(e) => return seen_tx.send(Err(e)).expect("report"),
        };
        let second = match open(1) {
            Ok(d) => d,
            Err(e) => return seen_tx.send(Err(e)).expect("report"),
        };
        seen_tx.send(Ok((first.info().mode, second.info().mode))).expect("report");
        step_rx.recv().expect("step");
        drop(first);
        seen_tx.send(Ok((String::new(), String::new()))).expect("report");
        step_rx.recv().expect("step");
        drop(second);
        seen_tx.send(Ok((String::new(), String::new()))).expect("report");
    });
    let wait = || seen_rx.recv_timeout(StdDuration::from_secs(30)).expect("owner thread").expect("open");
    assert_eq!(wait(), ("skb copy".to_string(), "skb copy".to_string()));
    assert!(topology.xdp_attached());
    step_tx.send(()).expect("step");
    wait();
    assert!(topology.xdp_attached(), "dropping queue 0 detached the program queue 1 still uses");
    step_tx.send(()).expect("step");
    wait();
    assert!(!topology.xdp_attached(), "the program outlived both queues");
    owner.join().expect("owner thread");
}

#[test]
fn a_program_left_by_a_crashed_owner_is_replaced_at_open() {
    if let Ok(ns) = std::env::var(CRASH_CHILD_ENV) {
        // The child run: own the device, then die without dropping it.
        enter_netns(&ns);
        let device = XdpDevice::open(DUT_IF, 0, XdpMode::Skb, None, 256).expect("open in the crashing child");
        println!("opened {}", device.info().mode);
        // exit(3) runs no destructor: libxdp never learns the socket is gone.
        std::process::exit(3);
    }
    let topology = Topology::up(1);
    let mut child = Command::new(std::env::current_exe().expect("test binary"));
    child
        .args(["a_program_left_by_a_crashed_owner_is_replaced_at_open", "--exact", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(CRASH_CHILD_ENV, topology.dut_ns());
    let output = run_with_limit(child, StdDuration::from_secs(60));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(3), "crashing child: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("opened skb copy"), "crashing child: {stdout}");
    assert!(topology.xdp_attached(), "the crashed owner's program should still be attached");

    // Without the replacement the stale program would be reused, still
    // counting the dead socket, and never detached after this run.
    assert_eq!(serve_ping_and_echo(&topology, XdpMode::Skb), "skb copy");
}

#[test]
fn a_queue_the_interface_lacks_is_an_error_naming_interface_and_queue() {
    let topology = Topology::up(1);
    let ns = topology.dut_ns();
    let result = thread::spawn(move || {
        enter_netns(&ns);
        XdpDevice::open(DUT_IF, 3, XdpMode::Skb, None, 256).map(|d| d.info())
    })
    .join()
    .expect("open thread");
    let err = result.expect_err("sxdut0 has one queue");
    let text = err.to_string();
    assert!(text.starts_with("AF_XDP on sxdut0 queue 3: skb mode, copy: create socket"), "{text}");
    assert!(text.contains("queue count"), "{text}");
    assert!(!topology.xdp_attached(), "a failed open left an XDP program");
}
