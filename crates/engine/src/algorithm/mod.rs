//! The rate-limit algorithms. Each one is a small pure state machine over
//! integer microseconds: no clock, no locking, no I/O. Stores own the state and
//! call these in a fixed order under their atomicity guarantee:
//! [`Algorithm::refresh`] (bring the state to now), [`Algorithm::consume`]
//! (when the whole request is admitted) and [`Algorithm::report`].

mod fixed_window;
mod gcra;
mod sliding_log;
mod sliding_window;
mod token_bucket;

pub(crate) use fixed_window::{FixedWindow, WindowState};
pub(crate) use gcra::{Gcra, GcraState};
pub(crate) use sliding_log::{LogState, SlidingLog, SLIDING_LOG_MAX_LIMIT};
pub(crate) use sliding_window::{SlidingState, SlidingWindow};
pub(crate) use token_bucket::{BucketState, TokenBucket};

/// The state kept per key: 24 bytes whatever the algorithm (the sliding
/// log's entries live behind a box). `Empty` is a key never seen;
/// `Reclaimed` marks a counter the store has dropped.
#[derive(Debug, Clone, Default)]
pub(crate) enum State {
    #[default]
    Empty,
    Reclaimed,
    Window(WindowState),
    Sliding(SlidingState),
    Log(Box<LogState>),
    Bucket(BucketState),
    Gcra(GcraState),
}

/// How a limit stands for one key after a decision, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Standing {
    pub remaining: u64,
    pub reset_after: u64,
    pub retry_after: u64,
}

/// What one denial foretells of a counter's later answers, for the deny
/// cache (`store/deny_cache.rs`). While nothing is available no hit can be
/// admitted, so the counter only refreshes until one hit fits again; each
/// algorithm says what of its answers can be projected from one denial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forecast {
    /// Nothing: some answers are measured from the state's last refresh
    /// rather than from fixed instants, or refreshing the state changes
    /// them, so a denial cannot be carried to another time.
    Nothing,
    /// When one hit fits. When more hits fit depends on the state.
    OneHit,
    /// When one hit fits, and that a request of `c` hits (up to the
    /// capacity) fits `(c - 1) × step` later.
    Stepped(u64),
}

/// The object-safe face of an algorithm, as the stores use it.
pub(crate) trait Algorithm: Send + Sync {
    /// Hits admitted at once (window limit, bucket capacity, GCRA burst).
    fn capacity(&self) -> u64;
    /// Window or refill period in microseconds.
    fn period(&self) -> u64;
    /// Brings `state` to `now` without changing its meaning (rolls windows,
    /// drops expired entries, refills). A state of another algorithm (the
    /// limit was reconfigured) starts afresh. Returns the hits that fit now.
    fn refresh(&self, state: &mut State, now: u64) -> u64;
    /// Whether a refreshed `state` counts more hits than the limit (only
    /// counters that count denied hits get there).
    fn overdrawn(&self, state: &State, now: u64) -> bool;
    /// Records `cost` hits at `now` on a refreshed state.
    fn consume(&self, state: &mut State, now: u64, cost: u64);
    /// Remaining hits, time to full replenishment, and time until `cost` hits
    /// (at most the capacity) would fit.
    fn report(&self, state: &State, now: u64, cost: u64) -> Standing;
    /// When the state becomes equivalent to `Empty` and can be reclaimed.
    fn expires_at(&self, state: &State) -> u64;
    /// What a denial with nothing available foretells, given the instant it
    /// reported the counter fully replenished at (`None`: nothing pending).
    fn forecast(&self, reset_at: Option<u64>) -> Forecast;
}

/// Implements a [`TypedAlgorithm`]'s `State` plumbing for the [`State`]
/// variant that holds it (boxed or not).
macro_rules! state_variant {
    ($variant:ident, $state:ty) => {
        type State = $state;
        fn wrap(state: $state) -> crate::algorithm::State {
            crate::algorithm::State::$variant(state.into())
        }
        fn unwrap(state: &crate::algorithm::State) -> Option<&$state> {
            match state {
                crate::algorithm::State::$variant(s) => Some(std::borrow::Borrow::borrow(s)),
                _ => None,
            }
        }
        fn unwrap_mut(state: &mut crate::algorithm::State) -> Option<&mut $state> {
            match state {
                crate::algorithm::State::$variant(s) => Some(std::borrow::BorrowMut::borrow_mut(s)),
                _ => None,
            }
        }
    };
}
use state_variant;

/// An algorithm written against its own state type; [`Algorithm`] is derived.
pub(crate) trait TypedAlgorithm: Send + Sync {
    type State;
    fn wrap(state: Self::State) -> State;
    fn unwrap(state: &State) -> Option<&Self::State>;
    fn unwrap_mut(state: &mut State) -> Option<&mut Self::State>;

