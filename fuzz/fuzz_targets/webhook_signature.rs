//! cargo-fuzz target: see `hubsync_fuzz::webhook_signature`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hubsync_fuzz::webhook_signature(data));
