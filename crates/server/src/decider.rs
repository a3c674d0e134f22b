//! The CheckLimit decision: validate, plan with the policy, decide each
//! backend's checks with the engine, apply the rules' failure policies where
//! a backend failed, and shape the response.

use crate::config::{LoadedEnvoy, LoadedPolicy};
use crate::dispatch::{self, Decided, Routed};
use crate::headers::rate_limit_headers;
use crate::request::ValidRequest;
use crate::Backends;
use arc_swap::ArcSwap;
use ratelimitd_engine::{Check, Probe};
use ratelimitd_policy::{Algorithm as PolicyAlgorithm, Plan, PlannedCheck};
use ratelimitd_proto::v1::{
    check_limit_response::Code,
    limit_status::{Algorithm, Failure},
    CheckLimitRequest, CheckLimitResponse, LimitStatus,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tonic::Status;

/// Decides requests with the running configuration over the backends.
/// The configuration is swapped atomically on reload: a request decides
/// with the one it started with.
pub struct Decider {
    running: ArcSwap<Running>,
    backends: Backends,
    draining: AtomicBool,
}

/// The configuration in force: the policy and the envoyproxy/ratelimit
/// files, swapped together.
pub struct Running {
    /// The policy.
    pub policy: Arc<LoadedPolicy>,
    /// The envoyproxy/ratelimit files, if a directory is configured.
    pub envoy: Option<Arc<LoadedEnvoy>>,
}

impl Decider {
    /// A decider for `policy` (and envoyproxy/ratelimit files, if any)
    /// over its connected `backends`.
    pub fn new(
        policy: Arc<LoadedPolicy>,
        envoy: Option<Arc<LoadedEnvoy>>,
        backends: Backends,
    ) -> Self {
        Self {
            running: ArcSwap::from_pointee(Running { policy, envoy }),
            backends,
            draining: AtomicBool::new(false),
        }
    }

    /// Marks the service as shutting down: health turns NOT_SERVING while
    /// calls are still answered.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Whether the service is shutting down.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// The configuration in force (one consistent snapshot).
    pub fn running(&self) -> Arc<Running> {
        self.running.load_full()
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<LoadedPolicy> {
        self.running.load().policy.clone()
    }

    /// The envoyproxy/ratelimit files in force, if any are configured.
    pub fn envoy(&self) -> Option<Arc<LoadedEnvoy>> {
        self.running.load().envoy.clone()
    }

    /// Puts a new configuration in force for every later request, policy
    /// and files at once; calls in flight finish with the one they started
    /// with.
    pub fn replace(&self, policy: Arc<LoadedPolicy>, envoy: Option<Arc<LoadedEnvoy>>) {
        self.running.store(Arc::new(Running { policy, envoy }));
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
        self.check_in(&self.policy(), request, budget).await
    }

    /// [`Decider::check`] with `loaded`, a policy snapshot the caller
    /// already holds.
    pub async fn check_in(
        &self,
        loaded: &LoadedPolicy,
        request: &CheckLimitRequest,
        budget: Option<Duration>,
    ) -> Result<CheckLimitResponse, Status> {
        self.evaluate(loaded, request, budget, Mode::Decide).await
    }

    /// The state of the counters `request` would touch (only `rule`'s, if
    /// given), consuming nothing: the decision a request of cost 0 gets,
    /// left out of the metrics and denial events.
    pub async fn inspect(
        &self,
        request: &CheckLimitRequest,
        rule: Option<&str>,
        budget: Option<Duration>,
    ) -> Result<CheckLimitResponse, Status> {
        let loaded = self.policy();
        if let Some(rule) = rule {
            if !loaded.policy.rules().iter().any(|r| r.name == rule) {
                return Err(Status::invalid_argument(format!(
                    "rule: no rule is named {rule:?}"
                )));
            }
        }
        let request = CheckLimitRequest {
            cost: Some(0),
            ..request.clone()
        };
        self.evaluate(&loaded, &request, budget, Mode::Inspect { rule })
            .await
    }

    async fn evaluate(
        &self,
        loaded: &LoadedPolicy,
        request: &CheckLimitRequest,
        budget: Option<Duration>,
        mode: Mode<'_>,
    ) -> Result<CheckLimitResponse, Status> {
        let valid = ValidRequest::new(request, &loaded.policy.settings.caps)?;
        let planned = match loaded.policy.plan(&valid) {
            Plan::NoMatch if loaded.policy.settings.deny_unmatched => {
                return Ok(verdict(Code::OverLimit))
            }
            Plan::NoMatch | Plan::Skipped => return Ok(verdict(Code::Ok)),
            Plan::Checks(planned) if planned.is_empty() => return Ok(verdict(Code::Ok)),
            Plan::Checks(mut planned) => {
                if let Mode::Inspect { rule: Some(rule) } = mode {
                    planned.retain(|planned| planned.rule == rule);
                }
                planned
            }
        };
        let routed: Vec<Routed<'_>> = planned
            .iter()
            .map(|planned| Routed {
                check: Check {
                    key: &planned.key,
                    limit: &loaded.limits[planned.limit.id],
                    cost: valid.cost,
                    enforced: !planned.shadow,
                    probe: Probe::NextHit,
                },
                backend: planned.backend,
                failure_policy: planned.failure_policy,
                local_limit: &loaded.local_limits[planned.limit.id],
            })
            .collect();
        let now = self.backends.engine.now();
        let (decided, unavailable) = dispatch::decide(&self.backends, &routed, now, budget).await;
        let allowed = routed
            .iter()
            .zip(&decided)
            .all(|(routed, decided)| !routed.check.enforced || !decided.outcome.over_limit);
        let code = match (allowed, unavailable) {
            (false, _) => Code::OverLimit,
            (true, true) => Code::Unavailable,
            (true, false) => Code::Ok,
        };
        let statuses: Vec<LimitStatus> = planned
            .iter()
            .zip(&routed)
            .zip(&decided)
            .map(|((planned, routed), decided)| {
                status(
                    planned,
                    &routed.check,
                    decided,
                    &loaded.policy.backends()[planned.backend].name,
                )
            })
            .collect();
        if mode == Mode::Decide {
            let domain = if loaded.policy.has_domain(&request.domain) {
                request.domain.as_str()
            } else {
                "*"
            };
            for ((planned, routed), decided) in planned.iter().zip(&routed).zip(&decided) {
                decided.record(
                    &self.backends.metrics,
                    ("policy", domain, planned.rule),
                    &planned.key,
                    !routed.check.enforced,
                );
            }
        }
        let mut response = verdict(code);
        response.shadowed = routed
            .iter()
            .zip(&decided)
            .any(|(routed, decided)| !routed.check.enforced && decided.outcome.over_limit);
        response.degraded = decided.iter().any(|d| d.failure != Failure::None);
        response.headers = rate_limit_headers(&statuses, now / 1000);
        response.statuses = statuses;
        Ok(response)
    }
}

/// Whether a request is decided or only inspected.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode<'r> {
    Decide,
    Inspect { rule: Option<&'r str> },
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
