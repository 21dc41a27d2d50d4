//! The per-connection variables of RFC 9293 §3.3.1, grouped by direction, plus
//! the small amount of bookkeeping the algorithms on top of them need.

use crate::tcp::seq::SeqNum;
use crate::time::Instant;

/// Linux's TCP_MIN_MSS: a peer announcing less is clamped up to this, so a
/// hostile MSS option cannot make us emit a segment per byte.
pub(super) const MIN_MSS: u16 = 88;
/// RFC 9293 §3.7.1: the MSS assumed when the peer sends no MSS option.
pub(super) const DEFAULT_MSS: u16 = 536;
/// RFC 7323 §2.3: the largest window scale shift.
pub(super) const MAX_WINDOW_SHIFT: u8 = 14;
/// RFC 5681 §3.2 / RFC 6675: DupThresh.
pub(super) const DUP_THRESH: usize = 3;
/// RFC 7323 §5.5: a TS.Recent older than 24 days is no longer trusted for PAWS.
pub(super) const PAWS_IDLE_LIMIT_MS: u64 = 24 * 24 * 3600 * 1000;
/// RFC 5961 §7 / Linux `tcp_challenge_ack_limit` per socket: challenge ACKs per second.
pub(super) const CHALLENGE_ACKS_PER_SEC: u8 = 10;
/// ACKs owed to out-of-order segments at the most between two polls.
pub(super) const MAX_EXTRA_ACKS: u8 = 64;
/// Segments acknowledged at once when a connection starts receiving (Linux's
/// quick-ACK mode, TCP_MAX_QUICKACKS).
pub(super) const QUICK_ACKS_AT_START: u8 = 16;

/// Send sequence space (RFC 9293 §3.3.1, Figure 4).
#[derive(Clone, Copy, Debug)]
pub(super) struct SendSeq {
    /// ISS: our initial sequence number (the SYN occupies it).
    pub iss: SeqNum,
    /// SND.UNA: oldest unacknowledged sequence number.
    pub una: SeqNum,
    /// SND.NXT: next sequence number to send. After an RTO it is pulled back
    /// to SND.UNA (go-back retransmission) while `max` remembers how far we got.
    pub nxt: SeqNum,
    /// Highest sequence number sent so far plus one (Linux's snd_nxt; RFC 6675 HighData).
    pub max: SeqNum,
    /// SND.WND in bytes, already scaled.
    pub wnd: u32,
    /// The largest window the peer ever offered (RFC 9293 §3.8.6.2.1 sender SWS, RFC 5961 §5 MAX.SND.WND).
    pub max_wnd: u32,
    /// SND.WL1 / SND.WL2: segment sequence and ack of the last window update.
    pub wl1: SeqNum,
    pub wl2: SeqNum,
    /// Sequence number of our FIN once it has been sent.
    pub fin: Option<SeqNum>,
    /// Shift applied to the peer's window field (RFC 7323 §2.2).
    pub wscale: u8,
    /// min(peer MSS, our MSS): the largest TCP payload plus options we may send.
    pub mss_clamp: u16,
    /// End of the last new-data segment sent shorter than a full segment
    /// (Linux's snd_sml): Nagle holds a small segment only while this one is
    /// unacknowledged (Minshall's variant, Linux `tcp_minshall_check`).
    pub sml: SeqNum,
}

