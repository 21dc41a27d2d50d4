//! SACK blocks of a receiver that processes a batch of segments between two
//! polls (RFC 2018 §4): one ACK per out-of-order segment, each leading with
//! the range holding its segment and repeating the ranges reported just
//! before, so that every range received is reported.

use super::super::sack_report::SACK_RUNS;
use super::*;

/// B's view of one batch: what reached it, what it held, and what it answered.
struct Batch {
    /// `[start, end)` of each data segment that reached B, in arrival order.
    arrivals: Vec<(SeqNum, SeqNum)>,
    /// B's RCV.NXT and out-of-order ranges after processing the batch, before polling.
    rcv_nxt: SeqNum,
    held: Vec<(SeqNum, SeqNum)>,
    /// B's TS.Recent before the batch arrived, and the TSval the batch carried.
    ts_recent_before: u32,
    batch_tsval: Option<u32>,
    /// Every segment B sent in the poll after the batch.
    replies: Vec<Packet>,
}

/// A sends `segments` full-sized segments in one poll; those for which
/// `lost(i)` holds are dropped, the rest reach B together and are all
/// processed before B polls once. The first segment must be lost, so that
/// every arrival is out of order. `b_sends` is queued at B before it polls.
fn batch(config: TcpConfig, segments: usize, lost: fn(usize) -> bool, b_sends: usize) -> Batch {
    assert!(lost(0));
    let sender = TcpConfig { initial_cwnd_segments: segments as u32, ..config };
    let mut sim = Sim::established(sender, config);
    // Let the timestamp clock move on, so the batch's TSval differs from the handshake's.
    sim.now += Duration::from_millis(50);
    let mut index = 0;
    sim.filter = Box::new(move |_, p| {
        if p.from == A && p.is_data() {
            index += 1;
            if lost(index - 1) {
                return Verdict::Drop;
            }
        }
        Verdict::Deliver
    });
    let ts_recent_before = sim.b().rcv.ts_recent;
    let start = sim.log.len();
    assert!(sim.a().send(&pattern(0, segments * 1460, 0)).is_ok());
    sim.transmit();
    let sent: Vec<Sent> =
        sim.log[start..].iter().filter(|s| s.packet.from == A && s.packet.is_data()).cloned().collect();
    assert_eq!(sent.len(), segments, "A sent the whole batch in one poll");
    let batch_tsval = sent[0].packet.repr.options.timestamps.map(|(tsval, _)| tsval);
    let arrivals: Vec<(SeqNum, SeqNum)> = sent
        .iter()
        .filter(|s| s.verdict == Verdict::Deliver)
        .map(|s| (s.packet.repr.seq, s.packet.repr.seq + s.packet.repr.payload_len))
        .collect();

    // Step to the batch's arrival: B processes all of it, then stops before polling.
    let before_arrival = sim.log.len();
    assert!(sim.step());
    assert_eq!(sim.log.len(), before_arrival, "nothing else was sent meanwhile");
    if b_sends > 0 {
        assert_eq!(sim.b().send(&pattern(0, b_sends, 1)), Ok(b_sends));
    }
    let b = sim.b();
    let rcv_nxt = b.rcv.nxt;
    let held = b.recv_buf.out_of_order_ranges().map(|(s, e)| (rcv_nxt + s, rcv_nxt + e)).collect();
    let before_poll = sim.log.len();
    sim.transmit();
    let replies = sim.log[before_poll..].iter().filter(|s| s.packet.from == B).map(|s| s.packet.clone()).collect();
    Batch { arrivals, rcv_nxt, held, ts_recent_before, batch_tsval, replies }
}

fn contains(block: (SeqNum, SeqNum), segment: (SeqNum, SeqNum)) -> bool {
    block.0 <= segment.0 && segment.1 <= block.1
}

fn first_block(packet: &Packet) -> Option<(SeqNum, SeqNum)> {
    packet.repr.options.sack.as_slice().first().copied()
}

