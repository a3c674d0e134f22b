//! The reference envoyproxy/ratelimit service's HTTP endpoints:
//! `GET /healthcheck` (200 `OK` while serving, 500 otherwise) and
//! `POST /json` (a protobuf JSON `RateLimitRequest` in, the
//! `RateLimitResponse` out: 200 when OK, 429 when over the limit, 400 for
//! bad input, 503 when no files are configured).

use super::v1::status_response;
use crate::api::authorize;
use crate::api::rls::json::{parse_request, response_json};
use crate::api::rls::should_rate_limit;
use crate::auth::Caller;
use crate::state::ServiceState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use std::sync::Arc;

pub(super) async fn healthcheck(State(state): State<Arc<ServiceState>>) -> Response {
    if state.serving() {
        (StatusCode::OK, "OK").into_response()
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, "NOT SERVING").into_response()
    }
}

pub(super) async fn json(
    State(state): State<Arc<ServiceState>>,
    Extension(caller): Extension<Arc<Caller>>,
    body: Bytes,
) -> Response {
    let request = match parse_request(&body) {
        Ok(request) => request,
        Err(message) => return (StatusCode::BAD_REQUEST, message).into_response(),
    };
    if let Err(status) = authorize::may_check(&state, &caller, &request.domain, false) {
        return status_response(&status);
    }
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
