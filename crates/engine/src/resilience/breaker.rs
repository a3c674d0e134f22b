//! A circuit breaker per backend.
//!
//! - **Closed**: calls go through. `failure_threshold` failures (errors or
//!   timeouts) within `failure_window` open it.
//! - **Open**: calls fail fast, without touching the backend, for the
//!   current recovery timeout: `recovery_timeout` at first, doubled each time
//!   a probe fails, up to `max_recovery_timeout`.
//! - **Half open**: once that time has passed, up to `half_open_max_calls`
//!   probes go through; a success closes the breaker (and resets the
//!   backoff), a failure opens it again.
//!
//! A permit dropped without a verdict (its call was cancelled, say by the
//! caller's deadline) counts as a failure, so a lost probe cannot leave the
//! breaker stuck half open.

use crate::clock::Clock;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// When a breaker opens and how it recovers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerOptions {
    /// Failures within `failure_window` that open the breaker (default 5).
    pub failure_threshold: u32,
    /// The window failures are counted in (default 10 s).
    pub failure_window: Duration,
    /// How long the breaker first stays open (default 1 s).
    pub recovery_timeout: Duration,
    /// The longest it stays open after repeated failed probes (default 30 s).
    pub max_recovery_timeout: Duration,
    /// Probes let through when half open (default 1).
    pub half_open_max_calls: u32,
}

impl Default for BreakerOptions {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            failure_window: Duration::from_secs(10),
            recovery_timeout: Duration::from_secs(1),
            max_recovery_timeout: Duration::from_secs(30),
            half_open_max_calls: 1,
        }
    }
}

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail fast.
    Open,
    /// A few probes go through.
    HalfOpen,
}

impl BreakerState {
    /// `CLOSED`, `OPEN` or `HALF_OPEN`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "CLOSED",
            Self::Open => "OPEN",
            Self::HalfOpen => "HALF_OPEN",
        }
    }
}

/// How a breaker stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerSnapshot {
    /// Its state now.
    pub state: BreakerState,
    /// Failures counted in the current window (closed).
    pub recent_failures: u32,
    /// State changes since start.
    pub transitions: u64,
    /// While open: microseconds until probes are let through.
    pub retry_in: u64,
    /// The last failure's description.
    pub last_error: Option<String>,
}

/// The breaker refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// Microseconds until it lets a probe through (0: probes are all taken).
    pub retry_in: u64,
}

/// A circuit breaker (see the module documentation).
pub struct Breaker {
    name: String,
    options: BreakerOptions,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

struct Inner {
    state: BreakerState,
    /// Failure times within the window (closed).
    failures: VecDeque<u64>,
    /// When it opened, and for how long (µs).
    opened_at: u64,
    open_for: u64,
    probes_in_flight: u32,
    transitions: u64,
    last_error: Option<String>,
}

/// Leave to make one call; report its outcome with [`Permit::succeed`] or
/// [`Permit::fail`]. Dropping it unreported counts as a failure.
#[must_use = "report the call's outcome"]
pub struct Permit<'b> {
    breaker: &'b Breaker,
    probe: bool,
    reported: bool,
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

impl Breaker {
    /// A closed breaker for the backend `name`.
    pub fn new(name: &str, options: BreakerOptions, clock: Arc<dyn Clock>) -> Self {
        Self {
            name: name.to_string(),
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                failures: VecDeque::new(),
                opened_at: 0,
                open_for: micros(options.recovery_timeout),
                probes_in_flight: 0,
                transitions: 0,
                last_error: None,
            }),
            options,
            clock,
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks to make a call now.
    pub fn admit(&self) -> Result<Permit<'_>, Rejected> {
        let mut inner = self.inner();
        if inner.state == BreakerState::Open {
            let now = self.clock.now_micros();
            let reopen_at = inner.opened_at.saturating_add(inner.open_for);
            if now < reopen_at {
                return Err(Rejected {
                    retry_in: reopen_at - now,
                });
            }
            self.transition(&mut inner, BreakerState::HalfOpen);
        }
        let probe = inner.state == BreakerState::HalfOpen;
        if probe {
            if inner.probes_in_flight >= self.options.half_open_max_calls {
                return Err(Rejected { retry_in: 0 });
            }
            inner.probes_in_flight += 1;
        }
        Ok(Permit {
            breaker: self,
            probe,
            reported: false,
        })
    }

