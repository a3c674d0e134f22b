//! The CheckLimit answer: the code, one `LimitStatus` per limit, and the
//! HTTP headers; the decision core's vocabulary mapped onto the proto's.

use super::headers::describe;
use super::Applied;
use crate::config::LoadedPolicy;
use crate::decide::{Decided, DecidedBy, Decisions, Routed};
use ratelimitd_policy::Algorithm as PolicyAlgorithm;
use ratelimitd_proto::v1::{
    check_limit_response::Code,
    limit_status::{Algorithm, Failure},
    CheckLimitResponse, LimitStatus,
};

/// A response with no statuses.
pub(super) fn verdict(code: Code) -> CheckLimitResponse {
    CheckLimitResponse {
        allowed: code == Code::Ok,
        code: code as i32,
        ..CheckLimitResponse::default()
    }
}

/// The answer for the `applied` limits, decided.
pub(super) fn response(
    loaded: &LoadedPolicy,
    applied: &[Applied<'_>],
    routed: &[Routed<'_>],
    decisions: &Decisions,
) -> CheckLimitResponse {
    let code = match (decisions.allowed(routed), decisions.unavailable(routed)) {
        (false, _) => Code::OverLimit,
        (true, true) => Code::Unavailable,
        (true, false) => Code::Ok,
    };
    let backends = loaded.policy.backends();
    let statuses: Vec<LimitStatus> = applied
        .iter()
        .zip(routed)
        .zip(&decisions.decided)
        .map(|((applied, routed), decided)| {
            status(applied, routed, decided, &backends[applied.backend].name)
        })
        .collect();
    let mut response = verdict(code);
    response.shadowed = decisions.shadow_denied(routed);
    response.degraded = decisions.degraded();
    let description = describe(&statuses, decisions.now / 1000);
    response.headers = description.headers;
    response.retry_after_ms = description.retry_after_ms;
    response.reset_after_ms = description.reset_after_ms;
    response.statuses = statuses;
    response
}

fn millis(micros: u64) -> u64 {
    micros.div_ceil(1000)
}

fn status(
    applied: &Applied<'_>,
    routed: &Routed<'_>,
    decided: &Decided,
    backend: &str,
) -> LimitStatus {
    let outcome = &decided.outcome;
    LimitStatus {
        rule: applied.rule.to_string(),
        limit_name: applied.limit_name.to_string(),
        algorithm: algorithm(applied.algorithm) as i32,
        limit: outcome.limit,
        window_ms: millis(routed.check.limit.period_micros()),
        remaining: outcome.remaining,
        reset_after_ms: millis(outcome.reset_after),
        retry_after_ms: millis(outcome.retry_after),
        over_limit: outcome.over_limit,
        shadow: applied.shadow,
        tier: applied.tier.to_string(),
        failure: failure(decided.by) as i32,
        backend: backend.to_string(),
    }
}

/// The proto's name for an algorithm.
fn algorithm(algorithm: PolicyAlgorithm) -> Algorithm {
    match algorithm {
        PolicyAlgorithm::FixedWindow => Algorithm::FixedWindow,
        PolicyAlgorithm::SlidingWindow => Algorithm::SlidingWindow,
        PolicyAlgorithm::SlidingLog => Algorithm::SlidingLog,
        PolicyAlgorithm::TokenBucket => Algorithm::TokenBucket,
        PolicyAlgorithm::Gcra => Algorithm::Gcra,
    }
}

/// The proto's name for who decided.
fn failure(by: DecidedBy) -> Failure {
    match by {
        DecidedBy::Backend => Failure::None,
        DecidedBy::FailedOpen => Failure::FailOpen,
        DecidedBy::FailedClosed => Failure::FailClosed,
        DecidedBy::Local => Failure::Local,
    }
}
