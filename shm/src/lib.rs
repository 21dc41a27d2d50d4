//! Sluice's shared-memory protocol primitives, used by the daemon and by the
//! per-process library (`vcl`) on the two ends of an attach (design §2).
//!
//! Every primitive works over a [`Region`]: a memfd mapping between
//! processes, or a heap buffer in tests. The peer is untrusted: memory it can
//! write is only ever touched through atomics and raw copies (never a Rust
//! reference, which concurrent writes would make undefined behaviour), and
//! every index word read from it is checked or clamped before use.
//!
//! * [`region`]: the raw, bounds-checked view of shared memory that all of
//!   the above use; most of the crate's `unsafe` is there.
//! * [`fifo`]: SPSC byte fifo (session RX/TX data).
//! * [`request_ring`]: app → daemon requests, many app threads, one daemon worker.
//! * [`event_ring`]: daemon → app events, many daemon workers, one app consumer.
//! * [`wake`]: the sleep/wake protocol that signals an eventfd only when the
//!   other side sleeps.
//! * [`os`]: memfd, mmap, eventfd.
//! * [`poll`]: `ppoll` with a signal mask, and signals, for the app side's waits.
//! * [`process`]: pidfds and `pthread_atfork`, for fork support.
//! * [`layout`]: where everything is in an app worker's two segments.
//! * [`protocol`]: requests and events the rings carry, and the flow-control words.
//! * [`control`] and [`unix_socket`]: the control socket's messages and transport.
//! * [`handle`]: session handles as `u64`s.
//! * [`violation`]: what a peer's corrupted index word is reported as.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod control;
pub mod event_ring;
pub mod fifo;
pub mod handle;
pub mod layout;
pub mod os;
pub mod poll;
pub mod process;
pub mod protocol;
pub mod punch;
pub mod region;
pub mod request_ring;
pub mod unix_socket;
pub mod violation;
pub mod wake;

pub use event_ring::{Event, EventConsumer, EventProducer, EventRingFull};
pub use fifo::{FifoConsumer, FifoParts, FifoProducer};
pub use handle::SessionHandle;
pub use region::{Backing, LayoutError, RawSpan, Region, SharedU32, SharedU64};
pub use request_ring::{RequestConsumer, RequestProducer, RequestRingFull};
pub use violation::Violation;
pub use wake::{FlagWord, SleepFlag, Waker};

/// Version of the shared-memory protocol; both ends must agree at attach.
pub const PROTO_VERSION: u32 = 1;
