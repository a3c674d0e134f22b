//! `ratelimitd health`: asks a running service's `grpc.health.v1.Health`.

use crate::check::endpoint;
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
