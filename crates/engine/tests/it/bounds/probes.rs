//! What every algorithm promises beyond its bound: a cost-0 check changes no
//! later decision, and `retry_after` and `reset_after` are exact.

use super::{decide_one, gap, period, start, store, whole_ms_period, Gap, EPOCH_BASE};
use crate::support::SECOND;
use proptest::prelude::*;
use ratelimitd_engine::{Decision, Limit};
use std::time::Duration;

/// A limit of any algorithm, with small parameters, and whether a counter
/// created early (by a cost-0 check) is the same as one created later: true
/// for all but a token bucket that starts below its capacity, whose refill
/// starts when its counter is created (see
/// `token_bucket_refill_starts_at_the_first_check_even_of_cost_zero`).
fn any_limit() -> impl Strategy<Value = (Limit, bool)> {
    prop_oneof![
        (1u64..20, period(), any::<bool>()).prop_map(|(limit, period, count_denied)| {
            let rule = Limit::fixed_window(limit, Duration::from_micros(period)).unwrap();
            if count_denied {
                (rule.counting_denied().unwrap(), true)
            } else {
                (rule, true)
            }
        }),
        (1u64..20, whole_ms_period(), any::<bool>()).prop_map(|(limit, period, count_denied)| {
            let rule = Limit::sliding_window(limit, Duration::from_micros(period)).unwrap();
            if count_denied {
                (rule.counting_denied().unwrap(), true)
            } else {
                (rule, true)
            }
        }),
        (1u64..20, period()).prop_map(|(limit, period)| {
            let rule = Limit::sliding_log(limit, Duration::from_micros(period)).unwrap();
            (rule, true)
        }),
        (1u64..20, period(), 1u64..20, 0u64..=4).prop_map(
            |(refill, period, capacity, fraction)| {
                let initial = capacity * fraction / 4;
                let period = Duration::from_micros(period);
                let rule = Limit::token_bucket(refill, period, capacity, initial).unwrap();
                (rule, initial == capacity)
            }
        ),
        (1u64..20, period(), 1u64..20).prop_map(|(rate, period, burst)| {
            let rule = Limit::gcra(rate, Duration::from_micros(period), burst).unwrap();
            (rule, true)
        }),
    ]
}