/// The properties every batch must show, with `max_blocks` SACK blocks per
/// ACK; the first `placed` arrivals are those B remembers individually.
fn check_reporting(batch: &Batch, max_blocks: usize, placed: usize) {
    let Batch { arrivals, rcv_nxt, held, replies, .. } = batch;
    // The buffer really holds what arrived, out of order.
    assert!(arrivals.iter().all(|&a| a.0 > *rcv_nxt && held.iter().any(|&h| contains(h, a))), "{arrivals:?} {held:?}");

    // One ACK per out-of-order segment, all for RCV.NXT.
    assert_eq!(replies.len(), arrivals.len(), "{replies:#?}");
    for reply in replies {
        assert!(reply.has(TcpFlags::ACK));
        assert_eq!(reply.repr.ack, *rcv_nxt);
        let blocks = reply.repr.options.sack.as_slice();
        assert!(!blocks.is_empty() && blocks.len() <= max_blocks, "{blocks:?}");
        // Every block is one of the ranges held, exactly (not a stale part of one).
        assert!(blocks.iter().all(|b| held.contains(b)), "{blocks:?} not in {held:?}");
    }

    // No ACK reports a range only later arrivals landed in, as a receiver
    // ACKing each segment on arrival could not: reported early, a range above
    // a hole some later arrival fills makes the sender count that arrival lost.
    for (i, reply) in replies.iter().enumerate() {
        for block in reply.repr.options.sack.as_slice() {
            assert!(arrivals[..=i].iter().any(|&a| contains(*block, a)), "ACK {i} reports {block:?} early");
        }
    }

    // (a) Every range received is reported in at least one ACK.
    for range in held {
        assert!(replies.iter().any(|r| r.repr.options.sack.as_slice().contains(range)), "{range:?} never reported");
    }

    // (b) The first block of each ACK holds the segment that triggered it
    // (RFC 2018 §4), for the arrivals B remembers.
    for (i, (reply, arrival)) in replies.iter().zip(arrivals).take(placed).enumerate() {
        let first = first_block(reply).expect("a SACK block");
        assert!(contains(first, *arrival), "ACK {i}: first block {first:?} does not hold {arrival:?}");
    }
    // Beyond those, the range of each later arrival still leads some later ACK.
    if arrivals.len() > placed {
        let later_firsts: Vec<_> = replies[placed..].iter().filter_map(first_block).collect();
        for arrival in &arrivals[placed..] {
            assert!(
                later_firsts.iter().any(|&f| contains(f, *arrival)),
                "{arrival:?} never led an ACK: {later_firsts:?}"
            );
        }
    }

    // RFC 2018 §4: the other blocks repeat the most recently reported ranges,
    // so a first block is repeated by the next two ACKs when three blocks fit.
    if max_blocks >= 3 {
        for (i, reply) in replies.iter().enumerate() {
            let first = first_block(reply).expect("a SACK block");
            for later in replies.iter().skip(i + 1).take(2) {
                assert!(
                    later.repr.options.sack.as_slice().contains(&first),
                    "ACK {i}'s {first:?} not repeated: {later:?}"
                );
            }
        }
    }

    // No ACK is emitted twice with the same blocks unless distinct arrivals
    // led it (consecutive segments extending one range).
    for pair in replies.windows(2) {
        if pair[0].repr.options.sack == pair[1].repr.options.sack {
            let first = first_block(&pair[0]).expect("a SACK block");
            assert!(arrivals.iter().filter(|&&a| contains(first, a)).count() >= 2, "identical ACKs: {pair:?}");
        }
    }
}

/// Drops A's segments 0, 2, 4, ...: every arrival is its own range.
fn even(i: usize) -> bool {
    i.is_multiple_of(2)
}

#[test]
fn each_ack_of_a_batch_leads_with_the_range_of_its_own_segment() {
    // 10 segments, 5 arrivals into 5 disjoint holes: more ranges than the 3
    // blocks that fit next to timestamps, so repeating the newest three would
    // never report the first two.
    let batch = batch(TcpConfig::default(), 10, even, 0);
    assert_eq!(batch.arrivals.len(), 5);
    assert_eq!(batch.held.len(), 5);
    check_reporting(&batch, 3, 5);
}

#[test]
fn ranges_that_grow_within_a_batch_are_reported_as_they_stand() {
    // Segments 0, 4, 8, ... lost: ranges of three segments each, so consecutive
    // ACKs lead with the same (whole) range.
    let batch = batch(TcpConfig::default(), 20, |i| i % 4 == 0, 0);
    assert_eq!(batch.held.len(), 5);
    check_reporting(&batch, 3, 15);
    for reply in &batch.replies {
        for block in reply.repr.options.sack.as_slice() {
            assert_eq!(block.1.distance_from(block.0), 3 * 1448, "{block:?}");
        }
    }
}

#[test]
fn a_long_run_of_segments_after_a_hole_is_remembered_whole() {
    // Segments 0 and 20 lost: 43 arrivals in two runs, each ACK leading with
    // the range its own segment extended.
    let batch = batch(TcpConfig::default(), 45, |i| i == 0 || i == 20, 0);
    assert_eq!(batch.arrivals.len(), 43);
    assert_eq!(batch.held.len(), 2);
    check_reporting(&batch, 3, 43);
    let second_hole_at = batch.arrivals[19].0;
    for (reply, arrival) in batch.replies.iter().zip(&batch.arrivals) {
        assert_eq!(first_block(reply).map(|b| b.0 == second_hole_at), Some(arrival.0 >= second_hole_at));
    }
}