    fn capacity(&self) -> u64;
    fn period(&self) -> u64;
    fn fresh(&self, now: u64) -> Self::State;
    fn refresh(&self, state: &mut Self::State, now: u64);
    fn available(&self, state: &Self::State, now: u64) -> u64;
    /// More hits counted than the limit; only window counters that count
    /// denied hits can be.
    fn overdrawn(&self, _state: &Self::State, _now: u64) -> bool {
        false
    }
    fn consume(&self, state: &mut Self::State, now: u64, cost: u64);
    fn reset_after(&self, state: &Self::State, now: u64) -> u64;
    /// Time until `cost` hits fit; called only with `cost <= capacity`.
    fn retry_after(&self, state: &Self::State, now: u64, cost: u64) -> u64;
    fn expires_at(&self, state: &Self::State) -> u64;
    /// What a denial with nothing available foretells, given the instant it
    /// reported the counter fully replenished at (`None`: nothing pending).
    /// Anything but `Nothing` promises that, until one hit fits, refreshing
    /// the state changes none of its reports at any time, and that its reset
    /// and retry-after are fixed instants minus `now`, however the state was
    /// refreshed before.
    fn forecast(&self, reset_at: Option<u64>) -> Forecast;
}

impl<A: TypedAlgorithm> Algorithm for A {
    fn capacity(&self) -> u64 {
        TypedAlgorithm::capacity(self)
    }

    fn period(&self) -> u64 {
        TypedAlgorithm::period(self)
    }

    fn refresh(&self, state: &mut State, now: u64) -> u64 {
        if A::unwrap(state).is_none() {
            *state = A::wrap(self.fresh(now));
        }
        let typed = A::unwrap_mut(state).expect("state was just made this algorithm's");
        TypedAlgorithm::refresh(self, typed, now);
        self.available(typed, now)
    }

    fn overdrawn(&self, state: &State, now: u64) -> bool {
        A::unwrap(state).is_some_and(|typed| TypedAlgorithm::overdrawn(self, typed, now))
    }

    fn consume(&self, state: &mut State, now: u64, cost: u64) {
        if let Some(typed) = A::unwrap_mut(state) {
            TypedAlgorithm::consume(self, typed, now, cost);
        }
    }

    fn report(&self, state: &State, now: u64, cost: u64) -> Standing {
        let fresh;
        let typed = match A::unwrap(state) {
            Some(typed) => typed,
            None => {
                fresh = self.fresh(now);
                &fresh
            }
        };
        let remaining = self.available(typed, now);
        let reset_after = TypedAlgorithm::reset_after(self, typed, now);
        let retry_after = if cost <= remaining {
            0
        } else if cost > TypedAlgorithm::capacity(self) {
            // Never admissible: hint one full period as a back-off.
            TypedAlgorithm::period(self)
        } else {
            TypedAlgorithm::retry_after(self, typed, now, cost)
        };
        Standing {
            remaining,
            reset_after,
            retry_after,
        }
    }

    fn expires_at(&self, state: &State) -> u64 {
        A::unwrap(state).map_or(0, |typed| TypedAlgorithm::expires_at(self, typed))
    }

    fn forecast(&self, reset_at: Option<u64>) -> Forecast {
        TypedAlgorithm::forecast(self, reset_at)
    }
}

/// Start of the epoch-aligned window of length `period` containing `now`.
fn window_start(now: u64, period: u64) -> u64 {
    now - now % period
}

/// What a window counter's denial foretells (`forecast` of the fixed and
/// sliding windows): a reset at one of its windows' edges is this limit's;
/// elsewhere the state was left by windows of another length (two limits
/// sharing a counter), which this limit rolls at its own edges, earlier than
/// it reports: nothing then.
fn window_forecast(reset_at: Option<u64>, period: u64, native: Forecast) -> Forecast {
    match reset_at {
        Some(at) if at % period != 0 => Forecast::Nothing,
        _ => native,
    }
}

/// `a * b / c` rounded down, saturating, for any u64 inputs (`c > 0`).
fn mul_div_floor(a: u64, b: u64, c: u64) -> u64 {
    saturate(u128::from(a) * u128::from(b) / u128::from(c))
}

/// `a * b / c` rounded up, saturating, for any u64 inputs (`c > 0`).
fn mul_div_ceil(a: u64, b: u64, c: u64) -> u64 {
    saturate((u128::from(a) * u128::from(b)).div_ceil(u128::from(c)))
}

fn saturate(value: u128) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

/// Window counts are 32-bit (limits are at most `u32::MAX` per window).
fn saturating_u32(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// The largest limit of the window counters.
pub(crate) const WINDOW_MAX_LIMIT: u64 = u32::MAX as u64;

#[cfg(test)]
mod test_support;

#[cfg(test)]
mod size_tests {
    #[test]
    fn a_state_is_24_bytes() {
        assert_eq!(std::mem::size_of::<super::State>(), 24);
    }
}
