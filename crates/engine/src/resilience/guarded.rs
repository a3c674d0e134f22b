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

/// `inner` behind `breaker`, each call bounded by `timeout`.
pub struct GuardedStore {
    inner: Arc<dyn Store>,
    breaker: Breaker,
    timeout: Duration,
    last_latency: AtomicU64,
}

impl GuardedStore {
    /// Guards `inner` (the breaker should carry the backend's name).
    pub fn new(inner: Arc<dyn Store>, breaker: Breaker, timeout: Duration) -> Self {
        Self {
            inner,
            breaker,
            timeout,
            last_latency: AtomicU64::new(0),
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
        self.last_latency
            .store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        match result {
            Ok(Ok(decision)) => {
                permit.succeed();
                Ok(decision)
            }
            Ok(Err(error)) => {
                permit.fail(&error.message);
                Err(error)
            }
            Err(_) => {
                let message = format!("no answer within {:?}", self.timeout);
                permit.fail(&message);
                Err(StoreError::new(name, message))
            }
        }
    }
}