#[test]
fn a_batch_of_more_runs_than_are_remembered_still_reports_every_range() {
    // Segments 0, 3, 6, ... lost: 30 arrivals in 15 runs of two, more runs
    // than the receiver remembers.
    let batch = batch(TcpConfig::default(), 45, |i| i % 3 == 0, 0);
    assert_eq!(batch.arrivals.len(), 30);
    assert_eq!(batch.held.len(), 15);
    assert!(batch.held.len() > SACK_RUNS);
    check_reporting(&batch, 3, 2 * SACK_RUNS);
}

#[test]
fn without_timestamps_four_blocks_are_reported() {
    let config = TcpConfig { timestamps: false, ..TcpConfig::default() };
    let batch = batch(config, 14, even, 0);
    assert_eq!(batch.held.len(), 7);
    check_reporting(&batch, 4, SACK_RUNS);
    assert!(batch.replies.iter().skip(3).all(|r| r.repr.options.sack.len() == 4));
    assert!(batch.replies.iter().all(|r| r.repr.options.timestamps.is_none()));
}

#[test]
fn duplicate_acks_of_a_batch_echo_the_last_in_sequence_timestamp() {
    // RFC 7323 §4.3 (2): an ACK for out-of-order data echoes TS.Recent of the
    // last in-sequence segment, not the TSval of the segments that triggered it.
    let batch = batch(TcpConfig::default(), 8, even, 0);
    let batch_tsval = batch.batch_tsval.expect("timestamps in use");
    assert_ne!(batch_tsval, batch.ts_recent_before);
    assert_eq!(batch.replies.len(), 4);
    for reply in &batch.replies {
        assert_eq!(reply.repr.options.timestamps.map(|(_, tsecr)| tsecr), Some(batch.ts_recent_before));
    }
}

#[test]
fn without_sack_each_out_of_order_segment_still_gets_one_duplicate_ack() {
    let config = TcpConfig { sack: false, ..TcpConfig::default() };
    let batch = batch(config, 10, even, 0);
    assert_eq!(batch.replies.len(), 5);
    assert!(batch.replies.iter().all(|r| r.repr.options.sack.is_empty() && r.repr.ack == batch.rcv_nxt));
}

#[test]
fn a_data_segment_answers_one_arrival_and_pure_acks_answer_the_rest() {
    // B has a little data of its own: its data segment carries the first ACK
    // and its SACK blocks; pure duplicate ACKs follow for the other arrivals.
    let batch = batch(TcpConfig::default(), 10, even, 100);
    let data: Vec<&Packet> = batch.replies.iter().filter(|r| r.is_data()).collect();
    assert_eq!(data.len(), 1);
    assert!(batch.replies[0].is_data());
    check_reporting(&batch, 3, 5);
}

/// Tracks which sequence ranges reached B (a sorted, merged list).
#[derive(Default)]
struct Received(Vec<(SeqNum, SeqNum)>);

impl Received {
    fn add(&mut self, start: SeqNum, end: SeqNum) {
        let (mut start, mut end) = (start, end);
        self.0.retain(|&(s, e)| {
            let touches = s <= end && start <= e;
            if touches {
                start = start.min(s);
                end = end.max(e);
            }
            !touches
        });
        self.0.push((start, end));
        self.0.sort_by_key(|r| r.0);
    }
    fn holds(&self, start: SeqNum, end: SeqNum) -> bool {
        self.0.iter().any(|&(s, e)| s <= start && end <= e)
    }
}

