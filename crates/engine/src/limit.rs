//! What a limit is: an algorithm with its parameters, validated once when the
//! policy is compiled and then shared by every decision.

use crate::algorithm::{
    Algorithm, FixedWindow, Gcra, SlidingLog, SlidingWindow, TokenBucket, SLIDING_LOG_MAX_LIMIT,
    WINDOW_MAX_LIMIT,
};
use std::time::Duration;

/// The algorithms the engine runs, for reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlgorithmKind {
    /// Counts hits in windows aligned to the Unix epoch.
    FixedWindow,
    /// Weighs the previous window's count by its overlap with a sliding window.
    SlidingWindow,
    /// Keeps the timestamp of every admitted hit: exact, O(limit) state.
    SlidingLog,
    /// A bucket of `capacity` tokens refilled continuously.
    TokenBucket,
    /// Generic cell rate algorithm: one theoretical arrival time per key.
    Gcra,
}

/// Every number an algorithm computes stays below this, so the Redis scripts
/// (Lua doubles) compute exactly what the Rust code does.
pub const EXACT_LIMIT: u64 = 1 << 53;

/// A limit's parameters are not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidLimit(pub String);

/// One validated limit: how many hits per period, by which algorithm.
#[derive(Debug, Clone)]
pub struct Limit {
    pub(crate) model: Model,
    count_denied: bool,
}

/// The algorithm with its precomputed parameters.
#[derive(Debug, Clone)]
pub(crate) enum Model {
    FixedWindow(FixedWindow),
    SlidingWindow(SlidingWindow),
    SlidingLog(SlidingLog),
    TokenBucket(TokenBucket),
    Gcra(Gcra),
}

fn period_micros(period: Duration) -> Result<u64, InvalidLimit> {
    let micros = u64::try_from(period.as_micros()).unwrap_or(u64::MAX);
    if micros == 0 {
        return Err(InvalidLimit(
            "the period must be at least 1 microsecond".into(),
        ));
    }
    // Keep every timestamp plus a period far below 2^53 (exact in Lua doubles).
    const MAX_PERIOD_MICROS: u64 = 366 * 86_400 * 1_000_000;
    if micros > MAX_PERIOD_MICROS {
        return Err(InvalidLimit("the period must be at most 366 days".into()));
    }
    Ok(micros)
}

/// `product` must exist and stay below [`EXACT_LIMIT`].
fn exact(product: Option<u64>, what: impl FnOnce() -> String) -> Result<(), InvalidLimit> {
    match product {
        Some(product) if product < EXACT_LIMIT => Ok(()),
        _ => Err(InvalidLimit(format!(
            "{} is too large to compute exactly (use a shorter period or a smaller limit)",
            what()
        ))),
    }
}

/// Window counters are 32-bit.
fn window_limit(limit: u64) -> Result<(), InvalidLimit> {
    if limit > WINDOW_MAX_LIMIT {
        return Err(InvalidLimit(format!(
            "window limits are at most {WINDOW_MAX_LIMIT} per window, got {limit}"
        )));
    }
    Ok(())
}

impl Limit {
    /// At most `limit` hits per window of `period`, windows aligned to the epoch.
    pub fn fixed_window(limit: u64, period: Duration) -> Result<Self, InvalidLimit> {
        let period = period_micros(period)?;
        window_limit(limit)?;
        Ok(Self::new(Model::FixedWindow(FixedWindow { limit, period })))
    }

    /// At most `limit` hits per sliding `period`, estimated from two fixed
    /// windows (O(1) state).
    /// The period must be whole milliseconds, and `limit × period in ms`
    /// below 2^53.
    pub fn sliding_window(limit: u64, period: Duration) -> Result<Self, InvalidLimit> {
        let period = period_micros(period)?;
        window_limit(limit)?;
        if period % 1000 != 0 {
            return Err(InvalidLimit(
                "a sliding window's period must be whole milliseconds".into(),
            ));
        }
        exact(limit.checked_mul(period / 1000), || {
            format!("a sliding window of {limit} per {} ms", period / 1000)
        })?;
        Ok(Self::new(Model::SlidingWindow(SlidingWindow::new(
            limit, period,
        ))))
    }

    /// Exactly at most `limit` hits in any `period` (O(limit) state; limits up
    /// to 10,000).
    pub fn sliding_log(limit: u64, period: Duration) -> Result<Self, InvalidLimit> {
        let period = period_micros(period)?;
        if limit > SLIDING_LOG_MAX_LIMIT {
            return Err(InvalidLimit(format!(
                "sliding_log keeps one entry per hit and allows limits up to {SLIDING_LOG_MAX_LIMIT}, got {limit}"
            )));
        }
        Ok(Self::new(Model::SlidingLog(SlidingLog { limit, period })))
    }

