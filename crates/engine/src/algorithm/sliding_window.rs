//! Sliding window counter: the current window's count plus the previous
//! window's count weighted by how much of it the sliding window still covers
//! (rounded up, so the estimate never undercounts).
//!
//! The previous window's weight moves in whole milliseconds, so every product
//! stays below 2^53 (`limit × period in ms`, checked when the limit is made)
//! and the Redis script computes exactly the same numbers in Lua doubles.
//!
//! State per key: 16 bytes (window start, 32-bit previous and current counts).
//! Promise: at most `limit` hits in every aligned window, and fewer than
//! `2 × limit` in any interval of one period; smooths the burst at window
//! boundaries that fixed windows allow.

use super::{
    mul_div_ceil, mul_div_floor, saturating_u32, state_variant, window_forecast, window_start,
    Forecast, TypedAlgorithm,
};

#[derive(Debug, Clone)]
pub(crate) struct SlidingWindow {
    pub limit: u64,
    pub period: u64,
    /// Counts saturate here (at least `limit`; reached only by counting
    /// denied hits), keeping `count × period in ms` below 2^53.
    pub count_cap: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlidingState {
    start: u64,
    previous: u32,
    current: u32,
}

impl SlidingWindow {
    pub fn new(limit: u64, period: u64) -> Self {
        let count_cap =
            ((crate::limit::EXACT_LIMIT - 1) / (period / 1000)).min(u64::from(u32::MAX));
        Self {
            limit,
            period,
            count_cap,
        }
    }

    fn period_ms(&self) -> u64 {
        self.period / 1000
    }

    /// The previous window's weight at `now`, rounded up; the weight moves
    /// in whole milliseconds.
    fn weighted_previous(&self, state: &SlidingState, now: u64) -> u64 {
        let period = self.period_ms();
        let elapsed = (now.saturating_sub(state.start) / 1000).min(period);
        mul_div_ceil(u64::from(state.previous), period - elapsed, period)
    }

    /// The estimated hits in the sliding period ending at `now`.
    fn used(&self, state: &SlidingState, now: u64) -> u64 {
        self.weighted_previous(state, now) + u64::from(state.current)
    }

    /// Offset (µs) into a window at which a previous count of `previous`
    /// weighs at most `allowance`.
    fn offset_where_weight_fits(&self, previous: u64, allowance: u64) -> u64 {
        if previous == 0 {
            return 0;
        }
        let period = self.period_ms();
        1000 * period.saturating_sub(mul_div_floor(allowance, period, previous))
    }
}

impl TypedAlgorithm for SlidingWindow {
    state_variant!(Sliding, SlidingState);

    fn capacity(&self) -> u64 {
        self.limit
    }
    fn period(&self) -> u64 {
        self.period
    }

    fn fresh(&self, now: u64) -> SlidingState {
        SlidingState {
            start: window_start(now, self.period),
            previous: 0,
            current: 0,
        }
    }

    fn refresh(&self, state: &mut SlidingState, now: u64) {
        let start = window_start(now, self.period);
        if start == state.start + self.period {
            *state = SlidingState {
                start,
                previous: state.current,
                current: 0,
            };
        } else if start > state.start {
            *state = self.fresh(now);
        }
    }

    fn available(&self, state: &SlidingState, now: u64) -> u64 {
        self.limit.saturating_sub(self.used(state, now))
    }

    fn overdrawn(&self, state: &SlidingState, now: u64) -> bool {
        self.used(state, now) > self.limit
    }

    fn consume(&self, state: &mut SlidingState, _now: u64, cost: u64) {
        state.current = saturating_u32((u64::from(state.current) + cost).min(self.count_cap));
    }

    fn reset_after(&self, state: &SlidingState, now: u64) -> u64 {
        let window_end = state.start + self.period;
        if state.current > 0 {
            (window_end + self.period).saturating_sub(now)
        } else if state.previous > 0 {
            window_end.saturating_sub(now)
        } else {
            0
        }
    }

