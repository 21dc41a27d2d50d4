//! The session layer's building blocks: events and their queue, timers, demultiplexing.

pub mod demux;
pub mod event;
pub mod event_queue;
pub mod id_hash;
pub mod timer_wheel;
