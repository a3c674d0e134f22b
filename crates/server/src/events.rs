//! Structured log events about decisions.

use xxhash_rust::xxh3::xxh3_64;

/// Logs one denial: which rule, for which domain, with how much is left and
/// when to retry. The counter key (which holds client IPs, users, API keys)
/// is logged as a hash only: denials of one client share it, and nothing
/// personal reaches the logs.
pub fn denied(api: &str, domain: &str, rule: &str, key: &str, remaining: u64, retry_after_ms: u64) {
    tracing::info!(
        target: "ratelimitd::denial",
        api,
        domain,
        rule,
        key_hash = %format!("{:016x}", xxh3_64(key.as_bytes())),
        remaining,
        retry_after_ms,
        "denied"
    );
}
