//! `ratelimit.v1.Admin`: the backends as the service sees them, whether it
//! is serving (what grpc.health.v1 reports too), and counters inspected
//! without consuming.

use crate::api::check_limit::inspect;
use crate::api::layer::budget;
use crate::state::ServiceState;
use ratelimitd_policy::BackendKind;
use ratelimitd_proto::v1::admin_server::Admin;
use ratelimitd_proto::v1::{
    BackendStatus, BackendsRequest, BackendsResponse, CheckLimitResponse, InspectRequest,
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
}
