//! Structured log events about decisions.

use std::sync::atomic::{AtomicBool, Ordering};
use xxhash_rust::xxh3::xxh3_64;

/// Whether denial events carry the raw counter key (off by default).
static RAW_KEYS: AtomicBool = AtomicBool::new(false);

/// Makes denial events carry the raw counter key as `key`, next to its
/// hash (`--log-raw-keys`: for debugging; keys hold IPs, users, API keys).
pub fn log_raw_keys(on: bool) {
    RAW_KEYS.store(on, Ordering::Relaxed);
}

/// Logs one denial: which rule, for which domain, with how much is left and
/// when to retry. The counter key (which holds client IPs, users, API keys)
/// is logged as a hash: denials of one client share it, and nothing
/// personal reaches the logs unless raw keys were asked for.
pub fn denied(api: &str, domain: &str, rule: &str, key: &str, remaining: u64, retry_after_ms: u64) {
    let key_hash = format!("{:016x}", xxh3_64(key.as_bytes()));
    let raw = RAW_KEYS.load(Ordering::Relaxed).then_some(key);
    tracing::info!(
        target: "ratelimitd::denial",
        api,
        domain,
        rule,
        key_hash,
        key = raw,
        remaining,
        retry_after_ms,
        "denied"
    );
}
