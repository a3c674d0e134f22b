//! GCRA (generic cell rate algorithm): hits are spaced by an emission interval
//! `period / rate` (rounded up to a whole microsecond, so never faster than
//! promised), with up to `burst` hits at once. The only state is the
//! theoretical arrival time (TAT) of the next hit.
//!
//! State per key: 8 bytes.
//! Promise: at most `burst + t / emission_interval` hits in any interval `t`.

use super::{state_variant, Forecast, TypedAlgorithm};

#[derive(Debug, Clone)]
pub(crate) struct Gcra {
    pub burst: u64,
    pub emission_interval: u64,
    pub period: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GcraState {
    tat: u64,
}

impl Gcra {
    fn tolerance(&self) -> u64 {
        self.burst * self.emission_interval
    }
}

impl TypedAlgorithm for Gcra {
    state_variant!(Gcra, GcraState);

    fn capacity(&self) -> u64 {
        self.burst
    }
    fn period(&self) -> u64 {
        self.period
    }

    fn fresh(&self, now: u64) -> GcraState {
        GcraState { tat: now }
    }

    fn refresh(&self, state: &mut GcraState, now: u64) {
        state.tat = state.tat.max(now);
    }

    fn available(&self, state: &GcraState, now: u64) -> u64 {
        let backlog = state.tat.saturating_sub(now);
        self.tolerance().saturating_sub(backlog) / self.emission_interval
    }

    fn consume(&self, state: &mut GcraState, _now: u64, cost: u64) {
        state.tat += cost * self.emission_interval;
    }

    fn reset_after(&self, state: &GcraState, now: u64) -> u64 {
        state.tat.saturating_sub(now)
    }

    fn retry_after(&self, state: &GcraState, now: u64, cost: u64) -> u64 {
        let needed_tat = state.tat + cost * self.emission_interval;
        needed_tat.saturating_sub(now + self.tolerance())
    }

    fn expires_at(&self, state: &GcraState) -> u64 {
        state.tat
    }

    /// Everything is measured from the theoretical arrival time: `c` hits
    /// fit at `tat + c × emission interval - tolerance`. But a GCRA that
    /// admits nothing (a burst of 0) keeps its arrival time at `now`: a
    /// state that follows the clock.
    fn forecast(&self, _reset_at: Option<u64>) -> Forecast {
        if self.burst == 0 {
            Forecast::Nothing
        } else {
            Forecast::Stepped(self.emission_interval)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{Harness, SECOND};
    use crate::Limit;
    use std::time::Duration;

    #[test]
    fn burst_then_one_per_emission_interval() {
        // 10 per second (one every 100 ms), bursts of 5.
        let limit = Limit::gcra(10, Duration::from_secs(1), 5).unwrap();
        let mut h = Harness::new(limit, 7 * SECOND);
        for expected in (0..5).rev() {
            let d = h.hit(1);
            assert!(d.allowed);
            assert_eq!(d.remaining, expected);
        }
        let denied = h.hit(1);
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after, SECOND / 10);
        assert_eq!(denied.reset_after, SECOND / 2);
        h.advance(SECOND / 10 - 1);
        assert!(!h.hit(1).allowed);
        h.advance(1);
        assert!(h.hit(1).allowed);
        for _ in 0..50 {
            h.advance(SECOND / 10);
            assert!(h.hit(1).allowed);
            assert!(!h.hit(1).allowed);
        }
    }

    #[test]
    fn cost_and_recovery() {
        let limit = Limit::gcra(1, Duration::from_secs(2), 4).unwrap();
        let mut h = Harness::new(limit, 0);
        let d = h.hit(3);
        assert!(d.allowed);
        assert_eq!(d.remaining, 1);
        assert_eq!(d.reset_after, 6 * SECOND);
        let denied = h.hit(2);
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after, 2 * SECOND);
        h.advance(8 * SECOND);
        assert_eq!(h.hit(0).remaining, 4);
    }

    #[test]
    fn emission_interval_is_rounded_up() {
        // 3 per second: 333,334 µs apart, never 333,333.
        let limit = Limit::gcra(3, Duration::from_secs(1), 1).unwrap();
        let mut h = Harness::new(limit, 0);
        assert!(h.hit(1).allowed);
        h.advance(333_333);
        assert!(!h.hit(1).allowed);
        h.advance(1);
        assert!(h.hit(1).allowed);
    }
}
