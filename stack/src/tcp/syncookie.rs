//! SYN cookies: a stateless SYN-ACK when the half-open queue is full
//! (RFC 4987 §3.6). The cookie is our ISN; the ACK that echoes it rebuilds the
//! connection without any state kept in between.
//!
//! Layout follows Linux's `secure_tcp_syn_cookie` (net/core/secure_seq.c and
//! net/ipv4/syncookies.c):
//!
//! ```text
//! cookie = H0(tuple) + client_isn + (count << 24) + ((H1(tuple, client_isn, count) + mss_index) mod 2^24)
//! ```
//!
//! Unlike Linux, H1 also covers the client ISN: with the ISN only added
//! linearly, an ACK whose sequence number is off by a few would shift the MSS
//! index to another valid entry instead of being rejected.
//!
//! `count` advances every 64 s and only its low 8 bits travel in the cookie;
//! a cookie is honoured in the period it was issued and the next one. The
//! MSS is squeezed into a 2-bit index into a small table. Window scale and
//! SACK-permitted do not fit in the sequence number; when the client offered
//! timestamps they ride in the low bits of our SYN-ACK's TSval, which the
//! client echoes in TSecr (Linux's `cookie_init_timestamp`).

use core::net::SocketAddrV4;

use siphasher::sip::SipHasher24;

use crate::session::demux::derive_sip_keys;
use crate::tcp::conn::CookieOptions;
use crate::tcp::isn::tuple_bytes;
use crate::tcp::seq::SeqNum;
use crate::time::Instant;
use crate::wire::TcpRepr;

/// MSS values a cookie can carry (Linux's `msstab`): common path MTUs less 40.
pub const MSS_TABLE: [u16; 4] = [536, 1300, 1440, 1460];

/// Length of one cookie period, in microseconds (64 s).
const PERIOD_US: u64 = 64_000_000;
const COUNT_SHIFT: u32 = 24;
const DATA_MASK: u32 = (1 << COUNT_SHIFT) - 1;
/// A cookie is accepted while `count - issued_count < MAX_AGE` (Linux's MAX_SYNCOOKIE_AGE).
const MAX_AGE: u32 = 2;

/// Low TSval bits that carry the client's options: 4 bits of window scale, one of SACK.
const TS_OPTION_BITS: u32 = 6;
const TS_OPTION_MASK: u32 = (1 << TS_OPTION_BITS) - 1;
const TS_WSCALE_MASK: u32 = 0xf;
const TS_NO_WSCALE: u32 = 0xf;
const TS_SACK: u32 = 1 << 4;
/// RFC 7323 §2.3: the largest shift allowed.
const MAX_WINDOW_SCALE: u8 = 14;

#[derive(Clone, Debug)]
pub struct SynCookies {
    /// Hides the client ISN and tuple; independent of time.
    tuple_hash: SipHasher24,
    /// Binds the MSS index to the tuple, the client ISN and the issuing period.
    count_hash: SipHasher24,
}

impl SynCookies {
    pub fn new(secret: &[u8; 32]) -> Self {
        let (a0, a1) = derive_sip_keys(secret, b"sluice syncookie tuple");
        let (b0, b1) = derive_sip_keys(secret, b"sluice syncookie count");
        SynCookies {
            tuple_hash: SipHasher24::new_with_keys(a0, a1),
            count_hash: SipHasher24::new_with_keys(b0, b1),
        }
    }

    /// Our ISN for a SYN answered without state, and the MSS the connection
    /// will use: the largest table entry not above the client's offer (pass
    /// 536 when the SYN had no MSS option, RFC 9293 §3.7.1). Like Linux, an
    /// offer below 536 still maps to 536, the smallest value a cookie carries.
    pub fn encode(&self, now: Instant, local: SocketAddrV4, remote: SocketAddrV4, client_isn: SeqNum, mss_offered_by_client: u16) -> (SeqNum, u16) {
        let index = MSS_TABLE.iter().rposition(|&m| m <= mss_offered_by_client).unwrap_or(0);
        let count = period(now);
        let tuple = tuple_bytes(local, remote);
        let cookie = self
            .h0(&tuple)
            .wrapping_add(client_isn.0)
            .wrapping_add(count << COUNT_SHIFT)
            .wrapping_add(self.h1(&tuple, client_isn.0, count).wrapping_add(index as u32) & DATA_MASK);
        (SeqNum(cookie), MSS_TABLE[index])
    }

    /// The TSval to put in a cookie SYN-ACK: `now_ts` with its low 6 bits
    /// replaced by the client's window scale (0xf: none) and SACK-permitted
    /// bit, moved back one 64-unit step if that made it larger, so every TSval
    /// we send later is at least as large (RFC 7323 §5.4 monotonic clock).
    pub fn ts_encode(&self, now_ts: u32, window_scale: Option<u8>, sack_permitted: bool) -> u32 {
        let wscale = window_scale.map_or(TS_NO_WSCALE, |w| u32::from(w.min(MAX_WINDOW_SCALE)));
        let options = wscale | if sack_permitted { TS_SACK } else { 0 };
        let ts = (now_ts & !TS_OPTION_MASK) | options;
        // Both values lie in the same 64-aligned block, so plain comparison is exact.
        if ts > now_ts { ts.wrapping_sub(TS_OPTION_MASK + 1) } else { ts }
    }

