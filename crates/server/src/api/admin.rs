//! `ratelimit.v1.Admin`: the backends as the service sees them, whether it
//! is serving (what grpc.health.v1 reports too), counters inspected without
//! consuming, and counters reset (each reset an audit event, log target
//! [`AUDIT_TARGET`]).

use crate::api::authorize;
use crate::api::check_limit::{inspect, reset};
use crate::api::layer::budget;
use crate::state::ServiceState;
use ratelimitd_policy::BackendKind;
use ratelimitd_proto::v1::admin_server::Admin;
use ratelimitd_proto::v1::{
    BackendStatus, BackendsRequest, BackendsResponse, CheckLimitResponse, InspectRequest,
    ResetRequest, ResetResponse,
};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Every backend's status, in configuration order.
pub fn backend_statuses(state: &ServiceState) -> Vec<BackendStatus> {
    let loaded = state.policy();
    let specs = loaded.policy.backends();
    specs
        .iter()
        .enumerate()
        .map(|(index, spec)| {
            let backend = state.backends().state(index);
            let mut status = BackendStatus {
                name: spec.name.clone(),
                usable: backend.usable,
                kind: backend.kind.into(),
                ..BackendStatus::default()
            };
            if let BackendKind::Failover(members) = &spec.kind {
                status.members = members.iter().map(|&m| specs[m].name.clone()).collect();
            }
            if let Some(health) = backend.redis {
                status.breaker = health.breaker.state.as_str().into();
                status.last_latency_us = health.last_latency_micros;
                status.last_error = health.breaker.last_error.unwrap_or_default();
                status.transitions = health.breaker.transitions;
                status.retry_in_ms = health.breaker.retry_in.div_ceil(1000);
            }
            status
        })
        .collect()
}

/// The log target of audit events: operators' actions on counters, with
/// who asked. Route it apart with the log filter (`ratelimitd::audit=info`).
pub const AUDIT_TARGET: &str = "ratelimitd::audit";

/// Who made an admin call, as audit events name it: the identity the layer
/// authenticated and the peer's address (`unknown` when the transport has
/// none), e.g. `ops@10.0.0.7:51234`.
fn caller<T>(request: &Request<T>) -> String {
    let address = request
        .remote_addr()
        .map_or_else(|| "unknown".to_string(), |addr| addr.to_string());
    match authorize::caller(request) {
        Ok(caller) => format!("{}@{address}", caller.name),
        Err(_) => address,
    }
}

/// `ratelimit.v1.Admin`.
pub struct AdminService {
    state: Arc<ServiceState>,
}

impl AdminService {
    /// Admin over `state`.
    pub fn new(state: Arc<ServiceState>) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn backends(
        &self,
        _request: Request<BackendsRequest>,
    ) -> Result<Response<BackendsResponse>, Status> {
        Ok(Response::new(BackendsResponse {
            backends: backend_statuses(&self.state),
            serving: self.state.serving(),
        }))
    }

    async fn inspect(
        &self,
        request: Request<InspectRequest>,
    ) -> Result<Response<CheckLimitResponse>, Status> {
        let budget = budget(&request);
        let InspectRequest { request, rule } = request.into_inner();
        let request = request.unwrap_or_default();
        let rule = (!rule.is_empty()).then_some(rule.as_str());
        inspect(&self.state, &request, rule, budget)
            .await
            .map(Response::new)
    }

    async fn reset(
        &self,
        request: Request<ResetRequest>,
    ) -> Result<Response<ResetResponse>, Status> {
        let caller = caller(&request);
        let ResetRequest { request, rule } = request.into_inner();
        let request = request.unwrap_or_default();
        let rule = (!rule.is_empty()).then_some(rule.as_str());
        let result = reset(&self.state, &request, rule).await;
        let (domain, rule) = (request.domain.as_str(), rule.unwrap_or("*"));
        match &result {
            Ok(counters) => {
                let deleted: Vec<String> = counters
                    .iter()
                    .filter(|counter| counter.deleted)
                    .map(|counter| format!("{}.{}", counter.rule, counter.limit_name))
                    .collect();
                tracing::info!(
                    target: AUDIT_TARGET,
                    action = "reset",
                    %caller,
                    domain,
                    rule,
                    counters = counters.len(),
                    deleted = %deleted.join(","),
                    "counters reset"
                );
            }
            Err(status) => tracing::warn!(
                target: AUDIT_TARGET,
                action = "reset",
                %caller,
                domain,
                rule,
                code = ?status.code(),
                error = status.message(),
                "counters not reset"
            ),
        }
        result.map(|counters| Response::new(ResetResponse { counters }))
    }
}
