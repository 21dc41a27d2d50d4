//! A Linux TAP device (`/dev/net/tun`, `IFF_TAP | IFF_NO_PI`): every read
//! and write on the descriptor is exactly one Ethernet frame (Documentation/
//! networking/tuntap.rst). Non-blocking; the worker sleeps on the descriptor.
//!
//! Receive reads up to a batch of frames into a slab of buffers owned by the
//! device and lends them to the engine; transmit queues the engine's frames
//! and writes them, one `write` each, in `flush`. A frame the kernel cannot
//! take now (`EAGAIN`) stays queued for the next flush.

use std::collections::VecDeque;
use std::ffi::CStr;
use std::fs::OpenOptions;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use log::warn;
use sluice_stack::FrameSink;

use super::{Device, DeviceCounters, DeviceInfo, RX_BATCH};

/// Frames the sink queues before refusing more (the engine retries on the
/// next poll).
const TX_QUEUE: usize = 256;

/// Bytes of an Ethernet header plus one 802.1Q tag: the most a frame of an
/// `mtu`-byte IP packet can add.
const L2_OVERHEAD: usize = 14 + 4;

/// A locally administered unicast MAC derived from the stack's address
/// (`02:00:a:b:c:d`), for a TAP device given no MAC: stable across restarts
/// and distinct per address. IEEE 802-2014 §8.4: bit 1 of the first octet
/// set = locally administered, bit 0 clear = unicast.
pub fn locally_administered_mac(ip: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = ip.octets();
    [0x02, 0x00, a, b, c, d]
}

/// Received frames, lent to the engine for one `receive` call.
#[derive(Debug)]
struct RxSlab {
    bufs: Vec<Box<[u8]>>,
    lens: [usize; RX_BATCH],
}

/// The sink: frames waiting for `flush`, plus spare buffers to reuse.
#[derive(Debug, Default)]
struct TxQueue {
    pending: VecDeque<Vec<u8>>,
    spare: Vec<Vec<u8>>,
}

impl FrameSink for TxQueue {
    fn emit(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        if self.pending.len() >= TX_QUEUE {
            return false;
        }
        let mut frame = self.spare.pop().unwrap_or_default();
        frame.clear();
        frame.resize(len, 0);
        fill(&mut frame);
        self.pending.push_back(frame);
        true
    }
}

/// One queue of a TAP interface.
#[derive(Debug)]
pub struct TapDevice {
    fd: OwnedFd,
    name: String,
    queue: u32,
    multi_queue: bool,
    mac: [u8; 6],
    rx: RxSlab,
    tx: TxQueue,
    counters: DeviceCounters,
    /// Write errors other than `EAGAIN`, for rate-limited logging.
    tx_errors: u64,
}

impl TapDevice {
    /// Attaches to the TAP interface `name` (created, transient, if it does
    /// not exist), for frames of IP packets up to `mtu` bytes, using `mac`.
    pub fn open(name: &str, mtu: u32, mac: [u8; 6]) -> io::Result<TapDevice> {
        Self::open_queue(name, 0, false, mtu, mac)
    }

    /// As [`TapDevice::open`]; with `multi_queue` the interface is opened
    /// with `IFF_MULTI_QUEUE` and this descriptor is queue `queue` of it
    /// (each open adds a queue; the kernel spreads flows over them).
    pub fn open_queue(name: &str, queue: u32, multi_queue: bool, mtu: u32, mac: [u8; 6]) -> io::Result<TapDevice> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("interface name {name:?} must have 1..{} bytes", libc::IFNAMSIZ - 1),
            ));
        }
        if name.as_bytes().contains(&0) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "interface name contains NUL"));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(|e| io::Error::new(e.kind(), format!("open /dev/net/tun: {e}")))?;
        let fd = OwnedFd::from(file);

        // SAFETY: `ifreq` is plain old data for which all-zero bytes are a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
            *dst = *src as libc::c_char;
        }
        let mut flags = libc::IFF_TAP | libc::IFF_NO_PI;
        if multi_queue {
            flags |= libc::IFF_MULTI_QUEUE;
        }
        // IFF_* are small positive constants that fit the C `short` field.
        req.ifr_ifru.ifru_flags = flags as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one `ifreq`; `req` is a valid, exclusively borrowed `ifreq` that lives across the call, and `fd` is open.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF as _, &mut req as *mut libc::ifreq) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("TUNSETIFF {name}: {e}")));
        }
        // SAFETY: the kernel wrote a NUL-terminated name into the IFNAMSIZ-byte array (the zeroed tail guarantees a terminator).
        let actual = unsafe { CStr::from_ptr(req.ifr_name.as_ptr()) };

        // One byte more than the largest frame expected, so a longer frame
        // (which the kernel would truncate to the buffer) is recognised.
        let buf_len = mtu as usize + L2_OVERHEAD + 1;
        Ok(TapDevice {
            fd,
            name: actual.to_string_lossy().into_owned(),
            queue,
            multi_queue,
            mac,
            rx: RxSlab {
                bufs: (0..RX_BATCH).map(|_| vec![0u8; buf_len].into_boxed_slice()).collect(),
                lens: [0; RX_BATCH],
            },
            tx: TxQueue::default(),
            counters: DeviceCounters::default(),
            tx_errors: 0,
        })
    }

    /// The interface name the kernel attached us to.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads one frame into slab buffer `slot`: `Ok(Some(len))`, or
    /// `Ok(None)` when no frame is waiting.
    fn read_one(&mut self, slot: usize) -> io::Result<Option<usize>> {
        let buf = &mut self.rx.bufs[slot];
        loop {
            // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole call, and `self.fd` is an open descriptor we own.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n >= 0 {
                return Ok(Some(n as usize));
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(None),
                _ => return Err(e),
            }
        }
    }

    /// Writes one whole frame: `Ok(true)` sent, `Ok(false)` the kernel
    /// cannot take it now.
    fn write_one(fd: RawFd, frame: &[u8]) -> io::Result<bool> {
        loop {
            // SAFETY: `frame` is valid for reads of `frame.len()` bytes for the whole call, and `fd` is the device's open descriptor.
            let n = unsafe { libc::write(fd, frame.as_ptr().cast(), frame.len()) };
            if n >= 0 {
                if n as usize != frame.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!("TAP took {n} of {} bytes of a frame", frame.len()),
                    ));
                }
                return Ok(true);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(false),
                _ => return Err(e),
            }
        }
    }
}

