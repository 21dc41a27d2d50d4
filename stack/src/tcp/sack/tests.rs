use super::*;
use proptest::prelude::*;

fn s(n: u32) -> SeqNum {
    SeqNum(n)
}

/// Blocks relative to a base sequence number.
fn rel(base: SeqNum, blocks: &[(usize, usize)]) -> Vec<(SeqNum, SeqNum)> {
    blocks.iter().map(|&(a, b)| (base + a, base + b)).collect()
}

#[test]
fn new_scoreboard_is_empty() {
    let sb = Scoreboard::new();
    assert!(sb.is_empty());
    assert_eq!(sb.sacked_bytes(), 0);
    assert_eq!(sb.highest_sacked(), None);
    assert!(!sb.is_sacked(s(0)));
}

#[test]
fn blocks_merge_when_overlapping_or_adjacent_and_stay_sorted() {
    let mut sb = Scoreboard::new();
    let una = s(1000);
    let nxt = s(10_000);
    assert_eq!(sb.on_ack(una, nxt, &rel(una, &[(500, 600)])), 100);
    assert_eq!(sb.on_ack(una, nxt, &rel(una, &[(100, 200)])), 100);
    assert_eq!(sb.on_ack(una, nxt, &rel(una, &[(300, 400)])), 100);
    assert_eq!(sb.blocks(), &rel(una, &[(100, 200), (300, 400), (500, 600)])[..]);
    // Adjacent on the left of one and overlapping another.
    assert_eq!(sb.on_ack(una, nxt, &rel(una, &[(200, 350)])), 100);
    assert_eq!(sb.blocks(), &rel(una, &[(100, 400), (500, 600)])[..]);
    // Spanning everything.
    assert_eq!(sb.on_ack(una, nxt, &rel(una, &[(50, 700)])), 650 - 400);
    assert_eq!(sb.blocks(), &rel(una, &[(50, 700)])[..]);
    assert_eq!(sb.sacked_bytes(), 650);
    assert_eq!(sb.highest_sacked(), Some(una + 700));
    assert!(sb.is_sacked(una + 50));
    assert!(sb.is_sacked(una + 699));
    assert!(!sb.is_sacked(una + 700));
    assert!(!sb.is_sacked(una + 49));
}

#[test]
fn blocks_outside_the_window_are_ignored() {
    let mut sb = Scoreboard::new();
    let una = s(5000);
    let nxt = una + 1000;
    let bad = [
        (una - 100, una),      // below the cumulative ACK (a D-SACK)
        (una - 10, una + 10),  // straddles snd_una
        (una, una + 10),       // starts at snd_una: contradicts the ACK
        (nxt - 10, nxt + 1),   // beyond snd_nxt
        (una + 20, una + 20),  // empty
        (una + 30, una + 20),  // inverted
        (nxt + 100, nxt + 200),
    ];
    assert_eq!(sb.on_ack(una, nxt, &bad), 0);
    assert!(sb.is_empty());
    assert_eq!(sb.on_ack(una, nxt, &[(nxt - 10, nxt)]), 10);
}

#[test]
fn dsack_reports_add_nothing() {
    let mut sb = Scoreboard::new();
    let una = s(100);
    let nxt = s(2000);
    sb.on_ack(una, nxt, &rel(una, &[(100, 300)]));
    // RFC 2883: first block is a duplicate inside the second.
    assert_eq!(sb.on_ack(una, nxt, &rel(una, &[(150, 200), (100, 300)])), 0);
    // A D-SACK below the cumulative ACK.
    assert_eq!(sb.on_ack(una + 50, nxt, &[(una, una + 50)]), 0);
    assert_eq!(sb.blocks(), &rel(una, &[(100, 300)])[..]);
}

