//! The CheckLimit decision: validate, plan with the policy, decide with the
//! engine, and shape the response.

use crate::config::LoadedPolicy;
use crate::headers::rate_limit_headers;
use crate::request::ValidRequest;
use ratelimitd_engine::{Check, Engine, Outcome};
use ratelimitd_policy::{Algorithm as PolicyAlgorithm, Plan, PlannedCheck};
use ratelimitd_proto::v1::{
    check_limit_response::Code, limit_status::Algorithm, CheckLimitRequest, CheckLimitResponse,
    LimitStatus,
};
use std::sync::Arc;
use tonic::Status;

/// Decides CheckLimit requests with one policy and one engine.
pub struct Decider {
    policy: Arc<LoadedPolicy>,
    engine: Engine,
}

impl Decider {
    /// A decider for `policy` over `engine`.
    pub fn new(policy: Arc<LoadedPolicy>, engine: Engine) -> Self {
        Self { policy, engine }
    }

    /// The policy in force.
    pub fn policy(&self) -> &LoadedPolicy {
        &self.policy
    }

    /// Decides one request.
    pub async fn check(&self, request: &CheckLimitRequest) -> Result<CheckLimitResponse, Status> {
        let loaded = &*self.policy;
        let valid = ValidRequest::new(request, &loaded.policy.settings.caps)?;
        let planned = match loaded.policy.plan(&valid) {
            Plan::NoMatch if loaded.policy.settings.deny_unmatched => return Ok(verdict(false)),
            Plan::NoMatch | Plan::Skipped => return Ok(verdict(true)),
            Plan::Checks(planned) if planned.is_empty() => return Ok(verdict(true)),
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
        let backends: Vec<usize> = planned.iter().map(|planned| planned.backend).collect();
        let (decision, now) = self
            .engine
            .decide(&checks, &backends)
            .await
            .map_err(|error| Status::unavailable(error.to_string()))?;
        let statuses: Vec<LimitStatus> = planned
            .iter()
            .zip(&checks)
            .zip(&decision.outcomes)
            .map(|((planned, check), outcome)| status(planned, check, outcome))
            .collect();
        let mut response = verdict(decision.allowed);
        response.shadowed = decision.shadow_denied(&checks);
        response.headers = rate_limit_headers(&statuses, now / 1000);
        response.statuses = statuses;
        Ok(response)
    }
}

/// A response with no statuses.
fn verdict(allowed: bool) -> CheckLimitResponse {
    CheckLimitResponse {
        allowed,
        code: if allowed { Code::Ok } else { Code::OverLimit } as i32,
        ..CheckLimitResponse::default()
    }
}

fn millis(micros: u64) -> u64 {
    micros.div_ceil(1000)
}

fn status(planned: &PlannedCheck<'_>, check: &Check<'_>, outcome: &Outcome) -> LimitStatus {
    let algorithm = match planned.limit.algorithm {
        PolicyAlgorithm::FixedWindow => Algorithm::FixedWindow,
        PolicyAlgorithm::SlidingWindow => Algorithm::SlidingWindow,
        PolicyAlgorithm::SlidingLog => Algorithm::SlidingLog,
        PolicyAlgorithm::TokenBucket => Algorithm::TokenBucket,
        PolicyAlgorithm::Gcra => Algorithm::Gcra,
    };
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
    }
}
