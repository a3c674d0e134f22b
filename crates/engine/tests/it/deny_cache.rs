//! The deny cache answers exactly as the store behind it would: a property
//! test against the uncached store (random limits of every algorithm,
//! costs, probes, shadow checks, checks sharing a counter, times going
//! back), what it caches and what it never does, two limits sharing a
//! counter, its bounds, the race it guards against, and a flood against a
//! real Redis.

use crate::support::{self, decide_result, RUNTIME, SECOND};
use async_trait::async_trait;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use ratelimitd_engine::{
    Check, Decision, DenyCacheOptions, DenyCacheStats, DenyCacheStore, Limit, MemoryStore,
    MemoryStoreOptions, Probe, RedisTopology, Store, StoreError,
};
use ratelimitd_testkit::{require_redis, RedisServer};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// 20.123456 s into a minute window.
const START: u64 = 1_700_000_000 * SECOND + 123_456;
const MINUTE: Duration = Duration::from_secs(60);

fn plain() -> MemoryStore {
    MemoryStore::new(MemoryStoreOptions::default())
}

/// A cache in front of a fresh in-process store.
fn cached(max_entries: usize) -> DenyCacheStore {
    DenyCacheStore::new(Arc::new(plain()), DenyCacheOptions { max_entries })
}

fn hit<'a>(key: &'a str, limit: &'a Limit, cost: u64) -> Check<'a> {
    Check {
        cost,
        ..support::check(key, limit)
    }
}

