//! Starting and stopping the whole daemon (design §3.2): one worker thread
//! per device queue, the control thread, and — for the `sluice daemon`
//! command — waiting for SIGINT/SIGTERM.

use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use log::{info, warn};
use sluice_shm::os::EventFd;
use sluice_stack::wire::EthernetAddress;
use sluice_stack::StackConfig;

use crate::app::{AppSet, AppSetConfig};
use crate::config::{DaemonConfig, DeviceKind};
use crate::control::admin::DaemonInfo;
use crate::control::listener::ControlListener;
use crate::control::signals::{TerminationSignals, Wake};
use crate::control::{ControlHandle, ServerSetup};
use crate::capture::CaptureTap;
use crate::device::kernel_addr;
use crate::device::loss::LossyDevice;
use crate::device::tap::{locally_administered_mac, TapDevice};
use crate::device::xdp::XdpDevice;
use crate::device::Device;
use crate::worker::{AppWork, ReportSender, WorkerHandle, WorkerSetup};

/// Local ports for active opens, split between the workers (Linux's
/// default `ip_local_port_range`).
pub const EPHEMERAL_PORTS: (u16, u16) = (32768, 60999);

/// Requests taken from one app's ring per poll: bounds how long one busy
/// app can keep a worker from the others.
pub const REQUEST_BUDGET: usize = 64;

/// The kernel's default `net.ipv4.ip_unprivileged_port_start`.
const DEFAULT_UNPRIVILEGED_PORT_START: u16 = 1024;

/// A running daemon: its workers and control thread.
#[derive(Debug)]
pub struct Daemon {
    control_socket: PathBuf,
    control: Option<ControlHandle>,
    workers: Vec<WorkerHandle>,
    failure: Arc<EventFd>,
}

impl Daemon {
    /// Starts a worker on each device (one per queue, `config.queues` of
    /// them) and the control thread; the control socket accepts
    /// connections when this returns.
    pub fn start(config: DaemonConfig, devices: Vec<Box<dyn Device>>) -> io::Result<Daemon> {
        Self::start_with(config, devices, AppSet::new)
    }

    /// As [`Daemon::start`], with the app layer built by `make_apps` (tests
    /// run the daemon's threads over a stand-in).
    pub fn start_with<A, F>(config: DaemonConfig, devices: Vec<Box<dyn Device>>, make_apps: F) -> io::Result<Daemon>
    where
        A: AppWork + 'static,
        F: Fn(AppSetConfig) -> A + Clone + Send + 'static,
    {
        if devices.is_empty() || devices.len() != config.queues as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} devices for queues = {}: one device queue per worker", devices.len(), config.queues),
            ));
        }
        let geometry = config.geometry();
        geometry.validate().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        if config.queues > 1 {
            warn!("queues = {}: v1 homes every app on worker 0; the others only answer ARP and ICMP", config.queues);
        }
        let listener = ControlListener::bind(&config.control_socket, config.socket_mode)?;
        let failure = Arc::new(EventFd::new()?);
        let (reports, report_rx, report_bell) = ReportSender::channel()?;
        let secret = random_secret()?;
        let unprivileged_port_start = unprivileged_port_start();

        let capture = CaptureTap::new()?;
        let mut workers = Vec::with_capacity(devices.len());
        for (index, device) in (0u32..).zip(devices) {
            let setup = WorkerSetup {
                index,
                stack: stack_config(&config, index, config.mac.unwrap_or_else(|| device.mac()), secret),
                device,
                poll_mode: config.poll_mode,
                idle_spin_us: config.idle_spin_us,
                reports: reports.clone(),
                failure: Arc::clone(&failure),
                capture: Arc::clone(&capture),
            };
            let apps_config = AppSetConfig {
                worker: index,
                unprivileged_port_start,
                request_budget: REQUEST_BUDGET,
                loopback: config.loopback,
            };
            let make_apps = make_apps.clone();
            match WorkerHandle::spawn(setup, move || make_apps(apps_config)) {
                Ok(worker) => workers.push(worker),
                Err(e) => {
                    listener.remove_file();
                    return Err(e);
                }
            }
        }
        let setup = ServerSetup {
            listener,
            geometry,
            workers: workers.iter().map(WorkerHandle::link).collect(),
            reports: report_rx,
            report_bell,
            info: DaemonInfo { address: format!("{}/{}", config.ip, config.prefix), mtu: config.mtu },
            capture,
        };
        let control = ControlHandle::spawn(setup, Arc::clone(&failure))?;
        info!("sluice daemon on {}/{}: control socket {}", config.ip, config.prefix, config.control_socket.display());
        Ok(Daemon { control_socket: config.control_socket, control: Some(control), workers, failure })
    }

    /// Where apps and admin commands connect.
    pub fn control_socket(&self) -> &Path {
        &self.control_socket
    }

    /// Readable once a daemon thread has stopped on its own (an error or a
    /// panic): the daemon cannot go on and should be stopped.
    pub fn failure_fd(&self) -> BorrowedFd<'_> {
        self.failure.as_fd()
    }

    /// Stops the control thread (closing every app's connection, removing
    /// the socket file), then each worker (detaching its apps and sending
    /// what that produced), and waits for all of them.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(control) = self.control.take() {
            control.stop();
        }
        for worker in self.workers.drain(..) {
            worker.stop();
        }
    }
}

/// Worker `worker`'s engine configuration.
pub fn stack_config(config: &DaemonConfig, worker: u32, mac: [u8; 6], secret: [u8; 32]) -> StackConfig {
    let mut s = StackConfig::new(EthernetAddress(mac), config.ip, config.prefix, secret);
    s.gateway = config.gateway;
    s.mtu = config.mtu as usize;
    s.ephemeral_ports = ephemeral_ports(worker, config.queues);
    // Every session of every app may hold a connection, and closed ones
    // linger in TIME-WAIT without a session: room for twice the per-app
    // session limit, and never less than the engine's default.
    s.max_connections = s.max_connections.max(2 * config.max_sessions as usize);
    // One event queue entry per socket, so the engine's queue cannot
    // overflow (design §3.4).
    s.event_queue_capacity = s.max_connections + s.max_listeners;
    s
}