/// Receive sequence space (RFC 9293 §3.3.1, Figure 5).
#[derive(Clone, Copy, Debug)]
pub(super) struct RecvSeq {
    /// IRS: the peer's initial sequence number.
    pub irs: SeqNum,
    /// RCV.NXT: next sequence number expected.
    pub nxt: SeqNum,
    /// Right edge of the window we last advertised (RCV.NXT + RCV.WND at that
    /// time). Never moved left (RFC 7323 §2.4, RFC 9293 §3.8.6.2.2).
    pub adv: SeqNum,
    /// Shift applied to the window we advertise.
    pub wscale: u8,
    /// RCV.NXT carried by the last ACK we sent (RFC 7323 §4.3 Last.ACK.sent).
    pub last_ack_sent: SeqNum,
    /// TS.Recent and when it was updated (RFC 7323 §4.3, §5.5).
    pub ts_recent: u32,
    pub ts_recent_at: Instant,
    /// In-order bytes received since the last ACK we sent (delayed-ACK rule).
    pub unacked_bytes: u32,
    /// Largest segment payload seen, our estimate of the peer's MSS (Linux's rcv_mss).
    pub mss_est: u16,
    /// ACKs of new in-order data still sent without delay (quick-ACK mode).
    pub quick_acks: u8,
    /// Out-of-order segments owed an immediate ACK each, even when a batch of
    /// them is processed between two polls (the sender counts them, RFC 5681
    /// §4.2), and what each ACK's SACK blocks report (RFC 2018 §4).
    pub sack: super::sack_report::SackReport,
    /// Sequence number of a FIN that arrived ahead of missing data.
    pub fin_at: Option<SeqNum>,
}

/// Loss recovery and retransmission bookkeeping (RFC 6675, RFC 6582, RFC 6298).
#[derive(Clone, Copy, Debug)]
pub(super) struct Recovery {
    /// In fast recovery (RFC 6675 §5 / RFC 6582 §3.2).
    pub active: bool,
    /// RecoveryPoint / "recover": HighData when recovery (or the last RTO)
    /// started, kept only while it still guards against a new episode
    /// (RFC 6675 §5, RFC 6582 §3.2 step 2): cleared once SND.UNA moves past it,
    /// so it never goes stale (a marker left 2^31 bytes behind would look
    /// ahead of SND.UNA and block fast recovery for the next 2^31 bytes).
    pub recover: Option<SeqNum>,
    /// End of the highest range retransmitted during this recovery (RFC 6675
    /// HighRxt). Invariant: SND.UNA <= high_rxt <= HighData (moved up with
    /// every cumulative ACK), so it can never fall 2^31 behind.
    pub high_rxt: SeqNum,
    /// Duplicate ACKs counted since the last cumulative ACK.
    pub dupacks: u32,
    /// The first unacknowledged segment must be retransmitted (entry into recovery,
    /// RFC 6675 §5 step 4.3; RFC 6582 partial ACKs).
    pub head_due: bool,
    /// Consecutive retransmission timeouts (SYN, SYN-ACK or data).
    pub retries: u32,
    /// Zero-window probes sent without an ACK in between.
    pub probes: u32,
    /// Exponent of the zero-window probe interval (reset when the window opens).
    pub persist_backoff: u32,
    /// Keepalive probes sent without hearing from the peer.
    pub keepalive_probes: u32,
    /// The segment ending here is being timed for an RTT sample (Karn: never a retransmission).
    pub timed_seq: Option<SeqNum>,
    pub timed_at: Instant,
    /// TSecr values below this are not used for RTT samples (see `rtt_sample_from_tsecr`).
    pub tsecr_floor: u32,
    /// When new data was last sent (RFC 5681 §4.1 restart after idle).
    pub last_data_sent: Instant,
    /// Lost-retransmission detection (see `lost_retransmission`): HighData
    /// when the latest loss-recovery retransmission went out. Data at or
    /// above it was first sent after every retransmission so far. Cleared
    /// once SND.UNA reaches it, so it never goes stale.
    pub rxt_fence: Option<SeqNum>,
}

/// One deadline per timer kind; `None` when disarmed.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Timers {
    /// Retransmission of SYN, SYN-ACK, data or FIN (RFC 6298).
    pub rto: Option<Instant>,
    /// Delayed ACK (RFC 9293 §3.8.6.3).
    pub delayed_ack: Option<Instant>,
    /// Zero-window probe / sender SWS override (RFC 9293 §3.8.6.1).
    pub persist: Option<Instant>,
    /// Keepalive idle or probe interval (RFC 9293 §3.8.4).
    pub keepalive: Option<Instant>,
    /// TIME-WAIT expiry, or the FIN-WAIT-2 limit of an orphan.
    pub close: Option<Instant>,
    /// End of the reordering window after which an unrepaired retransmission
    /// is deemed lost (RFC 8985 §6.3's RACK reordering timer).
    pub reorder: Option<Instant>,
    /// Free the (empty) buffers' storage: armed while both buffers are empty
    /// but allocated, disarmed as soon as either holds data.
    pub buffer_release: Option<Instant>,
}

