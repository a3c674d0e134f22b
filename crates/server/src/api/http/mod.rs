//! The HTTP port. For apps without gRPC: `POST /v1/check` and
//! `/v1/inspect` (`v1.rs`). As the reference envoyproxy/ratelimit service
//! has it: `GET /healthcheck` and `POST /json` (`envoy.rs`). For operators:
//! `GET /metrics` (Prometheus), `/healthz` (liveness), `/readyz`
//! (readiness, following the failure policies) and `/config` (the running
//! configuration, redacted).

mod envoy;
mod v1;

use crate::api::config_view::running_config;
use crate::api::limits::{ConnectionSlots, Limits};
use crate::state::ServiceState;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The HTTP routes over `state`, reading bodies of at most
/// `max_body_bytes` (413 beyond).
pub fn router(state: Arc<ServiceState>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/check", post(v1::check))
        .route("/v1/inspect", post(v1::inspect))
        .route("/healthcheck", get(envoy::healthcheck))
        .route("/json", post(envoy::json))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/config", get(config))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// Serves the HTTP port on `listener` within `limits` until `stop`
/// resolves.
pub async fn serve(
    listener: TcpListener,
    limits: Limits,
    state: Arc<ServiceState>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = ConnectionSlots::new(limits.max_connections).guard(listener);
    axum::serve(listener, router(state, limits.max_body_bytes))
        .with_graceful_shutdown(stop)
        .await
}

async fn readyz(State(state): State<Arc<ServiceState>>) -> Response {
    if state.serving() {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
    }
}

async fn metrics(State(state): State<Arc<ServiceState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics().encode(state.backends()),
    )
        .into_response()
}

async fn config(State(state): State<Arc<ServiceState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        running_config(&state).to_string(),
    )
        .into_response()
}
