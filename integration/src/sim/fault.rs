//! One direction of a simulated cable ("pipe"): seeded loss, duplication,
//! reordering, delay, jitter, bit corruption, a bandwidth limit and a
//! tail-drop queue (after smoltcp's `phy::FaultInjector` and Linux netem).
//!
//! Every frame draws the same number of random values whatever the settings,
//! so which frames a seed drops does not change when, say, jitter is switched on.

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sluice_stack::time::{Duration, Instant};

use super::frame::{ETHERNET_HEADER_LEN, ETHERTYPE_IPV4};

/// The faults of one direction. `Faults::default()` is a perfect, instant wire.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Faults {
    /// Probability (0..=1) that a frame is lost.
    pub drop: f64,
    /// Probability that a frame is delivered twice (the copy gets its own jitter).
    pub duplicate: f64,
    /// Probability that a frame is held back by an extra `1..=reorder_delay`.
    pub reorder: f64,
    pub reorder_delay: Duration,
    /// Fixed one-way propagation delay.
    pub delay: Duration,
    /// Extra delay drawn uniformly from `0..=jitter` per frame (may reorder, like netem).
    pub jitter: Duration,
    /// Probability that one random bit of an IPv4 frame, after the Ethernet
    /// header, is flipped. This models corruption the Ethernet FCS missed
    /// (or that happened in a middlebox), which the IPv4/TCP checksums must
    /// catch. ARP has no checksum of its own, so ARP frames are spared: a flipped
    /// ARP reply would poison a cache, a failure real FCS prevents.
    pub corrupt: f64,
    /// Serialization rate in bytes per second (`None`: unlimited).
    pub bandwidth: Option<u64>,
    /// Tail-drop limit in bytes. With a bandwidth limit it bounds the bytes
    /// waiting for (or in) serialization, i.e. a router's output buffer;
    /// without one it bounds the bytes in flight on this pipe.
    pub queue_limit: Option<usize>,
}

impl Faults {
    /// A lossless wire with only a propagation delay.
    pub fn delay(delay: Duration) -> Faults {
        Faults {
            delay,
            ..Faults::default()
        }
    }
    /// Loss `drop` (0..=1) on a wire with propagation delay `delay`.
    pub fn lossy(drop: f64, delay: Duration) -> Faults {
        Faults {
            drop,
            delay,
            ..Faults::default()
        }
    }
}

/// Why a pipe did not carry a frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum DropReason {
    /// Random loss.
    Loss,
    /// The queue limit was exceeded (tail drop).
    QueueFull,
}

/// What a pipe decided for one frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    Dropped(DropReason),
    /// Deliver at `at`; if `duplicate_at` is set, deliver a copy then too.
    /// The frame was corrupted in place if `corrupted` (which bit).
    Deliver {
        at: Instant,
        duplicate_at: Option<Instant>,
        corrupted_bit: Option<usize>,
    },
}

/// Counters of one pipe.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct PipeCounters {
    pub offered: u64,
    pub offered_bytes: u64,
    pub dropped_loss: u64,
    pub dropped_queue: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub corrupted: u64,
    pub delivered: u64,
}

/// One direction of a cable, with its own random stream.
pub struct Pipe {
    faults: Faults,
    rng: ChaCha8Rng,
    /// When the serializer is free again, in nanoseconds (finer than the
    /// microsecond clock so that many small frames do not round up).
    busy_until_ns: u64,
    /// Bytes accepted and not yet delivered.
    in_flight: usize,
    counters: PipeCounters,
}

/// The random values drawn for every frame.
struct Draw {
    drop: f64,
    duplicate: f64,
    reorder: f64,
    corrupt: f64,
    jitter: u64,
    duplicate_jitter: u64,
    reorder_extra: u64,
    corrupt_bit: u64,
}

