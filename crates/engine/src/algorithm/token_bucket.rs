//! Token bucket: `capacity` tokens, refilled continuously at `refill` tokens
//! per `period`; a hit takes `cost` tokens. Allows bursts up to the capacity,
//! then the refill rate.
//!
//! Tokens are kept in exact integer units: with `g = gcd(refill, period)`,
//! one token is `period / g` units and the bucket gains `refill / g` units
//! per microsecond, so no rounding ever drifts and a full bucket stays below
//! 2^53 units (checked when the limit is made), exact in Redis Lua too.
//! State per key: 16 bytes (token units, last refill time).
//!
//! A bucket exists from a key's first check (cost 0 included) and refills
//! from then. A bucket that starts full is forgotten once full again (the two
//! are the same). One that starts with `initial` below `capacity` is kept
//! full for one more refill of its capacity, then forgotten: its client starts
//! again from `initial` tokens, never more permissive than the full bucket.
//! Promise: at most `capacity + refill × t / period` hits in any interval `t`.

use super::{state_variant, Forecast, TypedAlgorithm};

#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    pub capacity: u64,
    pub period: u64,
    pub initial: u64,
    /// Units per token.
    pub token_units: u64,
    /// Units gained per microsecond.
    pub gain: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BucketState {
    units: u64,
    updated: u64,
}

impl TokenBucket {
    /// A bucket of `capacity` tokens refilled `refill` per `period` µs.
    pub fn new(capacity: u64, refill: u64, period: u64, initial: u64) -> Self {
        let g = gcd(refill, period);
        Self {
            capacity,
            period,
            initial,
            token_units: period / g,
            gain: refill / g,
        }
    }

    pub fn full_units(&self) -> u64 {
        self.capacity * self.token_units
    }

    /// Microseconds until the bucket holds `units` units.
    fn time_to_reach(&self, state: &BucketState, units: u64) -> u64 {
        units.saturating_sub(state.units).div_ceil(self.gain)
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl TypedAlgorithm for TokenBucket {
    state_variant!(Bucket, BucketState);

    fn capacity(&self) -> u64 {
        self.capacity
    }
    fn period(&self) -> u64 {
        self.period
    }

    fn fresh(&self, now: u64) -> BucketState {
        BucketState {
            units: self.initial * self.token_units,
            updated: now,
        }
    }

    /// A full bucket keeps `updated` at the moment it filled, so later checks
    /// do not move its expiry.
    fn refresh(&self, state: &mut BucketState, now: u64) {
        // A clock that steps back refills nothing and never moves `updated` back.
        if now <= state.updated {
            return;
        }
        let to_full = self.time_to_reach(state, self.full_units());
        if now - state.updated >= to_full {
            state.units = self.full_units();
            state.updated += to_full;
        } else {
            state.units += (now - state.updated) * self.gain;
            state.updated = now;
        }
    }

    fn available(&self, state: &BucketState, _now: u64) -> u64 {
        state.units / self.token_units
    }

    fn consume(&self, state: &mut BucketState, now: u64, cost: u64) {
        // Refilling restarts now (a full bucket's `updated` is in the past).
        state.updated = now;
        state.units -= cost * self.token_units;
    }

    fn reset_after(&self, state: &BucketState, _now: u64) -> u64 {
        self.time_to_reach(state, self.full_units())
    }

    fn retry_after(&self, state: &BucketState, _now: u64, cost: u64) -> u64 {
        self.time_to_reach(state, cost * self.token_units)
    }

    /// A full bucket is a fresh one when it starts full. One that starts
    /// below capacity is kept full for one more refill of its capacity, then
    /// forgotten: its client starts again from `initial` tokens.
    fn expires_at(&self, state: &BucketState) -> u64 {
        let full_at = state.updated + self.time_to_reach(state, self.full_units());
        if self.initial == self.capacity {
            full_at
        } else {
            full_at + self.full_units().div_ceil(self.gain)
        }
    }

    /// A bucket refreshed at a time later than `now` (a clock ahead, or a
    /// request overtaken on its way to Redis) refills nothing and reports
    /// from its `updated` time: its answers are not fixed instants minus
    /// `now`.
    fn forecast(&self, _reset_at: Option<u64>) -> Forecast {
        Forecast::Nothing
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{Harness, SECOND};
    use crate::Limit;
    use std::time::Duration;

    #[test]
    fn burst_to_capacity_then_steady_refill() {
        // 2 tokens per second, bursts of 10.
        let limit = Limit::token_bucket(2, Duration::from_secs(1), 10, 10).unwrap();
        let mut h = Harness::new(limit, 0);
        for expected in (0..10).rev() {
            let d = h.hit(1);
            assert!(d.allowed);
            assert_eq!(d.remaining, expected);
        }
        let last_reset = h.hit(0).reset_after;
        assert_eq!(last_reset, 5 * SECOND, "10 tokens at 2/s");
        let denied = h.hit(1);
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after, SECOND / 2);
        h.advance(SECOND / 2 - 1);
        assert!(!h.hit(1).allowed);
        h.advance(1);
        let refilled = h.hit(1);
        assert!(refilled.allowed);
        assert_eq!(refilled.remaining, 0);
        // Steady state: exactly one hit every 500 ms.
        for _ in 0..20 {
            h.advance(SECOND / 2);
            assert!(h.hit(1).allowed);
            assert!(!h.hit(1).allowed);
        }
    }

    #[test]
    fn initial_tokens_and_cost() {
        let limit = Limit::token_bucket(1, Duration::from_secs(1), 10, 3).unwrap();
        let mut h = Harness::new(limit, 0);
        assert_eq!(h.hit(0).remaining, 3);
        let denied = h.hit(5);
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after, 2 * SECOND);
        h.advance(2 * SECOND);
        let d = h.hit(5);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        assert_eq!(d.reset_after, 10 * SECOND);
    }

    #[test]
    fn refill_never_exceeds_capacity() {
        let limit = Limit::token_bucket(1, Duration::from_secs(1), 4, 0).unwrap();
        let mut h = Harness::new(limit, 0);
        assert!(!h.hit(1).allowed, "starts empty");
        h.advance(3600 * SECOND);
        assert_eq!(h.hit(1).remaining, 3);
    }

    #[test]
    fn rejects_initial_tokens_above_capacity() {
        assert!(Limit::token_bucket(1, Duration::from_secs(1), 4, 5).is_err());
        assert!(Limit::token_bucket(0, Duration::from_secs(1), 4, 4).is_err());
    }
}
