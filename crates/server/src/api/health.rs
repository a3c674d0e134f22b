//! `grpc.health.v1.Health`, kept truthful: SERVING exactly while the
//! service serves (see [`ServiceState::serving`]), re-evaluated from the
//! backends' breakers, and NOT_SERVING from the moment it drains.

use crate::state::ServiceState;
use std::sync::Arc;
use std::time::Duration;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

/// How often health is re-evaluated from the backends' breakers.
const INTERVAL: Duration = Duration::from_millis(250);

/// The health service and its reporter, at the state's truth now.
pub async fn health(state: &ServiceState) -> (HealthReporter, HealthServer<impl Health>) {
    let (reporter, service) = tonic_health::server::health_reporter();
    set(&reporter, state.serving()).await;
    (reporter, service)
}

/// Follows `state`'s truth until aborted.
pub async fn monitor(reporter: HealthReporter, state: Arc<ServiceState>) {
    let mut serving = state.serving();
    let mut ticks = tokio::time::interval(INTERVAL);
    loop {
        ticks.tick().await;
        let now_serving = state.serving();
        if now_serving != serving {
            tracing::warn!(serving = now_serving, "health changed");
            set(&reporter, now_serving).await;
            serving = now_serving;
        }
    }
}

/// Reports `serving` for the whole server and for `ratelimit.v1.RateLimiter`.
pub async fn set(reporter: &HealthReporter, serving: bool) {
    let status = if serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    reporter.set_service_status("", status).await;
    reporter
        .set_service_status(ratelimitd_proto::RATE_LIMITER_SERVICE, status)
        .await;
}
