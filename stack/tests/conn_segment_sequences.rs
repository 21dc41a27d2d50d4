//! Arbitrary segment sequences against one connection, under proptest. The
//! model lives in `stack/fuzz/src/segment_check.rs`, shared with the cargo-fuzz
//! target `segment_sequence`, so `make test` and the fuzzer check the same
//! properties.

#[path = "../fuzz/src/segment_check.rs"]
mod segment_check;

use proptest::prelude::*;
use segment_check::{run, steps_from_bytes, Step};

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (any::<u8>(), -70_000i32..70_000, -70_000i32..70_000, any::<u16>(), 0u16..3000, any::<u8>(), any::<(u32, u32)>(),
              proptest::collection::vec((-70_000i32..70_000, 0u16..5000), 0..5))
            .prop_map(|(flags, seq_delta, ack_delta, window, len, opts, ts, sack)| Step::Segment { flags, seq_delta, ack_delta, window, len, opts, ts, sack }),
        2 => (0u32..5_000_000).prop_map(Step::Advance),
        1 => (0u16..20_000).prop_map(Step::AppSend),
        1 => (0u16..20_000).prop_map(Step::AppRecv),
        1 => Just(Step::AppClose),
        1 => Just(Step::AppShutdown),
        1 => Just(Step::AppAbort),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, max_shrink_iters: 2000, ..ProptestConfig::default() })]

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
