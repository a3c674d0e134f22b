//! `ratelimitd health`: asks a running service's `grpc.health.v1.Health`
//! and, in detail, its `ratelimit.v1.Admin` for every backend's breaker
//! state, latency and last error.

use super::client::{connect, refused};
use super::{HealthArgs, Target};
use ratelimitd_proto::v1::admin_client::AdminClient;
use ratelimitd_proto::v1::{BackendsRequest, BackendsResponse};
use std::process::ExitCode;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// The serving status of `service` (`""`: the whole server) at `target`.
pub async fn probe(target: &Target, service: &str) -> anyhow::Result<ServingStatus> {
    let response = HealthClient::new(connect(target).await?)
        .check(HealthCheckRequest {
            service: service.to_string(),
        })
        .await
        .map_err(refused)?
        .into_inner();
    Ok(ServingStatus::try_from(response.status).unwrap_or(ServingStatus::Unknown))
}

/// Every backend's status from the service's Admin API.
pub async fn backends(target: &Target) -> anyhow::Result<BackendsResponse> {
    Ok(AdminClient::new(connect(target).await?)
        .backends(BackendsRequest {})
        .await
        .map_err(refused)?
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

/// The status and the backends as one protobuf JSON object
/// (`BackendsResponse`'s fields, plus `status`).
pub fn to_json(status: ServingStatus, response: &BackendsResponse) -> String {
    let mut object = serde_json::to_value(response).expect("a response always serializes");
    object["status"] = status.as_str_name().into();
    serde_json::to_string_pretty(&object).expect("a JSON value always serializes")
}

/// `ratelimitd health`: exit 0 only when serving.
pub async fn health(args: HealthArgs) -> anyhow::Result<ExitCode> {
    let status = probe(&args.target, &args.service).await?;
    let backends = if args.verbose || args.json {
        Some(backends(&args.target).await?)
    } else {
        None
    };
    match (&backends, args.json) {
        (Some(backends), true) => outln!("{}", to_json(status, backends)),
        (Some(backends), false) => {
            outln!("{}", status.as_str_name());
            out!("{}", backends_text(backends));
        }
        (None, _) => outln!("{}", status.as_str_name()),
    }
    Ok(if status == ServingStatus::Serving {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