    /// How the breaker stands now.
    pub fn snapshot(&self) -> BreakerSnapshot {
        let now = self.clock.now_micros();
        let inner = self.inner();
        BreakerSnapshot {
            state: inner.state,
            recent_failures: inner.failures.len() as u32,
            transitions: inner.transitions,
            retry_in: match inner.state {
                BreakerState::Open => inner
                    .opened_at
                    .saturating_add(inner.open_for)
                    .saturating_sub(now),
                _ => 0,
            },
            last_error: inner.last_error.clone(),
        }
    }

    fn record(&self, probe: bool, failure: Option<&str>) {
        let now = self.clock.now_micros();
        let mut inner = self.inner();
        if probe {
            inner.probes_in_flight = inner.probes_in_flight.saturating_sub(1);
        }
        if let Some(error) = failure {
            inner.last_error = Some(error.to_string());
        }
        match (inner.state, failure) {
            (BreakerState::HalfOpen, None) if probe => {
                inner.failures.clear();
                inner.open_for = micros(self.options.recovery_timeout);
                self.transition(&mut inner, BreakerState::Closed);
            }
            (BreakerState::HalfOpen, Some(_)) if probe => {
                inner.open_for = inner
                    .open_for
                    .saturating_mul(2)
                    .min(micros(self.options.max_recovery_timeout));
                inner.opened_at = now;
                self.transition(&mut inner, BreakerState::Open);
            }
            (BreakerState::Closed, Some(_)) => {
                let window = micros(self.options.failure_window);
                inner.failures.push_back(now);
                while inner
                    .failures
                    .front()
                    .is_some_and(|&at| at.saturating_add(window) <= now)
                {
                    inner.failures.pop_front();
                }
                if inner.failures.len() as u32 >= self.options.failure_threshold {
                    inner.failures.clear();
                    inner.opened_at = now;
                    self.transition(&mut inner, BreakerState::Open);
                }
            }
            // Late answers of calls admitted before the state changed do not
            // move the breaker.
            _ => {}
        }
    }

    fn transition(&self, inner: &mut Inner, to: BreakerState) {
        let from = inner.state;
        inner.state = to;
        inner.transitions += 1;
        let backend = self.name.as_str();
        match to {
            BreakerState::Open => tracing::warn!(
                backend,
                from = from.as_str(),
                open_for_ms = inner.open_for / 1000,
                last_error = inner.last_error.as_deref().unwrap_or(""),
                "circuit breaker OPEN: failing fast"
            ),
            BreakerState::HalfOpen => {
                tracing::info!(backend, "circuit breaker HALF_OPEN: probing")
            }
            BreakerState::Closed => tracing::info!(backend, "circuit breaker CLOSED: recovered"),
        }
    }
}

