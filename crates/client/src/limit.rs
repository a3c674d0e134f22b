//! Limits a request declares, built without spelling every proto field.

use ratelimitd_proto::v1::limit_status::Algorithm;
use ratelimitd_proto::v1::DeclaredLimit;

/// A limit the caller declares with its request, decided by the service
/// together with the policy's rules (the policy's `declared:` section must
/// accept the domain; its overrides win).
///
/// ```
/// use ratelimitd_client::{Algorithm, Limit};
/// let login = Limit::new("views.login", "5/m").key("ip").algorithm(Algorithm::SlidingLog);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Limit(DeclaredLimit);

impl Limit {
    /// The counter family `name` (a view, a group, a scope; reported as the
    /// status's `rule`) at `rate` (`N/period`: `10/m`, `100/5m`, `0/m`
    /// blocks), one counter for the domain until [`Limit::key`] says what to
    /// count by.
    pub fn new(name: impl Into<String>, rate: impl Into<String>) -> Self {
        Self(DeclaredLimit {
            name: name.into(),
            rate: rate.into(),
            ..DeclaredLimit::default()
        })
    }

    /// Adds a key part in the policy's key language: `ip`, `user`,
    /// `api_key`, `path`, `method`, `header:<name>`, `descriptor:<key>`,
    /// or alternatives such as `user|ip`.
    pub fn key(mut self, part: impl Into<String>) -> Self {
        self.0.key.push(part.into());
        self
    }

    /// Default: the policy's `settings.default_algorithm`.
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.0.set_algorithm(algorithm);
        self
    }

    /// Token bucket capacity or GCRA burst (default: the rate's count).
    pub fn burst(mut self, burst: u64) -> Self {
        self.0.burst = burst;
        self
    }

    /// Token bucket tokens at start (default: the burst).
    pub fn initial_tokens(mut self, tokens: u64) -> Self {
        self.0.initial_tokens = Some(tokens);
        self
    }

    /// Count denied hits too (fixed and sliding windows).
    pub fn count_denied(mut self, yes: bool) -> Self {
        self.0.count_denied = yes;
        self
    }

    /// Count and report, never deny.
    pub fn shadow(mut self, yes: bool) -> Self {
        self.0.shadow = yes;
        self
    }
}

impl From<Limit> for DeclaredLimit {
    fn from(limit: Limit) -> Self {
        limit.0
    }
}
