//! Checks shared by the fuzz targets and by the property tests in `stack/tests/`
//! (which includes `frame_check.rs` by path, so the property tests exercise
//! exactly what the fuzzer does).
pub mod frame_check;
pub mod segment_check;
