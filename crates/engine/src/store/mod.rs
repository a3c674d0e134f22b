//! Where counters live. A [`Store`] decides all the checks of one request
//! atomically: it holds every counter involved while deciding, so concurrent
//! requests never see a half-applied decision.

mod deny_cache;
mod key_hash;
mod memory;
mod redis;

pub use deny_cache::{DenyCacheOptions, DenyCacheStats, DenyCacheStore};
pub use memory::{MemoryStore, MemoryStoreOptions, MemoryStoreStats, WhenFull};
pub use redis::{
    RedisOptions, RedisStore, RedisStoreStats, RedisTls, RedisTopology, TimeSource, SCRIPT,
};

#[cfg(feature = "fuzzing")]
pub(crate) use redis::parse_reply;

use crate::decision::{Check, Decision};
use async_trait::async_trait;

/// A store could not decide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("backend {backend}: {message}")]
pub struct StoreError {
    /// The backend's configured name.
    pub backend: String,
    /// What went wrong.
    pub message: String,
}

impl StoreError {
    /// An error of the backend `backend`.
    pub fn new(backend: &str, message: impl Into<String>) -> Self {
        Self {
            backend: backend.to_string(),
            message: message.into(),
        }
    }
}

/// A place counters live, deciding requests atomically.
#[async_trait]
pub trait Store: Send + Sync {
    /// The backend's name, for errors, health and metrics.
    fn name(&self) -> &str;

    /// Decides `checks` at `now` (microseconds since the epoch): enforced
    /// checks all consume `cost` if every one of them fits, and none consumes
    /// otherwise (except limits that count denied hits); shadow checks consume
    /// when the request is admitted and they fit on their own. Checks with the
    /// same key share one counter and the first one's outcome.
    async fn decide(&self, checks: &[Check<'_>], now: u64) -> Result<Decision, StoreError>;

    /// Deletes the counters of `keys` (an operator's "unblock this client"):
    /// the next request on each starts from a full limit. Returns, per key
    /// in order, whether a live counter (not expired at `now`) was deleted.
    /// Every layer in front of a store forwards it, and forgets what it
    /// knew of those counters (a deny cache its denials).
    async fn reset(&self, keys: &[&str], now: u64) -> Result<Vec<bool>, StoreError>;
}
