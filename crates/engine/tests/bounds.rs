//! Property tests: each algorithm, driven through a real `MemoryStore` with
//! random arrival times and costs, keeps the promise its documentation makes
//! (lib.rs table and the algorithm's module doc).

use proptest::prelude::*;
use ratelimitd_engine::{Check, Decision, Limit, MemoryStore, MemoryStoreOptions, Probe};
use std::time::Duration;

const SECOND: u64 = 1_000_000;
/// Far from 0 and not aligned to any period, so windows start mid-run.
const EPOCH_BASE: u64 = 1_700_000_000 * SECOND;

/// One decided hit.
#[derive(Debug, Clone, Copy)]
struct Hit {
    at: u64,
    cost: u64,
    allowed: bool,
    remaining: u64,
}

/// A gap between two arrivals, some of them relative to the limit's period
/// so that arrivals land exactly on (and next to) window edges, expiry
/// instants and emission intervals.
#[derive(Debug, Clone, Copy)]
enum Gap {
    /// Microseconds.
    Micros(u64),
    /// `ceil(period × numerator / denominator) + adjust` microseconds.
    Period {
        numerator: u64,
        denominator: u64,
        adjust: i64,
    },
}

impl Gap {
    fn micros(self, period: u64) -> u64 {
        match self {
            Gap::Micros(micros) => micros,
            Gap::Period {
                numerator,
                denominator,
                adjust,
            } => (period * numerator)
                .div_ceil(denominator)
                .saturating_add_signed(adjust),
        }
    }
}

/// Gaps: often 0 (same instant), often short, often a fraction or a small
/// multiple of the period (exactly, or 1 µs off), sometimes longer than any
/// period.
fn gap() -> impl Strategy<Value = Gap> {
    prop_oneof![
        3 => Just(Gap::Micros(0)),
        2 => (1u64..50_000).prop_map(Gap::Micros),
        2 => (1u64..2 * SECOND).prop_map(Gap::Micros),
        3 => (1u64..=3, 1u64..=20, -1i64..=1).prop_map(|(numerator, denominator, adjust)| {
            Gap::Period { numerator, denominator, adjust }
        }),
        1 => (5 * SECOND..12 * SECOND).prop_map(Gap::Micros),
    ]
}

/// Arrivals as (gap since the previous one, cost).
fn arrivals() -> impl Strategy<Value = Vec<(Gap, u64)>> {
    prop::collection::vec((gap(), 0u64..=3), 1..250)
}

/// Periods for sliding windows, which weigh in whole milliseconds.
fn whole_ms_period() -> impl Strategy<Value = u64> {
    prop_oneof![
        (1u64..=5).prop_map(|s| s * SECOND),
        (1_000u64..=5_000).prop_map(|ms| ms * 1_000),
    ]
}

fn period() -> impl Strategy<Value = u64> {
    prop_oneof![
        // Whole seconds, as policies usually say.
        (1u64..=5).prop_map(|s| s * SECOND),
        // Any microsecond count: uneven emission intervals, odd alignments.
        SECOND..=5 * SECOND,
    ]
}

fn start() -> impl Strategy<Value = u64> {
    (0u64..10 * SECOND).prop_map(|offset| EPOCH_BASE + offset)
}

fn store() -> MemoryStore {
    MemoryStore::new(MemoryStoreOptions::default())
}

fn decide_one(store: &MemoryStore, key: &str, limit: &Limit, cost: u64, now: u64) -> Decision {
    let checks = [Check {
        key,
        limit,
        cost,
        enforced: true,
        probe: Probe::NextHit,
    }];
    let decision = store.decide_at(&checks, now);
    assert_eq!(decision.outcomes.len(), 1);
    decision
}

