//! The envoyproxy/ratelimit YAML loader on an arbitrary file: errors, never
//! a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = ratelimitd_policy::load_envoy_files(&[("fuzz.yaml".to_string(), text.to_string())]);
});
