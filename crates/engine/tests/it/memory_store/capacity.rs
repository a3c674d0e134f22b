//! The key bound and sweeping: a full store denies new keys or decides them
//! untracked, as told; a sweep reclaims exactly the expired counters, and a
//! swept key starts afresh.

use super::*;

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
