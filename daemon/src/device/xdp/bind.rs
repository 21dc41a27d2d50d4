//! Creating the UMEM and binding the AF_XDP socket: the (attach mode, copy or
//! zero-copy) combinations a configured mode tries, in order, and one try.
//!
//! Each try gets a fresh UMEM: a failed try may leave the UMEM's socket bound
//! (libxdp binds before it attaches the program), and a bound socket cannot
//! be bound again.

use std::error::Error as _;
use std::io;
use std::num::NonZeroU32;
use std::os::fd::AsRawFd;
use std::thread;
use std::time::{Duration, Instant};

use xsk_rs::config::{
    BindFlags, FrameSize, Interface, QueueSize, SocketConfig, UmemConfig, XdpFlags, XDP_UMEM_MIN_CHUNK_SIZE,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use super::program::AttachMode;
use crate::config::XdpMode;

/// Bytes per UMEM frame: one page. The kernel requires a power of two no
/// larger than a page for an aligned UMEM (af_xdp docs, "UMEM"); 256 bytes
/// of it are XDP headroom, leaving 3840 for a frame: any standard MTU.
pub const FRAME_SIZE: u32 = 4096;
const _: () = assert!(FRAME_SIZE >= XDP_UMEM_MIN_CHUNK_SIZE && FRAME_SIZE.is_power_of_two());
/// Fewest UMEM frames accepted: 8 each way.
pub(super) const MIN_FRAMES: u32 = 16;
/// Most UMEM frames accepted: 1 GiB of pinned memory per queue.
pub(super) const MAX_FRAMES: u32 = 1 << 18;
/// How long a queue that is still being released is waited for.
const BUSY_PATIENCE: Duration = Duration::from_millis(2500);

/// How the UMEM's frames are split and how large the rings are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Geometry {
    pub frames: u32,
    /// Frames that circulate through the fill and RX rings.
    pub rx_frames: u32,
    /// Frames that circulate through the TX and completion rings.
    pub tx_frames: u32,
    /// Fill and RX ring size: room for every RX frame, so returning frames
    /// to the fill ring never fails.
    pub rx_ring: u32,
    /// TX and completion ring size: room for every TX frame, so submitting
    /// never fails and the kernel never finds the completion ring full.
    pub tx_ring: u32,
}

impl Geometry {
    pub(super) fn new(frames: u32) -> Result<Geometry, String> {
        if !(MIN_FRAMES..=MAX_FRAMES).contains(&frames) {
            return Err(format!("UMEM frames must be {MIN_FRAMES}..={MAX_FRAMES}, got {frames}"));
        }
        let rx_frames = frames / 2;
        let tx_frames = frames - rx_frames;
        Ok(Geometry {
            frames,
            rx_frames,
            tx_frames,
            rx_ring: rx_frames.next_power_of_two(),
            tx_ring: tx_frames.next_power_of_two(),
        })
    }
}

/// One way to bind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Attempt {
    pub attach: AttachMode,
    pub zero_copy: bool,
}

impl Attempt {
    pub(super) fn describe(self) -> String {
        format!("{} mode, {}", self.attach.label(), if self.zero_copy { "zero-copy" } else { "copy" })
    }
}

/// The tries for a configured mode, best first. Zero-copy is only tried in
/// native mode (the generic SKB path always copies), and only when allowed;
/// when required (`Some(true)`) nothing else is tried.
pub(super) fn plan(mode: XdpMode, zero_copy: Option<bool>) -> Result<Vec<Attempt>, &'static str> {
    let native = |zero_copy| Attempt { attach: AttachMode::Native, zero_copy };
    let skb = Attempt { attach: AttachMode::Skb, zero_copy: false };
    let natives = match zero_copy {
        Some(true) => vec![native(true)],
        Some(false) => vec![native(false)],
        None => vec![native(true), native(false)],
    };
    match (mode, zero_copy) {
        (XdpMode::Skb, Some(true)) => Err("zero-copy needs native mode and SKB mode was forced"),
        (XdpMode::Skb, _) => Ok(vec![skb]),
        (XdpMode::Native, _) => Ok(natives),
        (XdpMode::Auto, Some(true)) => Ok(natives),
        (XdpMode::Auto, _) => Ok(natives.into_iter().chain([skb]).collect()),
    }
}

