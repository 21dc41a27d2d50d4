//! The Internet checksum (RFC 1071) and the IPv4 pseudo-header (RFC 9293 §3.1).
