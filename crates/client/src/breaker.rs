//! The client's circuit breaker: stops paying the deadline on every request
//! while the service is down.

use std::time::{Duration, Instant};

/// The breaker's state, in the vocabulary of the service's own breakers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls are made.
    Closed,
    /// No call is made; the on-error policy answers at once.
    Open,
    /// The open time is up: the next call probes.
    HalfOpen,
}

/// When the breaker opens and for how long.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BreakerConfig {
    pub failure_threshold: u32,
    pub recovery_timeout: Duration,
    pub max_recovery_timeout: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            recovery_timeout: Duration::from_secs(1),
            max_recovery_timeout: Duration::from_secs(30),
        }
    }
}

/// After `failure_threshold` consecutive failures no call is made for
/// `recovery_timeout`; then one call probes (half open) while the others
/// are still answered by the on-error policy. A successful probe closes it;
/// a failed one opens it again for twice as long, at most
/// `max_recovery_timeout`.
#[derive(Debug)]
pub(crate) struct Breaker {
    config: BreakerConfig,
    state: BreakerState,
    failures: u32,
    open_for: Duration,
    open_until: Option<Instant>,
    probing: bool,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: BreakerState::Closed,
            failures: 0,
            open_for: config.recovery_timeout,
            open_until: None,
            probing: false,
        }
    }

    /// The state at `now` (an open breaker whose time is up reads half open).
    pub fn state(&self, now: Instant) -> BreakerState {
        match (self.state, self.open_until) {
            (BreakerState::Open, Some(until)) if now >= until => BreakerState::HalfOpen,
            (state, _) => state,
        }
    }

    /// Whether a call may be made at `now`; if it is the probe, it is taken.
    pub fn try_acquire(&mut self, now: Instant) -> bool {
        match self.state(now) {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen if self.probing => false,
            BreakerState::HalfOpen => {
                self.state = BreakerState::HalfOpen;
                self.probing = true;
                true
            }
        }
    }

    /// The service answered (whatever it said).
    pub fn on_success(&mut self) {
        *self = Self::new(self.config);
    }

    /// The service failed a call made after [`Breaker::try_acquire`].
    pub fn on_failure(&mut self, now: Instant) {
        match self.state {
            BreakerState::HalfOpen => {
                self.open_for = (self.open_for * 2).min(self.config.max_recovery_timeout);
                self.open(now);
            }
            BreakerState::Closed => {
                self.failures += 1;
                if self.failures >= self.config.failure_threshold.max(1) {
                    self.open(now);
                }
            }
            BreakerState::Open => {}
        }
    }

    fn open(&mut self, now: Instant) {
        self.state = BreakerState::Open;
        self.open_until = Some(now + self.open_for);
        self.probing = false;
    }
}