impl Device for TapDevice {
    fn receive(&mut self, max: usize, deliver: &mut dyn FnMut(&[&[u8]])) -> io::Result<usize> {
        let max = max.min(RX_BATCH);
        let mut n = 0;
        let mut error = None;
        while n < max {
            match self.read_one(n) {
                // tun never returns 0 for a frame; treat it as nothing waiting.
                Ok(Some(0)) => break,
                Ok(Some(len)) if len >= self.rx.bufs[n].len() => {
                    // Longer than any frame of our MTU: the kernel truncated
                    // it to the buffer. Dropped, as a NIC drops oversized frames.
                    self.counters.rx_dropped += 1;
                }
                Ok(Some(len)) => {
                    self.rx.lens[n] = len;
                    n += 1;
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        if n > 0 {
            let mut frames: [&[u8]; RX_BATCH] = [&[]; RX_BATCH];
            for (i, frame) in frames.iter_mut().enumerate().take(n) {
                *frame = &self.rx.bufs[i][..self.rx.lens[i]];
                self.counters.rx_bytes += self.rx.lens[i] as u64;
            }
            self.counters.rx_frames += n as u64;
            deliver(&frames[..n]);
            return Ok(n);
        }
        match error {
            Some(e) => Err(e),
            None => Ok(0),
        }
    }

    fn sink(&mut self) -> &mut dyn FrameSink {
        &mut self.tx
    }

    fn flush(&mut self) -> io::Result<usize> {
        let fd = self.fd.as_raw_fd();
        let mut sent = 0;
        while let Some(frame) = self.tx.pending.front() {
            match Self::write_one(fd, frame) {
                Ok(true) => {
                    self.counters.tx_frames += 1;
                    self.counters.tx_bytes += frame.len() as u64;
                    sent += 1;
                }
                // The kernel's queue is full: keep the rest for the next flush.
                Ok(false) => break,
                Err(e) => {
                    // The frame is lost (the interface is down, or gone), as
                    // a NIC drops what it cannot send; later frames may pass.
                    self.counters.tx_dropped += 1;
                    self.tx_errors += 1;
                    if self.tx_errors.is_power_of_two() {
                        warn!("TAP {}: write failed: {e} ({} frames dropped so far)", self.name, self.tx_errors);
                    }
                }
            }
            if let Some(done) = self.tx.pending.pop_front() {
                self.tx.spare.push(done);
            }
        }
        Ok(sent)
    }

    fn wait_fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            kind: "tap".into(),
            name: self.name.clone(),
            queue: self.queue,
            mode: if self.multi_queue { "tap multi-queue".into() } else { "tap".into() },
        }
    }

    fn counters(&self) -> DeviceCounters {
        self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_do_not_fit_ifreq_are_rejected_before_any_syscall() {
        let long = "x".repeat(libc::IFNAMSIZ);
        assert_eq!(TapDevice::open(&long, 1500, [2; 6]).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(TapDevice::open("", 1500, [2; 6]).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(TapDevice::open("a\0b", 1500, [2; 6]).unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn generated_macs_are_locally_administered_unicast_and_follow_the_address() {
        let mac = locally_administered_mac(Ipv4Addr::new(10, 77, 0, 2));
        assert_eq!(mac, [0x02, 0x00, 10, 77, 0, 2]);
        assert_eq!(mac[0] & 0b11, 0b10);
        assert_ne!(mac, locally_administered_mac(Ipv4Addr::new(10, 77, 0, 3)));
    }

    #[test]
    fn the_sink_queues_until_full_and_reuses_buffers() {
        let mut q = TxQueue::default();
        for i in 0..TX_QUEUE {
            assert!(q.emit(3, &mut |b| b.copy_from_slice(&[i as u8; 3])));
        }
        assert!(!q.emit(3, &mut |_| panic!("no room: fill must not run")));
        let first = q.pending.pop_front().unwrap();
        assert_eq!(first, vec![0, 0, 0]);
        q.spare.push(first);
        assert!(q.emit(5, &mut |b| b.copy_from_slice(b"hello")));
        assert_eq!(q.pending.back().unwrap(), b"hello");
        assert!(q.spare.is_empty());
    }
}
