//! `ratelimit.v1.Admin`: the backends as the service sees them, whether it
//! is serving (also what grpc.health.v1 reports), and counters inspected
//! without consuming.

use crate::decider::Decider;
use crate::BackendHandle;
use ratelimitd_policy::{BackendKind, FailurePolicy};
use ratelimitd_proto::v1::admin_server::Admin;
use ratelimitd_proto::v1::{
    BackendStatus, BackendsRequest, BackendsResponse, CheckLimitResponse, InspectRequest,
};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Serving means: not shutting down, and every rule that fails closed
/// (envoyproxy/ratelimit files included) has a usable backend.
pub fn serving(decider: &Decider) -> bool {
    let running = decider.running();
    let loaded = &running.policy;
    let backends = decider.backends();
    let envoy = &loaded.policy.envoy;
    let envoy_fails_closed = running.envoy.as_ref().is_some_and(|files| {
        envoy.failure_policy == FailurePolicy::Closed || files.config.fails_closed()
    });
    !decider.draining()
        && loaded
            .policy
            .rules()
            .iter()
            .filter(|rule| rule.failure_policy == FailurePolicy::Closed)
            .all(|rule| backends.usable(rule.backend))
        && (!envoy_fails_closed || backends.usable(envoy.backend))
}

/// Every backend's status, in configuration order.
pub fn backend_statuses(decider: &Decider) -> Vec<BackendStatus> {
    let backends = decider.backends();
    let loaded = decider.policy();
    let specs = loaded.policy.backends();
    specs
        .iter()
        .enumerate()
        .map(|(index, spec)| {
            let mut status = BackendStatus {
                name: spec.name.clone(),
                usable: backends.usable(index),
                ..BackendStatus::default()
            };
            match (&spec.kind, &backends.kinds[index]) {
                (BackendKind::Failover(members), _) => {
                    status.kind = "failover".into();
                    status.members = members.iter().map(|&m| specs[m].name.clone()).collect();
                }
                (_, BackendHandle::Redis { guarded, .. }) => {
                    let health = guarded.health();
                    status.kind = "redis".into();
                    status.breaker = health.breaker.state.as_str().into();
                    status.last_latency_us = health.last_latency_micros;
                    status.last_error = health.breaker.last_error.unwrap_or_default();
                    status.transitions = health.breaker.transitions;
                    status.retry_in_ms = health.breaker.retry_in.div_ceil(1000);
                }
                _ => status.kind = "memory".into(),
            }
            status
        })
        .collect()
}

/// The Admin service over a decider.
pub struct AdminService {
    decider: Arc<Decider>,
}

impl AdminService {
    /// Admin for `decider`'s backends.
    pub fn new(decider: Arc<Decider>) -> Self {
        Self { decider }
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn backends(
        &self,
        _request: Request<BackendsRequest>,
    ) -> Result<Response<BackendsResponse>, Status> {
        Ok(Response::new(BackendsResponse {
            backends: backend_statuses(&self.decider),
            serving: serving(&self.decider),
        }))
    }

    async fn inspect(
        &self,
        request: Request<InspectRequest>,
    ) -> Result<Response<CheckLimitResponse>, Status> {
        let budget = crate::grpc::caller_budget(&request);
        let InspectRequest { request, rule } = request.into_inner();
        let request = request.unwrap_or_default();
        let rule = (!rule.is_empty()).then_some(rule.as_str());
        self.decider
            .inspect(&request, rule, budget)
            .await
            .map(Response::new)
    }
}
