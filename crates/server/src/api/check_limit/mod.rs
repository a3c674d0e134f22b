//! `ratelimit.v1.RateLimiter/CheckLimit` over the policy's rules:
//! validate (`validate.rs`) → plan with the policy → route through the
//! decision core → record → respond (`respond.rs`, `headers.rs`).
//! `Admin/Inspect` and ext_authz run the same pipeline.

mod headers;
mod respond;
mod validate;

use crate::api::fields::invalid;
use crate::api::layer::budget;
use crate::config::LoadedPolicy;
use crate::decide::{self, Routed};
use crate::state::ServiceState;
use crate::telemetry::metrics::Api;
use ratelimitd_engine::{Check, Probe};
use ratelimitd_policy::{Plan, PlannedCheck};
use ratelimitd_proto::v1::check_limit_response::Code;
use ratelimitd_proto::v1::rate_limiter_server::RateLimiter;
use ratelimitd_proto::v1::{CheckLimitRequest, CheckLimitResponse};
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};
use tracing::Instrument;
use validate::ValidRequest;

/// `ratelimit.v1.RateLimiter`.
pub struct RateLimiterService {
    state: Arc<ServiceState>,
}

impl RateLimiterService {
    /// The service over `state`.
    pub fn new(state: Arc<ServiceState>) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl RateLimiter for RateLimiterService {
    async fn check_limit(
        &self,
        request: Request<CheckLimitRequest>,
    ) -> Result<Response<CheckLimitResponse>, Status> {
        let budget = budget(&request);
        let span = tracing::info_span!("CheckLimit", domain = %request.get_ref().domain);
        let policy = self.state.policy();
        check(
            &self.state,
            &policy,
            request.get_ref(),
            budget,
            Mode::Decide,
        )
        .instrument(span)
        .await
        .map(Response::new)
    }
}

/// Whether a request is decided or only inspected.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode<'r> {
    /// Decided: counted, recorded in metrics and denial events.
    Decide,
    /// Inspected at cost 0 (only `rule`'s limits, if given): left out of
    /// the metrics.
    Inspect {
        /// Only this rule's limits.
        rule: Option<&'r str>,
    },
}

/// Decides `request` with `loaded` (a policy snapshot the caller holds);
/// backends get at most `budget`, after which failure policies answer.
pub async fn check(
    state: &ServiceState,
    loaded: &LoadedPolicy,
    request: &CheckLimitRequest,
    budget: Option<Duration>,
    mode: Mode<'_>,
) -> Result<CheckLimitResponse, Status> {
    let valid = ValidRequest::new(request, &loaded.policy.settings)?;
    let planned = match loaded.policy.plan(&valid) {
        Plan::NoMatch if loaded.policy.settings.deny_unmatched => {
            return Ok(respond::verdict(Code::OverLimit))
        }
        Plan::NoMatch | Plan::Skipped => return Ok(respond::verdict(Code::Ok)),
        Plan::Checks(mut planned) => {
            if let Mode::Inspect { rule: Some(rule) } = mode {
                planned.retain(|planned| planned.rule == rule);
            }
            planned
        }
    };
    if planned.is_empty() {
        return Ok(respond::verdict(Code::Ok));
    }
    let routed = route(loaded, &planned, valid.cost);
    let decisions = decide::route(state.backends(), &routed, budget).await;
    if mode == Mode::Decide {
        let domain = if loaded.policy.has_domain(&request.domain) {
            request.domain.as_str()
        } else {
            "*"
        };
        decide::record(
            (state.metrics(), state.events()),
            (Api::Policy, domain),
            &routed,
            &decisions,
        );
    }
    Ok(respond::response(loaded, &planned, &routed, &decisions))
}

/// The state of the counters `request` would touch (only `rule`'s, if
/// given), consuming nothing: the decision a request of cost 0 gets, left
/// out of the metrics and denial events.
pub async fn inspect(
    state: &ServiceState,
    request: &CheckLimitRequest,
    rule: Option<&str>,
    budget: Option<Duration>,
) -> Result<CheckLimitResponse, Status> {
    let loaded = state.policy();
    if let Some(rule) = rule {
        if !loaded.policy.rules().iter().any(|r| r.name == rule) {
            return Err(invalid("rule", format!("no rule is named {rule:?}")));
        }
    }
    let request = CheckLimitRequest {
        cost: Some(0),
        ..request.clone()
    };
    check(state, &loaded, &request, budget, Mode::Inspect { rule }).await
}

/// The planned checks with their engine limits and backends.
fn route<'a>(
    loaded: &'a LoadedPolicy,
    planned: &'a [PlannedCheck<'a>],
    cost: u64,
) -> Vec<Routed<'a>> {
    planned
        .iter()
        .map(|planned| Routed {
            check: Check {
                key: &planned.key,
                limit: &loaded.limits[planned.limit.id],
                cost,
                enforced: !planned.shadow,
                probe: Probe::NextHit,
            },
            backend: planned.backend,
            failure_policy: planned.failure_policy,
            local_limit: &loaded.local_limits[planned.limit.id],
            label: planned.rule,
            shadow: planned.shadow,
        })
        .collect()
}