/// Worker `worker`'s share of [`EPHEMERAL_PORTS`]: contiguous, disjoint
/// slices, the last one taking the remainder, so two workers never pick the
/// same local port.
pub fn ephemeral_ports(worker: u32, workers: u32) -> (u16, u16) {
    let (lo, hi) = (u32::from(EPHEMERAL_PORTS.0), u32::from(EPHEMERAL_PORTS.1));
    let workers = workers.max(1);
    let worker = worker.min(workers - 1);
    let share = (hi - lo + 1) / workers;
    let start = lo + worker * share;
    let end = if worker + 1 == workers { hi } else { start + share - 1 };
    // Both are within [lo, hi], which fit u16.
    (start as u16, end as u16)
}

/// 32 bytes from the kernel's CSPRNG (getrandom(2)), for the engine's hash,
/// ISN and SYN-cookie secret.
pub fn random_secret() -> io::Result<[u8; 32]> {
    let mut secret = [0u8; 32];
    let mut filled = 0;
    while filled < secret.len() {
        let rest = &mut secret[filled..];
        // SAFETY: `rest` is valid for writes of `rest.len()` bytes for the call.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += n as usize;
    }
    Ok(secret)
}

/// `net.ipv4.ip_unprivileged_port_start`, or the kernel's default when it
/// cannot be read.
fn unprivileged_port_start() -> u16 {
    fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(DEFAULT_UNPRIVILEGED_PORT_START)
}

/// Opens queue `queue` of the configured device, behind the loss injector
/// when `--loss` asks for one.
pub fn open_device(config: &DaemonConfig, queue: u32) -> io::Result<Box<dyn Device>> {
    let device = open_queue(config, queue)?;
    if config.loss_ppm == 0 {
        return Ok(device);
    }
    let seed = config.loss_seed.unwrap_or_else(rand::random);
    // Logged so that a failing run's losses can be replayed with
    // `--loss-seed`; queue q draws from seed + q.
    log::warn!(
        "queue {queue}: dropping {}.{:04}% of frames each way on purpose (--loss-seed {seed})",
        config.loss_ppm / 10_000,
        config.loss_ppm % 10_000
    );
    Ok(Box::new(LossyDevice::new(device, config.loss_ppm, seed.wrapping_add(u64::from(queue)))))
}

fn open_queue(config: &DaemonConfig, queue: u32) -> io::Result<Box<dyn Device>> {
    match config.device {
        DeviceKind::Tap => {
            let mac = config.mac.unwrap_or_else(|| locally_administered_mac(config.ip));
            let tap = TapDevice::open_queue(&config.iface, queue, config.queues > 1, config.mtu, mac)?;
            Ok(Box::new(tap))
        }
        DeviceKind::Xdp => {
            let kernel = kernel_addr::ipv4_addresses(&config.iface)?;
            if !kernel.is_empty() && !config.allow_kernel_addr {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "interface {} has kernel IPv4 address(es) {:?}; AF_XDP takes every frame on it, so remove them \
                         or pass --allow-kernel-addr",
                        config.iface, kernel
                    ),
                ));
            }
            let xdp = XdpDevice::open(&config.iface, queue, config.xdp_mode, config.zero_copy, config.xdp_frames)?;
            Ok(Box::new(xdp))
        }
    }
}

/// `sluice daemon`: runs until SIGINT or SIGTERM (or a thread failure).
pub fn run(config: DaemonConfig) -> Result<(), String> {
    let _ = env_logger::Builder::new().parse_filters(&config.log).try_init();
    // Before any thread exists, so every thread inherits the mask.
    let signals = TerminationSignals::block().map_err(|e| format!("cannot block SIGINT/SIGTERM: {e}"))?;
    let mut devices = Vec::with_capacity(config.queues as usize);
    for queue in 0..config.queues {
        let device = open_device(&config, queue)
            .map_err(|e| format!("cannot open {:?} device {} queue {queue}: {e}", config.device, config.iface))?;
        devices.push(device);
    }
    let daemon = Daemon::start(config, devices).map_err(|e| format!("cannot start: {e}"))?;
    let outcome = match signals.wait(daemon.failure_fd()) {
        Ok(Wake::Signal(signo)) => {
            info!("signal {signo}: stopping");
            Ok(())
        }
        Ok(Wake::Other) => Err("a daemon thread failed (see the log); stopped".to_string()),
        Err(e) => Err(format!("waiting for signals: {e}")),
    };
    daemon.stop();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ephemeral_ports_are_split_without_overlap_or_gaps() {
        assert_eq!(ephemeral_ports(0, 1), EPHEMERAL_PORTS);
        for workers in [1u32, 2, 3, 7, 32] {
            let ranges: Vec<(u16, u16)> = (0..workers).map(|w| ephemeral_ports(w, workers)).collect();
            assert_eq!(ranges[0].0, EPHEMERAL_PORTS.0);
            assert_eq!(ranges.last().unwrap().1, EPHEMERAL_PORTS.1);
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].1 + 1, pair[1].0, "{workers} workers: {ranges:?}");
            }
            assert!(ranges.iter().all(|(a, b)| a <= b));
        }
    }

    #[test]
    fn random_secrets_differ() {
        let a = random_secret().unwrap();
        let b = random_secret().unwrap();
        assert_ne!(a, b);
        assert_ne!(a, [0; 32]);
    }
}
