//! The ratelimitd engine: rate-limit algorithms and the stores that run them
//! atomically. It knows nothing of gRPC or of policy files: callers hand it
//! [`Check`]s (a counter key, a [`Limit`], a cost) and get a [`Decision`].
//!
//! | algorithm | algorithm state | promise |
//! |---|---|---|
//! | fixed window | 12 bytes | ≤ limit per epoch-aligned window |
//! | sliding window | 16 bytes | ≤ limit per aligned window, < 2 × limit per sliding period |
//! | sliding log | 16 bytes per admitted timestamp, boxed | ≤ limit in any period (exact) |
//! | token bucket | 16 bytes | ≤ capacity + refill × t / period in any interval t |
//! | GCRA | 8 bytes | ≤ burst + t / emission interval in any interval t |
//!
//! In the in-process store every counter is a 24-byte state plus its expiry
//! and lock in one 56-byte allocation, and a 24-byte map bucket (key hash and
//! pointer): 116 bytes of resident memory per key measured at 1,000,000 keys
//! (`examples/memory_per_key.rs`).

mod algorithm;
mod clock;
mod decision;
mod engine;
mod limit;
mod resilience;
mod store;

pub use clock::{Clock, ManualClock, SystemClock};
pub use decision::{Check, Decision, Outcome, Probe};
pub use engine::Engine;
pub use limit::{AlgorithmKind, InvalidLimit, Limit, EXACT_LIMIT};
pub use resilience::{
    BackendHealth, Breaker, BreakerOptions, BreakerSnapshot, BreakerState, CallObserver,
    CallOutcome, FailoverStore, GuardedStore, Permit, Rejected,
};
pub use store::{
    DenyCacheOptions, DenyCacheStats, DenyCacheStore, MemoryStore, MemoryStoreOptions,
    MemoryStoreStats, RedisOptions, RedisStore, RedisStoreStats, RedisTls, RedisTopology, Store,
    StoreError, TimeSource, WhenFull, SCRIPT,
};

/// Internals the fuzz targets (`fuzz/`) drive directly; only with the
/// `fuzzing` feature.
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    use crate::Outcome;

    /// Decodes the Redis script's reply (`{allowed, (over, remaining,
    /// reset_after, retry_after) × n}`) for limits of `capacities`: the
    /// decision, or `None` for a reply of another shape.
    pub fn parse_script_reply(
        reply: &[i64],
        capacities: impl ExactSizeIterator<Item = u64>,
    ) -> Option<(bool, Vec<Outcome>)> {
        crate::store::parse_reply(reply, capacities)
    }
}
