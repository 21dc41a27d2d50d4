//! SYN cookies: a stateless SYN-ACK when the half-open queue is full
//! (RFC 4987 §3.6). The cookie is our ISN; the ACK that echoes it rebuilds the
//! connection without any state kept in between.
