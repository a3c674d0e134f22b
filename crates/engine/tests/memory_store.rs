//! The in-process store: atomic multi-limit decisions, shadow checks,
//! duplicate keys, counting denied hits, the key bound, sweeping, and exact
//! admission under concurrency.

use ratelimitd_engine::{
    Check, Decision, Limit, MemoryStore, MemoryStoreOptions, MemoryStoreStats, Outcome, Probe,
    Store, WhenFull,
};
use std::sync::Arc;
use std::time::Duration;

const SECOND: u64 = 1_000_000;
/// A multiple of 60 s since the epoch: minute windows start here.
const MINUTE_START: u64 = 1_700_000_040 * SECOND;
/// 10 s into that minute: a minute window ends 50 s from now.
const NOW: u64 = MINUTE_START + 10 * SECOND;

fn store() -> MemoryStore {
    MemoryStore::new(MemoryStoreOptions::default())
}

fn bounded(max_keys: usize, when_full: WhenFull) -> MemoryStore {
    MemoryStore::new(MemoryStoreOptions {
        name: "bounded".into(),
        max_keys,
        when_full,
    })
}

fn per_minute(limit: u64) -> Limit {
    Limit::fixed_window(limit, Duration::from_secs(60)).unwrap()
}

fn enforced<'a>(key: &'a str, limit: &'a Limit, cost: u64) -> Check<'a> {
    Check {
        key,
        limit,
        cost,
        enforced: true,
        probe: Probe::NextHit,
    }
}

fn shadow<'a>(key: &'a str, limit: &'a Limit, cost: u64) -> Check<'a> {
    Check {
        key,
        limit,
        cost,
        enforced: false,
        probe: Probe::NextHit,
    }
}

fn hit(store: &MemoryStore, key: &str, limit: &Limit, cost: u64, now: u64) -> Decision {
    store.decide_at(&[enforced(key, limit, cost)], now)
}

/// A cost-0 check: how the counter stands, consuming nothing.
fn peek(store: &MemoryStore, key: &str, limit: &Limit, now: u64) -> Outcome {
    hit(store, key, limit, 0, now).outcomes[0]
}

fn outcome(
    over_limit: bool,
    limit: u64,
    remaining: u64,
    reset_after: u64,
    retry_after: u64,
) -> Outcome {
    Outcome {
        over_limit,
        limit,
        remaining,
        reset_after,
        retry_after,
    }
}

/// A limit of 100 hits at one instant, for every algorithm.
fn hundred_at_once() -> Vec<(&'static str, Limit)> {
    let minute = Duration::from_secs(60);
    vec![
        ("fixed_window", Limit::fixed_window(100, minute).unwrap()),
        (
            "sliding_window",
            Limit::sliding_window(100, minute).unwrap(),
        ),
        ("sliding_log", Limit::sliding_log(100, minute).unwrap()),
        (
            "token_bucket",
            Limit::token_bucket(1, minute, 100, 100).unwrap(),
        ),
        ("gcra", Limit::gcra(1, minute, 100).unwrap()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_hits_on_one_key_admit_exactly_the_limit() {
    for (name, limit) in hundred_at_once() {
        let store = Arc::new(store());
        let limit = Arc::new(limit);
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let store = Arc::clone(&store);
                let limit = Arc::clone(&limit);
                tokio::spawn(async move {
                    let mut admitted = 0u64;
                    for _ in 0..1000 {
                        let checks = [enforced("hot", &limit, 1)];
                        let decision = store.decide(&checks, NOW).await.unwrap();
                        if decision.allowed {
                            admitted += 1;
                        }
                        tokio::task::yield_now().await;
                    }
                    admitted
                })
            })
            .collect();
        let mut admitted = 0;
        for task in tasks {
            admitted += task.await.unwrap();
        }
        assert_eq!(admitted, 100, "{name}");
        let standing = peek(&store, "hot", &limit, NOW);
        assert!(standing.over_limit, "{name}");
        assert_eq!(standing.remaining, 0, "{name}");
        assert_eq!(store.stats().keys, 1, "{name}");
        assert_eq!(store.stats().created, 1, "{name}");
    }
}

#[test]
fn concurrent_hits_from_threads_admit_exactly_the_limit() {
    for (name, limit) in hundred_at_once() {
        let store = store();
        let admitted: u64 = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        (0..1000)
                            .filter(|_| hit(&store, "hot", &limit, 1, NOW).allowed)
                            .count() as u64
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).sum()
        });
        assert_eq!(admitted, 100, "{name}");
        assert_eq!(peek(&store, "hot", &limit, NOW).remaining, 0, "{name}");
    }
}