impl Timers {
    /// Asked after every segment and every poll, so it is a plain chain of
    /// comparisons (the iterator version was a visible cost per packet).
    pub fn earliest(&self) -> Option<Instant> {
        fn min(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
            match (a, b) {
                (Some(x), Some(y)) => Some(if y < x { y } else { x }),
                (None, y) => y,
                (x, None) => x,
            }
        }
        let rare = min(self.close, min(self.reorder, self.buffer_release));
        min(min(min(self.rto, self.delayed_ack), min(self.persist, self.keepalive)), rare)
    }
    pub fn clear(&mut self) {
        *self = Timers::default();
    }
}

/// Boolean state, kept together so the struct stays small.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Flags {
    /// Window scaling agreed by both sides (RFC 7323 §2.2).
    pub wscale: bool,
    /// SACK agreed by both sides (RFC 2018 §2).
    pub sack: bool,
    /// Timestamps agreed by both sides (RFC 7323 §3.2).
    pub timestamps: bool,
    /// This side opened actively (SYN-SENT), which decides what a reset means.
    pub active_open: bool,
    /// The SYN or SYN-ACK must be (re)transmitted.
    pub syn_due: bool,
    /// Our SYN has been acknowledged, so SND.UNA is the first byte of the
    /// send buffer. A flag rather than a comparison with ISS + 1: after 2^31
    /// bytes the ISS looks *ahead* of SND.UNA in modulo-2^32 arithmetic.
    pub syn_acked: bool,
    /// An ACK must go out at the next poll.
    pub ack_now: bool,
    /// A zero-window probe is due.
    pub probe_due: bool,
    /// The persist timer fired with a non-zero window that sender SWS avoidance
    /// or cork held back: send what fits.
    pub force_send: bool,
    /// A keepalive probe is due.
    pub keepalive_due: bool,
    /// The application will send no more: FIN follows the queued data.
    pub fin_queued: bool,
    /// The peer's FIN has been received in order.
    pub fin_received: bool,
    /// shutdown(SHUT_RD) or close(): received data is discarded.
    pub read_shut: bool,
    /// The application closed the socket; the connection finishes on its own.
    pub orphan: bool,
    /// A writer found the send buffer short; WRITABLE is owed when space frees.
    pub writable_wanted: bool,
    /// The peer's window was zero the last time we looked.
    pub peer_window_zero: bool,
}

/// Counters behind `TcpInfo`.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Counters {
    pub bytes_sent: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub segs_out: u64,
    pub segs_in: u64,
    pub retransmits: u64,
    pub fast_retransmits: u64,
    pub timeouts: u64,
    /// Lost retransmissions detected without a timeout (`lost_retransmission`).
    pub lost_retransmissions: u64,
}

/// RFC 5961 §7 challenge-ACK rate limit: at most `CHALLENGE_ACKS_PER_SEC` per second.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ChallengeLimit {
    pub window_start: Instant,
    pub sent: u8,
}

impl ChallengeLimit {
    /// Whether another challenge ACK may be sent now (and count it).
    pub fn allow(&mut self, now: Instant) -> bool {
        if now.saturating_since(self.window_start).total_micros() >= 1_000_000 {
            self.window_start = now;
            self.sent = 0;
        }
        if self.sent < CHALLENGE_ACKS_PER_SEC {
            self.sent += 1;
            true
        } else {
            false
        }
    }
}

/// An RST to emit at the next poll: `seq`, and `ack` if the RST must carry one.
#[derive(Clone, Copy, Debug)]
pub(super) struct PendingRst {
    pub seq: SeqNum,
    pub ack: Option<SeqNum>,
}

/// The timestamp clock: milliseconds of `now` plus the connection's offset (RFC 7323 §5.4).
pub(super) fn ts_clock(now: Instant, offset: u32) -> u32 {
    (now.total_millis() as u32).wrapping_add(offset)
}

/// RFC 7323 §5.2 timestamp comparison, modulo 2^32.
pub(super) fn ts_before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}