/// A bound socket and its UMEM.
pub(super) struct Bound {
    pub umem: Umem,
    /// Every frame of the UMEM, none of them in a ring yet.
    pub frames: Vec<FrameDesc>,
    pub tx: TxQueue,
    pub rx: RxQueue,
    pub fill: FillQueue,
    pub comp: CompQueue,
}

/// Why a try failed.
#[derive(Debug)]
pub(super) struct BindError {
    pub errno: Option<i32>,
    pub message: String,
}

impl BindError {
    pub(super) fn into_io(self) -> io::Error {
        match self.errno {
            Some(code) => io::Error::new(io::Error::from_raw_os_error(code).kind(), self.message),
            None => io::Error::other(self.message),
        }
    }
}

/// One try, waiting out EBUSY: the kernel releases a queue's previous socket
/// asynchronously, so binding within a moment of its owner exiting fails
/// with EBUSY for a while (about 0.2 s on veth). A queue a live socket holds
/// stays busy: that is reported after [`BUSY_PATIENCE`].
pub(super) fn bind(iface: &str, queue: u32, geometry: &Geometry, attempt: Attempt) -> Result<Bound, BindError> {
    let deadline = Instant::now() + BUSY_PATIENCE;
    let mut backoff = Duration::from_millis(10);
    loop {
        match bind_once(iface, queue, geometry, attempt) {
            Err(err) if err.errno == Some(libc::EBUSY) && Instant::now() + backoff < deadline => {
                log::debug!("{iface} queue {queue}: busy, retrying in {backoff:?}");
                thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_millis(200));
            }
            Err(err) if err.errno == Some(libc::EBUSY) => {
                return Err(BindError {
                    errno: err.errno,
                    message: format!(
                        "{} (still busy after {BUSY_PATIENCE:?}: another AF_XDP socket holds the queue, \
                         or the interface already has an XDP program in another mode)",
                        err.message
                    ),
                })
            }
            other => return other,
        }
    }
}

fn bind_once(iface: &str, queue: u32, geometry: &Geometry, attempt: Attempt) -> Result<Bound, BindError> {
    let (umem, frames) = create_umem(geometry)?;
    let config = socket_config(geometry, attempt)?;
    let name: Interface = iface
        .parse()
        .map_err(|_| BindError { errno: Some(libc::EINVAL), message: "interface name contains a NUL byte".into() })?;
    // Why this is sound: the UMEM was created just above and is used by this socket only,
    // so the (interface, queue) pair cannot already be bound from it: the
    // condition under which xsk-rs requires XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD.
    // SAFETY: a fresh UMEM, not yet bound to any (interface, queue).
    let created = unsafe { Socket::new(config, &umem, &name, queue) };
    let (tx, rx, rings) = created.map_err(|e| {
        let cause = e.source().and_then(|s| s.downcast_ref::<io::Error>());
        BindError {
            errno: cause.and_then(io::Error::raw_os_error),
            message: match cause {
                Some(cause) => format!("create socket and attach XDP program: {cause}"),
                None => format!("create socket and attach XDP program: {e}"),
            },
        }
    })?;
    let (fill, comp) = rings.ok_or_else(|| BindError {
        errno: None,
        message: "libxdp returned no fill and completion rings for an unshared UMEM".into(),
    })?;
    Ok(Bound { umem, frames, tx, rx, fill, comp })
}

fn create_umem(geometry: &Geometry) -> Result<(Umem, Vec<FrameDesc>), BindError> {
    let invalid = |what: String| BindError { errno: Some(libc::EINVAL), message: what };
    let frame_size = FrameSize::new(FRAME_SIZE).map_err(|e| invalid(e.to_string()))?;
    let config = UmemConfig::builder()
        .frame_size(frame_size)
        .fill_queue_size(QueueSize::new(geometry.rx_ring).map_err(|e| invalid(e.to_string()))?)
        .comp_queue_size(QueueSize::new(geometry.tx_ring).map_err(|e| invalid(e.to_string()))?)
        .build()
        .map_err(|e| invalid(e.to_string()))?;
    let count = NonZeroU32::new(geometry.frames).ok_or_else(|| invalid("no UMEM frames".into()))?;
    Umem::new(config, count, false).map_err(|e| {
        let cause = e.source().and_then(|s| s.downcast_ref::<io::Error>());
        BindError {
            errno: cause.and_then(io::Error::raw_os_error),
            message: match cause {
                Some(cause) => format!("create UMEM of {} frames: {e}: {cause}", geometry.frames),
                None => format!("create UMEM of {} frames: {e}", geometry.frames),
            },
        }
    })
}

