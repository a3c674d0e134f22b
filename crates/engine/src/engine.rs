//! The engine: a clock and the stores (backends) counters live in.

use crate::clock::Clock;
use crate::decision::{Check, Decision};
use crate::store::{Store, StoreError};
use std::sync::Arc;

/// Decides requests at the clock's time in the store of a backend.
#[derive(Clone)]
pub struct Engine {
    stores: Vec<Arc<dyn Store>>,
    clock: Arc<dyn Clock>,
}

impl Engine {
    /// An engine over `stores` (backends, by index), reading time from `clock`.
    pub fn new(stores: Vec<Arc<dyn Store>>, clock: Arc<dyn Clock>) -> Self {
        assert!(!stores.is_empty(), "an engine needs at least one store");
        Self { stores, clock }
    }

    /// Decides `checks` together, all or nothing, in backend `backend` at
    /// `now` (µs since the epoch, from [`Engine::now`]).
    pub async fn decide_on(
        &self,
        backend: usize,
        checks: &[Check<'_>],
        now: u64,
    ) -> Result<Decision, StoreError> {
        self.stores[backend].decide(checks, now).await
    }

    /// Deletes the counters of `keys` in backend `backend` (see
    /// [`Store::reset`]): per key, whether a live counter was deleted.
    pub async fn reset_on(&self, backend: usize, keys: &[&str]) -> Result<Vec<bool>, StoreError> {
        self.stores[backend].reset(keys, self.now()).await
    }

    /// The name of backend `backend`.
    pub fn backend_name(&self, backend: usize) -> &str {
        self.stores[backend].name()
    }

    /// The time now, from the engine's clock.
    pub fn now(&self) -> u64 {
        self.clock.now_micros()
    }
}