/// Runs the arrivals against one key of a fresh store.
fn run(limit: &Limit, start: u64, arrivals: &[(Gap, u64)]) -> Vec<Hit> {
    let store = store();
    let mut now = start;
    arrivals
        .iter()
        .map(|&(gap, cost)| {
            now += gap.micros(limit.period_micros());
            let decision = decide_one(&store, "tenant:1:key", limit, cost, now);
            let outcome = decision.outcomes[0];
            assert_eq!(decision.allowed, !outcome.over_limit);
            Hit {
                at: now,
                cost,
                allowed: decision.allowed,
                remaining: outcome.remaining,
            }
        })
        .collect()
}

/// Hits actually consumed: admitted, with their cost (a cost-0 check
/// consumes nothing).
fn admitted(hits: &[Hit]) -> Vec<(u64, u64)> {
    hits.iter()
        .filter(|hit| hit.allowed && hit.cost > 0)
        .map(|hit| (hit.at, hit.cost))
        .collect()
}

/// For every closed interval [t1, t2] whose ends are admission times (the
/// worst intervals), calls `check(t1, t2, hits in [t1, t2])`.
fn for_each_closed_interval(admitted: &[(u64, u64)], mut check: impl FnMut(u64, u64, u64)) {
    let mut prefix = vec![0u64];
    for &(_, cost) in admitted {
        prefix.push(prefix.last().unwrap() + cost);
    }
    let n = admitted.len();
    for i in 0..n {
        // Start at the first hit of this instant, so same-instant hits count.
        if i > 0 && admitted[i - 1].0 == admitted[i].0 {
            continue;
        }
        for j in i..n {
            // End at the last hit of that instant.
            if j + 1 < n && admitted[j + 1].0 == admitted[j].0 {
                continue;
            }
            check(admitted[i].0, admitted[j].0, prefix[j + 1] - prefix[i]);
        }
    }
}

