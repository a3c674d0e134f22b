//! ratelimitd's own API over plain HTTP, for languages without gRPC (PHP,
//! Ruby, shell, serverless): `POST /v1/check` takes a `CheckLimitRequest`
//! and `POST /v1/inspect` an `InspectRequest`, in the protobuf JSON mapping
//! (lowerCamelCase or proto names), and answer the `CheckLimitResponse` the
//! same way: 200 when allowed, 429 when over a limit, 503 when a rule
//! failing closed lost its backend, with the rate-limit headers as HTTP
//! headers too; 400 for bad input, `{"code": ..., "message": ...}` naming
//! the field.

use crate::api::authorize;
use crate::api::check_limit::{self, Mode};
use crate::auth::Caller;
use crate::state::ServiceState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use ratelimitd_proto::v1::check_limit_response::Code;
use ratelimitd_proto::v1::{CheckLimitRequest, CheckLimitResponse, InspectRequest};
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// `POST /v1/check`.
pub(super) async fn check(
    State(state): State<Arc<ServiceState>>,
    Extension(caller): Extension<Arc<Caller>>,
    body: Bytes,
) -> Response {
    let request: CheckLimitRequest = match parse(&body) {
        Ok(request) => request,
        Err(status) => return answer(Err(status)),
    };
    let declares = !request.limits.is_empty();
    if let Err(status) = authorize::may_check(&state, &caller, &request.domain, declares) {
        return status_response(&status);
    }
    let policy = state.policy();
    answer(check_limit::check(&state, &policy, &request, None, Mode::Decide).await)
}

/// `POST /v1/inspect`.
pub(super) async fn inspect(State(state): State<Arc<ServiceState>>, body: Bytes) -> Response {
    let InspectRequest { request, rule } = match parse(&body) {
        Ok(request) => request,
        Err(status) => return answer(Err(status)),
    };
    let rule = (!rule.is_empty()).then_some(rule.as_str());
    answer(check_limit::inspect(&state, &request.unwrap_or_default(), rule, None).await)
}

/// The body as a protobuf JSON message, or INVALID_ARGUMENT saying why
/// not.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, tonic::Status> {
    serde_json::from_slice(body).map_err(|error| {
        tonic::Status::invalid_argument(format!(
            "the body is not the protobuf JSON of the request: {error}"
        ))
    })
}

/// The decision as an HTTP answer.
fn answer(decided: Result<CheckLimitResponse, tonic::Status>) -> Response {
    let decision = match decided {
        Ok(decision) => decision,
        Err(status) => return status_response(&status),
    };
    let http = match decision.code() {
        Code::Ok => StatusCode::OK,
        Code::OverLimit | Code::Unspecified => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    };
    let mut response = (
        http,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_string(&decision).expect("a response always serializes"),
    )
        .into_response();
    for (name, value) in &decision.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// An error as `{"code": "INVALID_ARGUMENT", "message": "limits[0].rate: ..."}`:
/// 400 for bad input, 401 without valid credentials, 403 without the
/// permission, 500 otherwise.
pub(super) fn status_response(status: &tonic::Status) -> Response {
    let http = match status.code() {
        tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition => StatusCode::BAD_REQUEST,
        tonic::Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let body = serde_json::json!({"code": code_name(status.code()), "message": status.message()});
    (
        http,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The canonical name of a gRPC code, as in google.rpc.Code.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}