#[test]
fn concurrent_two_limit_requests_in_both_key_orders_neither_deadlock_nor_overadmit() {
    let a = per_minute(300);
    let b = per_minute(100);
    let store = store();
    let admitted: u64 = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..8)
            .map(|thread| {
                let (store, a, b) = (&store, &a, &b);
                scope.spawn(move || {
                    let forward = [enforced("a", a, 1), enforced("b", b, 1)];
                    let backward = [enforced("b", b, 1), enforced("a", a, 1)];
                    let checks = if thread % 2 == 0 { forward } else { backward };
                    (0..1000)
                        .filter(|_| store.decide_at(&checks, NOW).allowed)
                        .count() as u64
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).sum()
    });
    assert_eq!(admitted, 100);
    // All or nothing: "a" was consumed exactly as often as "b".
    assert_eq!(peek(&store, "a", &a, NOW).remaining, 200);
    assert_eq!(peek(&store, "b", &b, NOW).remaining, 0);
}

#[test]
fn sweeping_while_deciding_never_loses_a_live_counter() {
    // A counter is in the map, with expires_at 0, between its creation and
    // its first decision; a sweep in that gap drops it, and the request that
    // created it must look the key up again rather than count on a dropped
    // counter (which would forget the hit and admit the key's next hit).
    const KEYS: usize = 20_000;
    let store = store();
    let limit = per_minute(1);
    let keys: Vec<String> = (0..KEYS).map(|i| format!("tenant:{i}")).collect();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (admitted, swept) = std::thread::scope(|scope| {
        let sweeper = scope.spawn(|| {
            let mut swept = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                swept += store.sweep(NOW);
            }
            swept
        });
        let threads: Vec<_> = (0..3)
            .map(|thread| {
                let (store, limit, keys) = (&store, &limit, &keys);
                scope.spawn(move || {
                    let mut admitted = 0u64;
                    for i in 0..KEYS {
                        // Threads meet on every key, in different orders.
                        let key = &keys[(i + thread * KEYS / 3) % KEYS];
                        for _ in 0..2 {
                            admitted += u64::from(hit(store, key, limit, 1, NOW).allowed);
                        }
                    }
                    admitted
                })
            })
            .collect();
        let admitted: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (admitted, sweeper.join().unwrap())
    });
    assert_eq!(admitted, KEYS as u64);
    let stats = store.stats();
    assert_eq!(stats.reclaimed as usize, swept);
    assert_eq!(stats.created - stats.reclaimed, KEYS as u64);
    assert_eq!(stats.keys, KEYS);
    for key in &keys {
        assert_eq!(peek(&store, key, &limit, NOW).remaining, 0);
    }
}

#[test]
fn a_request_is_all_or_nothing() {
    let store = store();
    let minute = per_minute(10);
    // 1 token per second, 3 at most.
    let bucket = Limit::token_bucket(1, Duration::from_secs(1), 3, 3).unwrap();
    assert!(hit(&store, "bucket", &bucket, 2, NOW).allowed);

    // The bucket holds 1 token; the request needs 2 from it.
    let denied = store.decide_at(
        &[
            enforced("minute", &minute, 1),
            enforced("bucket", &bucket, 2),
        ],
        NOW,
    );
    assert!(!denied.allowed);
    assert_eq!(
        denied.outcomes,
        vec![
            // Would fit, not consumed: the minute counter is untouched.
            outcome(false, 10, 10, 0, 0),
            // 1 more token in 1 s; full (3) in 2 s.
            outcome(true, 3, 1, 2 * SECOND, SECOND),
        ]
    );
    assert_eq!(
        peek(&store, "minute", &minute, NOW),
        outcome(false, 10, 10, 0, 0)
    );

    // Both fit: both consume.
    let admitted = store.decide_at(
        &[
            enforced("minute", &minute, 1),
            enforced("bucket", &bucket, 1),
        ],
        NOW,
    );
    assert!(admitted.allowed);
    assert_eq!(
        admitted.outcomes,
        vec![
            outcome(false, 10, 9, 50 * SECOND, 0),
            outcome(false, 3, 0, 3 * SECOND, 0),
        ]
    );
    assert_eq!(
        peek(&store, "minute", &minute, NOW),
        outcome(false, 10, 9, 50 * SECOND, 0)
    );
    assert_eq!(
        peek(&store, "bucket", &bucket, NOW),
        outcome(true, 3, 0, 3 * SECOND, SECOND)
    );
}

