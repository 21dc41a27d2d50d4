//! The adversary model for one TCP connection, shared by the cargo-fuzz target
//! `segment_sequence` and by `stack/tests/conn_segment_sequences.rs` (which
//! includes this file by path): whatever a peer sends, in whatever order, at
//! whatever time, the connection never panics, never delivers bytes the peer
//! did not send, keeps its timers sane and its queues within their limits.

use std::net::{Ipv4Addr, SocketAddrV4};

use sluice_stack::config::TcpConfig;
use sluice_stack::tcp::conn::{ConnParams, TcpConn, TcpState, TxBudget};
use sluice_stack::tcp::seq::SeqNum;
use sluice_stack::time::{Duration, Instant};
use sluice_stack::wire::{SackBlocks, TcpFlags, TcpOptions, TcpRepr};

const LOCAL: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80);
/// Flag combinations a real peer sends.
pub const SENSIBLE_FLAGS: [u8; 8] = [
    TcpFlags::ACK,
    TcpFlags::ACK | TcpFlags::PSH,
    TcpFlags::ACK | TcpFlags::PSH,
    TcpFlags::SYN | TcpFlags::ACK,
    TcpFlags::FIN | TcpFlags::ACK,
    TcpFlags::SYN,
    TcpFlags::RST,
    TcpFlags::RST | TcpFlags::ACK,
];

const REMOTE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 40000);

/// One step of the adversary.
#[derive(Clone, Debug)]
pub enum Step {
    /// A segment with sequence/ack numbers relative to what the connection
    /// last sent, so that many of them land near the acceptable window.
    Segment { flags: u8, seq_delta: i32, ack_delta: i32, window: u16, len: u16, opts: u8, ts: (u32, u32), sack: Vec<(i32, u16)> },
    /// Let time pass and fire timers.
    Advance(u32),
    /// Application actions.
    AppSend(u16),
    AppRecv(u16),
    AppClose,
    AppShutdown,
    AppAbort,
}

/// Tracks what the connection sent so the adversary can aim near its window.
struct Observer {
    last_seq: SeqNum,
    last_ack: SeqNum,
    emitted: usize,
    /// The adversary's own timestamp clock.
    peer_ts: u32,
}

fn drain(conn: &mut TcpConn, now: Instant, obs: &mut Observer) {
    let mut budget = TxBudget { fast_retransmits: 4 };
    let mut sink = |repr: &TcpRepr, a: &[u8], b: &[u8]| {
        assert_eq!(repr.payload_len, a.len() + b.len(), "payload slices must match the header");
        assert!(repr.payload_len <= 65_535);
        obs.last_seq = repr.seq + repr.segment_len();
        if repr.flags.ack() {
            obs.last_ack = repr.ack;
        }
        obs.emitted += 1;
        true
    };
    // A connection must reach quiescence: bounded segments per poll.
    let report = conn.poll_transmit(now, &mut budget, &mut sink);
    assert!(report.segments <= 10_000, "unbounded transmit burst");
}

/// What a run reached, so tests can check the adversary explores past the handshake.
#[derive(Clone, Copy, Debug, Default)]
pub struct Reach {
    pub established: bool,
    pub bytes_received: usize,
}

