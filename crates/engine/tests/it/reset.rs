//! Resetting counters (an operator's "unblock this client") through every
//! kind of store: the in-process store, Redis (a DEL of the prefixed keys),
//! a deny cache in front of Redis (its denials dropped), a breaker and a
//! failover chain (forwarded to every member).

use crate::support::{self, decide_result, RUNTIME, SECOND};
use ratelimitd_engine::{
    Breaker, BreakerOptions, Check, DenyCacheOptions, DenyCacheStore, FailoverStore, GuardedStore,
    Limit, ManualClock, MemoryStore, MemoryStoreOptions, RedisOptions, RedisTopology, Store,
};
use ratelimitd_testkit::{require_redis, RedisServer};
use std::sync::Arc;
use std::time::Duration;

/// 20 s into a minute window.
const NOW: u64 = 1_700_000_000 * SECOND;
const MINUTE: Duration = Duration::from_secs(60);

fn memory(name: &str) -> Arc<MemoryStore> {
    Arc::new(MemoryStore::new(MemoryStoreOptions {
        name: name.into(),
        ..MemoryStoreOptions::default()
    }))
}

fn reset(store: &dyn Store, keys: &[&str], now: u64) -> Vec<bool> {
    RUNTIME
        .block_on(store.reset(keys, now))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The remaining count after one hit on each check.
fn remaining(store: &dyn Store, checks: &[Check<'_>], now: u64) -> Vec<u64> {
    decide_result(store, checks, now)
        .unwrap_or_else(|e| panic!("{e}"))
        .outcomes
        .iter()
        .map(|outcome| outcome.remaining)
        .collect()
}

/// Uses up `check`'s limit of 3, so the next hit is denied.
fn exhaust(store: &dyn Store, check: Check<'_>, now: u64) {
    for _ in 0..3 {
        decide_result(store, &[check], now).unwrap();
    }
    let denied = decide_result(store, &[check], now).unwrap();
    assert!(!denied.allowed, "the limit of 3 is used up");
}

/// Resets `blocked` (used up) and not `other` (one hit): the next hit on
/// `blocked` has the full limit, `other` keeps its count, and an unknown
/// key is reported as not held.
fn resets_only_the_named_counters(store: &dyn Store) {
    let limit = Limit::fixed_window(3, MINUTE).unwrap();
    let (blocked, other) = (
        support::check("{alice}login", &limit),
        support::check("{bob}login", &limit),
    );
    exhaust(store, blocked, NOW);
    assert_eq!(remaining(store, &[other], NOW), [2]);
    assert_eq!(
        reset(store, &[blocked.key, "{carol}login"], NOW + 1),
        [true, false]
    );
    assert_eq!(remaining(store, &[blocked], NOW + 2), [2], "a full limit");
    assert_eq!(remaining(store, &[other], NOW + 2), [1], "untouched");
}

#[test]
fn the_in_process_store_deletes_the_counters() {
    let store = memory("memory");
    resets_only_the_named_counters(&*store);
    assert_eq!(store.stats().keys, 2, "the reset counter was created again");
}

#[test]
fn an_expired_counter_is_reported_as_not_held() {
    let store = memory("memory");
    let limit = Limit::fixed_window(3, MINUTE).unwrap();
    remaining(&*store, &[support::check("{a}x", &limit)], NOW);
    assert_eq!(reset(&*store, &["{a}x"], NOW + 60 * SECOND), [false]);
    assert_eq!(store.stats().keys, 0);
}

#[test]
fn redis_deletes_the_prefixed_keys() {
    if !require_redis() {
        return;
    }
    let server = RedisServer::start();
    let redis = support::connect(RedisOptions {
        key_prefix: "reset:".into(),
        ..support::options(RedisTopology::Standalone { url: server.url() })
    });
    let limit = Limit::fixed_window(3, MINUTE).unwrap();
    remaining(&redis, &[support::check("{dave}login", &limit)], NOW);
    assert_eq!(server.cli(&["EXISTS", "reset:{dave}login"]), "1");
    assert_eq!(reset(&redis, &["{dave}login"], NOW), [true]);
    assert_eq!(server.cli(&["EXISTS", "reset:{dave}login"]), "0");
    resets_only_the_named_counters(&redis);
}

/// A denial cached in front of Redis is dropped with the counter: the next
/// request goes to Redis and is admitted with the full limit.
#[test]
fn a_deny_cache_drops_the_denials_of_reset_counters() {
    if !require_redis() {
        return;
    }
    let server = RedisServer::start();
    let redis = Arc::new(support::connect(support::options(
        RedisTopology::Standalone { url: server.url() },
    )));
    let cache = DenyCacheStore::new(redis.clone(), DenyCacheOptions { max_entries: 100 });
    let limit = Limit::fixed_window(3, MINUTE).unwrap();
    let check = support::check("{erin}login", &limit);
    exhaust(&cache, check, NOW);
    decide_result(&cache, &[check], NOW).unwrap();
    assert_eq!(cache.stats().hits, 1, "the denial is cached");
    assert_eq!(reset(&cache, &[check.key], NOW), [true]);
    assert_eq!(cache.stats().entries, 0);
    let calls = redis.stats().script_calls;
    assert_eq!(remaining(&cache, &[check], NOW), [2]);
    assert_eq!(redis.stats().script_calls, calls + 1, "decided by Redis");
    resets_only_the_named_counters(&cache);
}

/// A breaker forwards a reset even while open (an operator's action is
/// tried whatever the decisions' health), and a failover chain resets every
/// member, each of which may hold counters from a time it decided.
#[test]
fn breakers_and_failover_chains_forward_resets_to_every_member() {
    let (primary, fallback) = (memory("primary"), memory("fallback"));
    let clock = Arc::new(ManualClock::at_micros(NOW));
    let breaker = Breaker::new(
        "primary",
        BreakerOptions {
            failure_threshold: 1,
            ..BreakerOptions::default()
        },
        clock,
    );
    let permit = breaker.admit().unwrap();
    permit.fail("down");
    let guarded = Arc::new(GuardedStore::new(
        primary.clone(),
        breaker,
        Duration::from_secs(1),
    ));
    let chain = FailoverStore::new("chain", vec![guarded, fallback.clone()]);
    let limit = Limit::fixed_window(3, MINUTE).unwrap();
    let check = support::check("{frank}login", &limit);
    exhaust(&*fallback, check, NOW);
    assert_eq!(
        remaining(&chain, &[check], NOW),
        [0],
        "the primary is skipped"
    );
    remaining(&*primary, &[check], NOW);
    assert_eq!(reset(&chain, &[check.key], NOW), [true]);
    assert_eq!((primary.stats().keys, fallback.stats().keys), (0, 0));
}
