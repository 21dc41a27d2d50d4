//! Where everything is in an app worker's two segments (design §2.2).
//!
//! The **down** segment is written by the daemon and mapped read-only by the
//! app; the **up** segment is written by the app (and initialised by the
//! daemon). Words each side writes are in its own segment, so a hostile app
//! can only corrupt what the daemon reads through checked primitives.
//!
//! ```text
//! down: header (4 KiB) | event ring slots | session descs (64 B each) | RX fifo data
//! up:   header (4 KiB) | request ring per daemon worker | session app words (64 B each) | TX fifo data
//! ```
//!
//! Session slot `i` owns desc `i`, app words `i`, the `i`-th RX fifo area and
//! the `i`-th TX fifo area. Fifo areas are fixed-size and page aligned, so the
//! daemon can punch a freed slot's pages out of the memfd. Segments are sized
//! for the maximum and stay sparse: only touched pages use memory.
//!
//! Both sides compute the same offsets from one [`Geometry`], which the daemon
//! sends at attach. The app checks the geometry it receives
//! ([`Geometry::decode`]) before mapping anything.

use std::fmt;
use std::sync::atomic::AtomicU32;

use crate::event_ring::{EventRingParts, EVENT_SLOT_SIZE};
use crate::fifo::FifoParts;
use crate::region::{LayoutError, Region, SharedU32};
use crate::request_ring::{RequestRingParts, REQUEST_SLOT_SIZE};

/// Header size of both segments; also the alignment of every area after it.
pub const HEADER_SIZE: usize = 4096;
/// Bytes per session desc and per session's app words.
pub const SESSION_RECORD_SIZE: usize = 64;
/// Most daemon workers a geometry can describe (one sleep flag line each).
pub const MAX_WORKERS: u32 = 32;
/// Most sessions per app worker.
pub const MAX_SESSIONS: u32 = 1 << 20;
/// Smallest and largest fifo sizes (design §2.2).
pub const MIN_FIFO: u32 = 4096;
pub const MAX_FIFO: u32 = 4 << 20;

/// `b"SLUICEDN"` / `b"SLUICEUP"` as little-endian words.
pub const DOWN_MAGIC: u64 = u64::from_le_bytes(*b"SLUICEDN");
pub const UP_MAGIC: u64 = u64::from_le_bytes(*b"SLUICEUP");

// Down header words.
const DOWN_MAGIC_OFF: usize = 0;
const DOWN_VERSION_OFF: usize = 8;
const DOWN_APP_WORKER_OFF: usize = 12;
/// `daemon_sleeping[w]`, one cache line each from here.
const DOWN_SLEEP_BASE: usize = 64;

// Up header words.
const UP_MAGIC_OFF: usize = 0;
const UP_EVENT_HEAD_OFF: usize = 64;
const UP_APP_SLEEP_OFF: usize = 128;

/// Byte offsets inside a [`SessionDesc`] (down segment, daemon-written).
pub mod desc {
    /// Generation of the slot's current life; 0 while the slot was never
    /// used. Written last (Release) when a session is published.
    pub const GEN: usize = 0;
    /// [`super::SessionKind`] as u32.
    pub const KIND: usize = 4;
    /// RX fifo tail (daemon = RX producer).
    pub const RX_TAIL: usize = 8;
    /// TX fifo head (daemon = TX consumer).
    pub const TX_HEAD: usize = 12;
    /// Local IPv4 address (`u32::from(Ipv4Addr)`) and port.
    pub const LOCAL_IP: usize = 16;
    pub const LOCAL_PORT: usize = 20;
    /// Remote IPv4 address and port (0 for listeners).
    pub const REMOTE_IP: usize = 24;
    pub const REMOTE_PORT: usize = 28;
    /// 1 while the daemon has bytes for the RX fifo that did not fit: the app
    /// sends `RX_SPACE` after reading (§ protocol, flow control).
    pub const RX_BLOCKED: usize = 32;
    /// Listener: number of `ACCEPTED` events pushed so far (wrapping).
    pub const ACCEPT_PUSHED: usize = 36;
}