    /// Window scale and SACK-permitted recovered from the TSecr of a cookie ACK.
    pub fn ts_decode(tsecr: u32) -> (Option<u8>, bool) {
        let wscale = tsecr & TS_WSCALE_MASK;
        let window_scale = if wscale == TS_NO_WSCALE { None } else { Some(wscale as u8) };
        (window_scale, tsecr & TS_SACK != 0)
    }

    /// Checks that `ack` completes a handshake we answered with a cookie for
    /// this tuple in the current or previous period, and rebuilds the options.
    /// None for anything else, including SYN or RST segments.
    pub fn decode(&self, now: Instant, local: SocketAddrV4, remote: SocketAddrV4, ack: &TcpRepr) -> Option<CookieOptions> {
        let acked = ack.ack_number()?;
        if ack.flags.syn() || ack.flags.rst() {
            return None;
        }
        // The third segment of the handshake has seq = client ISN + 1 and
        // acknowledges our SYN: ack = cookie + 1.
        let cookie = (acked - 1).0;
        let client_isn = (ack.seq - 1).0;
        let tuple = tuple_bytes(local, remote);

        let count = period(now);
        let stripped = cookie.wrapping_sub(self.h0(&tuple)).wrapping_sub(client_isn);
        let age = count.wrapping_sub(stripped >> COUNT_SHIFT) & (u32::MAX >> COUNT_SHIFT);
        if age >= MAX_AGE {
            return None;
        }
        let issued = count.wrapping_sub(age);
        let index = stripped.wrapping_sub(self.h1(&tuple, client_isn, issued)) & DATA_MASK;
        let mss = *MSS_TABLE.get(index as usize)?;

        let (window_scale, sack_permitted, timestamps) = match ack.options.timestamps {
            Some((_tsval, tsecr)) => {
                let (w, s) = Self::ts_decode(tsecr);
                (w, s, true)
            }
            None => (None, false, false),
        };
        Some(CookieOptions { mss, window_scale, sack_permitted, timestamps })
    }

    fn h0(&self, tuple: &[u8; 12]) -> u32 {
        self.tuple_hash.hash(tuple) as u32
    }

    fn h1(&self, tuple: &[u8; 12], client_isn: u32, count: u32) -> u32 {
        let mut input = [0u8; 20];
        input[..12].copy_from_slice(tuple);
        input[12..16].copy_from_slice(&client_isn.to_be_bytes());
        input[16..].copy_from_slice(&count.to_le_bytes());
        self.count_hash.hash(&input) as u32
    }
}