fn socket_config(geometry: &Geometry, attempt: Attempt) -> Result<SocketConfig, BindError> {
    let invalid = |e: xsk_rs::config::QueueSizeError| BindError { errno: Some(libc::EINVAL), message: e.to_string() };
    let xdp_flags = match attempt.attach {
        AttachMode::Native => XdpFlags::XDP_FLAGS_DRV_MODE,
        AttachMode::Skb => XdpFlags::XDP_FLAGS_SKB_MODE,
        AttachMode::Hardware => XdpFlags::XDP_FLAGS_HW_MODE,
    };
    // XDP_USE_NEED_WAKEUP: the kernel says (a flag in each ring) when it
    // needs a syscall to go on, so none is made otherwise (af_xdp docs,
    // "XDP_USE_NEED_WAKEUP bind flag").
    let copy = if attempt.zero_copy { BindFlags::XDP_ZEROCOPY } else { BindFlags::XDP_COPY };
    Ok(SocketConfig::builder()
        .rx_queue_size(QueueSize::new(geometry.rx_ring).map_err(invalid)?)
        .tx_queue_size(QueueSize::new(geometry.tx_ring).map_err(invalid)?)
        .xdp_flags(xdp_flags)
        .bind_flags(BindFlags::XDP_USE_NEED_WAKEUP | copy)
        .build())
}

/// Whether the bound socket runs in zero-copy mode (`XDP_OPTIONS`, Linux 5.3).
pub(super) fn is_zero_copy(socket: &impl AsRawFd) -> io::Result<bool> {
    let mut options = libc::xdp_options { flags: 0 };
    let mut len = std::mem::size_of::<libc::xdp_options>() as libc::socklen_t;
    // SAFETY: `options` is valid for writes of `len` bytes, `len` for a write of its own size; both outlive the call.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_XDP,
            libc::XDP_OPTIONS,
            (&mut options as *mut libc::xdp_options).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(options.flags & libc::XDP_OPTIONS_ZEROCOPY != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempts(mode: XdpMode, zero_copy: Option<bool>) -> Vec<String> {
        plan(mode, zero_copy).unwrap().into_iter().map(Attempt::describe).collect()
    }

    #[test]
    fn auto_tries_native_zero_copy_then_native_copy_then_skb() {
        assert_eq!(attempts(XdpMode::Auto, None), ["native mode, zero-copy", "native mode, copy", "skb mode, copy"]);
        assert_eq!(attempts(XdpMode::Auto, Some(false)), ["native mode, copy", "skb mode, copy"]);
    }

    #[test]
    fn required_zero_copy_tries_nothing_else() {
        assert_eq!(attempts(XdpMode::Auto, Some(true)), ["native mode, zero-copy"]);
        assert_eq!(attempts(XdpMode::Native, Some(true)), ["native mode, zero-copy"]);
        assert!(plan(XdpMode::Skb, Some(true)).is_err());
    }

    #[test]
    fn forced_modes_stay_in_their_mode() {
        assert_eq!(attempts(XdpMode::Native, None), ["native mode, zero-copy", "native mode, copy"]);
        assert_eq!(attempts(XdpMode::Native, Some(false)), ["native mode, copy"]);
        assert_eq!(attempts(XdpMode::Skb, None), ["skb mode, copy"]);
        assert_eq!(attempts(XdpMode::Skb, Some(false)), ["skb mode, copy"]);
    }

    #[test]
    fn frames_are_split_and_rings_hold_them_all() {
        let g = Geometry::new(4096).unwrap();
        assert_eq!((g.rx_frames, g.tx_frames, g.rx_ring, g.tx_ring), (2048, 2048, 2048, 2048));
        let g = Geometry::new(1000).unwrap();
        assert_eq!((g.rx_frames, g.tx_frames, g.rx_ring, g.tx_ring), (500, 500, 512, 512));
        let g = Geometry::new(17).unwrap();
        assert_eq!((g.rx_frames, g.tx_frames, g.rx_ring, g.tx_ring), (8, 9, 8, 16));
        assert!(Geometry::new(MIN_FRAMES - 1).is_err());
        assert!(Geometry::new(MAX_FRAMES + 1).is_err());
        assert!(Geometry::new(0).is_err());
    }
}
