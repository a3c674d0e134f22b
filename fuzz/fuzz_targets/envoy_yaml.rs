//! The envoyproxy/ratelimit YAML loader on arbitrary files (up to three,
//! separated by NUL), with and without merging a domain's files: errors,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ratelimitd_policy::EnvoyFileOptions;

fuzz_target!(|text: &str| {
    let files: Vec<(String, String)> = text
        .split('\0')
        .take(3)
        .enumerate()
        .map(|(index, file)| (format!("fuzz{index}.yaml"), file.to_string()))
        .collect();
    for merge_domains in [false, true] {
        let options = EnvoyFileOptions {
            merge_domains,
            ..EnvoyFileOptions::default()
        };
        let _ = ratelimitd_policy::load_envoy_files(&files, options);
    }
});
