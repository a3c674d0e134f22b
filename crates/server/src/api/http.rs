//! The HTTP port. As the reference service has it: `GET /healthcheck`
//! (200 `OK` while serving, 500 otherwise) and `POST /json` (a protobuf JSON
//! `RateLimitRequest` in, the `RateLimitResponse` out: 200 when OK, 429 when
//! over the limit, 400 for bad input, 503 when no files are configured). For operators: `GET /metrics`
//! (Prometheus), `/healthz` (liveness), `/readyz` (readiness, following the
//! failure policies) and `/config` (the running configuration, redacted).

use crate::api::config_view::running_config;
use crate::api::rls::json::{parse_request, response_json};
use crate::api::rls::should_rate_limit;
use crate::state::ServiceState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The HTTP routes over `state`.
pub fn router(state: Arc<ServiceState>) -> Router {
    Router::new()
        .route("/healthcheck", get(healthcheck))
        .route("/json", post(json))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/config", get(config))
        .with_state(state)
}

/// Serves the HTTP port on `listener` until `stop` resolves.
pub async fn serve(
    listener: TcpListener,
    state: Arc<ServiceState>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(stop)
        .await
}

async fn healthcheck(State(state): State<Arc<ServiceState>>) -> Response {
    if state.serving() {
        (StatusCode::OK, "OK").into_response()
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, "NOT SERVING").into_response()
    }
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

async fn json(State(state): State<Arc<ServiceState>>, body: Bytes) -> Response {
    let request = match parse_request(&body) {
        Ok(request) => request,
        Err(message) => return (StatusCode::BAD_REQUEST, message).into_response(),
    };
    match should_rate_limit(&state, &request, None).await {
        Ok(response) => {
            let status = match Code::try_from(response.overall_code) {
                Ok(Code::Ok) => StatusCode::OK,
                Ok(Code::OverLimit) => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                response_json(&response).to_string(),
            )
                .into_response()
        }
        Err(error) => {
            let status = match error.code() {
                tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
                // No envoyproxy/ratelimit files are configured: this port
                // cannot answer until they are, as the gRPC side says.
                tonic::Code::FailedPrecondition => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            (status, error.message().to_string()).into_response()
        }
    }
}
