//! cargo-fuzz target: see `hubsync_fuzz::filter_params`.
#![no_main]

use std::sync::OnceLock;

static MAPPINGS: OnceLock<hubsync_mapping::Mappings> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| hubsync_fuzz::filter_params(MAPPINGS.get_or_init(hubsync_fuzz::shipped_mappings), data));