/// Real hits, each preceded by up to three cost-0 probes at times between the
/// previous hit and this one (inclusive), as thousandths of the gap.
fn hits_with_probes() -> impl Strategy<Value = Vec<(Gap, u64, Vec<u64>)>> {
    prop::collection::vec(
        (gap(), 0u64..=3, prop::collection::vec(0u64..=1000, 0..=3)),
        1..150,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// A cost-0 check consumes nothing and changes no later decision: two
    /// stores fed the same hits, one with cost-0 checks interleaved, decide
    /// every hit identically (allowed, remaining, reset_after, retry_after).
    /// A check is contact: for token buckets starting below capacity, a probe
    /// before the first hit, or after the bucket was forgotten, creates the
    /// bucket then, so probes are left out for those buckets only.
    #[test]
    fn cost_zero_checks_never_change_later_decisions(
        (limit, early_creation_is_neutral) in any_limit(),
        start in start(),
        hits in hits_with_probes(),
    ) {
        let plain = store();
        let probed = store();
        let key = "tenant:7:probe";
        let mut now = start;
        for (gap, cost, probes) in &hits {
            let previous = now;
            let gap = gap.micros(limit.period_micros());
            now += gap;
            let mut probes: Vec<u64> = probes
                .iter()
                .map(|&per_mille| previous + gap * per_mille / 1000)
                .collect();
            probes.sort_unstable();
            if !early_creation_is_neutral {
                probes.clear();
            }
            for at in probes {
                let probe = decide_one(&probed, key, &limit, 0, at);
                prop_assert_eq!(probe.allowed, probe.outcomes[0].remaining >= 1);
                prop_assert_eq!(probe.outcomes[0].retry_after == 0, probe.allowed);
            }
            let expected = decide_one(&plain, key, &limit, *cost, now);
            let seen = decide_one(&probed, key, &limit, *cost, now);
            prop_assert_eq!(&seen, &expected, "at {} cost {}", now, cost);
        }
    }
}

/// Replays `hits` on a fresh store, then decides `cost` at `at`.
fn replay_then(limit: &Limit, hits: &[(u64, u64)], cost: u64, at: u64) -> Decision {
    let store = store();
    for &(t, c) in hits {
        decide_one(&store, "tenant:9:replay", limit, c, t);
    }
    decide_one(&store, "tenant:9:replay", limit, cost, at)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    /// `retry_after` and `reset_after` are exact, for every algorithm: after
    /// the same history, the same request is denied 1 µs before `retry_after`
    /// and admitted at it; a cost-0 check shows the full capacity at
    /// `reset_after` and not 1 µs before. (A cost above the capacity never
    /// fits; its `retry_after` is a one-period hint.)
    #[test]
    fn retry_after_and_reset_after_are_exact(
        (limit, _) in any_limit(),
        start in start(),
        arrivals in prop::collection::vec((gap(), 0u64..=3), 1..30),
    ) {
        let store = store();
        let capacity = limit.capacity();
        let mut history = Vec::new();
        let mut now = start;
        for (gap, cost) in arrivals {
            now += gap.micros(limit.period_micros());
            let decision = decide_one(&store, "tenant:9:replay", &limit, cost, now);
            history.push((now, cost));
            let outcome = decision.outcomes[0];
            prop_assert!(outcome.remaining <= capacity);

            if cost > capacity {
                prop_assert!(!decision.allowed);
                prop_assert_eq!(outcome.retry_after, limit.period_micros());
            } else if decision.allowed {
                prop_assert_eq!(outcome.retry_after, 0);
            } else {
                let retry = outcome.retry_after;
                prop_assert!(retry > 0, "denied with retry_after 0 at {}", now);
                let before = replay_then(&limit, &history, cost, now + retry - 1);
                prop_assert!(!before.allowed, "admitted 1 µs before retry_after {}", retry);
                let at = replay_then(&limit, &history, cost, now + retry);
                prop_assert!(at.allowed, "denied at retry_after {}: {:?}", retry, at);
            }

            let reset = outcome.reset_after;
            let full = replay_then(&limit, &history, 0, now + reset).outcomes[0];
            prop_assert_eq!(full.remaining, capacity, "not full at reset_after {}", reset);
            if reset > 0 {
                let almost = replay_then(&limit, &history, 0, now + reset - 1).outcomes[0];
                prop_assert!(almost.remaining < capacity, "full before reset_after {}", reset);
            } else {
                prop_assert_eq!(outcome.remaining, capacity);
            }
        }
    }
}

/// The one way a cost-0 check shows later: it creates a counter that did not
/// exist, and a token bucket starting below capacity refills from then on.
/// This pins the current semantics ("a bucket starts with `initial` tokens
/// when its key is first seen, by any check").
#[test]
fn token_bucket_refill_starts_at_the_first_check_even_of_cost_zero() {
    // 1 token per second, capacity 1, starting empty.
    let limit = Limit::token_bucket(1, Duration::from_secs(1), 1, 0).unwrap();
    let probed = store();
    let plain = store();
    let probe = decide_one(&probed, "k", &limit, 0, EPOCH_BASE);
    assert!(!probe.allowed);
    assert_eq!(probe.outcomes[0].retry_after, SECOND);

    let later = EPOCH_BASE + SECOND / 2;
    let after_probe = decide_one(&probed, "k", &limit, 1, later);
    let without = decide_one(&plain, "k", &limit, 1, later);
    assert!(!after_probe.allowed && !without.allowed);
    assert_eq!(after_probe.outcomes[0].retry_after, SECOND / 2);
    assert_eq!(without.outcomes[0].retry_after, SECOND);
}
