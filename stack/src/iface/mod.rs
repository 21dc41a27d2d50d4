//! The interface layer below TCP: ARP cache, IPv4 reassembly, routing, ICMP.

pub mod arp_cache;
pub mod icmp;
pub mod packet_pool;
pub mod reassembly;
pub mod route;
