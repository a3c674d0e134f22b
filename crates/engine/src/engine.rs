//! The engine: a clock and a store, deciding requests.

use crate::clock::Clock;
use crate::decision::{Check, Decision};
use crate::store::{Store, StoreError};
use std::sync::Arc;

/// Decides requests against one store at the clock's time.
#[derive(Clone)]
pub struct Engine {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl Engine {
    /// An engine over `store`, reading time from `clock`.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// Decides all `checks` of one request together, returning the decision
    /// and the time (µs since the epoch) it was taken at.
    pub async fn decide(&self, checks: &[Check<'_>]) -> Result<(Decision, u64), StoreError> {
        let now = self.clock.now_micros();
        let decision = self.store.decide(checks, now).await?;
        Ok((decision, now))
    }

    /// The engine's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}
