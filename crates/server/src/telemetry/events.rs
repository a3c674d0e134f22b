//! Structured log events about decisions.

use xxhash_rust::xxh3::xxh3_64;

/// Where denial events go and what they carry.
#[derive(Debug, Clone, Copy, Default)]
pub struct DenialEvents {
    /// Carry the raw counter key as `key`, next to its hash
    /// (`--log-raw-keys`: for debugging; keys hold IPs, users, API keys).
    pub raw_keys: bool,
}

impl DenialEvents {
    /// Logs one denial: which rule, for which domain, with how much is left
    /// and when to retry. The counter key (which holds client IPs, users,
    /// API keys) is logged as a hash: denials of one client share it, and
    /// nothing personal reaches the logs unless raw keys were asked for.
    pub fn denied(
        &self,
        api: &str,
        domain: &str,
        rule: &str,
        key: &str,
        remaining: u64,
        retry_after_ms: u64,
    ) {
        let key_hash = format!("{:016x}", xxh3_64(key.as_bytes()));
        let raw = self.raw_keys.then_some(key);
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
}
