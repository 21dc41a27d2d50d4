//! Arbitrary segment sequences against one connection, under proptest. The
//! model lives in `stack/fuzz/src/segment_check.rs`, shared with the cargo-fuzz
//! target `segment_sequence`, so `make test` and the fuzzer check the same
//! properties.

#[path = "../fuzz/src/segment_check.rs"]
mod segment_check;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use segment_check::{run, steps_from_bytes, Step};

/// Mostly flag combinations a real peer sends, sometimes any bits.
fn flags() -> impl Strategy<Value = u8> {
    prop_oneof![3 => proptest::sample::select(&segment_check::SENSIBLE_FLAGS[..]), 1 => any::<u8>()]
}

/// Sequence/ack offsets: mostly the exact edge the connection expects, since
/// acceptable values are a thin target, sometimes near it, sometimes anywhere.
fn delta() -> impl Strategy<Value = i32> {
    prop_oneof![2 => Just(0), 1 => -3000i32..3000, 1 => -70_000i32..70_000]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        20 => (flags(), delta(), delta(), any::<u16>(), 0u16..3000, any::<u8>(), any::<(u32, u32)>(),
              proptest::collection::vec((-70_000i32..70_000, 0u16..5000), 0..5))
            .prop_map(|(flags, seq_delta, ack_delta, window, len, opts, ts, sack)| Step::Segment { flags, seq_delta, ack_delta, window, len, opts, ts, sack }),
        3 => (0u32..5_000_000).prop_map(Step::Advance),
        3 => (0u16..20_000).prop_map(Step::AppSend),
        3 => (0u16..20_000).prop_map(Step::AppRecv),
        1 => Just(Step::AppClose),
        1 => Just(Step::AppShutdown),
        1 => Just(Step::AppAbort),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn active_open_survives_any_segment_sequence(steps in proptest::collection::vec(step(), 1..60)) {
        run(steps, false);
    }

    #[test]
    fn passive_open_survives_any_segment_sequence(steps in proptest::collection::vec(step(), 1..60)) {
        run(steps, true);
    }

    /// The fuzzer's byte decoding, so its programs are exercised here too.
    #[test]
    fn fuzzer_byte_programs(data in proptest::collection::vec(any::<u8>(), 0..1500), passive in any::<bool>()) {
        run(steps_from_bytes(&data), passive);
    }
}

/// The properties above only mean something if the adversary gets past the
/// handshake: over a fixed set of generated programs, a fair share must reach
/// ESTABLISHED and deliver data to the application.
#[test]
fn adversary_reaches_established_and_delivers_data() {
    let mut runner = TestRunner::new_with_rng(Config::default(), proptest::test_runner::TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha));
    let strategy = (proptest::collection::vec(step(), 1..60), any::<bool>());
    let (mut established, mut delivered) = (0, 0);
    const PROGRAMS: usize = 400;
    for _ in 0..PROGRAMS {
        let (steps, passive) = strategy.new_tree(&mut runner).expect("strategy").current();
        let reach = run(steps, passive);
        established += reach.established as usize;
        delivered += (reach.bytes_received > 0) as usize;
    }
    eprintln!("reach: {established}/{PROGRAMS} established, {delivered}/{PROGRAMS} delivered");
    assert!(established * 10 >= PROGRAMS, "only {established}/{PROGRAMS} programs reached ESTABLISHED");
    assert!(delivered * 20 >= PROGRAMS, "only {delivered}/{PROGRAMS} programs delivered data");
}
