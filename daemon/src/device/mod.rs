//! Frame I/O for a worker (design §3.1). A device moves whole Ethernet
//! frames in batches; the worker hands received batches to the engine and
//! lets the engine write outgoing frames straight into the device's sink.

use std::io;
use std::os::fd::RawFd;

use sluice_stack::FrameSink;

pub mod kernel_addr;
pub mod loss;
pub mod memory;
pub mod tap;
pub mod xdp;

/// Most frames one `receive` call hands over.
pub const RX_BATCH: usize = 64;

/// One queue of a network device, owned by one worker.
pub trait Device: Send {
    /// Reads up to `max` waiting frames without blocking and passes them to
    /// `deliver` as one batch (borrowed for the call only). Returns how many
    /// frames were delivered; 0 when none were waiting.
    fn receive(&mut self, max: usize, deliver: &mut dyn FnMut(&[&[u8]])) -> io::Result<usize>;

    /// Where the engine writes outgoing frames (`Stack::poll_transmit`).
    /// Frames are queued; [`Device::flush`] sends them. When the device has
    /// no room `FrameSink::emit` returns `false` and the engine retries later.
    fn sink(&mut self) -> &mut dyn FrameSink;

    /// Sends every queued frame (kicking the kernel where the device needs
    /// it). Returns how many frames left.
    fn flush(&mut self) -> io::Result<usize>;

    /// A descriptor that is readable (level-triggered) while frames wait,
    /// for the worker's epoll; `None` for a device that cannot block.
    fn wait_fd(&self) -> Option<RawFd>;

    /// The MAC address Sluice uses on this device (the interface's own for
    /// AF_XDP; a locally administered one for TAP and memory).
    fn mac(&self) -> [u8; 6];

    /// What the device is, for `sluice stats`.
    fn info(&self) -> DeviceInfo;

    /// Frame and byte counters since the device was opened.
    fn counters(&self) -> DeviceCounters;
}

/// Description of a device for `sluice stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeviceInfo {
    /// `"xdp"`, `"tap"` or `"memory"`.
    pub kind: String,
    /// Interface name (or a test label).
    pub name: String,
    /// Queue index on the interface.
    pub queue: u32,
    /// Mode details: `"native copy"`, `"skb copy"`, `"zero-copy"`, `"tap"`, ...
    pub mode: String,
}

/// Counters of one device queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeviceCounters {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Frames lost on receive (ring overflow, fill-ring starvation, truncation).
    pub rx_dropped: u64,
    /// Frames the engine emitted that the device could not send.
    pub tx_dropped: u64,
    /// Syscalls made to kick the kernel (AF_XDP `sendto`/`poll` wake-ups).
    pub kicks: u64,
    /// Frames dropped on purpose by the loss injector (`--loss`), both ways.
    pub injected_drops: u64,
}
