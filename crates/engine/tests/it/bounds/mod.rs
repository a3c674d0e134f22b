//! Property tests: each algorithm, driven through a real `MemoryStore` with
//! random arrival times and costs, keeps the promise its documentation makes
//! (lib.rs table and the algorithm's module doc). The strategies and the
//! interval arithmetic are here; `algorithms.rs` checks each algorithm's
//! bound, `probes.rs` what every algorithm promises about cost-0 checks,
//! `retry_after` and `reset_after`.

mod algorithms;
mod probes;

use crate::support::SECOND;
use proptest::prelude::*;
use ratelimitd_engine::{Check, Decision, Limit, MemoryStore, MemoryStoreOptions, Probe};
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
