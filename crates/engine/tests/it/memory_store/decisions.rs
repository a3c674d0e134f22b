//! What one decision does: all or nothing across limits, shadow checks that
//! report without denying, duplicate keys consumed once, denied hits
//! counted when asked, a limit of 0, and a cost above the capacity.

use super::*;

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
