//! The policy file loader on arbitrary YAML: errors, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ratelimitd_policy::Format;

fuzz_target!(|text: &str| {
    let _ = ratelimitd_policy::load(text, Format::Yaml, "fuzz.yaml", &[]);
});