/// Byte offsets inside a session's app words (up segment, app-written).
pub mod app_words {
    /// RX fifo head (app = RX consumer).
    pub const RX_HEAD: usize = 0;
    /// TX fifo tail (app = TX producer).
    pub const TX_TAIL: usize = 4;
    /// App swaps 0 → 1 after writing and sends `TX_READY` only on that
    /// transition; the daemon stores 0 before it drains the TX fifo.
    pub const TX_PENDING: usize = 8;
    /// App stores 1 when the TX fifo was full; the daemon swaps it to 0 and
    /// sends `WRITABLE` after draining.
    pub const WANT_TX_SPACE: usize = 12;
    /// Listener: number of `ACCEPTED` events the app has taken (wrapping);
    /// the daemon clamps it to `[.., ACCEPT_PUSHED]`.
    pub const ACCEPT_TAKEN: usize = 16;
    /// App swaps 0 → 1 before sending `RX_SPACE`; the daemon stores 0 when
    /// it handles one.
    pub const RX_NOTE_SENT: usize = 20;
}

/// What a session slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum SessionKind {
    Connection = 1,
    Listener = 2,
}

impl SessionKind {
    pub fn from_u32(v: u32) -> Option<SessionKind> {
        match v {
            1 => Some(SessionKind::Connection),
            2 => Some(SessionKind::Listener),
            _ => None,
        }
    }
}

/// The sizes that determine a segment pair's layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Daemon workers (one request ring each).
    pub workers: u32,
    /// Event ring slots (power of two, ≥ 2).
    pub event_cap: u32,
    /// Slots per request ring (power of two, ≥ 2).
    pub request_cap: u32,
    /// Session slots.
    pub max_sessions: u32,
    /// RX and TX fifo sizes (powers of two in [`MIN_FIFO`, `MAX_FIFO`]).
    pub rx_fifo: u32,
    pub tx_fifo: u32,
}

/// A geometry value out of range; names the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeometryError {
    pub field: &'static str,
    pub value: u64,
    pub rule: &'static str,
}

impl fmt::Display for GeometryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {} is invalid: {}", self.field, self.value, self.rule)
    }
}

impl std::error::Error for GeometryError {}

/// Encoded size of a [`Geometry`].
pub const GEOMETRY_BYTES: usize = 24;

fn check(field: &'static str, value: u32, ok: bool, rule: &'static str) -> Result<(), GeometryError> {
    if ok {
        Ok(())
    } else {
        Err(GeometryError { field, value: value.into(), rule })
    }
}

fn pow2_in(v: u32, lo: u32, hi: u32) -> bool {
    v.is_power_of_two() && (lo..=hi).contains(&v)
}

