//! A failover chain: each decision goes to the first member that answers;
//! members behind an open breaker are skipped at once. Every member keeps
//! its own counters (one logical counter is never spread across stores), and
//! traffic returns to the first member as soon as its breaker closes.

use crate::decision::{Check, Decision};
use crate::store::{Store, StoreError};
use async_trait::async_trait;
use std::sync::Arc;

/// Members in order of preference.
pub struct FailoverStore {
    name: String,
    members: Vec<Arc<dyn Store>>,
}

impl FailoverStore {
    /// A chain named `name` over `members` (at least one).
    pub fn new(name: &str, members: Vec<Arc<dyn Store>>) -> Self {
        assert!(!members.is_empty(), "a failover chain needs members");
        Self {
            name: name.to_string(),
            members,
        }
    }
}

#[async_trait]
impl Store for FailoverStore {
    fn name(&self) -> &str {
        &self.name
    }

    async fn decide(&self, checks: &[Check<'_>], now: u64) -> Result<Decision, StoreError> {
        let mut failures = Vec::new();
        for member in &self.members {
            match member.decide(checks, now).await {
                Ok(decision) => {
                    if !failures.is_empty() {
                        tracing::debug!(chain = %self.name, backend = member.name(), "decided by a fallback");
                    }
                    return Ok(decision);
                }
                Err(error) => failures.push(error.to_string()),
            }
        }
        Err(StoreError::new(
            &self.name,
            format!("every backend failed: {}", failures.join("; ")),
        ))
    }

    /// Resets the counters in every member (each may hold its own from a
    /// time it decided); a key counts as reset if any member held it. Any
    /// member failing fails the reset, since its counters are left.
    async fn reset(&self, keys: &[&str], now: u64) -> Result<Vec<bool>, StoreError> {
        let results = futures_util::future::join_all(
            self.members.iter().map(|member| member.reset(keys, now)),
        )
        .await;
        let mut held = vec![false; keys.len()];
        let mut failures = Vec::new();
        for result in results {
            match result {
                Ok(member_held) => {
                    for (any, this) in held.iter_mut().zip(member_held) {
                        *any |= this;
                    }
                }
                Err(error) => failures.push(error.to_string()),
            }
        }
        if failures.is_empty() {
            Ok(held)
        } else {
            Err(StoreError::new(
                &self.name,
                format!("cannot reset in every member: {}", failures.join("; ")),
            ))
        }
    }
}