#[test]
fn shadow_checks_report_but_never_deny() {
    let store = store();
    let enforced_limit = per_minute(10);
    let shadow_limit = per_minute(1);
    let request = [
        enforced("enforced", &enforced_limit, 1),
        shadow("shadow", &shadow_limit, 1),
    ];

    let first = store.decide_at(&request, NOW);
    assert!(first.allowed);
    assert!(!first.shadow_denied(&request));
    assert_eq!(
        first.outcomes,
        vec![
            outcome(false, 10, 9, 50 * SECOND, 0),
            outcome(false, 1, 0, 50 * SECOND, 0),
        ]
    );

    // The shadow limit is over: reported, yet the request is admitted.
    let second = store.decide_at(&request, NOW);
    assert!(second.allowed);
    assert!(second.shadow_denied(&request));
    assert_eq!(
        second.outcomes,
        vec![
            outcome(false, 10, 8, 50 * SECOND, 0),
            outcome(true, 1, 0, 50 * SECOND, 50 * SECOND),
        ]
    );

    // A request of shadow checks only is never denied.
    let alone = [shadow("shadow", &shadow_limit, 5)];
    let decision = store.decide_at(&alone, NOW);
    assert!(decision.allowed);
    assert!(decision.shadow_denied(&alone));
    assert_eq!(
        decision.outcomes,
        vec![outcome(true, 1, 0, 50 * SECOND, 60 * SECOND)]
    );
}

#[test]
fn a_shadow_check_is_not_consumed_when_the_enforced_part_denies() {
    let store = store();
    let strict = per_minute(1);
    let watched = per_minute(5);
    assert!(hit(&store, "strict", &strict, 1, NOW).allowed);

    let request = [
        enforced("strict", &strict, 1),
        shadow("watched", &watched, 2),
    ];
    let decision = store.decide_at(&request, NOW);
    assert!(!decision.allowed);
    assert!(!decision.shadow_denied(&request));
    assert_eq!(
        decision.outcomes,
        vec![
            outcome(true, 1, 0, 50 * SECOND, 50 * SECOND),
            outcome(false, 5, 5, 0, 0),
        ]
    );
    assert_eq!(
        peek(&store, "watched", &watched, NOW),
        outcome(false, 5, 5, 0, 0)
    );
}

#[test]
fn a_shadow_check_that_does_not_fit_is_not_consumed() {
    let store = store();
    let enforced_limit = per_minute(10);
    let shadow_limit = per_minute(5);
    assert!(hit(&store, "shadow", &shadow_limit, 4, NOW).allowed);
    let request = [
        enforced("enforced", &enforced_limit, 2),
        shadow("shadow", &shadow_limit, 2),
    ];
    let decision = store.decide_at(&request, NOW);
    assert!(decision.allowed);
    assert!(decision.shadow_denied(&request));
    assert_eq!(
        decision.outcomes,
        vec![
            outcome(false, 10, 8, 50 * SECOND, 0),
            outcome(true, 5, 1, 50 * SECOND, 50 * SECOND),
        ]
    );
    assert_eq!(peek(&store, "shadow", &shadow_limit, NOW).remaining, 1);
}

#[test]
fn duplicate_keys_are_consumed_once_and_share_the_outcome() {
    let store = store();
    let limit = per_minute(5);
    let other = per_minute(10);
    let request = [
        enforced("dup", &limit, 2),
        enforced("other", &other, 1),
        enforced("dup", &limit, 2),
    ];
    let decision = store.decide_at(&request, NOW);
    assert!(decision.allowed);
    assert_eq!(
        decision.outcomes,
        vec![
            outcome(false, 5, 3, 50 * SECOND, 0),
            outcome(false, 10, 9, 50 * SECOND, 0),
            outcome(false, 5, 3, 50 * SECOND, 0),
        ]
    );
    assert_eq!(peek(&store, "dup", &limit, NOW).remaining, 3);
    assert_eq!(store.stats().keys, 2);

    // Decided once at cost 2 again: 3 → 1 remaining (not 3 → denied, as a
    // cost of 4 would be); then both occurrences are denied alike.
    assert!(store.decide_at(&request, NOW).allowed);
    let denied = store.decide_at(&request, NOW);
    assert!(!denied.allowed);
    assert_eq!(
        denied.outcomes[0],
        outcome(true, 5, 1, 50 * SECOND, 50 * SECOND)
    );
    assert_eq!(denied.outcomes[2], denied.outcomes[0]);
    assert_eq!(denied.outcomes[1], outcome(false, 10, 8, 50 * SECOND, 0));
}