pub fn run(steps: Vec<Step>, passive: bool) -> Reach {
    let mut now = Instant::from_secs(1000);
    let config = TcpConfig { recv_buffer: 64 * 1024, send_buffer: 64 * 1024, ..TcpConfig::default() };
    let params = ConnParams { local: LOCAL, remote: REMOTE, iss: SeqNum(0xfff0_0000), local_mss: 1460, ts_offset: 7, config };
    let peer_iss = SeqNum(0x7fff_fff0);
    let mut conn = if passive {
        let syn = TcpRepr {
            src_port: REMOTE.port(),
            dst_port: LOCAL.port(),
            seq: peer_iss,
            flags: TcpFlags(TcpFlags::SYN),
            window: 65535,
            options: TcpOptions { mss: Some(1460), window_scale: Some(7), sack_permitted: true, timestamps: Some((1, 0)), ..Default::default() },
            ..Default::default()
        };
        TcpConn::accept_syn(now, params, &syn)
    } else {
        TcpConn::connect(now, params)
    };
    let mut obs = Observer { last_seq: SeqNum(0), last_ack: peer_iss + 1, emitted: 0, peer_ts: 1 };
    drain(&mut conn, now, &mut obs);

    let mut buf = vec![0u8; 20_000];
    let payload = vec![0xa5u8; 3000];
    let mut received = 0usize;
    let mut established = false;
    for s in steps {
        match s {
            Step::Segment { flags, seq_delta, ack_delta, window, len, opts, ts, sack } => {
                let mut options = TcpOptions::default();
                if opts & 1 != 0 { options.mss = Some(u16::from(opts) * 11); }
                if opts & 2 != 0 { options.window_scale = Some(opts >> 4); }
                if opts & 4 != 0 { options.sack_permitted = true; }
                if opts & 8 != 0 {
                    // Mostly a well-behaved clock (PAWS would drop the rest), sometimes anything.
                    options.timestamps = Some(if opts & 64 == 0 {
                        obs.peer_ts = obs.peer_ts.wrapping_add(ts.0 % 1000);
                        (obs.peer_ts, ts.1)
                    } else {
                        ts
                    });
                }
                let mut blocks = SackBlocks::default();
                for (d, l) in sack.iter().take(3) {
                    let left = obs.last_seq + (*d as u32 as usize);
                    blocks.push(left, left + usize::from(*l));
                }
                options.sack = blocks;
                let seg = TcpRepr {
                    src_port: REMOTE.port(),
                    dst_port: LOCAL.port(),
                    seq: SeqNum(obs.last_ack.0.wrapping_add(seq_delta as u32)),
                    ack: SeqNum(obs.last_seq.0.wrapping_add(ack_delta as u32)),
                    flags: TcpFlags(flags),
                    window,
                    urgent: 0,
                    options,
                    payload_len: usize::from(len),
                };
                let _ = conn.on_segment(now, &seg, &payload[..usize::from(len)]);
            }
            Step::Advance(us) => {
                now += Duration::from_micros(u64::from(us));
                if let Some(t) = conn.poll_timeout() {
                    if t <= now {
                        conn.on_timeout(now);
                    }
                }
            }
            Step::AppSend(n) => {
                let _ = conn.send(&payload[..usize::from(n).min(payload.len())]);
            }
            Step::AppRecv(n) => {
                if let Ok(got) = conn.recv(&mut buf[..usize::from(n)]) {
                    // The adversary only ever sends 0xa5 bytes: anything else
                    // delivered would be data the connection invented.
                    assert!(buf[..got].iter().all(|&b| b == 0xa5), "delivered bytes the peer never sent");
                    received += got;
                }
            }
            Step::AppClose => conn.close(now),
            Step::AppShutdown => conn.shutdown_write(),
            Step::AppAbort => conn.abort(now),
        }
        drain(&mut conn, now, &mut obs);
        let _ = conn.take_events();
        // A timer in the past must be handled by the next on_timeout, not spin.
        if let Some(t) = conn.poll_timeout() {
            if t <= now {
                conn.on_timeout(now);
                drain(&mut conn, now, &mut obs);
                if let Some(t2) = conn.poll_timeout() {
                    assert!(t2 > now || conn.is_finished(), "timer still due right after on_timeout: {t2:?} <= {now:?}");
                }
            }
        }
        if conn.is_finished() {
            assert_eq!(conn.state(), TcpState::Closed);
            assert!(!conn.wants_fast_retransmit(), "a finished connection must not want retransmissions");
        }
        established |= conn.state() == TcpState::Established;
        let info = conn.info();
        assert!(info.recv_queue as usize <= 64 * 1024, "receive queue beyond its limit");
        assert!(info.send_queue as usize <= 64 * 1024, "send queue beyond its limit");
    }
    Reach { established, bytes_received: received }
}

/// Decodes fuzzer bytes into steps (a simple, total decoding: every byte
/// string is a valid program, so the fuzzer explores behaviour, not syntax).
pub fn steps_from_bytes(data: &[u8]) -> Vec<Step> {
    let mut r = Reader { data, pos: 0 };
    let mut steps = Vec::new();
    while r.pos < r.data.len() && steps.len() < 200 {
        let op = r.u8();
        let step = match op % 32 {
            0..=19 => {
                let flags = r.flags();
                let seq_delta = r.delta();
                let ack_delta = r.delta();
                let window = r.u16();
                let len = r.u16() % 3000;
                let opts = r.u8();
                let ts = (r.u32(), r.u32());
                let n = usize::from(r.u8() % 5);
                let sack = (0..n).map(|_| ((r.u32() as i32) % 70_000, r.u16() % 5000)).collect();
                Step::Segment { flags, seq_delta, ack_delta, window, len, opts, ts, sack }
            }
            20..=22 => Step::Advance(r.u32() % 5_000_000),
            23..=25 => Step::AppSend(r.u16() % 20_000),
            26..=28 => Step::AppRecv(r.u16() % 20_000),
            29 => Step::AppClose,
            30 => Step::AppShutdown,
            _ => Step::AppAbort,
        };
        steps.push(step);
    }
    steps
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    /// Mostly combinations a real peer sends, sometimes any bits.
    fn flags(&mut self) -> u8 {
        let b = self.u8();
        if b & 1 == 0 { SENSIBLE_FLAGS[usize::from(b >> 1) % SENSIBLE_FLAGS.len()] } else { self.u8() }
    }
    /// Mostly exact edges (the acceptable values are a thin target), sometimes anywhere.
    fn delta(&mut self) -> i32 {
        match self.u8() % 4 {
            0 | 1 => 0,
            2 => i32::from(self.u16() as i16) % 3000,
            _ => (self.u32() as i32) % 70_000,
        }
    }
}
