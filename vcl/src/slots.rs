//! What vcl knows about each of the daemon's session slots in this app
//! worker's segments: where the slot's shared words are (computed once from
//! the geometry, as the layout never moves them) and which local session the
//! slot's current life belongs to, so an event naming a daemon handle finds
//! its session.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use sluice_shm::layout::{self, app_words, desc, DownSegment, UpSegment};
use sluice_shm::{FifoParts, SessionHandle, SharedU32};

use crate::chunked::Chunked;
use crate::table::Key;

/// The shared words of one daemon session slot.
pub(crate) struct SlotWords {
    pub rx: FifoParts,
    pub tx: FifoParts,
    // Desc words (daemon-written, read-only here).
    pub gen: SharedU32,
    pub rx_tail: SharedU32,
    pub tx_head: SharedU32,
    pub rx_blocked: SharedU32,
    pub accept_pushed: SharedU32,
    local_ip: SharedU32,
    local_port: SharedU32,
    remote_ip: SharedU32,
    remote_port: SharedU32,
    // App words (written here).
    pub rx_head: SharedU32,
    pub tx_tail: SharedU32,
    pub tx_pending: SharedU32,
    pub want_tx_space: SharedU32,
    pub accept_taken: SharedU32,
    pub rx_note_sent: SharedU32,
    pub rx_size: u32,
    pub tx_size: u32,
}

impl SlotWords {
    fn new(down: &DownSegment, up: &UpSegment, index: u32) -> Option<SlotWords> {
        let d = down.desc(index)?;
        let a = up.app_words(index)?;
        let geo = down.geometry();
        Some(SlotWords {
            rx: layout::rx_fifo(down, up, index)?,
            tx: layout::tx_fifo(down, up, index)?,
            gen: d.shared(desc::GEN),
            rx_tail: d.shared(desc::RX_TAIL),
            tx_head: d.shared(desc::TX_HEAD),
            rx_blocked: d.shared(desc::RX_BLOCKED),
            accept_pushed: d.shared(desc::ACCEPT_PUSHED),
            local_ip: d.shared(desc::LOCAL_IP),
            local_port: d.shared(desc::LOCAL_PORT),
            remote_ip: d.shared(desc::REMOTE_IP),
            remote_port: d.shared(desc::REMOTE_PORT),
            rx_head: a.shared(app_words::RX_HEAD),
            tx_tail: a.shared(app_words::TX_TAIL),
            tx_pending: a.shared(app_words::TX_PENDING),
            want_tx_space: a.shared(app_words::WANT_TX_SPACE),
            accept_taken: a.shared(app_words::ACCEPT_TAKEN),
            rx_note_sent: a.shared(app_words::RX_NOTE_SENT),
            rx_size: geo.rx_fifo,
            tx_size: geo.tx_fifo,
        })
    }

    /// Bytes waiting in the RX fifo, from the raw index words (for readiness;
    /// reading goes through the checked `FifoConsumer`). Never above the size.
    pub(crate) fn rx_readable(&self) -> u32 {
        let tail = self.rx_tail.load(Ordering::Acquire);
        let head = self.rx_head.load(Ordering::Acquire);
        tail.wrapping_sub(head).min(self.rx_size)
    }

    /// Free bytes of the TX fifo, from the raw index words.
    pub(crate) fn tx_free(&self) -> u32 {
        let head = self.tx_head.load(Ordering::Acquire);
        let tail = self.tx_tail.load(Ordering::Acquire);
        self.tx_size - tail.wrapping_sub(head).min(self.tx_size)
    }

    fn addr(ip: &SharedU32, port: &SharedU32) -> SocketAddrV4 {
        // Ports are 16-bit; a larger word is the daemon's bug, shown truncated.
        SocketAddrV4::new(Ipv4Addr::from(ip.load(Ordering::Acquire)), port.load(Ordering::Acquire) as u16)
    }

    pub(crate) fn local_addr(&self) -> SocketAddrV4 {
        Self::addr(&self.local_ip, &self.local_port)
    }

    pub(crate) fn remote_addr(&self) -> SocketAddrV4 {
        Self::addr(&self.remote_ip, &self.remote_port)
    }
}

#[derive(Default)]
struct DaemonSlot {
    words: OnceLock<Option<SlotWords>>,
    /// Packed [`Key`] of the local session bound to the slot's current life
    /// (0: none).
    owner: AtomicU64,
}

pub(crate) struct DaemonSlots {
    slots: Chunked<DaemonSlot>,
    down: DownSegment,
    up: UpSegment,
}

impl DaemonSlots {
    pub(crate) fn new(down: DownSegment, up: UpSegment) -> DaemonSlots {
        let max = down.geometry().max_sessions;
        DaemonSlots { slots: Chunked::new(max), down, up }
    }

    /// Slot `index`'s words; `None` past the geometry's `max_sessions`.
    pub(crate) fn words(&self, index: u32) -> Option<&SlotWords> {
        let slot = self.slots.get_or_alloc(index)?;
        slot.words.get_or_init(|| SlotWords::new(&self.down, &self.up, index)).as_ref()
    }

    /// The local session bound to `handle`'s slot. The caller still checks
    /// the session's own daemon handle, which carries the generation.
    pub(crate) fn owner(&self, handle: SessionHandle) -> Option<Key> {
        Key::unpack(self.slots.get(handle.index)?.owner.load(Ordering::Acquire))
    }

    pub(crate) fn set_owner(&self, handle: SessionHandle, key: Key) {
        if let Some(slot) = self.slots.get_or_alloc(handle.index) {
            slot.owner.store(key.pack(), Ordering::Release);
        }
    }

    /// Unbinds `key` from `handle`'s slot, unless the slot has moved on to
    /// another session already.
    pub(crate) fn clear_owner(&self, handle: SessionHandle, key: Key) {
        if let Some(slot) = self.slots.get(handle.index) {
            let _ = slot.owner.compare_exchange(key.pack(), 0, Ordering::AcqRel, Ordering::Relaxed);
        }
    }
}
