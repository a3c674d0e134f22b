//! `ratelimitd health`: asks a running service's `grpc.health.v1.Health`
//! and, in detail, its `ratelimit.v1.Admin` for every backend's breaker
//! state, latency and last error.

use crate::check::endpoint;
use ratelimitd_proto::v1::admin_client::AdminClient;
use ratelimitd_proto::v1::{BackendsRequest, BackendsResponse};
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// The serving status of `service` (`""`: the whole server) at `addr`.
pub async fn probe(addr: &str, service: &str) -> anyhow::Result<ServingStatus> {
    let channel = Channel::from_shared(endpoint(addr))?.connect().await?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_string(),
        })
        .await?
        .into_inner();
    Ok(ServingStatus::try_from(response.status).unwrap_or(ServingStatus::Unknown))
}

/// Every backend's status from the service's Admin API.
pub async fn backends(addr: &str) -> anyhow::Result<BackendsResponse> {
    let channel = Channel::from_shared(endpoint(addr))?.connect().await?;
    Ok(AdminClient::new(channel)
        .backends(BackendsRequest {})
        .await?
        .into_inner())
}

/// The backends for people, one line each.
pub fn backends_text(response: &BackendsResponse) -> String {
    let mut text = String::new();
    for backend in &response.backends {
        let mut line = format!(
            "  {:<20} {:<9} {}",
            backend.name,
            backend.kind,
            if backend.usable { "usable" } else { "UNUSABLE" }
        );
        if !backend.breaker.is_empty() {
            line.push_str(&format!(
                "  breaker {} ({} transitions)  last latency {} µs",
                backend.breaker, backend.transitions, backend.last_latency_us
            ));
            if backend.retry_in_ms > 0 {
                line.push_str(&format!("  next probe in {} ms", backend.retry_in_ms));
            }
            if !backend.last_error.is_empty() {
                line.push_str(&format!("  last error: {}", backend.last_error));
            }
        }
        if !backend.members.is_empty() {
            line.push_str(&format!("  members: {}", backend.members.join(" → ")));
        }
        text.push_str(&line);
        text.push('\n');
    }
    text
}

/// The backends as JSON values.
pub fn backends_json(response: &BackendsResponse) -> serde_json::Value {
    serde_json::Value::Array(
        response
            .backends
            .iter()
            .map(|b| {
                serde_json::json!({
                    "name": b.name, "kind": b.kind, "usable": b.usable, "breaker": b.breaker,
                    "transitions": b.transitions, "last_latency_us": b.last_latency_us,
                    "retry_in_ms": b.retry_in_ms, "last_error": b.last_error, "members": b.members,
                })
            })
            .collect(),
    )
}
