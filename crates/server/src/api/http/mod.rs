//! The HTTP port. For apps without gRPC: `POST /v1/check` and
//! `/v1/inspect` (`v1.rs`). As the reference envoyproxy/ratelimit service
//! has it: `GET /healthcheck` and `POST /json` (`envoy.rs`). For operators:
//! `GET /metrics` (Prometheus; `/metrics/reference` the reference
//! service's metric names), `/healthz` (liveness), `/readyz`
//! (readiness, following the failure policies) and `/config` (the running
//! configuration, redacted).

mod envoy;
mod v1;

use v1::status_response;

use crate::api::authorize;
use crate::api::config_view::running_config;
use crate::api::limits::{ConnectionSlots, Limits};
use crate::auth::Credentials;
use crate::state::ServiceState;
use crate::telemetry::metrics::AuthResult;
use crate::tls::{HttpPeer, ReloadingTls, TlsListener};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The paths anyone may read without credentials: probes and scrapes.
const OPEN_PATHS: [&str; 4] = ["/healthz", "/readyz", "/healthcheck", "/metrics"];

/// The paths only operators may use.
const OPERATOR_PATHS: [&str; 2] = ["/config", "/v1/inspect"];

/// The HTTP routes over `state`, every one but [`OPEN_PATHS`] behind
/// authentication, reading bodies of at most `max_body_bytes` (413 beyond).
pub fn router(state: Arc<ServiceState>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/check", post(v1::check))
        .route("/v1/inspect", post(v1::inspect))
        .route("/healthcheck", get(envoy::healthcheck))
        .route("/json", post(envoy::json))
        .route("/metrics", get(metrics))
        .route(REFERENCE_METRICS_PATH, get(reference_metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/config", get(config))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// Serves the HTTP port on `listener` (with TLS, when `tls` is given)
/// within `limits` until `stop` resolves.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ReloadingTls>>,
    limits: Limits,
    state: Arc<ServiceState>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = ConnectionSlots::new(limits.max_connections).guard(listener);
    let app =
        router(state, limits.max_body_bytes).into_make_service_with_connect_info::<HttpPeer>();
    match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
        }
        Some(tls) => {
            axum::serve(TlsListener::new(listener, tls), app)
                .with_graceful_shutdown(stop)
                .await
        }
    }
}

/// Authenticates the caller (bearer token, or the client certificate of a
/// TLS connection) and puts it in the request's extensions; refuses with
/// 401 or, on an operator's path, 403.
async fn authenticate(
    State(state): State<Arc<ServiceState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    if OPEN_PATHS.contains(&path.as_str()) {
        return next.run(request).await;
    }
    let policy = state.policy();
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|value| value.to_str().unwrap_or_default());
    let peer = request
        .extensions()
        .get::<ConnectInfo<HttpPeer>>()
        .map(|info| info.0.certificate_names.clone())
        .unwrap_or_else(|| Arc::from([]));
    let caller = match policy.auth.authenticate(&Credentials {
        authorization,
        certificate_names: &peer,
    }) {
        Ok(caller) => caller,
        Err(status) => {
            authorize::record_unauthenticated(&state);
            let mut response = status_response(&status);
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    };
    authorize::record(&state, &caller, AuthResult::Authenticated);
    if OPERATOR_PATHS.contains(&path.as_str()) {
        if let Err(status) = authorize::must_be_operator(&state, &caller, &path) {
            return status_response(&status);
        }
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
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

/// Where the HTTP port serves the reference service's per-descriptor
/// metrics (`envoy.reference_metrics`).
pub const REFERENCE_METRICS_PATH: &str = "/metrics/reference";

/// The reference service's metrics, in the Prometheus text format it
/// serves them in (their names lack OpenMetrics' `_total`).
pub async fn reference_metrics(State(state): State<Arc<ServiceState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics().reference.encode(),
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
