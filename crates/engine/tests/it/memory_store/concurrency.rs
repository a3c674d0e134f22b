//! Exact admission under concurrency: tasks and threads racing on one key
//! admit exactly the limit, two-limit requests in both key orders neither
//! deadlock nor over-admit, and a sweep racing decisions loses no counter.

use super::*;

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
