//! The interface layer below TCP: ARP cache, IPv4 reassembly, routing, ICMP.
