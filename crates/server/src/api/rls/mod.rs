//! `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`: a
//! drop-in for envoyproxy/ratelimit over the envoyproxy/ratelimit files in
//! force, decided by the same core, backends and failure policies as
//! CheckLimit: validate (`validate.rs`) → plan (`plan.rs`: the descriptor
//! trees, overrides, `replaces`, hits) → route → record → respond
//! (`respond.rs`). `json.rs` is its protobuf JSON form for `POST /json`.

pub mod json;
mod plan;
mod respond;
mod validate;

use crate::api::authorize;
use crate::api::fields::invalid;
use crate::api::layer::budget;
use crate::config::LoadedEnvoy;
use crate::decide::{self, DecidedBy};
use crate::state::ServiceState;
use crate::telemetry::metrics::Api;
use crate::telemetry::reference_metrics::LimitHits;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitService;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};
use tracing::Instrument;

/// The RLS v3 service.
pub struct RlsService {
    state: Arc<ServiceState>,
}

impl RlsService {
    /// RLS over `state`.
    pub fn new(state: Arc<ServiceState>) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl RateLimitService for RlsService {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        let budget = budget(&request);
        let caller = authorize::caller(&request)?;
        authorize::may_check(&self.state, &caller, &request.get_ref().domain, false)?;
        let span = tracing::info_span!("ShouldRateLimit", domain = %request.get_ref().domain);
        should_rate_limit(&self.state, request.get_ref(), budget)
            .instrument(span)
            .await
            .map(Response::new)
    }
}

/// Decides one RLS request; backends get at most `budget`.
pub async fn should_rate_limit(
    state: &ServiceState,
    request: &RateLimitRequest,
    budget: Option<Duration>,
) -> Result<RateLimitResponse, Status> {
    let running = state.running();
    let loaded = &running.policy;
    let settings = &loaded.policy.settings;
    let overrides = validate::validate(request, &settings.caps)?;
    let envoy = running.envoy.as_ref().ok_or_else(|| {
        Status::failed_precondition(
            "no rate limit configuration loaded: start with --envoy-config-dir or set envoy.config_dir",
        )
    })?;
    let envoy_settings = &loaded.policy.envoy;

    let (verdicts, mut planned) = plan::plan(request, &envoy.config, &overrides, envoy_settings);
    plan::drop_replaced(&mut planned);
    let limits = plan::limits(&planned, envoy, settings.local_replicas)
        .map_err(|error| invalid("descriptors.limit", error))?;
    let routed = plan::route(&planned, &limits, envoy_settings);
    let decisions = decide::route(state.backends(), &routed, budget).await;
    decide::record(
        (state.metrics(), state.events()),
        (Api::Envoy, &request.domain),
        &routed,
        &decisions,
    );

    if let Some(near_limit_ratio) = envoy_settings.reference_metrics {
        record_reference_metrics(
            state,
            request,
            envoy,
            &planned,
            &decisions,
            near_limit_ratio,
        );
    }
    let statuses = respond::statuses(&verdicts, &planned, &routed, &decisions);
    let overall_code = if respond::is_over_limit(&statuses, &planned) && !settings.shadow_mode {
        Code::OverLimit
    } else {
        Code::Ok
    };
    let response_headers_to_add = envoy_settings
        .response_headers
        .as_ref()
        .map(|names| respond::response_headers(&statuses, names))
        .unwrap_or_default();
    Ok(RateLimitResponse {
        overall_code: overall_code as i32,
        statuses,
        response_headers_to_add,
        ..RateLimitResponse::default()
    })
}

/// Counts each limit decided by its backend under the reference service's
/// stats key (a failure policy's answer is no count: the reference answers
/// those with an error).
fn record_reference_metrics(
    state: &ServiceState,
    request: &RateLimitRequest,
    envoy: &LoadedEnvoy,
    planned: &[plan::Planned<'_>],
    decisions: &decide::Decisions,
    near_limit_ratio: f32,
) {
    for (p, decided) in planned.iter().zip(&decisions.decided) {
        if decided.by != DecidedBy::Backend {
            continue;
        }
        let entries: Vec<(&str, &str)> = request.descriptors[p.descriptor]
            .entries
            .iter()
            .map(|entry| (entry.key.as_str(), entry.value.as_str()))
            .collect();
        let Some(stats_key) = envoy
            .config
            .metric_key(&request.domain, &entries, p.is_override())
        else {
            continue;
        };
        state.metrics().reference.record(
            &stats_key,
            near_limit_ratio,
            LimitHits {
                hits: p.hits,
                limit: decided.outcome.limit,
                remaining: decided.outcome.remaining,
                over_limit: decided.outcome.over_limit,
                shadow: p.shadow,
            },
        );
    }
}
