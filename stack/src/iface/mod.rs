//! The interface layer below TCP: ARP cache, IPv4 reassembly, routing, ICMP.

pub mod arp_cache;
pub mod packet_pool;
pub mod route;
pub mod reassembly;
