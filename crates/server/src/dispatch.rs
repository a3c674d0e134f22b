//! Deciding a request's checks on their backends: each backend's checks in
//! one engine call (backends in parallel), bounded by the caller's budget;
//! where a backend fails, each check's failure policy answers.

use crate::events;
use crate::metrics::{DecisionOutcome, Metrics};
use crate::Backends;
use ratelimitd_engine::{Check, Limit, Outcome, StoreError};
use ratelimitd_policy::FailurePolicy;
use ratelimitd_proto::v1::limit_status::Failure;
use std::time::Duration;
use tracing::Instrument;

/// One check, where it is decided and what to do when that fails.
#[derive(Clone, Copy)]
pub(crate) struct Routed<'a> {
    /// The check.
    pub check: Check<'a>,
    /// Index of its backend.
    pub backend: usize,
    /// What to do when the backend fails.
    pub failure_policy: FailurePolicy,
    /// Its limit in the local fallback store (`local` failure policy).
    pub local_limit: &'a Limit,
}

/// How one check was decided.
#[derive(Clone, Copy)]
pub(crate) struct Decided {
    /// The engine's outcome (or the failure policy's).
    pub outcome: Outcome,
    /// `None` when its backend decided.
    pub failure: Failure,
}

impl Decided {
    /// What the decision did to this limit, for metrics.
    pub fn outcome(&self, shadow: bool) -> DecisionOutcome {
        match (self.failure, self.outcome.over_limit) {
            (Failure::FailClosed, _) => DecisionOutcome::Denied,
            (Failure::FailOpen | Failure::Local, _) => DecisionOutcome::Degraded,
            (_, true) if shadow => DecisionOutcome::ShadowDenied,
            (_, true) => DecisionOutcome::Denied,
            (_, false) => DecisionOutcome::Allowed,
        }
    }

    /// Counts this decision in `metrics` under `(api, domain, rule)` and
    /// logs it if denied (the counter `key` hashed).
    pub fn record(
        &self,
        metrics: &Metrics,
        (api, domain, rule): (&'static str, &str, &str),
        key: &str,
        shadow: bool,
    ) {
        let outcome = self.outcome(shadow);
        metrics.decision(api, domain, rule, outcome);
        if outcome == DecisionOutcome::Denied {
            events::denied(
                api,
                domain,
                rule,
                key,
                self.outcome.remaining,
                self.outcome.retry_after.div_ceil(1000),
            );
        }
    }
}

/// Decides every backend's checks (in parallel), then the checks of failed
/// backends by their failure policies. Returns one result per check, and
/// whether an enforced check failed closed.
pub(crate) async fn decide(
    backends: &Backends,
    routed: &[Routed<'_>],
    now: u64,
    budget: Option<Duration>,
) -> (Vec<Decided>, bool) {
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for (index, check) in routed.iter().enumerate() {
        match groups
            .iter_mut()
            .find(|(backend, _)| *backend == check.backend)
        {
            Some((_, members)) => members.push(index),
            None => groups.push((check.backend, vec![index])),
        }
    }
    let engine = &backends.engine;
    let results = futures_util::future::join_all(groups.iter().map(|(backend, members)| {
        let part: Vec<Check<'_>> = members.iter().map(|&i| routed[i].check).collect();
        let span = tracing::info_span!(
            "backend",
            backend = engine.backend_name(*backend),
            checks = part.len()
        );
        async move {
            let decision = engine.decide_on(*backend, &part, now);
            match budget {
                None => decision.await,
                Some(budget) => tokio::time::timeout(budget, decision)
                    .await
                    .unwrap_or_else(|_| {
                        Err(StoreError::new(
                            "deadline",
                            format!("the caller's deadline left {budget:?}"),
                        ))
                    }),
            }
        }
        .instrument(span)
    }))
    .await;

    let mut decided: Vec<Option<Decided>> = vec![None; routed.len()];
    let mut local = Vec::new();
    let mut unavailable = false;
    for ((_, members), result) in groups.iter().zip(results) {
        match result {
            Ok(decision) => {
                for (&member, outcome) in members.iter().zip(decision.outcomes) {
                    decided[member] = Some(Decided {
                        outcome,
                        failure: Failure::None,
                    });
                }
            }
            Err(error) => {
                tracing::debug!(%error, "backend failed: applying failure policies");
                for &member in members {
                    let Routed { check, .. } = routed[member];
                    decided[member] = match routed[member].failure_policy {
                        FailurePolicy::Open => Some(untouched(check.limit, Failure::FailOpen)),
                        FailurePolicy::Closed => {
                            unavailable |= check.enforced;
                            Some(untouched(check.limit, Failure::FailClosed))
                        }
                        FailurePolicy::Local => {
                            local.push(member);
                            None
                        }
                    };
                }
            }
        }
    }
    if !local.is_empty() {
        let local_checks: Vec<Check<'_>> = local
            .iter()
            .map(|&i| Check {
                limit: routed[i].local_limit,
                ..routed[i].check
            })
            .collect();
        let decision = backends.local_fallback.decide_at(&local_checks, now);
        for (&member, outcome) in local.iter().zip(decision.outcomes) {
            decided[member] = Some(Decided {
                outcome,
                failure: Failure::Local,
            });
        }
    }
    (decided.into_iter().flatten().collect(), unavailable)
}

/// A check its failed backend did not decide: nothing counted, nothing over.
fn untouched(limit: &Limit, failure: Failure) -> Decided {
    Decided {
        outcome: Outcome {
            over_limit: false,
            limit: limit.capacity(),
            remaining: if failure == Failure::FailOpen {
                limit.capacity()
            } else {
                0
            },
            reset_after: 0,
            retry_after: 0,
        },
        failure,
    }
}
