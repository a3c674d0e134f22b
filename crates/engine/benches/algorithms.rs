//! Decision cost of each algorithm through the in-process store:
//!
//! - `hot_key/<algorithm>`: one key decided over and over, `now` advancing a
//!   little each time, with limits large enough that every hit is admitted
//!   (the admit-and-consume path).
//! - `spread_1m_keys/<algorithm>`: 1,000,000 distinct keys, pre-created, decided
//!   in turn (map lookup with cold cache lines).
//! - `two_limits/*`: a request with a burst limit (GCRA) and a sustained limit
//!   (fixed window per hour), on one client or spread over 1,000,000 clients.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ratelimitd_engine::{Check, Limit, MemoryStore, MemoryStoreOptions, Probe};
use std::hint::black_box;
use std::time::Duration;

const SECOND: u64 = 1_000_000;
const START: u64 = 1_700_000_000 * SECOND;
const KEYS: usize = 1_000_000;

/// Each algorithm with limits that admit one hit per `step` µs forever.
fn hot_limits() -> Vec<(&'static str, Limit, u64)> {
    let second = Duration::from_secs(1);
    vec![
        (
            "fixed_window",
            Limit::fixed_window(1_000_000_000, second).unwrap(),
            1,
        ),
        (
            "sliding_window",
            Limit::sliding_window(1_000_000_000, second).unwrap(),
            1,
        ),
        // At most 1,000 per second, hit every 1.001 ms: the log holds ~1,000
        // entries and drops one per hit.
        (
            "sliding_log",
            Limit::sliding_log(1_000, second).unwrap(),
            1_001,
        ),
        (
            "token_bucket",
            Limit::token_bucket(1_000_000, second, 1_000, 1_000).unwrap(),
            1,
        ),
        // One per µs, bursts of 1,000.
        ("gcra", Limit::gcra(1_000_000, second, 1_000).unwrap(), 1),
    ]
}

/// Each algorithm with limits that admit every hit when 1,000,000 keys are
/// each hit once per 1,000,000 decisions (1 µs apart).
fn spread_limits() -> Vec<(&'static str, Limit)> {
    let second = Duration::from_secs(1);
    vec![
        ("fixed_window", Limit::fixed_window(1_000, second).unwrap()),
        (
            "sliding_window",
            Limit::sliding_window(1_000, second).unwrap(),
        ),
        ("sliding_log", Limit::sliding_log(10, second).unwrap()),
        (
            "token_bucket",
            Limit::token_bucket(100, second, 100, 100).unwrap(),
        ),
        ("gcra", Limit::gcra(100, second, 100).unwrap()),
    ]
}

fn store() -> MemoryStore {
    MemoryStore::new(MemoryStoreOptions {
        max_keys: 2 * KEYS,
        ..MemoryStoreOptions::default()
    })
}

fn keys() -> Vec<String> {
    (0..KEYS)
        .map(|i| format!("tenant:{}:user:{i}", i % 97))
        .collect()
}

fn hot_key(c: &mut Criterion) {
    let mut group = c.benchmark_group("hot_key");
    group.throughput(Throughput::Elements(1));
    for (name, limit, step) in hot_limits() {
        let store = store();
        let checks = [Check {
            key: "tenant:1:user:42",
            limit: &limit,
            cost: 1,
            enforced: true,
            probe: Probe::NextHit,
        }];
        let mut now = START;
        // The measured path is the admitting one.
        for _ in 0..10_000 {
            now += step;
            assert!(store.decide_at(&checks, now).allowed, "{name}");
        }
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                now += step;
                black_box(store.decide_at(black_box(&checks), now))
            })
        });
        now += step;
        assert!(
            store.decide_at(&checks, now).allowed,
            "{name} after the run"
        );
    }
    group.finish();
}

fn spread_keys(c: &mut Criterion) {
    let keys = keys();
    let mut group = c.benchmark_group("spread_1m_keys");
    group.throughput(Throughput::Elements(1));
    for (name, limit) in spread_limits() {
        let store = store();
        let mut now = START;
        // Create every counter first: the bench measures decisions on
        // existing keys, not map growth.
        for key in &keys {
            now += 1;
            let check = [Check {
                key,
                limit: &limit,
                cost: 1,
                enforced: true,
                probe: Probe::NextHit,
            }];
            assert!(store.decide_at(&check, now).allowed, "{name}");
        }
        assert_eq!(store.stats().keys, KEYS);
        let mut next = 0usize;
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                now += 1;
                let check = [Check {
                    key: &keys[next],
                    limit: &limit,
                    cost: 1,
                    enforced: true,
                    probe: Probe::NextHit,
                }];
                next = if next + 1 == KEYS { 0 } else { next + 1 };
                black_box(store.decide_at(black_box(&check), now))
            })
        });
        let check = [Check {
            key: &keys[next],
            limit: &limit,
            cost: 1,
            enforced: true,
            probe: Probe::NextHit,
        }];
        assert!(
            store.decide_at(&check, now + 1).allowed,
            "{name} after the run"
        );
        assert_eq!(store.stats().keys, KEYS, "{name}");
    }
    group.finish();
}

fn two_limits(c: &mut Criterion) {
    // Bursts of 1,000 at up to 1,000,000 per second, and a sustained cap per hour.
    let burst = Limit::gcra(1_000_000, Duration::from_secs(1), 1_000).unwrap();
    let sustained = Limit::fixed_window(4_000_000_000, Duration::from_secs(3600)).unwrap();
    let mut group = c.benchmark_group("two_limits");
    group.throughput(Throughput::Elements(1));

    {
        let store = store();
        let checks = [
            Check {
                key: "tenant:1:user:42:burst",
                limit: &burst,
                cost: 1,
                enforced: true,
                probe: Probe::NextHit,
            },
            Check {
                key: "tenant:1:user:42:hour",
                limit: &sustained,
                cost: 1,
                enforced: true,
                probe: Probe::NextHit,
            },
        ];
        let mut now = START;
        for _ in 0..10_000 {
            now += 1;
            assert!(store.decide_at(&checks, now).allowed);
        }
        group.bench_function("hot_key", |b| {
            b.iter(|| {
                now += 1;
                black_box(store.decide_at(black_box(&checks), now))
            })
        });
    }

    {
        const CLIENTS: usize = KEYS / 2; // two counters each: 1,000,000 keys
        let burst_keys: Vec<String> = (0..CLIENTS).map(|i| format!("user:{i}:burst")).collect();
        let hour_keys: Vec<String> = (0..CLIENTS).map(|i| format!("user:{i}:hour")).collect();
        let store = store();
        let request = |i: usize| {
            [
                Check {
                    key: &burst_keys[i],
                    limit: &burst,
                    cost: 1,
                    enforced: true,
                    probe: Probe::NextHit,
                },
                Check {
                    key: &hour_keys[i],
                    limit: &sustained,
                    cost: 1,
                    enforced: true,
                    probe: Probe::NextHit,
                },
            ]
        };
        let mut now = START;
        for i in 0..CLIENTS {
            now += 1;
            assert!(store.decide_at(&request(i), now).allowed);
        }
        assert_eq!(store.stats().keys, KEYS);
        let mut next = 0usize;
        group.bench_function("spread_1m_keys", |b| {
            b.iter(|| {
                now += 1;
                let checks = request(next);
                next = if next + 1 == CLIENTS { 0 } else { next + 1 };
                black_box(store.decide_at(black_box(&checks), now))
            })
        });
        assert!(store.decide_at(&request(next), now + 1).allowed);
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = hot_key, spread_keys, two_limits
}
criterion_main!(benches);