#[test]
fn counting_denied_hits_charges_the_window() {
    let store = store();
    let limit = per_minute(5).counting_denied().unwrap();
    for remaining in [4, 3, 2] {
        assert_eq!(
            hit(&store, "k", &limit, 1, NOW).outcomes[0],
            outcome(false, 5, remaining, 50 * SECOND, 0)
        );
    }
    let denied = hit(&store, "k", &limit, 3, NOW);
    assert!(!denied.allowed);
    assert_eq!(
        denied.outcomes[0],
        outcome(true, 5, 0, 50 * SECOND, 50 * SECOND)
    );
    assert_eq!(peek(&store, "k", &limit, NOW).remaining, 0);
    // The next window starts clean.
    assert_eq!(
        hit(&store, "k", &limit, 1, MINUTE_START + 60 * SECOND).outcomes[0],
        outcome(false, 5, 4, 60 * SECOND, 0)
    );

    // Without count_denied the same denial leaves the 2 remaining.
    let plain = per_minute(5);
    for _ in 0..3 {
        assert!(hit(&store, "plain", &plain, 1, NOW).allowed);
    }
    assert_eq!(
        hit(&store, "plain", &plain, 3, NOW).outcomes[0],
        outcome(true, 5, 2, 50 * SECOND, 50 * SECOND)
    );
}

#[test]
fn a_full_store_denies_new_keys_when_told_to() {
    let store = bounded(2, WhenFull::Deny);
    let limit = per_minute(10);
    assert!(hit(&store, "k1", &limit, 1, NOW).allowed);
    assert!(hit(&store, "k2", &limit, 1, NOW).allowed);

    let refused = hit(&store, "k3", &limit, 1, NOW);
    assert!(!refused.allowed);
    assert_eq!(refused.outcomes, vec![outcome(true, 10, 0, 0, 60 * SECOND)]);
    assert_eq!(
        store.stats(),
        MemoryStoreStats {
            keys: 2,
            created: 2,
            reclaimed: 0,
            full_denied: 1,
            full_untracked: 0,
        }
    );

    // An enforced refusal denies the whole request: "k1" consumes nothing.
    let request = [enforced("k1", &limit, 1), enforced("k4", &limit, 1)];
    let denied = store.decide_at(&request, NOW);
    assert!(!denied.allowed);
    assert_eq!(
        denied.outcomes,
        vec![
            outcome(false, 10, 9, 50 * SECOND, 0),
            outcome(true, 10, 0, 0, 60 * SECOND),
        ]
    );
    assert_eq!(peek(&store, "k1", &limit, NOW).remaining, 9);
    assert_eq!(store.stats().full_denied, 2);

    // A refused shadow check does not deny, and known keys still work.
    let request = [enforced("k1", &limit, 1), shadow("k5", &limit, 1)];
    let admitted = store.decide_at(&request, NOW);
    assert!(admitted.allowed);
    assert!(admitted.shadow_denied(&request));
    assert_eq!(
        admitted.outcomes,
        vec![
            outcome(false, 10, 8, 50 * SECOND, 0),
            outcome(true, 10, 0, 0, 60 * SECOND),
        ]
    );
    assert_eq!(store.stats().full_denied, 3);
    assert_eq!(store.stats().keys, 2);
}

