//! Each algorithm's bound on what it admits, and its exact model: a hit is
//! denied only when admitting it would break the bound.

use super::{
    admitted, arrivals, for_each_closed_interval, max_in_half_open, period, run, start,
    whole_ms_period,
};
use proptest::prelude::*;
use ratelimitd_engine::Limit;
use std::time::Duration;

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
