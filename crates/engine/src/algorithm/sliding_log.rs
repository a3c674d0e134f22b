//! Sliding log: the timestamp and cost of every admitted hit within the last
//! period. Exact, at a price in memory, so meant for small limits (logins,
//! password resets).
//!
//! State per key: 16 bytes per distinct admitted timestamp (at most `limit`
//! entries) plus a 40-byte header.
//! Promise: at most `limit` hits in any interval of one period.

use super::{state_variant, Forecast, TypedAlgorithm};
use std::collections::VecDeque;

/// The largest limit a sliding log accepts.
pub(crate) const SLIDING_LOG_MAX_LIMIT: u64 = 10_000;

#[derive(Debug, Clone)]
pub(crate) struct SlidingLog {
    pub limit: u64,
    pub period: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LogState {
    /// `(timestamp, hits)`, oldest first.
    hits: VecDeque<(u64, u64)>,
    /// Sum of the hits in `hits`.
    total: u64,
}

impl TypedAlgorithm for SlidingLog {
    state_variant!(Log, LogState);

    fn capacity(&self) -> u64 {
        self.limit
    }
    fn period(&self) -> u64 {
        self.period
    }

    fn fresh(&self, _now: u64) -> LogState {
        LogState::default()
    }

    fn refresh(&self, state: &mut LogState, now: u64) {
        while let Some(&(at, hits)) = state.hits.front() {
            if at + self.period > now {
                break;
            }
            state.hits.pop_front();
            state.total -= hits;
        }
    }

    fn available(&self, state: &LogState, _now: u64) -> u64 {
        self.limit.saturating_sub(state.total)
    }

    fn consume(&self, state: &mut LogState, now: u64, cost: u64) {
        match state.hits.back_mut() {
            Some((at, hits)) if *at == now => *hits += cost,
            _ => state.hits.push_back((now, cost)),
        }
        state.total += cost;
    }

    fn reset_after(&self, state: &LogState, now: u64) -> u64 {
        state
            .hits
            .back()
            .map_or(0, |&(at, _)| (at + self.period).saturating_sub(now))
    }

    fn retry_after(&self, state: &LogState, now: u64, cost: u64) -> u64 {
        let mut still_counted = state.total;
        for &(at, hits) in &state.hits {
            still_counted -= hits;
            if still_counted + cost <= self.limit {
                return (at + self.period).saturating_sub(now);
            }
        }
        0
    }

    fn expires_at(&self, state: &LogState) -> u64 {
        state.hits.back().map_or(0, |&(at, _)| at + self.period)
    }

    /// Room comes back as logged hits leave, in batches a denial does not
    /// tell.
    fn forecast(&self, _reset_at: Option<u64>) -> Forecast {
        Forecast::OneHit
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{Harness, SECOND};
    use crate::Limit;
    use std::time::Duration;

    #[test]
    fn exact_over_any_interval() {
        let mut h = Harness::new(Limit::sliding_log(3, Duration::from_secs(60)).unwrap(), 0);
        assert_eq!(h.hit(1).remaining, 2);
        h.advance(10 * SECOND);
        assert_eq!(h.hit(1).remaining, 1);
        h.advance(10 * SECOND);
        let last = h.hit(1);
        assert_eq!(last.remaining, 0);
        assert_eq!(
            last.reset_after,
            60 * SECOND,
            "the newest hit leaves in 60 s"
        );
        let denied = h.hit(1);
        assert!(!denied.allowed);
        assert_eq!(
            denied.retry_after,
            40 * SECOND,
            "the oldest hit leaves at 60 s"
        );
        h.advance(40 * SECOND - 1);
        assert!(!h.hit(1).allowed);
        h.advance(1);
        let admitted = h.hit(1);
        assert!(admitted.allowed);
        assert_eq!(admitted.remaining, 0);
    }

    #[test]
    fn cost_waits_for_enough_hits_to_leave() {
        let mut h = Harness::new(Limit::sliding_log(5, Duration::from_secs(60)).unwrap(), 0);
        assert!(h.hit(2).allowed);
        h.advance(SECOND);
        assert!(h.hit(2).allowed);
        h.advance(SECOND);
        assert!(h.hit(1).allowed);
        let denied = h.hit(3);
        assert!(!denied.allowed);
        // Room for 3 needs the first two batches gone: at 61 s, 59 s from now.
        assert_eq!(denied.retry_after, 59 * SECOND);
        assert!(!h.hit(0).allowed, "no room for even one hit");
    }

    #[test]
    fn rejects_limits_too_large_to_log() {
        let error = Limit::sliding_log(10_001, Duration::from_secs(1)).unwrap_err();
        assert!(error.0.contains("up to 10000"), "{error}");
    }
}