impl Permit<'_> {
    /// The call succeeded.
    pub fn succeed(mut self) {
        self.reported = true;
        // Only a probe's success moves the breaker: spare the lock otherwise.
        if self.probe {
            self.breaker.record(true, None);
        }
    }

    /// The call failed (an error or a timeout), described by `error`.
    pub fn fail(mut self, error: &str) {
        self.reported = true;
        self.breaker.record(self.probe, Some(error));
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.reported {
            self.breaker.record(self.probe, Some("call abandoned"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    const MS: u64 = 1_000;

    fn breaker(clock: &Arc<ManualClock>) -> Breaker {
        let options = BreakerOptions {
            failure_threshold: 3,
            failure_window: Duration::from_secs(10),
            recovery_timeout: Duration::from_millis(100),
            max_recovery_timeout: Duration::from_millis(350),
            half_open_max_calls: 1,
        };
        Breaker::new("redis-primary", options, clock.clone())
    }

    fn fail(breaker: &Breaker) {
        breaker.admit().expect("admitted").fail("boom");
    }

    #[test]
    fn opens_after_the_threshold_within_the_window_only() {
        let clock = Arc::new(ManualClock::at_micros(1_000_000_000));
        let b = breaker(&clock);
        fail(&b);
        fail(&b);
        clock.advance(Duration::from_secs(10));
        fail(&b);
        assert_eq!(
            b.snapshot().state,
            BreakerState::Closed,
            "the first two aged out"
        );
        assert_eq!(b.snapshot().recent_failures, 1);
        fail(&b);
        b.admit().unwrap().succeed();
        fail(&b);
        let open = b.snapshot();
        assert_eq!(open.state, BreakerState::Open);
        assert_eq!(open.retry_in, 100 * MS);
        assert_eq!(open.last_error.as_deref(), Some("boom"));
        assert_eq!(b.admit().err(), Some(Rejected { retry_in: 100 * MS }));
    }

    #[test]
    fn half_open_probes_close_it_or_reopen_it_with_backoff_up_to_the_cap() {
        let clock = Arc::new(ManualClock::at_micros(5_000_000));
        let b = breaker(&clock);
        (0..3).for_each(|_| fail(&b));
        clock.advance(Duration::from_millis(99));
        assert_eq!(b.admit().err(), Some(Rejected { retry_in: MS }));
        clock.advance(Duration::from_millis(1));
        let probe = b.admit().expect("a probe after 100 ms");
        assert_eq!(b.snapshot().state, BreakerState::HalfOpen);
        assert_eq!(
            b.admit().err(),
            Some(Rejected { retry_in: 0 }),
            "one probe at a time"
        );
        probe.fail("still down");
        assert_eq!(b.snapshot().retry_in, 200 * MS, "doubled");
        clock.advance(Duration::from_millis(200));
        b.admit().unwrap().fail("still down");
        assert_eq!(b.snapshot().retry_in, 350 * MS, "capped");
        clock.advance(Duration::from_millis(350));
        b.admit().unwrap().fail("still down");
        assert_eq!(b.snapshot().retry_in, 350 * MS);
        clock.advance(Duration::from_millis(350));
        b.admit().unwrap().succeed();
        let closed = b.snapshot();
        assert_eq!(closed.state, BreakerState::Closed);
        assert_eq!(closed.transitions, 9);
        // The backoff starts over.
        (0..3).for_each(|_| fail(&b));
        assert_eq!(b.snapshot().retry_in, 100 * MS);
    }

    #[test]
    fn an_abandoned_probe_counts_as_a_failure_and_never_wedges_it() {
        let clock = Arc::new(ManualClock::at_micros(5_000_000));
        let b = breaker(&clock);
        (0..3).for_each(|_| fail(&b));
        clock.advance(Duration::from_millis(100));
        drop(b.admit().expect("probe"));
        assert_eq!(b.snapshot().state, BreakerState::Open);
        assert_eq!(b.snapshot().last_error.as_deref(), Some("call abandoned"));
        clock.advance(Duration::from_millis(200));
        b.admit().expect("a new probe").succeed();
        assert_eq!(b.snapshot().state, BreakerState::Closed);
    }

    #[test]
    fn late_answers_of_earlier_calls_do_not_move_it() {
        let clock = Arc::new(ManualClock::at_micros(5_000_000));
        let b = breaker(&clock);
        let slow = b.admit().unwrap();
        (0..3).for_each(|_| fail(&b));
        slow.succeed();
        assert_eq!(b.snapshot().state, BreakerState::Open);
    }
}
