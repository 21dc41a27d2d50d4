//! Parses arbitrary bytes as an Ethernet frame all the way down, re-emits
//! every layer that parsed and checks the re-parse is equal.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sluice_stack_fuzz::frame_check::check_frame(data);
});
