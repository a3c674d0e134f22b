//! Envoy's `envoy.service.auth.v3.Authorization/Check` (ext_authz v3) over
//! the same policy and backends as CheckLimit.
//!
//! What Envoy sends maps onto the policy as: the `domain` context extension
//! (else `settings.ext_authz_domain`) is the domain; the other context
//! extensions are descriptor entries (sorted by key); method; path without
//! the query string; headers (Envoy sends them lower-cased; `host` is added
//! from the authority); the client IP is the connection's source address,
//! or, when that is a trusted proxy (`settings.trusted_proxies`), the
//! right-most `x-forwarded-for` entry that is not one: never the left-most,
//! which the client can forge. Headers too large for the request caps are
//! left out (they could not be matched anyway), so big cookies never fail a
//! check.
//!
//! Allowed: OK, with the rate-limit headers added to the upstream's response.
//! Over a limit: denied with HTTP 429, `Retry-After` and the rate-limit
//! headers, and a short body. Failing closed: denied with HTTP 503.

use crate::api::authorize;
use crate::api::check_limit::{check, Mode};
use crate::api::client_ip::client_ip;
use crate::api::layer::budget;
use crate::state::ServiceState;
use envoy_types::ext_authz::v3::pb::{Authorization, CheckRequest, CheckResponse, HttpStatusCode};
use envoy_types::ext_authz::v3::{
    CheckRequestExt, CheckResponseExt, DeniedHttpResponseBuilder, OkHttpResponseBuilder,
};
use ratelimitd_policy::Settings;
use ratelimitd_proto::v1::check_limit_response::Code;
use ratelimitd_proto::v1::{CheckLimitRequest, CheckLimitResponse, DescriptorEntry};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use tonic::{Request, Response, Status};
use tracing::Instrument;

/// The CheckLimit request an ext_authz check stands for.
pub fn to_check_limit(request: &CheckRequest, settings: &Settings) -> CheckLimitRequest {
    let attributes = request.attributes.as_ref();
    let http = attributes
        .and_then(|a| a.request.as_ref())
        .and_then(|r| r.http.as_ref());
    let mut extensions: BTreeMap<&str, &str> = attributes
        .map(|a| {
            a.context_extensions
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect()
        })
        .unwrap_or_default();
    let domain = extensions
        .remove("domain")
        .unwrap_or(&settings.ext_authz_domain)
        .to_string();
    let caps = &settings.caps;
    let mut headers: BTreeMap<String, String> = http
        .map(|http| {
            http.headers
                .iter()
                .filter(|(name, value)| {
                    name.len() <= caps.max_value_bytes && value.len() <= caps.max_value_bytes
                })
                .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
                .collect()
        })
        .unwrap_or_default();
    if let Some(host) = http.map(|http| &http.host).filter(|host| !host.is_empty()) {
        headers.entry("host".into()).or_insert_with(|| host.clone());
    }
    let source = request
        .get_client_address()
        .and_then(|address| address.parse::<IpAddr>().ok());
    let forwarded_for = headers.get("x-forwarded-for").map(String::as_str);
    let client = client_ip(source, forwarded_for, &settings.trusted_proxies);
    CheckLimitRequest {
        domain,
        descriptors: extensions
            .into_iter()
            .map(|(key, value)| DescriptorEntry {
                key: key.into(),
                value: value.into(),
            })
            .collect(),
        client_ip: client.map(|ip| ip.to_string()).unwrap_or_default(),
        method: http.map(|h| h.method.clone()).unwrap_or_default(),
        path: http
            .map(|h| h.path.split('?').next().unwrap_or_default().to_string())
            .unwrap_or_default(),
        headers: headers.into_iter().take(caps.max_headers).collect(),
        ..CheckLimitRequest::default()
    }
}

/// The ext_authz answer for a decision.
pub fn to_check_response(decision: &CheckLimitResponse) -> CheckResponse {
    let headers = &decision.headers;
    let mut response = CheckResponse::default();
    if decision.allowed {
        let mut ok = OkHttpResponseBuilder::new();
        for (name, value) in headers {
            ok.add_response_header(name, value, None, false);
        }
        response.set_status(Status::ok("")).set_http_response(ok);
        return response;
    }
    let (status, http_status, body) = match decision.code() {
        Code::Unavailable => (
            Status::unavailable("rate limiter backend unavailable"),
            HttpStatusCode::ServiceUnavailable,
            "Service Unavailable: rate limiter backend unavailable\n",
        ),
        _ => (
            Status::resource_exhausted("rate limited"),
            HttpStatusCode::TooManyRequests,
            "Too Many Requests\n",
        ),
    };
    let mut denied = DeniedHttpResponseBuilder::new();
    denied.set_http_status(http_status).set_body(body);
    for (name, value) in headers {
        denied.add_header(name, value, None, false);
    }
    denied.add_header("content-type", "text/plain", None, false);
    response.set_status(status).set_http_response(denied);
    response
}

/// `envoy.service.auth.v3.Authorization`: a peer of CheckLimit that maps
/// Envoy's check onto a CheckLimit request and the decision back.
pub struct ExtAuthzService {
    state: Arc<ServiceState>,
}

impl ExtAuthzService {
    /// ext_authz over `state`'s policy.
    pub fn new(state: Arc<ServiceState>) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl Authorization for ExtAuthzService {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let budget = budget(&request);
        let loaded = self.state.policy();
        let check_limit = to_check_limit(request.get_ref(), &loaded.policy.settings);
        let caller = authorize::caller(&request)?;
        authorize::may_check(
            &self.state,
            &caller,
            &check_limit.domain,
            !check_limit.limits.is_empty(),
        )?;
        let span = tracing::info_span!("ext_authz.Check", domain = %check_limit.domain);
        let decision = check(&self.state, &loaded, &check_limit, budget, Mode::Decide)
            .instrument(span)
            .await?;
        Ok(Response::new(to_check_response(&decision)))
    }
}