#[test]
fn cumulative_ack_drops_and_clips_ranges() {
    let mut sb = Scoreboard::new();
    let una = s(0);
    let nxt = s(1000);
    sb.on_ack(una, nxt, &rel(una, &[(100, 200), (300, 400), (500, 600)]));
    assert_eq!(sb.on_ack(s(350), nxt, &[]), 0);
    assert_eq!(sb.blocks(), &[(s(350), s(400)), (s(500), s(600))][..]);
    assert_eq!(sb.sacked_bytes(), 150);
    sb.on_ack(s(600), nxt, &[]);
    assert!(sb.is_empty());
}

#[test]
fn sequence_numbers_wrap_around() {
    let mut sb = Scoreboard::new();
    let una = SeqNum(u32::MAX - 500);
    let nxt = una + 2000; // wrapped past zero
    assert_eq!(nxt.0, 1499);
    let blocks = rel(una, &[(400, 700), (900, 1000), (100, 200)]);
    assert_eq!(sb.on_ack(una, nxt, &blocks), 500);
    assert_eq!(sb.blocks(), &rel(una, &[(100, 200), (400, 700), (900, 1000)])[..]);
    assert!(sb.is_sacked(SeqNum(u32::MAX)));
    assert!(sb.is_sacked(SeqNum(0)));
    assert!(!sb.is_sacked(SeqNum(250)));
    assert_eq!(sb.highest_sacked(), Some(una + 1000));
    // Merge across the wrap point.
    assert_eq!(sb.on_ack(una, nxt, &rel(una, &[(650, 950)])), 200);
    assert_eq!(sb.blocks(), &rel(una, &[(100, 200), (400, 1000)])[..]);
    assert_eq!(sb.next_hole(una, una + 1000), Some((una, una + 100)));
    assert_eq!(sb.next_hole(una + 100, una + 1000), Some((una + 200, una + 400)));
    // ACK past the wrap point.
    sb.on_ack(SeqNum(200), nxt, &[]);
    assert_eq!(sb.blocks(), &[(SeqNum(200), una + 1000)][..], "clipped at the new snd_una");
}

#[test]
fn block_count_is_bounded_and_the_highest_range_is_forgotten() {
    let mut sb = Scoreboard::new();
    let una = s(0);
    let nxt = s(100_000);
    for i in 1..=Scoreboard::MAX_BLOCKS {
        sb.on_ack(una, nxt, &[(s(i as u32 * 100), s(i as u32 * 100 + 10))]);
    }
    assert_eq!(sb.block_count(), Scoreboard::MAX_BLOCKS);
    // A new highest range does not fit.
    assert_eq!(sb.on_ack(una, nxt, &[(s(50_000), s(50_010))]), 0);
    assert_eq!(sb.highest_sacked(), Some(s(3210)));
    // A new lower range displaces the highest.
    assert_eq!(sb.on_ack(una, nxt, &[(s(50), s(60))]), 0, "10 gained, 10 forgotten");
    assert_eq!(sb.block_count(), Scoreboard::MAX_BLOCKS);
    assert_eq!(sb.blocks()[0], (s(50), s(60)));
    assert_eq!(sb.highest_sacked(), Some(s(3110)));
    // Merging still works when full.
    assert_eq!(sb.on_ack(una, nxt, &[(s(60), s(100))]), 40);
    assert_eq!(sb.block_count(), Scoreboard::MAX_BLOCKS - 1);
}

#[test]
fn is_lost_thresholds() {
    let mss = 100;
    let una = s(0);
    let nxt = s(10_000);
    let mut sb = Scoreboard::new();
    // Two segments SACKed above 0: exactly (3-1)*mss bytes, one range.
    sb.on_ack(una, nxt, &[(s(1000), s(1200))]);
    assert!(!sb.is_lost(s(0), mss, 3));
    sb.on_ack(una, nxt, &[(s(1200), s(1201))]);
    assert!(sb.is_lost(s(0), mss, 3), "more than 2*mss bytes above");
    // Bytes count only strictly above seq.
    assert!(!sb.is_lost(s(1000), mss, 3));
    assert!(!sb.is_lost(s(1200), mss, 3));

    // Three tiny discontiguous ranges meet DupThresh by count.
    let mut sb = Scoreboard::new();
    sb.on_ack(una, nxt, &[(s(100), s(101)), (s(200), s(201))]);
    assert!(!sb.is_lost(s(0), mss, 3));
    sb.on_ack(una, nxt, &[(s(300), s(301))]);
    assert!(sb.is_lost(s(0), mss, 3));
    assert!(!sb.is_lost(s(100), mss, 3));
    assert!(sb.is_lost(s(99), mss, 3));
    // A lower threshold needs less evidence.
    assert!(sb.is_lost(s(100), mss, 2));
    assert!(!sb.is_lost(s(300), mss, 1));
    assert!(sb.is_lost(s(299), mss, 1));
}