#[test]
fn random_loss_and_reordering_never_make_the_sender_resend_what_the_receiver_had() {
    // A sends 2 MiB to B; 10% of A's data segments are dropped and 5% are
    // held back one extra tick. ACKs are never lost, so A hears about every
    // range B holds within a round trip. A retransmission is needless if B
    // had all of it by the time it sent the last ACK that reached A before the
    // retransmission: that is what unreported ranges caused. (Reporting only
    // the newest ranges in every ACK of a batch made 177 of 369 needless.)
    let config = TcpConfig::default();
    let mut sim = Sim::established(config, config);
    sim.log_payloads = false;
    const LOSS_PERCENT: u64 = 10;
    let mut seed = 0x5ac4_f1e5_u64;
    sim.filter = Box::new(move |now, p| {
        if p.from != A || p.repr.payload_len == 0 {
            return Verdict::Deliver;
        }
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        // The receiving side takes segments in batches, as an engine reading a
        // device does: each one waits for the next tick of a 20 ms clock.
        let tick = 20_000;
        let wait = tick - now.total_micros() % tick;
        match (seed >> 33) % 100 {
            0..LOSS_PERCENT => Verdict::Drop,
            95.. => Verdict::Delay(Duration::from_micros(wait + tick)), // reordered
            _ => Verdict::Delay(Duration::from_micros(wait)),
        }
    });
    let start = sim.log.len();
    assert!(transfer(&mut sim, A, 2 << 20, Duration::from_secs(120)));
    let latency = sim.latency;

    // A segment reaches the other side `latency` (plus any delay) after it
    // was sent; B's ACKs are never delayed.
    let log = &sim.log[start..];
    let arrival = |s: &Sent| match s.verdict {
        Verdict::Delay(extra) => Some(s.at + latency + extra),
        Verdict::Drop => None,
        _ => Some(s.at + latency),
    };
    let mut data_arrivals: Vec<(Instant, SeqNum, SeqNum, u32)> = log
        .iter()
        .filter(|s| s.packet.from == A && s.packet.repr.payload_len > 0)
        .filter_map(|s| {
            let r = &s.packet.repr;
            let tsval = r.options.timestamps.map_or(0, |(tsval, _)| tsval);
            arrival(s).map(|at| (at, r.seq, r.seq + r.payload_len, tsval))
        })
        .collect();
    // PAWS (RFC 7323 §5): B discards a segment whose timestamp is older than
    // one it already took, so a reordered segment that arrives after a later
    // retransmission may never be held. Such arrivals are left out: B is only
    // credited with segments no earlier arrival's timestamp outdates.
    data_arrivals.sort_by_key(|&(at, ..)| at);
    let mut newest_tsval = 0u32;
    data_arrivals.retain(|&(.., tsval)| {
        let current = tsval.wrapping_sub(newest_tsval) as i32 >= 0;
        if current {
            newest_tsval = tsval;
        }
        current
    });

    let mut sent_up_to: Option<SeqNum> = None;
    let mut retransmissions = 0;
    let mut needless = Vec::new();
    for sent in log {
        let at = sent.at;
        let repr = &sent.packet.repr;
        if sent.packet.from != A || repr.payload_len == 0 {
            continue;
        }
        let end = repr.seq + repr.payload_len;
        if sent_up_to.is_some_and(|high| repr.seq < high) {
            retransmissions += 1;
            // The last ACK from B that reached A by now.
            let last_ack = log.iter().filter(|s| s.packet.from == B && s.at + latency <= at).map(|s| s.at).max();
            if let Some(ack_at) = last_ack {
                // What B held when it sent that ACK.
                let mut received = Received::default();
                for &(arrived, s, e, _) in &data_arrivals {
                    if arrived <= ack_at {
                        received.add(s, e);
                    }
                }
                if received.holds(repr.seq, end) {
                    needless.push((at, repr.seq, end));
                }
            }
        }
        sent_up_to = Some(sent_up_to.map_or(end, |high| high.max(end)));
    }
    assert!(retransmissions > 20, "the loss pattern caused retransmissions: {retransmissions}");
    assert!(
        needless.is_empty(),
        "{} of {retransmissions} retransmissions resent what B had: {:?}",
        needless.len(),
        &needless[..needless.len().min(5)]
    );
}

#[test]
fn arrivals_a_filled_gap_acknowledged_get_no_duplicate_ack_of_their_own() {
    // A's segments 0 and 4 are lost; 1-3 and 5-7 reach B together, and so
    // does a late copy of 0, which moves RCV.NXT up to the hole at 4. The
    // duplicate ACKs owed to 1-3 would now repeat that new cumulative ACK and
    // count as evidence that 4 is lost: only 5-7 get one each.
    let config = TcpConfig { initial_cwnd_segments: 8, ..TcpConfig::default() };
    let mut sim = Sim::established(config, config);
    let mut index = 0;
    sim.filter = Box::new(move |_, p| {
        if p.from == A && p.is_data() {
            index += 1;
            if index == 1 || index == 5 {
                return Verdict::Drop;
            }
        }
        Verdict::Deliver
    });
    let start = sim.log.len();
    assert!(sim.a().send(&pattern(0, 8 * 1460, 0)).is_ok());
    sim.transmit();
    let data: Vec<Packet> = sim.log[start..]
        .iter()
        .filter(|s| s.packet.from == A && s.packet.is_data())
        .map(|s| s.packet.clone())
        .collect();
    assert_eq!(data.len(), 8);
    assert!(sim.step());
    let late = &data[0];
    sim.inject(B, late.repr, &late.payload);
    let hole = data[4].repr.seq;
    assert_eq!(sim.b().rcv.nxt, hole);

    let before = sim.log.len();
    sim.transmit();
    let replies: Vec<&Packet> = sim.log[before..].iter().filter(|s| s.packet.from == B).map(|s| &s.packet).collect();
    assert_eq!(replies.len(), 3, "{replies:#?}");
    let held = (data[5].repr.seq, data[7].repr.seq + data[7].repr.payload_len);
    for reply in replies {
        assert_eq!(reply.repr.ack, hole);
        assert_eq!(reply.repr.options.sack.as_slice(), &[held]);
    }
}