#[test]
fn a_full_store_decides_new_keys_untracked_when_told_to() {
    let store = bounded(2, WhenFull::Allow);
    let limit = per_minute(10);
    assert!(hit(&store, "k1", &limit, 1, NOW).allowed);
    assert!(hit(&store, "k2", &limit, 1, NOW).allowed);

    // Far more hits than the limit: each is decided on a fresh counter.
    for n in 1..=25 {
        let decision = hit(&store, "k3", &limit, 1, NOW);
        assert!(decision.allowed);
        assert_eq!(
            decision.outcomes,
            vec![outcome(false, 10, 9, 50 * SECOND, 0)]
        );
        assert_eq!(store.stats().full_untracked, n);
    }
    // A cost beyond the limit is still denied on its own merits.
    assert_eq!(
        hit(&store, "k3", &limit, 11, NOW).outcomes,
        vec![outcome(true, 10, 10, 0, 60 * SECOND)]
    );
    assert_eq!(
        store.stats(),
        MemoryStoreStats {
            keys: 2,
            created: 2,
            reclaimed: 0,
            full_denied: 0,
            full_untracked: 26,
        }
    );

    // Once the sweep makes room, "k3" is tracked and limited again.
    let next_minute = MINUTE_START + 60 * SECOND;
    assert_eq!(store.sweep(next_minute), 2);
    for remaining in (0..10).rev() {
        assert_eq!(
            hit(&store, "k3", &limit, 1, next_minute).outcomes[0].remaining,
            remaining
        );
    }
    assert!(!hit(&store, "k3", &limit, 1, next_minute).allowed);
    assert_eq!(store.stats().keys, 1);
    assert_eq!(store.stats().full_untracked, 26);
}

#[test]
fn sweep_reclaims_exactly_the_expired_counters() {
    let store = store();
    let minute = per_minute(10); // expires at the window's end: NOW + 50 s
    let bucket = Limit::token_bucket(1, Duration::from_secs(1), 5, 5).unwrap();
    let gcra = Limit::gcra(1, Duration::from_secs(1), 5).unwrap();
    let log = Limit::sliding_log(3, Duration::from_secs(10)).unwrap();
    let sliding = Limit::sliding_window(10, Duration::from_secs(60)).unwrap();

    assert!(hit(&store, "fixed", &minute, 1, NOW).allowed);
    assert!(hit(&store, "bucket", &bucket, 5, NOW).allowed); // full again in 5 s
    assert!(hit(&store, "gcra", &gcra, 2, NOW).allowed); // TAT = NOW + 2 s
    assert!(hit(&store, "log", &log, 1, NOW).allowed); // leaves at NOW + 10 s
    assert!(hit(&store, "sliding", &sliding, 1, NOW).allowed); // weighs until MINUTE_START + 120 s
    assert_eq!(store.stats().keys, 5);

    assert_eq!(store.sweep(NOW), 0);
    assert_eq!(store.sweep(NOW + 2 * SECOND - 1), 0);
    assert_eq!(store.sweep(NOW + 2 * SECOND), 1);
    assert_eq!(store.stats().keys, 4);

    // The others are kept, state and all.
    let later = NOW + 2 * SECOND;
    assert_eq!(peek(&store, "fixed", &minute, later).remaining, 9);
    assert_eq!(peek(&store, "log", &log, later).remaining, 2);
    assert_eq!(peek(&store, "bucket", &bucket, later).remaining, 2);
    assert_eq!(peek(&store, "sliding", &sliding, later).remaining, 9);

    assert_eq!(store.sweep(NOW + 5 * SECOND), 1); // the bucket
    assert_eq!(store.sweep(NOW + 10 * SECOND), 1); // the log
    assert_eq!(store.stats().keys, 2);
    assert_eq!(store.sweep(NOW + 50 * SECOND - 1), 0);
    assert_eq!(store.sweep(NOW + 50 * SECOND), 1); // the fixed window
    assert_eq!(store.sweep(MINUTE_START + 120 * SECOND - 1), 0);
    assert_eq!(store.sweep(MINUTE_START + 120 * SECOND), 1); // the sliding window
    assert_eq!(
        store.stats(),
        MemoryStoreStats {
            keys: 0,
            created: 5,
            reclaimed: 5,
            full_denied: 0,
            full_untracked: 0,
        }
    );
    assert_eq!(store.sweep(MINUTE_START + 1000 * SECOND), 0);
}