/// The cookie period `now` falls in (only its low 8 bits are ever compared).
fn period(now: Instant) -> u32 {
    (now.total_micros() / PERIOD_US) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tcp::TcpFlags;
    use core::net::Ipv4Addr;

    const SECRET: [u8; 32] = [0x5a; 32];

    /// splitmix64: a deterministic source of test inputs.
    fn next(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn addr(bits: u64) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from((bits >> 16) as u32), bits as u16)
    }

    fn third_ack(client_isn: SeqNum, cookie: SeqNum, timestamps: Option<(u32, u32)>) -> TcpRepr {
        let mut r = TcpRepr { seq: client_isn + 1, ack: cookie + 1, flags: TcpFlags(TcpFlags::ACK), ..TcpRepr::default() };
        r.options.timestamps = timestamps;
        r
    }

    const LOCAL: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80);
    const REMOTE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 40000);

    #[test]
    fn round_trip_for_many_tuples() {
        let c = SynCookies::new(&SECRET);
        let mut rng = 1u64;
        for _ in 0..2_000 {
            let (local, remote) = (addr(next(&mut rng)), addr(next(&mut rng)));
            let isn = SeqNum(next(&mut rng) as u32);
            let offered = (next(&mut rng) % 2000) as u16;
            let now = Instant::from_micros(next(&mut rng) >> 8);
            let (cookie, mss) = c.encode(now, local, remote, isn, offered);
            assert!(MSS_TABLE.contains(&mss));
            assert!(mss <= offered.max(536));
            let ack = third_ack(isn, cookie, None);
            let opts = c.decode(now, local, remote, &ack).expect("own cookie accepted");
            assert_eq!(opts, CookieOptions { mss, window_scale: None, sack_permitted: false, timestamps: false });
        }
    }

    #[test]
    fn mss_is_largest_table_entry_not_above_offer() {
        let c = SynCookies::new(&SECRET);
        let isn = SeqNum(1);
        for (offered, expect) in [(100, 536), (536, 536), (1299, 536), (1300, 1300), (1459, 1440), (1460, 1460), (9000, 1460)] {
            let (cookie, mss) = c.encode(Instant::ZERO, LOCAL, REMOTE, isn, offered);
            assert_eq!(mss, expect, "offered {offered}");
            assert_eq!(c.decode(Instant::ZERO, LOCAL, REMOTE, &third_ack(isn, cookie, None)).unwrap().mss, expect);
        }
    }

    #[test]
    fn options_ride_in_the_timestamp() {
        let c = SynCookies::new(&SECRET);
        let isn = SeqNum(77);
        let (cookie, _) = c.encode(Instant::ZERO, LOCAL, REMOTE, isn, 1460);
        let tsval = c.ts_encode(123_456, Some(7), true);
        let opts = c.decode(Instant::ZERO, LOCAL, REMOTE, &third_ack(isn, cookie, Some((9, tsval)))).unwrap();
        assert_eq!(opts, CookieOptions { mss: 1460, window_scale: Some(7), sack_permitted: true, timestamps: true });
    }

    #[test]
    fn ts_encode_never_exceeds_now_and_round_trips() {
        let c = SynCookies::new(&SECRET);
        let mut rng = 9u64;
        for i in 0..2_000u32 {
            let now_ts = if i < 100 { i } else { next(&mut rng) as u32 };
            for wscale in (0..=14).map(Some).chain([None]) {
                for sack in [false, true] {
                    let ts = c.ts_encode(now_ts, wscale, sack);
                    // Serial comparison (RFC 7323 §5.2): at most 63 behind, never ahead.
                    let behind = now_ts.wrapping_sub(ts);
                    assert!(behind < 64, "ts {ts} for now {now_ts}");
                    assert_eq!(SynCookies::ts_decode(ts), (wscale, sack));
                }
            }
        }
    }

    #[test]
    fn accepted_in_the_next_period_and_rejected_after_two() {
        let c = SynCookies::new(&SECRET);
        let isn = SeqNum(0xdead_beef);
        let issued = Instant::from_secs(64 * 1000 + 10);
        let (cookie, _) = c.encode(issued, LOCAL, REMOTE, isn, 1460);
        let ack = third_ack(isn, cookie, None);
        assert!(c.decode(Instant::from_secs(64 * 1001 + 63), LOCAL, REMOTE, &ack).is_some());
        assert!(c.decode(Instant::from_secs(64 * 1002), LOCAL, REMOTE, &ack).is_none());
        assert!(c.decode(Instant::from_secs(64 * 1003 + 5), LOCAL, REMOTE, &ack).is_none());
        // 256 periods later the 8-bit count has wrapped onto the same value, but
        // H1 is keyed by the full count, so the MSS index no longer matches.
        assert!(c.decode(Instant::from_secs(64 * (1000 + 256) + 10), LOCAL, REMOTE, &ack).is_none());
        // A clock before the issue time is not "recent" either.
        assert!(c.decode(Instant::from_secs(64 * 999), LOCAL, REMOTE, &ack).is_none());
    }

    #[test]
    fn rejected_for_other_tuple_or_isn() {
        let c = SynCookies::new(&SECRET);
        let isn = SeqNum(1000);
        let now = Instant::from_secs(5);
        let (cookie, _) = c.encode(now, LOCAL, REMOTE, isn, 1460);
        let ack = third_ack(isn, cookie, None);
        assert!(c.decode(now, LOCAL, REMOTE, &ack).is_some());
        let other_port = SocketAddrV4::new(*REMOTE.ip(), REMOTE.port() + 1);
        assert!(c.decode(now, LOCAL, other_port, &ack).is_none());
        assert!(c.decode(now, REMOTE, LOCAL, &ack).is_none());
        for delta in [1usize, 2, 3, 1 << 24] {
            assert!(c.decode(now, LOCAL, REMOTE, &third_ack(isn + delta, cookie, None)).is_none(), "isn + {delta}");
            assert!(c.decode(now, LOCAL, REMOTE, &third_ack(isn - delta, cookie, None)).is_none(), "isn - {delta}");
        }
        assert!(SynCookies::new(&[1; 32]).decode(now, LOCAL, REMOTE, &ack).is_none());
    }

    #[test]
    fn rejected_without_ack_or_with_syn_or_rst() {
        let c = SynCookies::new(&SECRET);
        let isn = SeqNum(5);
        let (cookie, _) = c.encode(Instant::ZERO, LOCAL, REMOTE, isn, 1460);
        for flags in [0, TcpFlags::ACK | TcpFlags::SYN, TcpFlags::ACK | TcpFlags::RST] {
            let ack = TcpRepr { flags: TcpFlags(flags), ..third_ack(isn, cookie, None) };
            assert!(c.decode(Instant::ZERO, LOCAL, REMOTE, &ack).is_none(), "flags {flags:#x}");
        }
    }

    #[test]
    fn random_forgeries_are_rejected() {
        let c = SynCookies::new(&SECRET);
        let now = Instant::from_secs(3600);
        let mut rng = 42u64;
        for _ in 0..100_000 {
            let bits = next(&mut rng);
            let ack = third_ack(SeqNum(bits as u32), SeqNum((bits >> 32) as u32), None);
            assert!(c.decode(now, LOCAL, REMOTE, &ack).is_none(), "forged ack {ack:?} accepted");
        }
    }
}
