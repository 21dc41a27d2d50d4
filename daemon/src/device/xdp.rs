//! AF_XDP device (design §3.1): one queue of a real interface, through an
//! AF_XDP socket (kernel docs, networking/af_xdp) driven with `xsk-rs`.
//!
//! Frames never leave the UMEM: received frames are lent to the engine where
//! the kernel wrote them, and the engine writes outgoing frames straight into
//! free UMEM frames. The UMEM holds `frames` frames of [`FRAME_SIZE`] bytes,
//! half for receiving (fill and RX rings), half for sending (TX and
//! completion rings); each ring has room for all frames of its half.
//!
//! The socket is bound with `XDP_USE_NEED_WAKEUP`: the kernel flags a ring
//! when it needs a syscall to go on, and only then is one made — `poll` for
//! the fill ring, `sendto(MSG_DONTWAIT)` for the TX ring (copy mode always
//! needs that one).
//!
//! libxdp attaches its AF_XDP redirect program with the first socket on an
//! interface and detaches it when the last one is deleted, which dropping
//! the device does. A program a crashed process left behind is detached at
//! [`XdpDevice::open`]: every open device holds a shared lock on a file in
//! `/run/sluice-xdp`, so an opener that gets it exclusively knows the
//! program's owner is dead.

mod bind;
mod library_log;
mod netdev;
mod owner_lock;
mod program;
mod rx;
mod sock_diag;
mod tx;

use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::RawFd;
use std::sync::Mutex;

use sluice_stack::FrameSink;

use self::bind::{Attempt, Bound, Geometry};
use self::netdev::IfaceName;
use self::owner_lock::OwnerLock;
use self::program::AttachMode;
use self::rx::RxPath;
use self::tx::TxPath;
use super::{Device, DeviceCounters, DeviceInfo};
use crate::config::XdpMode;

pub use self::bind::FRAME_SIZE;

/// Ethernet header bytes on top of the MTU (no VLAN tag: Sluice sends none).
const ETHERNET_HEADER_LEN: u32 = 14;
/// Bytes of a UMEM frame left for the packet after the kernel's XDP headroom.
const FRAME_ROOM: u32 = FRAME_SIZE - libxdp_sys::XDP_PACKET_HEADROOM;
// A standard 1500-byte MTU fits.
const _: () = assert!(1500 + ETHERNET_HEADER_LEN <= FRAME_ROOM);

/// Opens and closes are serialised: finding a dead process's program and
/// replacing it must not interleave with another queue of this process
/// attaching its own, and an open must not find the program half-detached
/// by the last socket's delete (libxdp would then load a second one, which
/// the kernel refuses).
static OPEN_LOCK: Mutex<()> = Mutex::new(());

/// The socket's two sides; deleting the socket may detach the program.
struct Queue {
    rx: RxPath,
    tx: TxPath,
}

/// One queue of an interface, owned through an AF_XDP socket.
pub struct XdpDevice {
    /// Dropped by hand, under [`OPEN_LOCK`] (see Drop).
    queue: ManuallyDrop<Queue>,
    mac: [u8; 6],
    info: DeviceInfo,
    /// Declared last, so dropped last: held until the socket, and with the
    /// last one the program, is gone.
    _owner: OwnerLock,
}

impl XdpDevice {
    /// Binds an AF_XDP socket to queue `queue` of `iface` with a UMEM of
    /// `frames` frames, attaching libxdp's redirect program.
    ///
    /// `mode`: `Native` attaches in the driver, `Skb` on the generic path,
    /// `Auto` tries native and falls back to SKB. Zero-copy is tried in native
    /// mode only, and only when `zero_copy` is not `Some(false)`; it falls
    /// back to copy mode unless `zero_copy` is `Some(true)`, which makes its
    /// absence an error ("zero-copy is unavailable on IFACE"). What was
    /// chosen shows in [`Device::info`]'s `mode` ("native copy", "skb copy",
    /// "native zero-copy").
    ///
    /// Errors name the interface, the queue and the step that failed. Must
    /// be called from a thread in the interface's network namespace.
    pub fn open(iface: &str, queue: u32, mode: XdpMode, zero_copy: Option<bool>, frames: u32) -> io::Result<XdpDevice> {
        let at = format!("AF_XDP on {iface} queue {queue}");
        let fail = |step: &str, err: io::Error| io::Error::new(err.kind(), format!("{at}: {step}: {err}"));
        let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidInput, format!("{at}: {what}"));