#[test]
fn a_swept_key_starts_afresh() {
    let store = store();
    let limit = per_minute(3);
    let kept_limit = Limit::sliding_log(3, Duration::from_secs(120)).unwrap();
    for _ in 0..3 {
        assert!(hit(&store, "swept", &limit, 1, NOW).allowed);
    }
    assert!(hit(&store, "kept", &kept_limit, 3, NOW).allowed);
    assert!(!hit(&store, "swept", &limit, 1, NOW).allowed);

    let next_minute = MINUTE_START + 60 * SECOND;
    assert_eq!(store.sweep(next_minute), 1);
    assert_eq!(store.stats().keys, 1);

    let reused = hit(&store, "swept", &limit, 1, next_minute);
    assert_eq!(reused.outcomes, vec![outcome(false, 3, 2, 60 * SECOND, 0)]);
    assert_eq!(store.stats().created, 3);
    assert_eq!(store.stats().keys, 2);
    // The kept log still holds its 3 hits, until NOW + 120 s.
    assert_eq!(
        hit(&store, "kept", &kept_limit, 1, next_minute).outcomes,
        vec![outcome(
            true,
            3,
            0,
            NOW + 120 * SECOND - next_minute,
            NOW + 120 * SECOND - next_minute
        )]
    );
}

#[test]
fn a_limit_of_zero_always_denies() {
    let store = store();
    let minute = Duration::from_secs(60);
    let zero_limits = [
        Limit::fixed_window(0, minute).unwrap(),
        Limit::sliding_window(0, minute).unwrap(),
        Limit::sliding_log(0, minute).unwrap(),
    ];
    for (index, limit) in zero_limits.iter().enumerate() {
        let key = format!("zero{index}");
        for cost in [0, 1, 2, 1] {
            let decision = hit(&store, &key, limit, cost, NOW);
            assert!(!decision.allowed, "{limit:?} cost {cost}");
            assert_eq!(
                decision.outcomes,
                vec![outcome(true, 0, 0, 0, 60 * SECOND)],
                "{limit:?} cost {cost}"
            );
        }
        let later = hit(&store, &key, limit, 1, NOW + 3600 * SECOND);
        assert_eq!(later.outcomes, vec![outcome(true, 0, 0, 0, 60 * SECOND)]);
    }
    // A token bucket and GCRA with no capacity / burst likewise.
    let empty_bucket = Limit::token_bucket(1, minute, 0, 0).unwrap();
    let no_burst = Limit::gcra(1, minute, 0).unwrap();
    for (key, limit) in [("bucket", &empty_bucket), ("gcra", &no_burst)] {
        let decision = hit(&store, key, limit, 1, NOW);
        assert_eq!(
            decision.outcomes,
            vec![outcome(true, 0, 0, 0, 60 * SECOND)],
            "{key}"
        );
    }
}

#[test]
fn a_cost_above_the_capacity_is_denied_with_a_one_period_hint() {
    let store = store();
    let minute = Duration::from_secs(60);
    let limits = [
        Limit::fixed_window(5, minute).unwrap(),
        Limit::sliding_window(5, minute).unwrap(),
        Limit::sliding_log(5, minute).unwrap(),
        Limit::token_bucket(1, minute, 5, 5).unwrap(),
        Limit::gcra(1, minute, 5).unwrap(),
    ];
    for (index, limit) in limits.iter().enumerate() {
        let key = format!("k{index}");
        let decision = hit(&store, &key, limit, 6, NOW);
        assert!(!decision.allowed, "{limit:?}");
        // Nothing consumed, nothing to reset.
        assert_eq!(
            decision.outcomes,
            vec![outcome(true, 5, 5, 0, 60 * SECOND)],
            "{limit:?}"
        );
        // The whole capacity at once still fits.
        assert!(hit(&store, &key, limit, 5, NOW).allowed, "{limit:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_background_sweeper_reclaims_expired_counters_and_stops_with_the_store() {
    let store = Arc::new(store());
    let clock = Arc::new(ratelimitd_engine::ManualClock::at_micros(NOW));
    let limit = per_minute(1);
    assert!(hit(&store, "expires", &limit, 1, NOW).allowed);
    let sweeper = store.spawn_sweeper(clock.clone(), Duration::from_secs(10));

    // The window ends 50 s after NOW: a sweep before then keeps the counter.
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(store.stats().keys, 1);
    clock.set_micros(NOW + 50 * SECOND);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(store.stats().keys, 0);
    assert_eq!(store.stats().reclaimed, 1);

    drop(store);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(sweeper.is_finished());
}