impl Pipe {
    /// A pipe whose randomness is stream `stream` of the ChaCha8 generator
    /// seeded with `seed` (each pipe of a link gets its own stream).
    pub fn new(faults: Faults, seed: u64, stream: u64) -> Pipe {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        Pipe {
            faults,
            rng,
            busy_until_ns: 0,
            in_flight: 0,
            counters: PipeCounters::default(),
        }
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }
    /// Changes the faults from now on (e.g. a link that heals mid-test).
    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
    }
    pub fn counters(&self) -> &PipeCounters {
        &self.counters
    }
    pub fn in_flight_bytes(&self) -> usize {
        self.in_flight
    }

    fn draw(&mut self) -> Draw {
        Draw {
            drop: self.rng.gen(),
            duplicate: self.rng.gen(),
            reorder: self.rng.gen(),
            corrupt: self.rng.gen(),
            jitter: self.rng.next_u64(),
            duplicate_jitter: self.rng.next_u64(),
            reorder_extra: self.rng.next_u64(),
            corrupt_bit: self.rng.next_u64(),
        }
    }

    /// Bytes still waiting for the serializer at `now` (fluid approximation).
    fn backlog_bytes(&self, now_ns: u64, bandwidth: u64) -> usize {
        let wait_ns = self.busy_until_ns.saturating_sub(now_ns);
        (u128::from(wait_ns) * u128::from(bandwidth) / 1_000_000_000) as usize
    }

    /// Decides the fate of `frame`, sent into the pipe at `now`; flips a bit
    /// of it in place when it is corrupted.
    pub fn admit(&mut self, now: Instant, frame: &mut [u8]) -> Verdict {
        let d = self.draw();
        let f = self.faults;
        let len = frame.len();
        self.counters.offered += 1;
        self.counters.offered_bytes += len as u64;
        if d.drop < f.drop {
            self.counters.dropped_loss += 1;
            return Verdict::Dropped(DropReason::Loss);
        }

        let now_ns = now.total_micros().saturating_mul(1000);
        if let Some(limit) = f.queue_limit {
            let queued = match f.bandwidth {
                Some(bw) if bw > 0 => self.backlog_bytes(now_ns, bw),
                _ => self.in_flight,
            };
            if queued + len > limit {
                self.counters.dropped_queue += 1;
                return Verdict::Dropped(DropReason::QueueFull);
            }
        }

        let mut sent_at = now;
        if let Some(bw) = f.bandwidth.filter(|&bw| bw > 0) {
            let start = self.busy_until_ns.max(now_ns);
            let serialization_ns = (len as u128 * 1_000_000_000).div_ceil(u128::from(bw)) as u64;
            self.busy_until_ns = start.saturating_add(serialization_ns);
            sent_at = Instant::from_micros(self.busy_until_ns.div_ceil(1000));
        }

        let mut at = sent_at + f.delay + uniform(d.jitter, f.jitter);
        if d.reorder < f.reorder && f.reorder_delay > Duration::ZERO {
            self.counters.reordered += 1;
            at += Duration::from_micros(1 + d.reorder_extra % f.reorder_delay.total_micros());
        }

        let mut corrupted_bit = None;
        let datagram = ipv4_datagram_len(frame);
        if d.corrupt < f.corrupt && datagram > 0 {
            let bits = (datagram * 8) as u64;
            let bit = ETHERNET_HEADER_LEN * 8 + (d.corrupt_bit % bits) as usize;
            frame[bit / 8] ^= 1 << (bit % 8);
            self.counters.corrupted += 1;
            corrupted_bit = Some(bit);
        }

        let mut duplicate_at = None;
        self.in_flight += len;
        if d.duplicate < f.duplicate {
            self.counters.duplicated += 1;
            self.in_flight += len;
            duplicate_at = Some(sent_at + f.delay + uniform(d.duplicate_jitter, f.jitter));
        }
        Verdict::Deliver {
            at,
            duplicate_at,
            corrupted_bit,
        }
    }

    /// A frame of `len` bytes admitted earlier has left the pipe.
    pub fn delivered(&mut self, len: usize) {
        self.in_flight = self.in_flight.saturating_sub(len);
        self.counters.delivered += 1;
    }
}

/// The length of the IPv4 datagram in an Ethernet frame (its total-length
/// field, bounded by the frame), or 0 if it is not IPv4. Ethernet padding
/// after it is covered by no checksum, so corruption there would go unseen.
fn ipv4_datagram_len(frame: &[u8]) -> usize {
    if frame.get(12..14) != Some(&ETHERTYPE_IPV4.to_be_bytes()[..]) {
        return 0;
    }
    match frame.get(ETHERNET_HEADER_LEN + 2..ETHERNET_HEADER_LEN + 4) {
        Some(&[hi, lo]) => {
            usize::from(u16::from_be_bytes([hi, lo])).min(frame.len() - ETHERNET_HEADER_LEN)
        }
        _ => 0,
    }
}

