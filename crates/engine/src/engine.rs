//! The engine: a clock and the stores (backends) counters live in.

use crate::clock::Clock;
use crate::decision::{Check, Decision, Outcome};
use crate::store::{Store, StoreError};
use std::sync::Arc;

/// Decides requests at the clock's time, each check in its backend's store.
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

    /// Decides all `checks` of one request; `backends[i]` is the store of
    /// `checks[i]`. Checks of one backend are decided together, all or
    /// nothing; several backends decide in parallel and the request is
    /// allowed only if all of them allow it. Returns the decision and the
    /// time (µs since the epoch) it was taken at.
    pub async fn decide(
        &self,
        checks: &[Check<'_>],
        backends: &[usize],
    ) -> Result<(Decision, u64), StoreError> {
        let now = self.clock.now_micros();
        let first = backends.first().copied().unwrap_or(0);
        if backends.iter().all(|&backend| backend == first) {
            return Ok((self.stores[first].decide(checks, now).await?, now));
        }
        let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
        for (index, &backend) in backends.iter().enumerate() {
            match groups.iter_mut().find(|(b, _)| *b == backend) {
                Some((_, members)) => members.push(index),
                None => groups.push((backend, vec![index])),
            }
        }
        let parts: Vec<Vec<Check<'_>>> = groups
            .iter()
            .map(|(_, members)| members.iter().map(|&i| checks[i]).collect())
            .collect();
        let decided = futures_util::future::join_all(
            groups
                .iter()
                .zip(&parts)
                .map(|((backend, _), part)| self.stores[*backend].decide(part, now)),
        )
        .await;
        let mut allowed = true;
        let mut outcomes = vec![Outcome::default(); checks.len()];
        for ((_, members), decision) in groups.iter().zip(decided) {
            let decision = decision?;
            allowed &= decision.allowed;
            for (&member, outcome) in members.iter().zip(decision.outcomes) {
                outcomes[member] = outcome;
            }
        }
        Ok((Decision { allowed, outcomes }, now))
    }

    /// The engine's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}
