//! Routing a request's checks to their backends: each backend's checks in
//! one engine call (backends in parallel), bounded by the caller's budget;
//! where a backend fails, each check's failure policy answers (open,
//! closed, or decided in the local fallback store).

use super::{by_backend, Decided, DecidedBy, Decisions, Routed};
use crate::backends::Backends;
use ratelimitd_engine::{Check, Limit, Outcome, StoreError};
use ratelimitd_policy::FailurePolicy;
use std::fmt;
use std::time::Duration;
use tracing::Instrument;

/// Why a backend did not decide.
#[derive(Debug)]
enum BackendFailure {
    /// The backend answered with an error (or its breaker refused).
    Store(StoreError),
    /// The caller's deadline ran out first.
    Deadline(Duration),
}

impl fmt::Display for BackendFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store(error) => error.fmt(f),
            Self::Deadline(budget) => write!(
                f,
                "the caller's deadline ran out ({} µs were left for backends)",
                budget.as_micros()
            ),
        }
    }
}

/// Decides every backend's checks (in parallel), then the checks of failed
/// backends by their failure policies; one outcome per check, in order.
/// Backends get at most `budget` (what the caller's deadline leaves).
pub async fn route(
    backends: &Backends,
    routed: &[Routed<'_>],
    budget: Option<Duration>,
) -> Decisions {
    let now = backends.engine.now();
    let groups = by_backend(routed);
    let engine = &backends.engine;
    let decide_group = |(backend, members): &(usize, Vec<usize>)| {
        let backend = *backend;
        let part: Vec<Check<'_>> = members.iter().map(|&i| routed[i].check).collect();
        let span = tracing::info_span!(
            "backend",
            backend = engine.backend_name(backend),
            checks = part.len()
        );
        async move {
            let decision = engine.decide_on(backend, &part, now);
            match budget {
                None => decision.await.map_err(BackendFailure::Store),
                Some(budget) => match tokio::time::timeout(budget, decision).await {
                    Ok(decided) => decided.map_err(BackendFailure::Store),
                    Err(_) => Err(BackendFailure::Deadline(budget)),
                },
            }
        }
        .instrument(span)
    };
    // Most requests use one backend: awaited as is, without `join_all`.
    let results = match groups.as_slice() {
        [group] => vec![decide_group(group).await],
        _ => futures_util::future::join_all(groups.iter().map(decide_group)).await,
    };

    let mut decided: Vec<Option<Decided>> = vec![None; routed.len()];
    let mut local = Vec::new();
    for ((_, members), result) in groups.iter().zip(results) {
        match result {
            Ok(decision) => {
                for (&member, outcome) in members.iter().zip(decision.outcomes) {
                    decided[member] = Some(Decided {
                        outcome,
                        by: DecidedBy::Backend,
                    });
                }
            }
            Err(error) => {
                tracing::debug!(%error, "backend failed: applying failure policies");
                for &member in members {
                    let Routed { check, .. } = routed[member];
                    decided[member] = match routed[member].failure_policy {
                        FailurePolicy::Open => Some(untouched(check.limit, DecidedBy::FailedOpen)),
                        FailurePolicy::Closed => {
                            Some(untouched(check.limit, DecidedBy::FailedClosed))
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
                by: DecidedBy::Local,
            });
        }
    }
    Decisions {
        decided: decided.into_iter().flatten().collect(),
        now,
    }
}

/// A check its failed backend did not decide: nothing counted, nothing over.
fn untouched(limit: &Limit, by: DecidedBy) -> Decided {
    Decided {
        outcome: Outcome {
            over_limit: false,
            limit: limit.capacity(),
            remaining: if by == DecidedBy::FailedOpen {
                limit.capacity()
            } else {
                0
            },
            reset_after: 0,
            retry_after: 0,
        },
        by,
    }
}
