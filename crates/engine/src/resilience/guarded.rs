//! A store behind a circuit breaker and a deadline: no call waits longer
//! than its timeout, and a failing backend is not called at all while its
//! breaker is open.

use super::breaker::{Breaker, BreakerSnapshot};
use crate::decision::{Check, Decision};
use crate::store::{Store, StoreError};
use async_trait::async_trait;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a guarded backend stands, for health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendHealth {
    /// The backend's name.
    pub name: String,
    /// Its breaker.
    pub breaker: BreakerSnapshot,
    /// Latency of the last call that reached it, in microseconds.
    pub last_latency_micros: u64,
}

/// What one call to a guarded backend came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// The backend decided.
    Ok,
    /// The backend answered with an error.
    Error,
    /// No answer within the timeout.
    Timeout,
    /// Not called: the breaker is open.
    Rejected,
}

impl CallOutcome {
    /// Lower-case name, for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::Rejected => "rejected",
        }
    }
}

/// Told about every call to a guarded backend, e.g. to keep metrics.
pub trait CallObserver: Send + Sync {
    /// `backend` was called (or refused) with `outcome` after `latency`.
    fn observe(&self, backend: &str, outcome: CallOutcome, latency: Duration);
}

/// `inner` behind `breaker`, each call bounded by `timeout`.
pub struct GuardedStore {
    inner: Arc<dyn Store>,
    breaker: Breaker,
    timeout: Duration,
    last_latency: AtomicU64,
    observer: Option<Arc<dyn CallObserver>>,
}

impl GuardedStore {
    /// Guards `inner` (the breaker should carry the backend's name).
    pub fn new(inner: Arc<dyn Store>, breaker: Breaker, timeout: Duration) -> Self {
        Self {
            inner,
            breaker,
            timeout,
            last_latency: AtomicU64::new(0),
            observer: None,
        }
    }

    /// Reports every call to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn CallObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    fn report(&self, outcome: CallOutcome, latency: Duration) {
        if let Some(observer) = &self.observer {
            observer.observe(self.inner.name(), outcome, latency);
        }
    }

    /// The backend's breaker and latency.
    pub fn health(&self) -> BackendHealth {
        BackendHealth {
            name: self.inner.name().to_string(),
            breaker: self.breaker.snapshot(),
            last_latency_micros: self.last_latency.load(Ordering::Relaxed),
        }
    }
}

#[async_trait]
impl Store for GuardedStore {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn decide(&self, checks: &[Check<'_>], now: u64) -> Result<Decision, StoreError> {
        let name = self.inner.name();
        let permit = self.breaker.admit().map_err(|rejected| {
            self.report(CallOutcome::Rejected, Duration::ZERO);
            StoreError::new(
                name,
                format!(
                    "circuit breaker open (next probe in {} ms)",
                    rejected.retry_in.div_ceil(1000)
                ),
            )
        })?;
        let started = Instant::now();
        let result = tokio::time::timeout(self.timeout, self.inner.decide(checks, now)).await;
        let latency = started.elapsed();
        self.last_latency
            .store(latency.as_micros() as u64, Ordering::Relaxed);
        match result {
            Ok(Ok(decision)) => {
                permit.succeed();
                self.report(CallOutcome::Ok, latency);
                Ok(decision)
            }
            Ok(Err(error)) => {
                permit.fail(&error.message);
                self.report(CallOutcome::Error, latency);
                Err(error)
            }
            Err(_) => {
                let message = format!("no answer within {:?}", self.timeout);
                permit.fail(&message);
                self.report(CallOutcome::Timeout, latency);
                Err(StoreError::new(name, message))
            }
        }
    }

    /// Forwarded within the timeout, but not through the breaker: an
    /// operator's reset is tried even while decisions are kept away, and its
    /// outcome is no evidence of the backend's health for them.
    async fn reset(&self, keys: &[&str], now: u64) -> Result<Vec<bool>, StoreError> {
        tokio::time::timeout(self.timeout, self.inner.reset(keys, now))
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::new(
                    self.inner.name(),
                    format!("no answer within {:?}", self.timeout),
                ))
            })
    }
}
