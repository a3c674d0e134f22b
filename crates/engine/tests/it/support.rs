//! What the engine's tests share: the time unit, and for the Redis store
//! tests a runtime to drive the async store from plain tests, generous
//! timeouts, and blocking helpers.

use ratelimitd_engine::{
    Check, Decision, Limit, Probe, RedisOptions, RedisStore, RedisTopology, Store, StoreError,
};
use std::sync::LazyLock;
use std::time::Duration;

/// Engine time is in microseconds.
pub const SECOND: u64 = 1_000_000;

/// A runtime like a serving thread's (one of its own per thread: the
/// store's lanes are for these).
pub fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
});

/// Options named `redis-test`, with timeouts generous enough for a loaded
/// test machine (and a failover).
pub fn options(topology: RedisTopology) -> RedisOptions {
    RedisOptions {
        command_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(10),
        ..RedisOptions::new("redis-test", topology)
    }
}

/// Connects, panicking with the error.
pub fn connect(options: RedisOptions) -> RedisStore {
    RUNTIME
        .block_on(RedisStore::connect(options))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Decides, panicking with the error.
pub fn decide(store: &RedisStore, checks: &[Check<'_>], now: u64) -> Decision {
    decide_result(store, checks, now).unwrap_or_else(|e| panic!("{e}"))
}

/// Decides with any store.
pub fn decide_result(
    store: &dyn Store,
    checks: &[Check<'_>],
    now: u64,
) -> Result<Decision, StoreError> {
    RUNTIME.block_on(store.decide(checks, now))
}

/// An enforced check of cost 1.
pub fn check<'a>(key: &'a str, limit: &'a Limit) -> Check<'a> {
    Check {
        key,
        limit,
        cost: 1,
        enforced: true,
        probe: Probe::NextHit,
    }
}