#[test]
fn next_hole_finds_unsacked_ranges_below_the_limit() {
    let mut sb = Scoreboard::new();
    let una = s(0);
    sb.on_ack(una, s(1000), &[(s(100), s(200)), (s(300), s(400))]);
    let limit = sb.highest_sacked().unwrap();
    assert_eq!(sb.next_hole(s(0), limit), Some((s(0), s(100))));
    assert_eq!(sb.next_hole(s(50), limit), Some((s(50), s(100))));
    assert_eq!(sb.next_hole(s(100), limit), Some((s(200), s(300))));
    assert_eq!(sb.next_hole(s(250), limit), Some((s(250), s(300))));
    assert_eq!(sb.next_hole(s(300), limit), None);
    assert_eq!(sb.next_hole(s(300), s(500)), Some((s(400), s(500))));
    assert_eq!(sb.next_hole(s(0), s(50)), Some((s(0), s(50))));
    assert_eq!(Scoreboard::new().next_hole(s(0), s(10)), Some((s(0), s(10))));
    assert_eq!(Scoreboard::new().next_hole(s(10), s(10)), None);
}

#[test]
fn pipe_without_retransmissions() {
    let mss = 100;
    let una = s(0);
    let nxt = s(1000);
    let mut sb = Scoreboard::new();
    assert_eq!(sb.pipe(una, nxt, una, mss, 3), 1000);
    // Segment 0 lost; 1..=3 SACKed; 4..10 in flight.
    sb.on_ack(una, nxt, &[(s(100), s(400))]);
    assert_eq!(sb.pipe(una, nxt, una, mss, 3), 600, "the hole is lost, SACKed bytes are out");
    // Only two segments SACKed: the hole is not yet deemed lost.
    let mut sb = Scoreboard::new();
    sb.on_ack(una, nxt, &[(s(100), s(300))]);
    assert_eq!(sb.pipe(una, nxt, una, mss, 3), 800);
}

#[test]
fn pipe_counts_retransmitted_bytes_again() {
    let mss = 100;
    let una = s(0);
    let nxt = s(1000);
    let mut sb = Scoreboard::new();
    sb.on_ack(una, nxt, &[(s(100), s(400)), (s(500), s(600))]);
    // Holes: [0,100) is lost (400 SACKed bytes above); [400,500) is not
    // (100 bytes, one range above) and [600,1000) has nothing above.
    assert_eq!(sb.pipe(una, nxt, una, mss, 3), 100 + 400);
    // [0,100) retransmitted: counted once as a retransmission.
    assert_eq!(sb.pipe(una, nxt, s(100), mss, 3), 100 + 400 + 100);
    // Retransmitting [400,500) too: not lost and retransmitted, so it counts twice.
    assert_eq!(sb.pipe(una, nxt, s(500), mss, 3), 100 + 400 + 100 + 100);
}

#[test]
fn pipe_wraps_around() {
    let una = SeqNum(u32::MAX - 199);
    let nxt = una + 1000;
    let mut sb = Scoreboard::new();
    sb.on_ack(una, nxt, &rel(una, &[(100, 400)]));
    assert_eq!(sb.pipe(una, nxt, una, 100, 3), 600);
    assert_eq!(sb.pipe(una, nxt, una + 100, 100, 3), 700);
}

// ---- model check --------------------------------------------------------

const WINDOW: usize = 160;

