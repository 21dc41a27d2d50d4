//! O(1) demultiplexing of incoming segments: an exact four-tuple table for
//! connections and a (address, port) table for listeners with a wildcard
//! fallback. Hashing is SipHash-1-3 keyed with the stack's secret, so a remote
//! peer cannot choose tuples that collide.

use core::net::SocketAddrV4;

/// A connection's identity as seen from this host.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FourTuple {
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
}
