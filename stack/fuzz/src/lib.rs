//! Checks shared by the fuzz targets and by `stack/tests/wire_frames.rs`
//! (which includes `frame_check.rs` by path, so the property tests exercise
//! exactly what the fuzzer does).
pub mod frame_check;
