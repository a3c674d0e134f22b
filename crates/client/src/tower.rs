//! A tower layer that decides every HTTP request before the service behind
//! it sees it.

use crate::{Client, Code, Decision, DeclaredLimit};
use http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use http::request::Parts;
use http::{HeaderMap, Request, Response, StatusCode};
use ratelimitd_proto::v1::CheckLimitRequest;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

type Customize = dyn Fn(&Parts, &mut CheckLimitRequest) + Send + Sync;
type PeerIp = dyn Fn(&Parts) -> Option<IpAddr> + Send + Sync;

/// Decides each request with one `CheckLimit`: denied, it answers 429 over
/// a limit (503 when the service or a closed on-error policy could not
/// decide) with the decision's headers and `Retry-After`, and an empty
/// body; allowed, it calls the inner service with the [`Decision`] in the
/// request's extensions and adds the decision's headers to its response
/// (those the response does not set itself). The service refusing the
/// request (a bad declared limit, say) is a 500 with the
/// [`Error`](crate::Error) in the response's extensions.
///
/// Each request sends its method, its path, the peer's address
/// (IPv4-mapped normalised) as `peer_ip` and the raw `X-Forwarded-For` as
/// `forwarded_for`, for the service to resolve through its trusted
/// proxies: never the left-most hop, which the client writes itself.
///
/// ```no_run
/// use axum::extract::ConnectInfo;
/// use ratelimitd_client::{Client, Limit, RateLimitLayer};
/// use std::net::SocketAddr;
/// # fn app(client: Client) -> axum::Router {
/// axum::Router::new().layer(
///     RateLimitLayer::new(client)
///         .limit(Limit::new("pages", "100/m").key("ip"))
///         .peer_ip(|parts| parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())),
/// )
/// # }
/// ```
#[derive(Clone)]
pub struct RateLimitLayer {
    config: Config,
}

#[derive(Clone)]
struct Config {
    client: Client,
    limits: Vec<DeclaredLimit>,
    customize: Option<Arc<Customize>>,
    peer_ip: Arc<PeerIp>,
}

impl RateLimitLayer {
    /// Checks every request with `client`, declaring no limit (the
    /// policy's rules still apply). The peer's address is read from a
    /// [`SocketAddr`] in the request's extensions until
    /// [`RateLimitLayer::peer_ip`] says otherwise.
    pub fn new(client: Client) -> Self {
        Self {
            config: Config {
                client,
                limits: Vec::new(),
                customize: None,
                peer_ip: Arc::new(|parts: &Parts| {
                    parts.extensions.get::<SocketAddr>().map(SocketAddr::ip)
                }),
            },
        }
    }

    /// Declares `limit` with every request.
    pub fn limit(mut self, limit: impl Into<DeclaredLimit>) -> Self {
        self.config.limits.push(limit.into());
        self
    }

    /// Fills more of each request for the policy (`user`, `api_key`,
    /// descriptors, headers, limits that depend on the request) after the
    /// method, path, addresses and declared limits.
    pub fn request(
        mut self,
        customize: impl Fn(&Parts, &mut CheckLimitRequest) + Send + Sync + 'static,
    ) -> Self {
        self.config.customize = Some(Arc::new(customize));
        self
    }

    /// Where the peer's address comes from: with axum,
    /// `ConnectInfo<SocketAddr>` (served with
    /// `into_make_service_with_connect_info`).
    pub fn peer_ip(
        mut self,
        peer_ip: impl Fn(&Parts) -> Option<IpAddr> + Send + Sync + 'static,
    ) -> Self {
        self.config.peer_ip = Arc::new(peer_ip);
        self
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            config: Arc::new(self.config.clone()),
        }
    }
}

/// The service [`RateLimitLayer`] wraps around another.
#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    config: Arc<Config>,
}

impl Config {
    fn check_request(&self, parts: &Parts) -> CheckLimitRequest {
        let forwarded_for: Vec<&str> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect();
        let mut request = CheckLimitRequest {
            method: parts.method.as_str().to_string(),
            path: parts.uri.path().to_string(),
            peer_ip: (self.peer_ip)(parts).map_or_else(String::new, |ip| ip.to_string()),
            forwarded_for: forwarded_for.join(", "),
            limits: self.limits.clone(),
            ..CheckLimitRequest::default()
        };
        if let Some(customize) = &self.customize {
            customize(parts, &mut request);
        }
        request
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimit<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    /// The inner service's readiness: this layer never applies
    /// backpressure, it decides in `call`.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The ready service is the one to call; leave a clone in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let decision = match config.client.check(config.check_request(&parts)).await {
                Ok(decision) => decision,
                Err(error) => {
                    let mut response = respond(StatusCode::INTERNAL_SERVER_ERROR, HeaderMap::new());
                    response.extensions_mut().insert(error);
                    return Ok(response);
                }
            };
            let headers = header_map(&decision);
            if !decision.allowed {
                return Ok(denial(&decision, headers));
            }
            parts.extensions.insert(decision);
            let mut response = inner.call(Request::from_parts(parts, body)).await?;
            for (name, value) in &headers {
                if !response.headers().contains_key(name) {
                    response.headers_mut().insert(name.clone(), value.clone());
                }
            }
            Ok(response)
        })
    }
}

/// The decision's headers (those HTTP can carry).
fn header_map(decision: &Decision) -> HeaderMap {
    decision
        .headers
        .iter()
        .filter_map(|(name, value)| {
            Some((
                HeaderName::from_bytes(name.as_bytes()).ok()?,
                HeaderValue::from_str(value).ok()?,
            ))
        })
        .collect()
}

/// 429 over a limit, 503 when no one could decide; `Retry-After` (whole
/// seconds, rounded up) from the decision's wait when its headers have none,
/// as a local fallback decision's.
fn denial<B: Default>(decision: &Decision, mut headers: HeaderMap) -> Response<B> {
    let status = match decision.code {
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Ok | Code::OverLimit => StatusCode::TOO_MANY_REQUESTS,
    };
    let wait = decision.retry_after.as_millis().div_ceil(1000);
    if !headers.contains_key(RETRY_AFTER) && wait > 0 {
        headers.insert(RETRY_AFTER, HeaderValue::from(wait as u64));
    }
    respond(status, headers)
}

fn respond<B: Default>(status: StatusCode, headers: HeaderMap) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}