impl Geometry {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), GeometryError> {
        check("workers", self.workers, (1..=MAX_WORKERS).contains(&self.workers), "must be 1..=32")?;
        check("event_cap", self.event_cap, pow2_in(self.event_cap, 2, 1 << 24), "must be a power of two in 2..=2^24")?;
        check("request_cap", self.request_cap, pow2_in(self.request_cap, 2, 1 << 16), "must be a power of two in 2..=65536")?;
        check("max_sessions", self.max_sessions, (1..=MAX_SESSIONS).contains(&self.max_sessions), "must be 1..=1048576")?;
        check("rx_fifo", self.rx_fifo, pow2_in(self.rx_fifo, MIN_FIFO, MAX_FIFO), "must be a power of two in 4096..=4194304")?;
        check("tx_fifo", self.tx_fifo, pow2_in(self.tx_fifo, MIN_FIFO, MAX_FIFO), "must be a power of two in 4096..=4194304")?;
        Ok(())
    }

    fn event_slots_off(&self) -> usize {
        HEADER_SIZE
    }
    fn descs_off(&self) -> usize {
        page_align(self.event_slots_off() + self.event_cap as usize * EVENT_SLOT_SIZE)
    }
    fn rx_arena_off(&self) -> usize {
        page_align(self.descs_off() + self.max_sessions as usize * SESSION_RECORD_SIZE)
    }
    /// Bytes of one request ring: a line for the tail, then the slots.
    fn request_ring_len(&self) -> usize {
        64 + self.request_cap as usize * REQUEST_SLOT_SIZE
    }
    fn request_ring_off(&self, worker: u32) -> usize {
        HEADER_SIZE + worker as usize * self.request_ring_len()
    }
    fn app_words_off(&self) -> usize {
        page_align(self.request_ring_off(self.workers))
    }
    fn tx_arena_off(&self) -> usize {
        page_align(self.app_words_off() + self.max_sessions as usize * SESSION_RECORD_SIZE)
    }

    /// Length of the down segment.
    pub fn down_len(&self) -> usize {
        self.rx_arena_off() + self.max_sessions as usize * self.rx_fifo as usize
    }

    /// Length of the up segment.
    pub fn up_len(&self) -> usize {
        self.tx_arena_off() + self.max_sessions as usize * self.tx_fifo as usize
    }

    /// Offset and length of slot `index`'s RX fifo area in the down segment
    /// (for punching a freed slot's pages).
    pub fn rx_area(&self, index: u32) -> (usize, usize) {
        (self.rx_arena_off() + index as usize * self.rx_fifo as usize, self.rx_fifo as usize)
    }

    /// Offset and length of slot `index`'s TX fifo area in the up segment.
    pub fn tx_area(&self, index: u32) -> (usize, usize) {
        (self.tx_arena_off() + index as usize * self.tx_fifo as usize, self.tx_fifo as usize)
    }

    /// Little-endian encoding for the attach reply.
    pub fn encode(&self) -> [u8; GEOMETRY_BYTES] {
        let mut out = [0u8; GEOMETRY_BYTES];
        for (i, v) in [self.workers, self.event_cap, self.request_cap, self.max_sessions, self.rx_fifo, self.tx_fifo]
            .into_iter()
            .enumerate()
        {
            out[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Decodes and validates a geometry received from the peer.
    pub fn decode(bytes: &[u8]) -> Result<Geometry, GeometryError> {
        if bytes.len() != GEOMETRY_BYTES {
            return Err(GeometryError { field: "geometry", value: bytes.len() as u64, rule: "must be 24 bytes" });
        }
        let word = |i: usize| u32::from_le_bytes([bytes[i * 4], bytes[i * 4 + 1], bytes[i * 4 + 2], bytes[i * 4 + 3]]);
        let geo = Geometry {
            workers: word(0),
            event_cap: word(1),
            request_cap: word(2),
            max_sessions: word(3),
            rx_fifo: word(4),
            tx_fifo: word(5),
        };
        geo.validate()?;
        Ok(geo)
    }
}

fn page_align(off: usize) -> usize {
    (off + HEADER_SIZE - 1) & !(HEADER_SIZE - 1)
}

/// The daemon-written segment.
#[derive(Clone, Debug)]
pub struct DownSegment {
    region: Region,
    geo: Geometry,
}

/// The app-written segment.
#[derive(Clone, Debug)]
pub struct UpSegment {
    region: Region,
    geo: Geometry,
}

/// One session's desc (down segment).
#[derive(Clone, Debug)]
pub struct SessionDesc {
    region: Region,
}

/// One session's app words (up segment).
#[derive(Clone, Debug)]
pub struct SessionAppWords {
    region: Region,
}

impl DownSegment {
    /// A view of `region` laid out by `geo` (which must be valid); the region
    /// must be at least `geo.down_len()` bytes.
    pub fn new(region: Region, geo: Geometry) -> Result<DownSegment, LayoutError> {
        region.sub(0, geo.down_len())?;
        region.shared_u64(0)?;
        Ok(DownSegment { region, geo })
    }

    pub fn geometry(&self) -> &Geometry {
        &self.geo
    }

    /// Daemon: writes the header of a fresh segment.
    pub fn init(&self, app_worker_id: u32) {
        use std::sync::atomic::Ordering::Release;
        self.region.atomic_u32(DOWN_VERSION_OFF).store(crate::PROTO_VERSION, Release);
        self.region.atomic_u32(DOWN_APP_WORKER_OFF).store(app_worker_id, Release);
        self.region.atomic_u64(DOWN_MAGIC_OFF).store(DOWN_MAGIC, Release);
    }

    /// App: whether the header is that of a segment of this protocol version.
    pub fn is_valid(&self) -> bool {
        use std::sync::atomic::Ordering::Acquire;
        self.region.atomic_u64(DOWN_MAGIC_OFF).load(Acquire) == DOWN_MAGIC
            && self.region.atomic_u32(DOWN_VERSION_OFF).load(Acquire) == crate::PROTO_VERSION
    }

    /// The app worker id the daemon gave this segment.
    pub fn app_worker_id(&self) -> u32 {
        self.region.atomic_u32(DOWN_APP_WORKER_OFF).load(std::sync::atomic::Ordering::Acquire)
    }

    /// Daemon worker `w`'s sleep flag (daemon sleeps on it, app wakes
    /// read-only). `None` when `w` is not a worker of this geometry.
    pub fn daemon_sleep_flag(&self, worker: u32) -> Option<SharedU32> {
        (worker < self.geo.workers).then(|| {
            self.region.shared_u32(DOWN_SLEEP_BASE + worker as usize * 64).expect("sleep flag inside the header")
        })
    }

    /// The event ring's slots.
    pub fn event_slots(&self) -> Region {
        self.region
            .sub(self.geo.event_slots_off(), self.geo.event_cap as usize * EVENT_SLOT_SIZE)
            .expect("event slots inside the segment")
    }

    /// Slot `index`'s desc, or `None` past `max_sessions`.
    pub fn desc(&self, index: u32) -> Option<SessionDesc> {
        (index < self.geo.max_sessions).then(|| SessionDesc {
            region: self
                .region
                .sub(self.geo.descs_off() + index as usize * SESSION_RECORD_SIZE, SESSION_RECORD_SIZE)
                .expect("desc inside the segment"),
        })
    }

    /// Slot `index`'s RX fifo data.
    pub fn rx_data(&self, index: u32) -> Option<Region> {
        (index < self.geo.max_sessions).then(|| {
            let (off, len) = self.geo.rx_area(index);
            self.region.sub(off, len).expect("rx area inside the segment")
        })
    }
}

impl UpSegment {
    /// A view of `region` laid out by `geo`; the region must be at least
    /// `geo.up_len()` bytes.
    pub fn new(region: Region, geo: Geometry) -> Result<UpSegment, LayoutError> {
        region.sub(0, geo.up_len())?;
        region.shared_u64(0)?;
        Ok(UpSegment { region, geo })
    }

    pub fn geometry(&self) -> &Geometry {
        &self.geo
    }

    /// Daemon: writes the header of a fresh segment and initialises every
    /// request ring (before the app maps it).
    pub fn init(&self) -> Result<(), LayoutError> {
        use std::sync::atomic::Ordering::Release;
        for w in 0..self.geo.workers {
            crate::request_ring::init(&self.request_ring(w).expect("worker in range"))?;
        }
        self.region.atomic_u64(UP_EVENT_HEAD_OFF).store(0, Release);
        self.region.atomic_u32(UP_APP_SLEEP_OFF).store(crate::wake::AWAKE, Release);
        self.region.atomic_u64(UP_MAGIC_OFF).store(UP_MAGIC, Release);
        Ok(())
    }

    /// The app's event-ring head.
    pub fn event_head(&self) -> crate::region::SharedU64 {
        self.region.shared_u64(UP_EVENT_HEAD_OFF).expect("event head inside the header")
    }

    /// The app's sleep flag (the vcl leader sleeps on it; daemon workers wake).
    pub fn app_sleep_flag(&self) -> SharedU32 {
        self.region.shared_u32(UP_APP_SLEEP_OFF).expect("app sleep flag inside the header")
    }

    /// Request ring of daemon worker `w`.
    pub fn request_ring(&self, worker: u32) -> Option<RequestRingParts> {
        (worker < self.geo.workers).then(|| {
            let off = self.geo.request_ring_off(worker);
            RequestRingParts {
                tail: self.region.shared_u64(off).expect("ring tail inside the segment"),
                slots: self
                    .region
                    .sub(off + 64, self.geo.request_cap as usize * REQUEST_SLOT_SIZE)
                    .expect("ring slots inside the segment"),
            }
        })
    }

    /// Slot `index`'s app words.
    pub fn app_words(&self, index: u32) -> Option<SessionAppWords> {
        (index < self.geo.max_sessions).then(|| SessionAppWords {
            region: self
                .region
                .sub(self.geo.app_words_off() + index as usize * SESSION_RECORD_SIZE, SESSION_RECORD_SIZE)
                .expect("app words inside the segment"),
        })
    }

    /// Slot `index`'s TX fifo data.
    pub fn tx_data(&self, index: u32) -> Option<Region> {
        (index < self.geo.max_sessions).then(|| {
            let (off, len) = self.geo.tx_area(index);
            self.region.sub(off, len).expect("tx area inside the segment")
        })
    }
}

impl SessionDesc {
    /// The word at one of the [`desc`] offsets.
    pub fn word(&self, offset: usize) -> &AtomicU32 {
        self.region.atomic_u32(offset)
    }
    pub fn shared(&self, offset: usize) -> SharedU32 {
        self.region.shared_u32(offset).expect("desc word in bounds")
    }
}

impl SessionAppWords {
    /// The word at one of the [`app_words`] offsets.
    pub fn word(&self, offset: usize) -> &AtomicU32 {
        self.region.atomic_u32(offset)
    }
    pub fn shared(&self, offset: usize) -> SharedU32 {
        self.region.shared_u32(offset).expect("app word in bounds")
    }
}

/// The event ring's parts (slots down, head up).
pub fn event_ring(down: &DownSegment, up: &UpSegment) -> EventRingParts {
    EventRingParts { head: up.event_head(), slots: down.event_slots() }
}

/// Slot `index`'s RX fifo: daemon produces (tail in the desc), app consumes
/// (head in the app words), data in the down segment.
pub fn rx_fifo(down: &DownSegment, up: &UpSegment, index: u32) -> Option<FifoParts> {
    Some(FifoParts {
        head: up.app_words(index)?.shared(app_words::RX_HEAD),
        tail: down.desc(index)?.shared(desc::RX_TAIL),
        data: down.rx_data(index)?,
    })
}

/// Slot `index`'s TX fifo: app produces (tail in the app words), daemon
/// consumes (head in the desc), data in the up segment.
pub fn tx_fifo(down: &DownSegment, up: &UpSegment, index: u32) -> Option<FifoParts> {
    Some(FifoParts {
        head: down.desc(index)?.shared(desc::TX_HEAD),
        tail: up.app_words(index)?.shared(app_words::TX_TAIL),
        data: up.tx_data(index)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Geometry {
        Geometry { workers: 2, event_cap: 64, request_cap: 8, max_sessions: 4, rx_fifo: 4096, tx_fifo: 8192 }
    }

    #[test]
    fn geometry_round_trips_and_rejects_bad_fields() {
        let g = small();
        assert_eq!(Geometry::decode(&g.encode()).unwrap(), g);
        let mut bad = g;
        bad.rx_fifo = 5000;
        assert_eq!(Geometry::decode(&bad.encode()).unwrap_err().field, "rx_fifo");
        bad = g;
        bad.workers = 0;
        assert_eq!(Geometry::decode(&bad.encode()).unwrap_err().field, "workers");
        assert_eq!(Geometry::decode(&[0u8; 3]).unwrap_err().field, "geometry");
    }

    #[test]
    fn areas_are_page_aligned_disjoint_and_inside() {
        let g = small();
        let down = DownSegment::new(Region::heap(g.down_len()), g).unwrap();
        let up = UpSegment::new(Region::heap(g.up_len()), g).unwrap();
        up.init().unwrap();
        down.init(7);
        assert!(down.is_valid());
        assert_eq!(down.app_worker_id(), 7);
        for i in 0..g.max_sessions {
            let (rx, rx_len) = g.rx_area(i);
            let (tx, tx_len) = g.tx_area(i);
            assert_eq!(rx % 4096, 0);
            assert_eq!(tx % 4096, 0);
            assert!(rx >= g.descs_off() + 4 * 64 && rx + rx_len <= g.down_len());
            assert!(tx >= g.app_words_off() + 4 * 64 && tx + tx_len <= g.up_len());
            assert!(rx_fifo(&down, &up, i).is_some());
            assert!(tx_fifo(&down, &up, i).is_some());
        }
        assert!(g.descs_off() >= HEADER_SIZE + 64 * 32);
        assert!(g.app_words_off() >= g.request_ring_off(1) + g.request_ring_len());
        assert!(down.desc(4).is_none() && up.app_words(4).is_none() && down.daemon_sleep_flag(2).is_none());
        assert!(up.request_ring(1).is_some());
    }

    #[test]
    fn a_short_region_is_refused() {
        let g = small();
        assert!(DownSegment::new(Region::heap(g.down_len() - 1), g).is_err());
        assert!(UpSegment::new(Region::heap(g.up_len() - 1), g).is_err());
    }

    #[test]
    fn fifo_through_the_layout_moves_bytes() {
        let g = small();
        let down = DownSegment::new(Region::heap(g.down_len()), g).unwrap();
        let up = UpSegment::new(Region::heap(g.up_len()), g).unwrap();
        let mut p = crate::FifoProducer::new(rx_fifo(&down, &up, 3).unwrap(), 0).unwrap();
        let mut c = crate::FifoConsumer::new(rx_fifo(&down, &up, 3).unwrap(), 0).unwrap();
        assert_eq!(p.write(b"hello").unwrap(), 5);
        let mut buf = [0u8; 8];
        assert_eq!(c.read(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"hello");
    }
}