    fn retry_after(&self, state: &SlidingState, now: u64, cost: u64) -> u64 {
        let window_end = state.start + self.period;
        let (previous, current) = (u64::from(state.previous), u64::from(state.current));
        match self.limit.checked_sub(current + cost) {
            // Fits in this window once the previous window weighs little enough.
            Some(allowance) => {
                let at = state.start + self.offset_where_weight_fits(previous, allowance);
                at.saturating_sub(now)
            }
            // Only in the next window, where this window's count is the previous one.
            None => {
                let offset = self.offset_where_weight_fits(current, self.limit - cost);
                (window_end + offset).saturating_sub(now)
            }
        }
    }

    fn expires_at(&self, state: &SlidingState) -> u64 {
        state.start + 2 * self.period
    }

    /// Room comes back as the previous window's weight falls, at a pace set
    /// by the counts, which a denial does not tell.
    fn forecast(&self, reset_at: Option<u64>) -> Forecast {
        window_forecast(reset_at, self.period, Forecast::OneHit)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{Harness, SECOND};
    use crate::Limit;
    use std::time::Duration;

    fn limit() -> Limit {
        Limit::sliding_window(10, Duration::from_secs(60)).unwrap()
    }

    #[test]
    fn admits_the_limit_in_one_window() {
        let mut h = Harness::new(limit(), 0);
        for expected in (0..10).rev() {
            let d = h.hit(1);
            assert!(d.allowed);
            assert_eq!(d.remaining, expected);
            assert_eq!(d.reset_after, 120 * SECOND);
        }
        let denied = h.hit(1);
        assert!(!denied.allowed);
        // Only the next window has room: at its start the previous 10 weigh 10,
        // and they weigh at most 9 once 6 s (a tenth) of it has passed.
        assert_eq!(denied.retry_after, 66 * SECOND);
    }

    #[test]
    fn previous_window_weighs_in_linearly() {
        let mut h = Harness::new(limit(), 0);
        for _ in 0..10 {
            assert!(h.hit(1).allowed);
        }
        // 30 s into the next window the previous 10 hits weigh 5.
        h.advance(90 * SECOND);
        let d = h.hit(0);
        assert_eq!(d.remaining, 5);
        for _ in 0..5 {
            assert!(h.hit(1).allowed);
        }
        let denied = h.hit(1);
        assert!(!denied.allowed);
        // previous 10 must weigh <= 4: at 36 s into the window, 6 s from now.
        assert_eq!(denied.retry_after, 6 * SECOND);
        h.advance(6 * SECOND - 1);
        assert!(!h.hit(1).allowed);
        h.advance(1);
        assert!(h.hit(1).allowed);
    }

    #[test]
    fn weight_is_rounded_up_so_the_estimate_never_undercounts() {
        let mut h = Harness::new(
            Limit::sliding_window(3, Duration::from_secs(60)).unwrap(),
            0,
        );
        assert!(h.hit(1).allowed);
        // 59 s into the next window the previous hit still weighs ceil(1/60) = 1.
        h.advance(119 * SECOND);
        assert_eq!(h.hit(0).remaining, 2);
        h.advance(SECOND);
        assert_eq!(h.hit(0).remaining, 3);
    }

    #[test]
    fn cost_above_one() {
        let mut h = Harness::new(limit(), 0);
        assert_eq!(h.hit(7).remaining, 3);
        let denied = h.hit(4);
        assert!(!denied.allowed);
        assert_eq!(denied.remaining, 3);
        assert!(h.hit(3).allowed);
    }

    #[test]
    fn a_count_probe_is_over_only_past_the_limit() {
        let mut h = Harness::new(limit().counting_denied().unwrap(), 0);
        assert!(h.hit(10).allowed);
        assert!(h.count_probe().allowed, "10 of 10: not over");
        assert!(!h.hit(1).allowed);
        assert!(!h.count_probe().allowed, "11 counted of 10: over");
        // 30 s into the next window the previous 11 weigh ceil(5.5) = 6.
        h.advance(90 * SECOND);
        assert!(h.count_probe().allowed);
        assert_eq!(h.count_probe().remaining, 4);
    }

    #[test]
    fn a_gap_of_two_windows_forgets_everything() {
        let mut h = Harness::new(limit(), 0);
        for _ in 0..10 {
            h.hit(1);
        }
        h.advance(120 * SECOND);
        let d = h.hit(1);
        assert_eq!(d.remaining, 9);
        assert_eq!(d.reset_after, 120 * SECOND);
    }
}