    /// A bucket of `capacity` tokens that refills `refill` tokens per `period`
    /// and starts with `initial` tokens.
    pub fn token_bucket(
        refill: u64,
        period: Duration,
        capacity: u64,
        initial: u64,
    ) -> Result<Self, InvalidLimit> {
        let period = period_micros(period)?;
        if refill == 0 {
            return Err(InvalidLimit(
                "a token bucket needs a refill rate of at least 1 per period".into(),
            ));
        }
        if initial > capacity {
            return Err(InvalidLimit(format!(
                "initial tokens ({initial}) exceed the capacity ({capacity})"
            )));
        }
        let bucket = TokenBucket::new(capacity, refill, period, initial);
        // A refill adds at most a full bucket plus one step to what is there.
        let peak = capacity
            .checked_mul(bucket.token_units)
            .and_then(|full| full.checked_mul(2))
            .and_then(|twice| twice.checked_add(bucket.gain));
        exact(peak, || {
            format!("a bucket of {capacity} tokens refilled {refill} per {period} µs")
        })?;
        Ok(Self::new(Model::TokenBucket(bucket)))
    }

    /// GCRA: `rate` hits per `period` spaced evenly, with up to `burst` at once.
    pub fn gcra(rate: u64, period: Duration, burst: u64) -> Result<Self, InvalidLimit> {
        let period = period_micros(period)?;
        if rate == 0 {
            return Err(InvalidLimit(
                "GCRA needs a rate of at least 1 per period".into(),
            ));
        }
        // Rounded up: the spacing is never shorter than promised.
        let emission_interval = period.div_ceil(rate);
        exact(burst.checked_mul(emission_interval), || {
            format!("a burst of {burst} at one per {emission_interval} µs")
        })?;
        Ok(Self::new(Model::Gcra(Gcra {
            burst,
            emission_interval,
            period,
        })))
    }

    fn new(model: Model) -> Self {
        Self {
            model,
            count_denied: false,
        }
    }

    /// Denied hits are counted too (fixed and sliding window only: counting
    /// denials into a bucket or a log would grow them without bound).
    pub fn counting_denied(mut self) -> Result<Self, InvalidLimit> {
        match self.model {
            Model::FixedWindow(_) | Model::SlidingWindow(_) => {
                self.count_denied = true;
                Ok(self)
            }
            _ => Err(InvalidLimit(
                "count_denied applies to fixed_window and sliding_window only".into(),
            )),
        }
    }

    /// Whether denied hits are counted.
    pub fn counts_denied(&self) -> bool {
        self.count_denied
    }

    /// Which algorithm this limit runs.
    pub fn kind(&self) -> AlgorithmKind {
        match self.model {
            Model::FixedWindow(_) => AlgorithmKind::FixedWindow,
            Model::SlidingWindow(_) => AlgorithmKind::SlidingWindow,
            Model::SlidingLog(_) => AlgorithmKind::SlidingLog,
            Model::TokenBucket(_) => AlgorithmKind::TokenBucket,
            Model::Gcra(_) => AlgorithmKind::Gcra,
        }
    }

    /// Hits admitted at once: the window limit, bucket capacity or GCRA burst.
    pub fn capacity(&self) -> u64 {
        self.algorithm().capacity()
    }

    /// The window or refill period in microseconds.
    pub fn period_micros(&self) -> u64 {
        self.algorithm().period()
    }

    /// The algorithm and its parameters as the Redis script takes them:
    /// code, capacity, period (µs) and three algorithm-specific numbers.
    pub(crate) fn script_parameters(&self) -> [u64; 6] {
        match &self.model {
            Model::FixedWindow(a) => [1, a.limit, a.period, 0, 0, 0],
            Model::SlidingWindow(a) => [2, a.limit, a.period, a.count_cap, 0, 0],
            Model::SlidingLog(a) => [3, a.limit, a.period, 0, 0, 0],
            Model::TokenBucket(a) => [4, a.capacity, a.period, a.initial, a.token_units, a.gain],
            Model::Gcra(a) => [5, a.burst, a.period, a.emission_interval, 0, 0],
        }
    }

    pub(crate) fn algorithm(&self) -> &dyn Algorithm {
        match &self.model {
            Model::FixedWindow(a) => a,
            Model::SlidingWindow(a) => a,
            Model::SlidingLog(a) => a,
            Model::TokenBucket(a) => a,
            Model::Gcra(a) => a,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn large_daily_limits_stay_exact() {
        // One token is 86,400 units (gcd of 1,000,000 and 86,400,000,000 µs).
        assert!(Limit::token_bucket(1_000_000, DAY, 1_000_000, 0).is_ok());
        assert!(Limit::sliding_window(100_000_000, DAY).is_ok());
        assert!(Limit::gcra(1_000_000, DAY, 1_000_000).is_ok());
    }

    #[test]
    fn products_beyond_two_to_the_53_are_refused() {
        let error = Limit::sliding_window(200_000_000, DAY).unwrap_err();
        assert_eq!(
            error.0,
            "a sliding window of 200000000 per 86400000 ms is too large to compute exactly (use a shorter period or a smaller limit)"
        );
        // 2 and 86,400,000,001 µs share no factor: one token is the whole period.
        let odd = Duration::from_micros(86_400_000_001);
        assert!(Limit::token_bucket(2, odd, 200_000, 0).is_err());
        assert!(Limit::gcra(1, DAY, 200_000).is_err());
    }

    #[test]
    fn sliding_windows_need_whole_milliseconds() {
        let error = Limit::sliding_window(10, Duration::from_micros(1_500)).unwrap_err();
        assert_eq!(
            error.0,
            "a sliding window's period must be whole milliseconds"
        );
    }
}
