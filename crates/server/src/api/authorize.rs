//! The adapters' side of authentication: the caller each protocol's layer
//! found (`layer.rs` for gRPC, `http/mod.rs` for HTTP), and the permission
//! checks the decision APIs make, counted in the metrics.

use crate::auth::Caller;
use crate::state::ServiceState;
use crate::telemetry::metrics::AuthResult;
use std::sync::Arc;
use tonic::Status;

/// The services every caller reaches without credentials: health checks
/// (Kubernetes and load balancer probes carry none).
pub const OPEN_GRPC_PREFIX: &str = "/grpc.health.v1.Health/";

/// The operators' service: every RPC under it (those added later too)
/// needs the operator permission.
pub const ADMIN_GRPC_PREFIX: &str = "/ratelimit.v1.Admin/";

/// The caller the gRPC layer authenticated.
pub fn caller<T>(request: &tonic::Request<T>) -> Result<Arc<Caller>, Status> {
    request
        .extensions()
        .get::<Arc<Caller>>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("the call was not authenticated"))
}

/// OK when `caller` may check `domain` (declaring limits, when
/// `declares_limits`); a refusal is counted.
pub fn may_check(
    state: &ServiceState,
    caller: &Caller,
    domain: &str,
    declares_limits: bool,
) -> Result<(), Status> {
    caller
        .may_check(domain, declares_limits)
        .inspect_err(|_| record(state, caller, AuthResult::PermissionDenied))
}

/// OK when `caller` is an operator (`what` names what needs it); a
/// refusal is counted.
pub fn must_be_operator(state: &ServiceState, caller: &Caller, what: &str) -> Result<(), Status> {
    caller
        .must_be_operator(what)
        .inspect_err(|_| record(state, caller, AuthResult::PermissionDenied))
}

/// Counts an authentication result, under an `auth:` section only.
pub fn record(state: &ServiceState, caller: &Caller, result: AuthResult) {
    let policy = state.policy();
    if policy.auth.configured() {
        state
            .metrics()
            .auth_call(policy.auth.metric_label(caller), result);
    }
}

/// Counts a caller refused for lack of credentials.
pub fn record_unauthenticated(state: &ServiceState) {
    if state.policy().auth.configured() {
        state.metrics().auth_call(None, AuthResult::Unauthenticated);
    }
}
