//! Drives one TCP connection (active or passive open) with an arbitrary
//! sequence of peer segments, timer advances and application calls.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_stack_fuzz::segment_check::{run, steps_from_bytes};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    run(steps_from_bytes(rest), mode & 1 == 1);
});