/// The most hits in any half-open interval [t, t + len): the maximum is
/// reached with t at an admission time.
fn max_in_half_open(admitted: &[(u64, u64)], len: u64) -> u64 {
    let mut best = 0;
    let mut sum = 0;
    let mut end = 0;
    for i in 0..admitted.len() {
        if i > 0 && admitted[i - 1].0 == admitted[i].0 {
            continue;
        }
        let t = admitted[i].0;
        while end < admitted.len() && admitted[end].0 < t + len {
            sum += admitted[end].1;
            end += 1;
        }
        best = best.max(sum);
        // Drop every hit at instant t before moving the start on.
        let mut k = i;
        while k < admitted.len() && admitted[k].0 == t {
            sum -= admitted[k].1;
            k += 1;
        }
    }
    best
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Fixed window: at most `limit` admitted in every epoch-aligned window.
    /// The window is also exact: a hit is denied only when it would not fit,
    /// and `remaining` is the limit minus what the window has counted.
    #[test]
    fn fixed_window_never_exceeds_the_limit_per_aligned_window(
        limit in 1u64..20,
        period in period(),
        count_denied in any::<bool>(),
        start in start(),
        arrivals in arrivals(),
    ) {
        let mut rule = Limit::fixed_window(limit, Duration::from_micros(period)).unwrap();
        if count_denied {
            rule = rule.counting_denied().unwrap();
        }
        let hits = run(&rule, start, &arrivals);

        let mut per_window = std::collections::BTreeMap::<u64, u64>::new();
        for &(at, cost) in &admitted(&hits) {
            *per_window.entry(at / period).or_default() += cost;
        }
        for (window, &count) in &per_window {
            prop_assert!(count <= limit, "window {window}: {count} admitted > limit {limit}");
        }

        // Exact model of one counter.
        let mut window = u64::MAX;
        let mut counted = 0u64;
        for hit in &hits {
            if hit.at / period != window {
                window = hit.at / period;
                counted = 0;
            }
            let fits = counted + hit.cost.max(1) <= limit;
            prop_assert_eq!(hit.allowed, fits, "{:?} with {} counted", hit, counted);
            if hit.cost > 0 && (fits || count_denied) {
                counted += hit.cost;
            }
            prop_assert_eq!(hit.remaining, limit.saturating_sub(counted));
        }
    }

    /// Sliding window: at most `limit` per aligned window, and fewer than
    /// `2 × limit` in any half-open interval of one period.
    #[test]
    fn sliding_window_stays_under_its_two_bounds(
        limit in 1u64..20,
        period in whole_ms_period(),
        count_denied in any::<bool>(),
        start in start(),
        arrivals in arrivals(),
    ) {
        let mut rule = Limit::sliding_window(limit, Duration::from_micros(period)).unwrap();
        if count_denied {
            rule = rule.counting_denied().unwrap();
        }
        let hits = run(&rule, start, &arrivals);
        let admitted = admitted(&hits);

        let mut per_window = std::collections::BTreeMap::<u64, u64>::new();
        for &(at, cost) in &admitted {
            *per_window.entry(at / period).or_default() += cost;
        }
        for (window, &count) in &per_window {
            prop_assert!(count <= limit, "window {window}: {count} admitted > limit {limit}");
        }
        let most = max_in_half_open(&admitted, period);
        prop_assert!(most < 2 * limit, "{most} admitted in one sliding period, limit {limit}");

        // The first hit on a fresh counter that fits the limit is admitted.
        if let Some(first) = hits.first().filter(|hit| hit.cost <= limit) {
            prop_assert!(first.allowed, "{first:?}");
        }
    }

    /// Sliding log: at most `limit` in any interval (t - period, t], and exact:
    /// a hit is denied only when it would break that bound.
    #[test]
    fn sliding_log_is_exact_over_any_period(
        limit in 1u64..20,
        period in period(),
        start in start(),
        arrivals in arrivals(),
    ) {
        let rule = Limit::sliding_log(limit, Duration::from_micros(period)).unwrap();
        let hits = run(&rule, start, &arrivals);
        let admitted = admitted(&hits);

        for &(t, _) in &admitted {
            let in_period: u64 = admitted
                .iter()
                .filter(|&&(at, _)| at + period > t && at <= t)
                .map(|&(_, cost)| cost)
                .sum();
            prop_assert!(in_period <= limit, "{in_period} admitted in ({}, {t}], limit {limit}", t - period);
        }

        // Exact model: what the log holds at each hit.
        let mut consumed: Vec<(u64, u64)> = Vec::new();
        for hit in &hits {
            let held: u64 = consumed
                .iter()
                .filter(|&&(at, _)| at + period > hit.at)
                .map(|&(_, cost)| cost)
                .sum();
            let fits = held + hit.cost.max(1) <= limit;
            prop_assert_eq!(hit.allowed, fits, "{:?} with {} held", hit, held);
            let after = if fits { held + hit.cost } else { held };
            if fits && hit.cost > 0 {
                consumed.push((hit.at, hit.cost));
            }
            prop_assert_eq!(hit.remaining, limit - after);
        }
    }

    /// Token bucket: hits admitted in any closed interval [t1, t2] are at most
    /// `capacity + floor((t2 - t1) × refill / period)`.
    #[test]
    fn token_bucket_admits_at_most_capacity_plus_refill(
        refill in 1u64..20,
        period in period(),
        capacity in 1u64..20,
        initial_fraction in 0u64..=4,
        start in start(),
        arrivals in arrivals(),
    ) {
        let initial = capacity * initial_fraction / 4;
        let rule = Limit::token_bucket(refill, Duration::from_micros(period), capacity, initial)
            .unwrap();
        let hits = run(&rule, start, &arrivals);
        let admitted = admitted(&hits);
        let mut worst = Ok(());
        for_each_closed_interval(&admitted, |t1, t2, count| {
            let bound = capacity
                + u64::try_from(u128::from(t2 - t1) * u128::from(refill) / u128::from(period))
                    .unwrap();
            if count > bound && worst.is_ok() {
                worst = Err(format!("{count} admitted in [{t1}, {t2}], bound {bound}"));
            }
        });
        prop_assert!(worst.is_ok(), "{}", worst.unwrap_err());

        // Reference model, in exact units of 1/period token. `updated` is
        // when `units` was last true; a full bucket's, when it filled. A
        // bucket that started below capacity is forgotten once it has been
        // full for one whole refill of its capacity.
        let full = u128::from(capacity) * u128::from(period);
        let refill_time = |units: u128| (full - units).div_ceil(u128::from(refill));
        let mut units = u128::from(initial) * u128::from(period);
        let mut updated = u128::from(hits[0].at);
        for hit in &hits {
            let at = u128::from(hit.at);
            if initial < capacity && updated + refill_time(units) + refill_time(0) <= at {
                units = u128::from(initial) * u128::from(period);
                updated = at;
            }
            if at - updated >= refill_time(units) {
                updated += refill_time(units);
                units = full;
            } else {
                units += (at - updated) * u128::from(refill);
                updated = at;
            }
            let fits = u128::from(hit.cost.max(1)) * u128::from(period) <= units;
            prop_assert_eq!(hit.allowed, fits, "{:?} with {} units", hit, units);
            if fits && hit.cost > 0 {
                units -= u128::from(hit.cost) * u128::from(period);
                updated = at;
            }
            prop_assert_eq!(u128::from(hit.remaining), units / u128::from(period));
        }
    }

    /// GCRA: hits admitted in any closed interval [t1, t2] are at most
    /// `burst + floor((t2 - t1) / emission_interval)`, with the emission
    /// interval `ceil(period / rate)`.
    #[test]
    fn gcra_admits_at_most_burst_plus_one_per_emission_interval(
        rate in 1u64..20,
        period in period(),
        burst in 1u64..20,
        start in start(),
        arrivals in arrivals(),
    ) {
        let rule = Limit::gcra(rate, Duration::from_micros(period), burst).unwrap();
        let emission_interval = period.div_ceil(rate);
        let hits = run(&rule, start, &arrivals);
        let admitted = admitted(&hits);
        let mut worst = Ok(());
        for_each_closed_interval(&admitted, |t1, t2, count| {
            let bound = burst + (t2 - t1) / emission_interval;
            if count > bound && worst.is_ok() {
                worst = Err(format!("{count} admitted in [{t1}, {t2}], bound {bound}"));
            }
        });
        prop_assert!(worst.is_ok(), "{}", worst.unwrap_err());

        // Reference model: the theoretical arrival time of the next hit.
        let tolerance = burst * emission_interval;
        let mut tat = hits[0].at;
        for hit in &hits {
            tat = tat.max(hit.at);
            let fits = tat - hit.at + hit.cost.max(1) * emission_interval <= tolerance;
            prop_assert_eq!(hit.allowed, fits, "{:?} with TAT {}", hit, tat);
            if fits {
                tat += hit.cost * emission_interval;
            }
            prop_assert_eq!(hit.remaining, (tolerance - (tat - hit.at)) / emission_interval);
        }
        // The first hit on a fresh counter that fits the burst is admitted.
        if let Some(first) = hits.first().filter(|hit| hit.cost <= burst) {
            prop_assert!(first.allowed, "{first:?}");
        }
    }
}

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

#[test]
fn interval_helpers_count_same_instant_hits_together() {
    let hits = [(10, 1), (10, 2), (15, 1), (20, 3), (20, 1)];
    assert_eq!(max_in_half_open(&hits, 5), 4);
    assert_eq!(max_in_half_open(&hits, 6), 5);
    assert_eq!(max_in_half_open(&hits, 11), 8);
    let mut seen = Vec::new();
    for_each_closed_interval(&hits, |t1, t2, count| seen.push((t1, t2, count)));
    assert_eq!(
        seen,
        vec![
            (10, 10, 3),
            (10, 15, 4),
            (10, 20, 8),
            (15, 15, 1),
            (15, 20, 5),
            (20, 20, 4),
        ]
    );
}
