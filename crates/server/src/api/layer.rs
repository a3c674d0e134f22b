//! Per-RPC work done once, as a tower layer in front of every gRPC
//! service, instead of in each handler: the caller is authenticated (its
//! bearer token or client certificate, `auth::Authenticator`) and put in
//! the request's extensions, the Admin service refused to non-operators;
//! the decision APIs' calls are timed under their method (errors and
//! cancelled calls included), and the caller's deadline (`grpc-timeout`)
//! becomes the [`Budget`] backends may take, put in the extensions too.

use crate::api::authorize::{self, ADMIN_GRPC_PREFIX, OPEN_GRPC_PREFIX};
use crate::auth::{certificate, Credentials};
use crate::state::ServiceState;
use crate::telemetry::metrics::{AuthResult, GrpcTimer};
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{Layer, Service};

/// What backends may take of the caller's deadline: all of it but a margin
/// to answer by the failure policies in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget(pub Duration);

/// The budget a call's caller gave, if it gave a deadline.
pub fn budget<T>(request: &tonic::Request<T>) -> Option<Duration> {
    request.extensions().get::<Budget>().map(|budget| budget.0)
}

/// The layer: [`Rpc`] around a service.
#[derive(Clone)]
pub struct RpcLayer {
    state: Arc<ServiceState>,
}

impl RpcLayer {
    /// Calls authenticated by `state`'s policy and timed into its metrics.
    pub fn new(state: Arc<ServiceState>) -> Self {
        Self { state }
    }
}

impl<S> Layer<S> for RpcLayer {
    type Service = Rpc<S>;

    fn layer(&self, inner: S) -> Rpc<S> {
        Rpc {
            inner,
            state: self.state.clone(),
        }
    }
}

/// A gRPC service with its calls authenticated, timed and budgeted.
#[derive(Clone)]
pub struct Rpc<S> {
    inner: S,
    state: Arc<ServiceState>,
}

impl<S> Rpc<S> {
    /// Authenticates the call's caller and puts it in the extensions; the
    /// refusal's status when it is unknown, or not an operator where the
    /// call needs one.
    fn admit<B>(&self, request: &mut http::Request<B>) -> Result<(), tonic::Status> {
        let path = request.uri().path();
        if path.starts_with(OPEN_GRPC_PREFIX) {
            return Ok(());
        }
        let policy = self.state.policy();
        let authorization = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(|value| value.to_str().unwrap_or_default());
        let certificate_names = match authorization {
            None if policy.auth.reads_certificates() => peer_certificate_names(request),
            _ => Vec::new(),
        };
        let caller = policy
            .auth
            .authenticate(&Credentials {
                authorization,
                certificate_names: &certificate_names,
            })
            .inspect_err(|_| authorize::record_unauthenticated(&self.state))?;
        authorize::record(&self.state, &caller, AuthResult::Authenticated);
        if path.starts_with(ADMIN_GRPC_PREFIX) {
            authorize::must_be_operator(&self.state, &caller, &format!("calling {path}"))?;
        }
        request.extensions_mut().insert(caller);
        Ok(())
    }
}

/// The names of the client certificate the connection's TLS handshake
/// verified (none without TLS or a certificate).
fn peer_certificate_names<B>(request: &http::Request<B>) -> Vec<String> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    request
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(TlsConnectInfo::peer_certs)
        .and_then(|chain| chain.first().map(|leaf| certificate::names(leaf)))
        .unwrap_or_default()
}

impl<S, B, R> Service<http::Request<B>> for Rpc<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    R: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Timed<S::Future, R>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if let Err(status) = self.admit(&mut request) {
            return Timed {
                inner: None,
                refused: Some(status.into_http()),
                _timer: None,
            };
        }
        if let Some(deadline) = caller_deadline(request.headers()) {
            request
                .extensions_mut()
                .insert(Budget(answer_budget(deadline)));
        }
        let timer = timed_method(request.uri().path())
            .map(|method| self.state.metrics().grpc_timer(method));
        Timed {
            inner: Some(self.inner.call(request)),
            refused: None,
            _timer: timer,
        }
    }
}

pin_project! {
    /// A call's response future, timing it until done or dropped; or the
    /// refusal of a call that was not admitted.
    pub struct Timed<F, R> {
        #[pin]
        inner: Option<F>,
        refused: Option<http::Response<R>>,
        _timer: Option<GrpcTimer>,
    }
}

impl<F, R, E> Future for Timed<F, R>
where
    F: Future<Output = Result<http::Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        match this.inner.as_pin_mut() {
            Some(inner) => inner.poll(context),
            None => Poll::Ready(Ok(this
                .refused
                .take()
                .expect("a refused call is polled once"))),
        }
    }
}

/// The method label of the calls that are timed: the decision APIs.
fn timed_method(path: &str) -> Option<&'static str> {
    Some(match path {
        "/ratelimit.v1.RateLimiter/CheckLimit" => "CheckLimit",
        "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit" => "ShouldRateLimit",
        "/envoy.service.auth.v3.Authorization/Check" => "ext_authz.Check",
        _ => return None,
    })
}

/// The time the caller gave the call (its `grpc-timeout` header).
fn caller_deadline(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let (amount, unit) = value.split_at(value.len().checked_sub(1)?);
    let amount: u64 = amount.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// What backends may take of a caller's deadline: all but a tenth (at most
/// 5 ms), left to answer by the failure policy in time.
fn answer_budget(deadline: Duration) -> Duration {
    deadline.saturating_sub((deadline / 10).min(Duration::from_millis(5)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_timeout(value: &str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert("grpc-timeout", value.parse().unwrap());
        headers
    }

    #[test]
    fn reads_every_grpc_timeout_unit() {
        let read = |value: &str| caller_deadline(&with_timeout(value));
        assert_eq!(read("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(read("3M"), Some(Duration::from_secs(180)));
        assert_eq!(read("4S"), Some(Duration::from_secs(4)));
        assert_eq!(read("50m"), Some(Duration::from_millis(50)));
        assert_eq!(read("700u"), Some(Duration::from_micros(700)));
        assert_eq!(read("9n"), Some(Duration::from_nanos(9)));
        assert_eq!(read("5x"), None);
        assert_eq!(caller_deadline(&http::HeaderMap::new()), None);
    }

    #[test]
    fn keeps_a_margin_to_answer() {
        assert_eq!(
            answer_budget(Duration::from_millis(20)),
            Duration::from_millis(18)
        );
        assert_eq!(
            answer_budget(Duration::from_secs(1)),
            Duration::from_millis(995)
        );
    }

    #[test]
    fn only_the_decision_apis_are_timed() {
        assert_eq!(
            timed_method("/ratelimit.v1.RateLimiter/CheckLimit"),
            Some("CheckLimit")
        );
        assert_eq!(timed_method("/ratelimit.v1.Admin/Backends"), None);
        assert_eq!(timed_method("/anything/else"), None);
    }
}
