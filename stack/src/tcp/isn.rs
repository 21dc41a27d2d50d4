//! Initial sequence numbers (RFC 6528 §3): ISN = M + F(local, remote, secret),
//! with M a 4-microsecond clock taken from the caller's `now`.