        let name = IfaceName::new(iface).map_err(invalid)?;
        let geometry = Geometry::new(frames).map_err(invalid)?;
        let attempts = bind::plan(mode, zero_copy).map_err(|why| {
            io::Error::new(io::ErrorKind::Unsupported, format!("{at}: zero-copy is unavailable on {iface}: {why}"))
        })?;
        let ifindex = netdev::ifindex(&name).map_err(|e| fail("look up the interface", e))?;
        let mac = netdev::mac_address(&name).map_err(|e| fail("read the MAC address", e))?;
        let mtu = netdev::mtu(&name).map_err(|e| fail("read the MTU", e))?;
        if mtu.saturating_add(ETHERNET_HEADER_LEN) > FRAME_ROOM {
            return Err(invalid(format!(
                "MTU {mtu} needs {}-byte frames, a UMEM frame holds {FRAME_ROOM} (lower the MTU)",
                mtu.saturating_add(ETHERNET_HEADER_LEN)
            )));
        }

        library_log::install();
        let _turn = OPEN_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut owner = OwnerLock::take(ifindex).map_err(|e| fail("lock the interface in /run/sluice-xdp", e))?;
        if owner.is_sole() {
            replace_dead_program(iface, ifindex).map_err(|e| fail("replace the XDP program a dead process left", e))?;
        }
        owner.share().map_err(|e| fail("share the interface lock", e))?;
        let (bound, attempt) = bind_first(&at, iface, queue, &geometry, &attempts, zero_copy)?;
        let zero_copy_on = bind::is_zero_copy(bound.rx.fd()).map_err(|e| fail("read the socket's XDP_OPTIONS", e))?;
        let attached = program::attached_mode(ifindex)
            .map_err(|e| fail("read the XDP program's mode", e))?
            .unwrap_or(attempt.attach);
        check_forced_mode(mode, attached).map_err(invalid)?;
        let mode_label = format!("{} {}", attached.label(), if zero_copy_on { "zero-copy" } else { "copy" });

        let Bound { umem, mut frames, tx, rx, fill, comp } = bound;
        let umem_len = geometry.frames as usize * FRAME_SIZE as usize;
        let tx_frames = frames.split_off(geometry.rx_frames as usize);
        let rx = RxPath::new(umem.clone(), rx, fill, umem_len, frames).map_err(|e| fail("fill the fill ring", e))?;
        let tx = TxPath::new(umem, tx, comp, geometry.tx_ring, umem_len, FRAME_ROOM as usize, tx_frames);
        log::info!("{at}: bound in {mode_label} mode, {} UMEM frames, MAC {}", geometry.frames, format_mac(&mac));
        Ok(XdpDevice {
            queue: ManuallyDrop::new(Queue { rx, tx }),
            mac,
            info: DeviceInfo { kind: "xdp".into(), name: iface.into(), queue, mode: mode_label },
            _owner: owner,
        })
    }
}

/// Tries each way to bind in turn. Every failure is kept for the error.
fn bind_first(
    at: &str,
    iface: &str,
    queue: u32,
    geometry: &Geometry,
    attempts: &[Attempt],
    zero_copy: Option<bool>,
) -> io::Result<(Bound, Attempt)> {
    let mut failures = Vec::new();
    for &attempt in attempts {
        match bind::bind(iface, queue, geometry, attempt) {
            Ok(bound) => {
                if !failures.is_empty() {
                    log::info!("{at}: fell back to {} ({})", attempt.describe(), describe_failures(&failures));
                }
                return Ok((bound, attempt));
            }
            Err(err) => {
                log::debug!("{at}: {}: {}", attempt.describe(), err.message);
                failures.push((attempt, err));
            }
        }
    }
    let summary = describe_failures(&failures);
    let Some((_, last)) = failures.pop() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{at}: no way to bind was allowed")));
    };
    let kind = last.into_io().kind();
    if zero_copy == Some(true) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{at}: zero-copy is unavailable on {iface}: {summary}"),
        ));
    }
    let hint = if kind == io::ErrorKind::InvalidInput {
        " (is the queue below the interface's queue count? `ethtool -l`)"
    } else {
        ""
    };
    Err(io::Error::new(kind, format!("{at}: {summary}{hint}")))
}

fn describe_failures(failures: &[(Attempt, bind::BindError)]) -> String {
    let parts: Vec<String> = failures.iter().map(|(a, e)| format!("{}: {}", a.describe(), e.message)).collect();
    parts.join("; ")
}

/// A forced mode must be the mode the program runs in: another queue of the
/// interface may have attached it earlier, in another mode.
fn check_forced_mode(mode: XdpMode, attached: AttachMode) -> Result<(), String> {
    match (mode, attached) {
        (XdpMode::Native, AttachMode::Native) | (XdpMode::Skb, AttachMode::Skb) | (XdpMode::Auto, _) => Ok(()),
        (XdpMode::Native | XdpMode::Skb, _) => Err(format!(
            "{mode:?} mode was asked for, but the interface's XDP program runs in {} mode",
            attached.label()
        )),
    }
}