/// A bitmap of SACKed offsets from `base`, updated with the same rules.
struct Model {
    sacked: [bool; WINDOW],
}

impl Model {
    fn ranges(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < WINDOW {
            if self.sacked[i] {
                let start = i;
                while i < WINDOW && self.sacked[i] {
                    i += 1;
                }
                out.push((start, i));
            } else {
                i += 1;
            }
        }
        out
    }
    fn count(&self) -> usize {
        self.sacked.iter().filter(|&&b| b).count()
    }
    fn above(&self, off: usize) -> (usize, usize) {
        let bytes = self.sacked.iter().skip(off + 1).filter(|&&b| b).count();
        let ranges = self.ranges().iter().filter(|&&(_, e)| e > off + 1).count();
        (bytes, ranges)
    }
    fn is_lost(&self, off: usize, mss: usize, dup: usize) -> bool {
        let (bytes, ranges) = self.above(off);
        ranges >= dup || bytes > (dup - 1) * mss
    }
}

proptest! {
    #[test]
    fn scoreboard_matches_a_bitmap_model(
        base_hi in prop_oneof![Just(u32::MAX - 80), Just(0u32), any::<u32>()],
        acks in proptest::collection::vec(
            (0usize..20, proptest::collection::vec((0usize..WINDOW + 10, 0usize..12), 0..5)),
            1..30),
        mss in 1usize..20,
        dup in 1usize..5,
    ) {
        let base = SeqNum(base_hi);
        let nxt_off = WINDOW;
        let nxt = base + nxt_off;
        let mut una_off = 0usize;
        let mut sb = Scoreboard::new();
        let mut model = Model { sacked: [false; WINDOW] };
        for (advance, blocks) in acks {
            una_off = (una_off + advance).min(nxt_off);
            for b in model.sacked.iter_mut().take(una_off) { *b = false; }
            let before = model.count();
            let wire: Vec<_> = blocks.iter().map(|&(a, len)| (base + a, base + a + len)).collect();
            for &(a, len) in &blocks {
                let e = a + len;
                if a > una_off && len > 0 && e <= nxt_off {
                    for b in &mut model.sacked[a..e] { *b = true; }
                    let ranges = model.ranges();
                    if ranges.len() > Scoreboard::MAX_BLOCKS {
                        let (hs, he) = ranges[ranges.len() - 1];
                        for b in &mut model.sacked[hs..he] { *b = false; }
                    }
                }
            }
            let newly = sb.on_ack(base + una_off, nxt, &wire);
            prop_assert_eq!(newly, model.count().saturating_sub(before));
            prop_assert_eq!(sb.sacked_bytes(), model.count());
            let expected: Vec<_> = model.ranges().iter().map(|&(a, e)| (base + a, base + e)).collect();
            prop_assert_eq!(sb.blocks(), &expected[..]);
            prop_assert_eq!(sb.highest_sacked(), expected.last().map(|&(_, e)| e));

            let high_rxt_off = una_off + (advance * 7) % (nxt_off - una_off + 1);
            let mut pipe = 0;
            for off in una_off..nxt_off {
                prop_assert_eq!(sb.is_sacked(base + off), model.sacked[off]);
                prop_assert_eq!(sb.is_lost(base + off, mss, dup), model.is_lost(off, mss, dup), "off {}", off);
                if !model.sacked[off] {
                    if !model.is_lost(off, mss, dup) { pipe += 1; }
                    if off < high_rxt_off { pipe += 1; }
                }
            }
            prop_assert_eq!(sb.pipe(base + una_off, nxt, base + high_rxt_off, mss, dup), pipe);

            let limit_off = expected.last().map_or(una_off, |&(_, e)| e.distance_from(base));
            let hole = sb.next_hole(base + una_off, base + limit_off);
            let model_hole = (una_off..limit_off).find(|&o| !model.sacked[o]).map(|start| {
                let end = (start..limit_off).find(|&o| model.sacked[o]).unwrap_or(limit_off);
                (base + start, base + end)
            });
            prop_assert_eq!(hole, model_hole);
        }
    }
}
