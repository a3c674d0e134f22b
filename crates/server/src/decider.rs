//! The CheckLimit decision: validate, plan with the policy, decide each
//! backend's checks with the engine, apply the rules' failure policies where
//! a backend failed, and shape the response.

use crate::config::LoadedPolicy;
use crate::headers::rate_limit_headers;
use crate::request::ValidRequest;
use crate::Backends;
use ratelimitd_engine::{Check, Limit, Outcome, StoreError};
use ratelimitd_policy::{Algorithm as PolicyAlgorithm, FailurePolicy, Plan, PlannedCheck};
use ratelimitd_proto::v1::{
    check_limit_response::Code,
    limit_status::{Algorithm, Failure},
    CheckLimitRequest, CheckLimitResponse, LimitStatus,
};
use std::sync::Arc;
use std::time::Duration;
use tonic::Status;

/// Decides CheckLimit requests with one policy over its backends.
pub struct Decider {
    policy: Arc<LoadedPolicy>,
    backends: Backends,
}

/// How one check was decided.
#[derive(Clone, Copy)]
struct Decided {
    outcome: Outcome,
    failure: Failure,
}

impl Decider {
    /// A decider for `policy` over its connected `backends`.
    pub fn new(policy: Arc<LoadedPolicy>, backends: Backends) -> Self {
        Self { policy, backends }
    }

    /// The policy in force.
    pub fn policy(&self) -> &LoadedPolicy {
        &self.policy
    }

    /// The backends decisions are made in.
    pub fn backends(&self) -> &Backends {
        &self.backends
    }

    /// Decides one request; backends get at most `budget` (what the
    /// caller's deadline leaves), after which failure policies answer.
    pub async fn check(
        &self,
        request: &CheckLimitRequest,
        budget: Option<Duration>,
    ) -> Result<CheckLimitResponse, Status> {
        let loaded = &*self.policy;
        let valid = ValidRequest::new(request, &loaded.policy.settings.caps)?;
        let planned = match loaded.policy.plan(&valid) {
            Plan::NoMatch if loaded.policy.settings.deny_unmatched => {
                return Ok(verdict(Code::OverLimit))
            }
            Plan::NoMatch | Plan::Skipped => return Ok(verdict(Code::Ok)),
            Plan::Checks(planned) if planned.is_empty() => return Ok(verdict(Code::Ok)),
            Plan::Checks(planned) => planned,
        };
        let checks: Vec<Check<'_>> = planned
            .iter()
            .map(|planned| Check {
                key: &planned.key,
                limit: &loaded.limits[planned.limit.id],
                cost: valid.cost,
                enforced: !planned.shadow,
            })
            .collect();
        let now = self.backends.engine.now();
        let (decided, unavailable) = self.decide(&planned, &checks, now, budget).await;
        let allowed = checks
            .iter()
            .zip(&decided)
            .all(|(check, decided)| !check.enforced || !decided.outcome.over_limit);
        let code = match (allowed, unavailable) {
            (false, _) => Code::OverLimit,
            (true, true) => Code::Unavailable,
            (true, false) => Code::Ok,
        };
        let statuses: Vec<LimitStatus> = planned
            .iter()
            .zip(&checks)
            .zip(&decided)
            .map(|((planned, check), decided)| {
                status(
                    planned,
                    check,
                    decided,
                    &loaded.policy.backends()[planned.backend].name,
                )
            })
            .collect();
        let mut response = verdict(code);
        response.shadowed = checks
            .iter()
            .zip(&decided)
            .any(|(check, decided)| !check.enforced && decided.outcome.over_limit);
        response.degraded = decided.iter().any(|d| d.failure != Failure::None);
        response.headers = rate_limit_headers(&statuses, now / 1000);
        response.statuses = statuses;
        Ok(response)
    }

    /// Decides every backend's checks (in parallel), then the checks of
    /// failed backends by their rules' failure policies. Returns one result
    /// per check, and whether an enforced check failed closed.
    async fn decide(
        &self,
        planned: &[PlannedCheck<'_>],
        checks: &[Check<'_>],
        now: u64,
        budget: Option<Duration>,
    ) -> (Vec<Decided>, bool) {
        let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
        for (index, planned) in planned.iter().enumerate() {
            match groups
                .iter_mut()
                .find(|(backend, _)| *backend == planned.backend)
            {
                Some((_, members)) => members.push(index),
                None => groups.push((planned.backend, vec![index])),
            }
        }
        let engine = &self.backends.engine;
        let results =
            futures_util::future::join_all(groups.iter().map(|(backend, members)| {
                let part: Vec<Check<'_>> = members.iter().map(|&i| checks[i]).collect();
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
            }))
            .await;

        let mut decided: Vec<Option<Decided>> = vec![None; checks.len()];
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
                        let limit = checks[member].limit;
                        decided[member] = match planned[member].failure_policy {
                            FailurePolicy::Open => Some(untouched(limit, Failure::FailOpen)),
                            FailurePolicy::Closed => {
                                unavailable |= checks[member].enforced;
                                Some(untouched(limit, Failure::FailClosed))
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
                    limit: &self.policy.local_limits[planned[i].limit.id],
                    ..checks[i]
                })
                .collect();
            let decision = self.backends.local_fallback.decide_at(&local_checks, now);
            for (&member, outcome) in local.iter().zip(decision.outcomes) {
                decided[member] = Some(Decided {
                    outcome,
                    failure: Failure::Local,
                });
            }
        }
        (decided.into_iter().flatten().collect(), unavailable)
    }
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

/// A response with no statuses.
fn verdict(code: Code) -> CheckLimitResponse {
    CheckLimitResponse {
        allowed: code == Code::Ok,
        code: code as i32,
        ..CheckLimitResponse::default()
    }
}

fn millis(micros: u64) -> u64 {
    micros.div_ceil(1000)
}

fn status(
    planned: &PlannedCheck<'_>,
    check: &Check<'_>,
    decided: &Decided,
    backend: &str,
) -> LimitStatus {
    let algorithm = match planned.limit.algorithm {
        PolicyAlgorithm::FixedWindow => Algorithm::FixedWindow,
        PolicyAlgorithm::SlidingWindow => Algorithm::SlidingWindow,
        PolicyAlgorithm::SlidingLog => Algorithm::SlidingLog,
        PolicyAlgorithm::TokenBucket => Algorithm::TokenBucket,
        PolicyAlgorithm::Gcra => Algorithm::Gcra,
    };
    let outcome = &decided.outcome;
    LimitStatus {
        rule: planned.rule.to_string(),
        limit_name: planned.limit.name.clone(),
        algorithm: algorithm as i32,
        limit: outcome.limit,
        window_ms: millis(check.limit.period_micros()),
        remaining: outcome.remaining,
        reset_after_ms: millis(outcome.reset_after),
        retry_after_ms: millis(outcome.retry_after),
        over_limit: outcome.over_limit,
        shadow: planned.shadow,
        tier: planned.tier.unwrap_or_default().to_string(),
        failure: decided.failure as i32,
        backend: backend.to_string(),
    }
}