/// Detaches libxdp's AF_XDP program, called when no other live Sluice
/// device is on the interface (the caller holds the [`OwnerLock`] alone):
/// such a program was left by a process that died without deleting its
/// sockets, and it counts them still, so libxdp would never detach it.
/// Where the kernel lists AF_XDP sockets (sock_diag), a program that a
/// socket of some other program is bound to is left alone.
fn replace_dead_program(iface: &str, ifindex: u32) -> io::Result<()> {
    if !program::has_xsk_program(ifindex)? {
        return Ok(());
    }
    match sock_diag::xdp_sockets() {
        Ok(sockets) => {
            let users = sockets.iter().filter(|s| s.ifindex == ifindex).count();
            if users > 0 {
                log::info!(
                    "{iface}: the attached AF_XDP program serves {users} socket(s) of another program; sharing it"
                );
                return Ok(());
            }
        }
        // Kernels without CONFIG_XDP_SOCKETS_DIAG: the lock decides alone.
        Err(err) => log::debug!("{iface}: cannot list AF_XDP sockets ({err})"),
    }
    log::warn!("{iface}: detaching the AF_XDP program that a process which died left attached");
    program::detach_xsk_program(ifindex)?;
    Ok(())
}

fn format_mac(mac: &[u8; 6]) -> String {
    let parts: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(":")
}

impl Device for XdpDevice {
    fn receive(&mut self, max: usize, deliver: &mut dyn FnMut(&[&[u8]])) -> io::Result<usize> {
        self.queue.rx.receive(max, deliver)
    }

    fn sink(&mut self) -> &mut dyn FrameSink {
        &mut self.queue.tx
    }

    fn flush(&mut self) -> io::Result<usize> {
        self.queue.tx.flush()
    }

    fn wait_fd(&self) -> Option<RawFd> {
        Some(self.queue.rx.fd())
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn info(&self) -> DeviceInfo {
        self.info.clone()
    }

    fn counters(&self) -> DeviceCounters {
        let Queue { rx, tx } = &*self.queue;
        // The kernel counts what it dropped for want of a fill-ring frame or
        // of RX-ring room; without XDP_STATISTICS only our own count is known.
        let (kernel_rx_dropped, kernel_tx_dropped) = match rx.kernel_statistics() {
            Ok(s) => (s.rx_dropped() + s.rx_ring_full() + s.rx_invalid_descs(), s.tx_invalid_descs()),
            Err(_) => (rx.fill_waits, 0),
        };
        DeviceCounters {
            rx_frames: rx.frames,
            rx_bytes: rx.bytes,
            tx_frames: tx.frames,
            tx_bytes: tx.bytes,
            rx_dropped: kernel_rx_dropped + rx.bad_descriptors,
            tx_dropped: kernel_tx_dropped + tx.oversized,
            kicks: rx.kicks + tx.kicks,
            injected_drops: 0,
        }
    }
}

impl Drop for XdpDevice {
    fn drop(&mut self) {
        let _turn = OPEN_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Why this is sound: `queue` is dropped here and nowhere else, once (drop runs
        // once), and nothing uses it afterwards: the remaining fields do not
        // refer to it.
        // SAFETY: dropped once, here, and not used afterwards.
        unsafe { ManuallyDrop::drop(&mut self.queue) };
        log::info!("AF_XDP on {} queue {}: closed", self.info.name, self.info.queue);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_arguments_are_refused_before_touching_the_interface() {
        let err = XdpDevice::open("", 0, XdpMode::Auto, None, 4096).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        let err = XdpDevice::open("sx-none0", 0, XdpMode::Auto, None, 3).err().unwrap();
        assert!(err.to_string().contains("AF_XDP on sx-none0 queue 0: UMEM frames"), "{err}");
        let err = XdpDevice::open("sx-none0", 0, XdpMode::Skb, Some(true), 4096).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        assert!(err.to_string().contains("zero-copy is unavailable on sx-none0"), "{err}");
    }

    #[test]
    fn a_missing_interface_is_named_with_the_step() {
        let err = XdpDevice::open("sx-none0", 2, XdpMode::Auto, None, 64).err().unwrap();
        assert!(err.to_string().starts_with("AF_XDP on sx-none0 queue 2: look up the interface:"), "{err}");
    }

    #[test]
    fn a_forced_mode_must_match_the_attached_program() {
        assert!(check_forced_mode(XdpMode::Auto, AttachMode::Skb).is_ok());
        assert!(check_forced_mode(XdpMode::Native, AttachMode::Native).is_ok());
        assert!(check_forced_mode(XdpMode::Skb, AttachMode::Skb).is_ok());
        assert!(check_forced_mode(XdpMode::Skb, AttachMode::Native).is_err());
        assert!(check_forced_mode(XdpMode::Native, AttachMode::Skb).is_err());
    }
}
