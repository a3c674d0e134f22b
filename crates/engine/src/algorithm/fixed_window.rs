//! Fixed window: a counter per window of `period`, windows aligned to the Unix
//! epoch (a minute window starts at a multiple of 60 s).
//!
//! State per key: 12 bytes (window start, 32-bit count).
//! Promise: at most `limit` hits in every aligned window.

use super::{
    saturating_u32, state_variant, window_forecast, window_start, Forecast, TypedAlgorithm,
};

#[derive(Debug, Clone)]
pub(crate) struct FixedWindow {
    pub limit: u64,
    pub period: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowState {
    start: u64,
    count: u32,
}

impl TypedAlgorithm for FixedWindow {
    state_variant!(Window, WindowState);

    fn capacity(&self) -> u64 {
        self.limit
    }
    fn period(&self) -> u64 {
        self.period
    }

    fn fresh(&self, now: u64) -> WindowState {
        WindowState {
            start: window_start(now, self.period),
            count: 0,
        }
    }

    fn refresh(&self, state: &mut WindowState, now: u64) {
        let start = window_start(now, self.period);
        if start > state.start {
            *state = WindowState { start, count: 0 };
        }
    }

    fn available(&self, state: &WindowState, _now: u64) -> u64 {
        self.limit.saturating_sub(u64::from(state.count))
    }

    fn overdrawn(&self, state: &WindowState, _now: u64) -> bool {
        u64::from(state.count) > self.limit
    }

    fn consume(&self, state: &mut WindowState, _now: u64, cost: u64) {
        state.count = saturating_u32(u64::from(state.count) + cost);
    }

    fn reset_after(&self, state: &WindowState, now: u64) -> u64 {
        if state.count == 0 {
            0
        } else {
            self.window_end(state).saturating_sub(now)
        }
    }

    fn retry_after(&self, state: &WindowState, now: u64, _cost: u64) -> u64 {
        self.window_end(state).saturating_sub(now)
    }

    fn expires_at(&self, state: &WindowState) -> u64 {
        self.window_end(state)
    }

    /// Nothing fits before the window ends, and then the whole limit does.
    fn forecast(&self, reset_at: Option<u64>) -> Forecast {
        window_forecast(reset_at, self.period, Forecast::Stepped(0))
    }
}

impl FixedWindow {
    fn window_end(&self, state: &WindowState) -> u64 {
        state.start + self.period
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{Harness, SECOND};
    use crate::Limit;
    use std::time::Duration;

    fn limit() -> Limit {
        Limit::fixed_window(5, Duration::from_secs(60)).unwrap()
    }

    #[test]
    fn admits_exactly_the_limit_then_denies_until_the_aligned_window_ends() {
        // 10 s into a minute window.
        let mut h = Harness::new(limit(), 1_000 * 60 * SECOND + 10 * SECOND);
        for expected_remaining in (0..5).rev() {
            let d = h.hit(1);
            assert!(d.allowed);
            assert_eq!(d.remaining, expected_remaining);
            assert_eq!(d.reset_after, 50 * SECOND);
            assert_eq!(d.retry_after, 0);
        }
        let denied = h.hit(1);
        assert!(!denied.allowed);
        assert_eq!(denied.remaining, 0);
        assert_eq!(denied.retry_after, 50 * SECOND);
        assert_eq!(denied.reset_after, 50 * SECOND);

        h.advance(50 * SECOND - 1);
        let last_microsecond = h.hit(1);
        assert!(!last_microsecond.allowed);
        assert_eq!(last_microsecond.retry_after, 1);

        h.advance(1);
        let next_window = h.hit(1);
        assert!(next_window.allowed);
        assert_eq!(next_window.remaining, 4);
        assert_eq!(next_window.reset_after, 60 * SECOND);
    }

    #[test]
    fn cost_above_one_and_zero_cost_checks() {
        let mut h = Harness::new(limit(), 0);
        let d = h.hit(3);
        assert!(d.allowed);
        assert_eq!(d.remaining, 2);
        let too_much = h.hit(3);
        assert!(!too_much.allowed);
        assert_eq!(too_much.remaining, 2, "a denied hit consumes nothing");
        let check = h.hit(0);
        assert!(check.allowed, "one more hit would fit");
        assert_eq!(check.remaining, 2, "a check consumes nothing");
        assert!(h.hit(2).allowed);
        let exhausted_check = h.hit(0);
        assert!(!exhausted_check.allowed);
        assert_eq!(exhausted_check.retry_after, 60 * SECOND);
    }

    #[test]
    fn counting_denied_hits_charges_them_to_the_window() {
        let mut h = Harness::new(limit().counting_denied().unwrap(), 0);
        assert!(h.hit(3).allowed);
        let denied = h.hit(3);
        assert!(!denied.allowed);
        assert_eq!(denied.remaining, 0, "the denied 3 hits were counted");
        h.advance(60 * SECOND);
        assert_eq!(h.hit(1).remaining, 4, "the next window starts clean");
    }

    #[test]
    fn a_count_probe_is_over_only_past_the_limit() {
        let mut h = Harness::new(limit().counting_denied().unwrap(), 0);
        assert!(h.hit(5).allowed);
        let at_limit = h.count_probe();
        assert!(at_limit.allowed, "5 counted of 5: not over");
        assert_eq!(at_limit.remaining, 0);
        assert!(!h.hit(0).allowed, "but one more hit would not fit");
        assert!(!h.hit(1).allowed, "a denied hit, counted: 6 of 5");
        let past = h.count_probe();
        assert!(!past.allowed, "6 counted of 5: over");
        assert_eq!(past.remaining, 0);
    }
}
