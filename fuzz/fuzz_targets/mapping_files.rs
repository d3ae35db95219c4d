//! cargo-fuzz target: see `hubsync_fuzz::mapping_files`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hubsync_fuzz::mapping_files(data));