fn decide(store: &dyn Store, checks: &[Check<'_>], now: u64) -> Decision {
    decide_result(store, checks, now).unwrap_or_else(|e| panic!("{e}"))
}

/// One check of a generated request.
#[derive(Debug, Clone)]
struct CheckSpec {
    client: usize,
    limit: usize,
    cost: u64,
    enforced: bool,
    probe: Probe,
}

/// A request sent `repeat` times: first `gap` µs after the previous one
/// (negative: the clock went back), then `every` µs apart.
#[derive(Debug, Clone)]
struct Request {
    gap: i64,
    repeat: usize,
    every: u64,
    checks: Vec<CheckSpec>,
}

#[derive(Debug, Clone)]
struct Scenario {
    limits: Vec<Limit>,
    requests: Vec<Request>,
}

fn counting(limit: Limit, counts_denied: bool) -> Limit {
    if counts_denied {
        limit.counting_denied().unwrap()
    } else {
        limit
    }
}

/// Every algorithm, with capacities from 0 (admits nothing) to 4 and
/// periods of whole milliseconds.
fn limit() -> impl Strategy<Value = Limit> {
    let period = || (20u64..=1_000).prop_map(Duration::from_millis);
    let counts_denied = prop::bool::weighted(0.2);
    prop_oneof![
        (0u64..=4, period(), counts_denied)
            .prop_map(|(n, p, c)| counting(Limit::fixed_window(n, p).unwrap(), c)),
        (0u64..=4, period(), counts_denied)
            .prop_map(|(n, p, c)| counting(Limit::sliding_window(n, p).unwrap(), c)),
        (0u64..=4, period()).prop_map(|(n, p)| Limit::sliding_log(n, p).unwrap()),
        (1u64..=3, period(), 0u64..=4)
            .prop_flat_map(|(refill, p, capacity)| (
                Just(refill),
                Just(p),
                Just(capacity),
                0..=capacity
            ))
            .prop_map(|(refill, p, capacity, initial)| Limit::token_bucket(
                refill, p, capacity, initial
            )
            .unwrap()),
        (1u64..=5, period(), 0u64..=4)
            .prop_map(|(rate, p, burst)| Limit::gcra(rate, p, burst).unwrap()),
    ]
}

const CLIENTS: usize = 3;

fn scenario() -> impl Strategy<Value = Scenario> {
    let check = (
        0..CLIENTS,
        0usize..4,
        prop_oneof![2 => Just(1u64), 2 => 0u64..=2, 1 => 3u64..=6],
        prop::bool::weighted(0.8),
        prop_oneof![4 => Just(Probe::NextHit), 1 => Just(Probe::Count)],
    )
        .prop_map(|(client, limit, cost, enforced, probe)| CheckSpec {
            client,
            limit,
            cost,
            enforced,
            probe,
        });
    let gap = prop_oneof![
        3 => 0i64..2_000,
        3 => 0i64..300_000,
        1 => 0i64..3_000_000,
        1 => -300_000i64..0,
    ];
    // Floods: a request repeated, mostly close together.
    let request = (
        gap,
        prop_oneof![1 => 1usize..=3, 1 => 4usize..=20],
        prop_oneof![Just(0u64), 0u64..20_000, 0u64..100_000],
        prop_oneof![
            3 => prop::collection::vec(check.clone(), 1..=1),
            1 => prop::collection::vec(check, 2..=3),
        ],
    )
        .prop_map(|(gap, repeat, every, checks)| Request {
            gap,
            repeat,
            every,
            checks,
        });
    (
        prop::collection::vec(limit(), 1..=4),
        prop::collection::vec(request, 1..40),
    )
        .prop_map(|(limits, requests)| Scenario { limits, requests })
}

/// Sends the scenario to a plain store and to a cached one, requiring the
/// same decision for every request; returns what the cache did.
fn replay(scenario: &Scenario) -> Result<DenyCacheStats, TestCaseError> {
    let expected_store = plain();
    let cache = cached(4);
    let limits = scenario.limits.len();
    // One counter per client and limit, as the policy makes keys.
    let keys: Vec<String> = (0..CLIENTS * limits)
        .map(|k| format!("{{client-{}}}limit-{}", k / limits, k % limits))
        .collect();
    let mut now = START;
    for request in &scenario.requests {
        let checks: Vec<Check<'_>> = request
            .checks
            .iter()
            .map(|spec| Check {
                key: &keys[spec.client * limits + spec.limit % limits],
                limit: &scenario.limits[spec.limit % limits],
                cost: spec.cost,
                enforced: spec.enforced,
                probe: spec.probe,
            })
            .collect();
        now = now.saturating_add_signed(request.gap);
        for sent in 0..request.repeat {
            if sent > 0 {
                now += request.every;
            }
            let expected = expected_store.decide_at(&checks, now);
            let seen = decide(&cache, &checks, now);
            prop_assert_eq!(seen, expected, "{:?} at {}", request, now);
        }
    }
    Ok(cache.stats())
}

/// The cache changes no answer, and answers many.
#[test]
fn the_cache_answers_exactly_as_the_store_behind_it() {
    let mut runner = TestRunner::new(Config {
        cases: 1024,
        source_file: Some(file!()),
        ..Config::default()
    });
    let totals = std::cell::Cell::new(DenyCacheStats::default());
    runner
        .run(&scenario(), |scenario| {
            let stats = replay(&scenario)?;
            let mut sum = totals.get();
            sum.hits += stats.hits;
            sum.misses += stats.misses;
            sum.inserts += stats.inserts;
            totals.set(sum);
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
    let totals = totals.get();
    let requests = totals.hits + totals.misses;
    assert!(
        totals.hits * 6 > requests,
        "too few requests answered by the cache to mean anything: {totals:?}"
    );
}

/// A limit of 2 on one key: 2 admitted, a denial learned, then `flood`
/// requests 1 ms apart, all answered by the cache as the store would.
fn flood(limit: &Limit, flood: u64) -> DenyCacheStats {
    let (expected_store, cache) = (plain(), cached(100));
    let check = [support::check("{client}limit", limit)];
    for i in 0..3 + flood {
        let now = START + i * 1_000;
        assert_eq!(
            decide(&cache, &check, now),
            expected_store.decide_at(&check, now),
            "{limit:?}: request {i}"
        );
    }
    cache.stats()
}

#[test]
fn a_flood_on_a_denied_counter_never_reaches_the_store() {
    let second = Duration::from_secs(1);
    for limit in [
        Limit::fixed_window(2, MINUTE).unwrap(),
        Limit::sliding_window(2, MINUTE).unwrap(),
        Limit::sliding_log(2, MINUTE).unwrap(),
        // One hit per 2 s: the flood (1 s) ends before the next fits.
        Limit::gcra(1, 2 * second, 2).unwrap(),
    ] {
        assert_eq!(
            flood(&limit, 1_000),
            DenyCacheStats {
                entries: 1,
                hits: 1_000,
                misses: 3,
                inserts: 1,
                evictions: 0
            },
            "{limit:?}"
        );
    }
}

#[test]
fn a_denial_holds_until_one_hit_fits_and_counts_down_to_it() {
    let limit = Limit::fixed_window(1, MINUTE).unwrap();
    let (expected_store, cache) = (plain(), cached(100));
    let check = [support::check("{client}limit", &limit)];
    assert!(decide(&cache, &check, START).allowed);
    let denied = decide(&cache, &check, START + 1);
    let window_end = 1_700_000_040 * SECOND;
    assert_eq!(denied.outcomes[0].retry_after, window_end - START - 1);
    for now in [START + 2, START + 30 * SECOND, window_end - 1] {
        let seen = decide(&cache, &check, now);
        assert!(!seen.allowed);
        assert_eq!(seen.outcomes[0].retry_after, window_end - now);
        assert_eq!(seen.outcomes[0].reset_after, window_end - now);
        assert_eq!(seen.outcomes[0].remaining, 0);
    }
    assert_eq!(cache.stats().hits, 3);
    // At the window's end the store decides again, and admits.
    let next = decide(&cache, &check, window_end);
    assert!(next.allowed);
    assert_eq!(cache.stats().misses, 3);
    // The expected store saw only some of the requests: the skipped ones
    // would have changed nothing.
    expected_store.decide_at(&check, START);
    assert_eq!(expected_store.decide_at(&check, window_end), next);
}

#[test]
fn token_buckets_and_limits_counting_denied_hits_are_never_cached() {
    let second = Duration::from_secs(1);
    for limit in [
        Limit::token_bucket(1, 2 * second, 2, 2).unwrap(),
        Limit::fixed_window(2, MINUTE)
            .unwrap()
            .counting_denied()
            .unwrap(),
        Limit::sliding_window(2, MINUTE)
            .unwrap()
            .counting_denied()
            .unwrap(),
        // A GCRA admitting nothing keeps its arrival time at now.
        Limit::gcra(1, second, 0).unwrap(),
    ] {
        let stats = flood(&limit, 100);
        assert_eq!(
            (stats.hits, stats.misses, stats.inserts),
            (0, 103, 0),
            "{limit:?}"
        );
    }
}

#[test]
fn a_limit_admitting_nothing_is_answered_a_period_at_a_time() {
    let blocked = Limit::fixed_window(0, MINUTE).unwrap();
    let cache = cached(100);
    let check = [support::check("{client}blocked", &blocked)];
    for i in 0..100 {
        let seen = decide(&cache, &check, START + i * SECOND);
        assert!(!seen.allowed);
        assert_eq!(seen.outcomes[0].retry_after, 60 * SECOND);
        assert_eq!(seen.outcomes[0].reset_after, 0);
    }
    assert_eq!(
        cache.stats(),
        DenyCacheStats {
            entries: 1,
            hits: 98,
            misses: 2,
            // Learned at 0 s and 60 s: the second replaced the first.
            inserts: 2,
            evictions: 0,
        }
    );
}

#[test]
fn a_request_is_answered_only_when_every_counter_it_involves_is_denied() {
    let limit = Limit::fixed_window(1, MINUTE).unwrap();
    let roomy = Limit::fixed_window(100, MINUTE).unwrap();
    let (expected_store, cache) = (plain(), cached(100));
    fn shadow(check: Check<'_>) -> Check<'_> {
        Check {
            enforced: false,
            ..check
        }
    }
    let a = support::check("{c}a", &limit);
    let b = support::check("{c}b", &limit);
    let room = support::check("{c}room", &roomy);
    // Exhaust a and b.
    for check in [a, b, a, b] {
        let checks = [check];
        assert_eq!(
            decide(&cache, &checks, START),
            expected_store.decide_at(&checks, START)
        );
    }
    let hits = |cache: &DenyCacheStore| cache.stats().hits;
    let mut now = START;
    for (checks, answered, allowed) in [
        // b's remaining count is part of the answer, and only the store knows it.
        (vec![a, room], false, false),
        (vec![a, b], true, false),
        (vec![shadow(a)], true, true),
        (vec![a, shadow(b)], true, false),
        // Checks sharing a counter take the first one's outcome, and only the
        // first one's enforcement counts, as in the store.
        (vec![shadow(a), a], true, true),
        (vec![b, shadow(b), room], false, false),
    ] {
        now += 1_000;
        let before = hits(&cache);
        let seen = decide(&cache, &checks, now);
        assert_eq!(seen, expected_store.decide_at(&checks, now), "{checks:?}");
        assert_eq!(seen.allowed, allowed, "{checks:?}");
        assert_eq!(hits(&cache) > before, answered, "{checks:?}");
    }
}

#[test]
fn other_costs_are_answered_where_the_algorithm_foretells_them() {
    let second = Duration::from_secs(1);
    // GCRA: one hit per 100 ms, bursts of 4.
    let gcra = Limit::gcra(10, second, 4).unwrap();
    // Sliding log: when 2 hits fit depends on when the logged ones leave.
    let log = Limit::sliding_log(4, MINUTE).unwrap();
    for (limit, costs) in [
        (&gcra, [(2, true), (4, true), (5, true), (0, true)]),
        (&log, [(2, false), (4, false), (5, true), (0, true)]),
    ] {
        let (expected_store, cache) = (plain(), cached(100));
        let key = "{client}limit";
        let exhaust = [hit(key, limit, 4)];
        decide(&cache, &exhaust, START);
        expected_store.decide_at(&exhaust, START);
        let learn = [hit(key, limit, 1)];
        let now = START + 1;
        assert_eq!(
            decide(&cache, &learn, now),
            expected_store.decide_at(&learn, now)
        );
        for (i, (cost, answered)) in costs.into_iter().enumerate() {
            let now = now + 1 + i as u64;
            let checks = [hit(key, limit, cost)];
            let before = cache.stats().hits;
            assert_eq!(
                decide(&cache, &checks, now),
                expected_store.decide_at(&checks, now),
                "{limit:?}, cost {cost}"
            );
            assert_eq!(
                cache.stats().hits > before,
                answered,
                "{limit:?}, cost {cost}"
            );
        }
    }
}

#[test]
fn another_limit_on_the_counter_is_decided_by_the_store_and_replaces_the_denial() {
    let strict = Limit::fixed_window(1, MINUTE).unwrap();
    let loose = Limit::fixed_window(10, MINUTE).unwrap();
    let (expected_store, cache) = (plain(), cached(100));
    let key = "{app}views.export";
    let mut now = START;
    for (limit, answered) in [
        (&strict, false),
        (&strict, false), // denied: learned
        (&strict, true),
        (&loose, false), // another limit: the store, which admits and consumes
        (&strict, false),
    ] {
        now += 1_000;
        let checks = [support::check(key, limit)];
        let before = cache.stats().hits;
        assert_eq!(
            decide(&cache, &checks, now),
            expected_store.decide_at(&checks, now)
        );
        assert_eq!(cache.stats().hits > before, answered, "{limit:?} at {now}");
    }
}

#[test]
fn a_limit_counting_denied_hits_is_never_answered_from_anothers_denial() {
    let limit = Limit::fixed_window(1, MINUTE).unwrap();
    let counting = limit.clone().counting_denied().unwrap();
    let (expected_store, cache) = (plain(), cached(100));
    let key = "{app}views.export";
    for (now, limit) in [(START, &limit), (START + 1, &limit), (START + 2, &counting)] {
        let checks = [support::check(key, limit)];
        assert_eq!(
            decide(&cache, &checks, now),
            expected_store.decide_at(&checks, now)
        );
    }
    assert_eq!((cache.stats().inserts, cache.stats().hits), (1, 0));
}

/// A window left by a limit of another length rolls at this limit's edges,
/// before the end it reports: such a denial is not cached.
#[test]
fn a_window_left_by_a_window_of_another_length_is_not_cached() {
    let minute = Limit::fixed_window(5, MINUTE).unwrap();
    let fifty = Limit::fixed_window(1, Duration::from_secs(50)).unwrap();
    let (expected_store, cache) = (plain(), cached(100));
    let key = "{app}views.export";
    // A minute's edge, 40 s past an edge of 50 s windows.
    let edge = 1_700_000_040 * SECOND;
    for (now, limit, allowed) in [
        (edge, &minute, true),
        // The minute window's count denies the 50 s limit, whose window
        // the state says ends at edge + 50 s...
        (edge + 1, &fifty, false),
        (edge + 2, &fifty, false),
        // ...but its own edge comes first.
        (edge + 10 * SECOND, &fifty, true),
    ] {
        let checks = [support::check(key, limit)];
        let seen = decide(&cache, &checks, now);
        assert_eq!(seen, expected_store.decide_at(&checks, now));
        assert_eq!(seen.allowed, allowed, "at {now}");
    }
    assert_eq!((cache.stats().inserts, cache.stats().hits), (0, 0));
}

#[test]
fn clearing_forgets_every_denial() {
    let limit = Limit::fixed_window(1, MINUTE).unwrap();
    let cache = cached(100);
    let check = [support::check("{client}limit", &limit)];
    decide(&cache, &check, START);
    decide(&cache, &check, START + 1);
    assert_eq!(cache.stats().entries, 1);
    cache.clear();
    assert_eq!(cache.stats().entries, 0);
    decide(&cache, &check, START + 2);
    assert_eq!(
        (cache.stats().hits, cache.stats().misses),
        (0, 3),
        "decided by the store again"
    );
}

#[test]
fn the_cache_holds_at_most_about_max_entries() {
    let limit = Limit::fixed_window(0, MINUTE).unwrap();
    let cache = cached(50);
    for client in 0..1_000 {
        let key = format!("{{client-{client}}}blocked");
        decide(&cache, &[support::check(&key, &limit)], START);
    }
    let stats = cache.stats();
    assert!(stats.entries <= 50, "{stats:?}");
    assert_eq!(stats.inserts, 1_000);
    assert_eq!(stats.evictions, 1_000 - stats.entries as u64, "{stats:?}");
}

/// An in-process store that holds the answer of the call at `gate_at` until
/// released, so that another call overtakes it on the way back.
struct Gated {
    inner: MemoryStore,
    gate_at: u64,
    reached: Notify,
    release: Notify,
}

#[async_trait]
impl Store for Gated {
    fn name(&self) -> &str {
        "gated"
    }

    async fn decide(&self, checks: &[Check<'_>], now: u64) -> Result<Decision, StoreError> {
        let decision = self.inner.decide_at(checks, now);
        if now == self.gate_at {
            self.reached.notify_one();
            self.release.notified().await;
        }
        Ok(decision)
    }

    async fn reset(&self, keys: &[&str], now: u64) -> Result<Vec<bool>, StoreError> {
        Ok(self.inner.reset_at(keys, now))
    }
}

/// A denial decided before a consumption, but returning after it, is not
/// kept: it would hide the consumption (two limits sharing a counter, such
/// as two apps declaring one name at different rates).
#[test]
fn a_denial_overtaken_by_a_consumption_is_not_kept() {
    let second = Duration::from_secs(1);
    let strict = Limit::gcra(1, second, 1).unwrap();
    let loose = Limit::gcra(10, second, 20).unwrap();
    let key = "{app}views.export";
    let denied_at = START + 1_000;
    let gated = Arc::new(Gated {
        inner: plain(),
        gate_at: denied_at,
        reached: Notify::new(),
        release: Notify::new(),
    });
    let cache = DenyCacheStore::new(gated.clone(), DenyCacheOptions { max_entries: 100 });
    let expected_store = plain();
    let strict_check = [support::check(key, &strict)];
    let loose_check = [support::check(key, &loose)];
    let both = |checks: &[Check<'_>], now| {
        let seen = decide(&cache, checks, now);
        assert_eq!(seen, expected_store.decide_at(checks, now));
        seen
    };
    assert!(both(&strict_check, START).allowed);
    expected_store.decide_at(&strict_check, denied_at);
    expected_store.decide_at(&loose_check, denied_at + 1);
    let (denial, consumption) = RUNTIME.block_on(async {
        let denial = cache.decide(&strict_check, denied_at);
        let consumption = async {
            gated.reached.notified().await;
            let decided = cache.decide(&loose_check, denied_at + 1).await;
            gated.release.notify_one();
            decided
        };
        tokio::join!(denial, consumption)
    });
    assert!(!denial.unwrap().allowed);
    assert!(consumption.unwrap().allowed);
    let stats = cache.stats();
    assert_eq!((stats.inserts, stats.entries), (0, 0), "{stats:?}");
    // The store decides, from the consumed counter: a later retry-after.
    let later = both(&strict_check, denied_at + 2);
    assert_eq!(later.outcomes[0].retry_after, SECOND + 100_000 - 1_000 - 2);
    assert_eq!(cache.stats().hits, 0);
}

/// The benchmark's question as a test: a flood of denied requests on one
/// counter costs Redis one script call for the denial learned, and the
/// answers are those of the in-process store (itself held to Redis's by
/// `redis_store`).
#[test]
fn a_flood_costs_redis_one_script_call_per_denial_learned() {
    if !require_redis() {
        return;
    }
    let server = RedisServer::start();
    let redis = Arc::new(support::connect(ratelimitd_engine::RedisOptions {
        key_prefix: "deny:".into(),
        ..support::options(RedisTopology::Standalone { url: server.url() })
    }));
    let cache = DenyCacheStore::new(redis.clone(), DenyCacheOptions { max_entries: 100 });
    let expected_store = plain();
    let limits = [
        Limit::fixed_window(5, MINUTE).unwrap(),
        Limit::sliding_window(5, MINUTE).unwrap(),
        Limit::sliding_log(5, MINUTE).unwrap(),
        Limit::gcra(1, MINUTE, 5).unwrap(),
        Limit::token_bucket(1, MINUTE, 5, 5).unwrap(),
    ];
    for (index, limit) in limits.iter().enumerate() {
        let key = format!("{{client}}limit-{index}");
        let check = [support::check(&key, limit)];
        let calls_before = redis.stats().script_calls;
        let hits_before = cache.stats().hits;
        // 5 admitted, then 1,000 denied over 10 s.
        for i in 0..1_005 {
            let now = START + i * 10_000;
            assert_eq!(
                decide(&cache, &check, now),
                expected_store.decide_at(&check, now),
                "{limit:?}: request {i}"
            );
        }
        let calls = redis.stats().script_calls - calls_before;
        let hits = cache.stats().hits - hits_before;
        let cached = !matches!(limit.kind(), ratelimitd_engine::AlgorithmKind::TokenBucket);
        let expected = if cached { (6, 999) } else { (1_005, 0) };
        assert_eq!((calls, hits), expected, "{limit:?}");
    }
}

/// Errors, health and metrics name the backend, not the cache.
#[test]
fn the_cache_goes_by_its_stores_name() {
    assert_eq!(cached(10).name(), "memory");
}