/// `0..=max` from a raw random word.
fn uniform(raw: u64, max: Duration) -> Duration {
    match max.total_micros() {
        0 => Duration::ZERO,
        m => Duration::from_micros(raw % (m + 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An all-zero IPv4 frame whose datagram fills it.
    fn frame(len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        if len >= 18 {
            f[16..18].copy_from_slice(&((len - 14) as u16).to_be_bytes());
        }
        f
    }

    #[test]
    fn drop_rate_matches_probability_within_tolerance() {
        for p in [0.01, 0.05, 0.2, 0.5] {
            let mut pipe = Pipe::new(Faults::lossy(p, Duration::ZERO), 42, 0);
            let n = 100_000;
            let mut dropped = 0;
            for _ in 0..n {
                if let Verdict::Dropped(DropReason::Loss) =
                    pipe.admit(Instant::ZERO, &mut frame(100))
                {
                    dropped += 1;
                }
            }
            let rate = dropped as f64 / n as f64;
            // Binomial standard deviation is at most 0.0016 here; allow ~5 sigma.
            assert!((rate - p).abs() < 0.008, "p={p} measured {rate}");
            assert_eq!(pipe.counters().dropped_loss, dropped);
        }
    }

    #[test]
    fn fixed_delay_without_jitter_is_exact() {
        let mut pipe = Pipe::new(Faults::delay(Duration::from_millis(5)), 1, 0);
        let now = Instant::from_millis(100);
        assert_eq!(
            pipe.admit(now, &mut frame(60)),
            Verdict::Deliver {
                at: Instant::from_millis(105),
                duplicate_at: None,
                corrupted_bit: None
            }
        );
    }

    #[test]
    fn jitter_stays_within_bounds_and_varies() {
        let faults = Faults {
            delay: Duration::from_millis(1),
            jitter: Duration::from_micros(500),
            ..Faults::default()
        };
        let mut pipe = Pipe::new(faults, 7, 0);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..1000 {
            let Verdict::Deliver { at, .. } = pipe.admit(Instant::ZERO, &mut frame(60)) else {
                panic!("no loss configured")
            };
            assert!(
                at >= Instant::from_micros(1000) && at <= Instant::from_micros(1500),
                "{at:?}"
            );
            seen.insert(at);
        }
        assert!(
            seen.len() > 100,
            "jitter should spread deliveries, saw {} distinct",
            seen.len()
        );
    }

    #[test]
    fn bandwidth_serializes_back_to_back_frames() {
        // 1,000,000 bytes/s: a 1000-byte frame takes 1 ms on the wire.
        let faults = Faults {
            bandwidth: Some(1_000_000),
            delay: Duration::from_millis(2),
            ..Faults::default()
        };
        let mut pipe = Pipe::new(faults, 1, 0);
        for i in 1..=10u64 {
            let v = pipe.admit(Instant::ZERO, &mut frame(1000));
            assert_eq!(
                v,
                Verdict::Deliver {
                    at: Instant::from_millis(2 + i),
                    duplicate_at: None,
                    corrupted_bit: None
                }
            );
        }
        // An idle serializer starts at `now`, not where it last stopped.
        let v = pipe.admit(Instant::from_secs(1), &mut frame(500));
        assert_eq!(
            v,
            Verdict::Deliver {
                at: Instant::from_micros(1_002_500),
                duplicate_at: None,
                corrupted_bit: None
            }
        );
    }

    #[test]
    fn queue_limit_tail_drops_behind_a_slow_serializer() {
        let faults = Faults {
            bandwidth: Some(1_000_000),
            queue_limit: Some(3000),
            ..Faults::default()
        };
        let mut pipe = Pipe::new(faults, 1, 0);
        let verdicts: Vec<_> = (0..5)
            .map(|_| pipe.admit(Instant::ZERO, &mut frame(1000)))
            .collect();
        assert!(matches!(verdicts[0], Verdict::Deliver { .. }));
        assert!(matches!(verdicts[2], Verdict::Deliver { .. }));
        assert_eq!(verdicts[3], Verdict::Dropped(DropReason::QueueFull));
        assert_eq!(verdicts[4], Verdict::Dropped(DropReason::QueueFull));
        // 1.5 ms later one and a half frames have drained: one more fits.
        assert!(matches!(
            pipe.admit(Instant::from_micros(1500), &mut frame(1000)),
            Verdict::Deliver { .. }
        ));
        assert_eq!(pipe.counters().dropped_queue, 2);
    }

    #[test]
    fn queue_limit_without_bandwidth_bounds_bytes_in_flight() {
        let faults = Faults {
            delay: Duration::from_millis(10),
            queue_limit: Some(2000),
            ..Faults::default()
        };
        let mut pipe = Pipe::new(faults, 1, 0);
        assert!(matches!(
            pipe.admit(Instant::ZERO, &mut frame(1000)),
            Verdict::Deliver { .. }
        ));
        assert!(matches!(
            pipe.admit(Instant::ZERO, &mut frame(1000)),
            Verdict::Deliver { .. }
        ));
        assert_eq!(
            pipe.admit(Instant::ZERO, &mut frame(14)),
            Verdict::Dropped(DropReason::QueueFull)
        );
        pipe.delivered(1000);
        assert!(matches!(
            pipe.admit(Instant::ZERO, &mut frame(1000)),
            Verdict::Deliver { .. }
        ));
    }

    #[test]
    fn corruption_flips_exactly_one_bit_past_the_ethernet_header() {
        let mut pipe = Pipe::new(
            Faults {
                corrupt: 1.0,
                ..Faults::default()
            },
            3,
            0,
        );
        for _ in 0..200 {
            let mut f = frame(100);
            let Verdict::Deliver {
                corrupted_bit: Some(bit),
                ..
            } = pipe.admit(Instant::ZERO, &mut f)
            else {
                panic!("corruption probability is 1")
            };
            assert!((ETHERNET_HEADER_LEN * 8..800).contains(&bit));
            let clean = frame(100);
            let flipped: u32 = f
                .iter()
                .zip(&clean)
                .map(|(a, b)| (a ^ b).count_ones())
                .sum();
            assert_eq!(flipped, 1);
            assert_eq!(f[bit / 8] ^ clean[bit / 8], 1 << (bit % 8));
        }
        // Padding after the datagram is left alone: no checksum covers it.
        for _ in 0..200 {
            let mut padded = frame(60);
            padded[16..18].copy_from_slice(&40u16.to_be_bytes());
            let Verdict::Deliver {
                corrupted_bit: Some(bit),
                ..
            } = pipe.admit(Instant::ZERO, &mut padded)
            else {
                panic!()
            };
            assert!(bit < (14 + 40) * 8, "bit {bit} is in the padding");
        }
        let mut arp = frame(60);
        arp[12..14].copy_from_slice(&crate::sim::frame::ETHERTYPE_ARP.to_be_bytes());
        let Verdict::Deliver { corrupted_bit, .. } = pipe.admit(Instant::ZERO, &mut arp) else {
            panic!()
        };
        assert_eq!(corrupted_bit, None, "ARP has no checksum to catch a flip");
    }

    #[test]
    fn duplicates_and_reorders_at_their_rates() {
        let faults = Faults {
            duplicate: 0.1,
            reorder: 0.2,
            reorder_delay: Duration::from_millis(3),
            delay: Duration::from_millis(1),
            ..Faults::default()
        };
        let mut pipe = Pipe::new(faults, 9, 0);
        let (mut dups, mut late) = (0, 0);
        let n = 20_000;
        for _ in 0..n {
            let Verdict::Deliver {
                at, duplicate_at, ..
            } = pipe.admit(Instant::ZERO, &mut frame(64))
            else {
                panic!()
            };
            if let Some(d) = duplicate_at {
                assert_eq!(d, Instant::from_millis(1));
                dups += 1;
            }
            if at > Instant::from_millis(1) {
                assert!(at <= Instant::from_millis(4));
                late += 1;
            }
        }
        assert!((dups as f64 / n as f64 - 0.1).abs() < 0.015, "{dups}");
        assert!((late as f64 / n as f64 - 0.2).abs() < 0.015, "{late}");
    }

    #[test]
    fn same_seed_same_decisions_other_seed_or_stream_different() {
        let faults = Faults {
            drop: 0.3,
            jitter: Duration::from_millis(1),
            ..Faults::default()
        };
        let run = |seed, stream| {
            let mut pipe = Pipe::new(faults, seed, stream);
            (0..500)
                .map(|_| pipe.admit(Instant::ZERO, &mut frame(64)))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(5, 0), run(5, 0));
        assert_ne!(run(5, 0), run(6, 0));
        assert_ne!(run(5, 0), run(5, 1));
    }

    #[test]
    fn loss_pattern_does_not_depend_on_other_settings() {
        let plain = Faults::lossy(0.25, Duration::ZERO);
        let busy = Faults {
            jitter: Duration::from_millis(2),
            duplicate: 0.5,
            corrupt: 0.5,
            ..plain
        };
        let pattern = |faults| {
            let mut pipe = Pipe::new(faults, 11, 0);
            (0..500)
                .map(|_| {
                    matches!(
                        pipe.admit(Instant::ZERO, &mut frame(64)),
                        Verdict::Dropped(_)
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(pattern(plain), pattern(busy));
    }
}
