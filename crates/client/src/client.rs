//! The client: one `CheckLimit` per check, with a deadline, a circuit
//! breaker, an on-error policy and an optional denial cache.

use crate::breaker::{Breaker, BreakerConfig};
use crate::denials::DenialCache;
use crate::local::LocalLimiter;
use crate::{BreakerState, Decision, Error, Source};
use ratelimitd_proto::v1::rate_limiter_client::RateLimiterClient;
use ratelimitd_proto::v1::CheckLimitRequest;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// A decision of yours for a failed call: the error and the request.
pub type OnErrorFn = dyn Fn(&Error, &CheckLimitRequest) -> Decision + Send + Sync;

/// What decides when the service cannot: it is unreachable, misses the
/// deadline, or the breaker is open.
#[derive(Clone, Default)]
pub enum OnError {
    /// Allow, degraded, without headers ([`Decision::open`]).
    #[default]
    Open,
    /// Deny with [`Code::Unavailable`](crate::Code::Unavailable): answer
    /// 503, never 429 ([`Decision::closed`]).
    Closed,
    /// Decide in process from the request's declared limits, each divided
    /// by the builder's `local_replicas` (rounded up; a token bucket's or
    /// GCRA's burst instead of its count when larger), counted exactly in
    /// fixed windows of its period aligned to the Unix epoch whatever its
    /// algorithm (up to twice the rate across a window edge). The `ip` key
    /// part counts `client_ip`, else `peer_ip`, IPv6 per /64.
    Local,
    /// Yours; the decision is made [`Source::Fallback`] and `degraded`.
    Custom(Arc<OnErrorFn>),
}

impl OnError {
    /// `OnError::Custom` from a function.
    pub fn custom(
        decide: impl Fn(&Error, &CheckLimitRequest) -> Decision + Send + Sync + 'static,
    ) -> Self {
        Self::Custom(Arc::new(decide))
    }
}

impl fmt::Debug for OnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Open => "Open",
            Self::Closed => "Closed",
            Self::Local => "Local",
            Self::Custom(_) => "Custom(..)",
        })
    }
}

/// A client of ratelimitd's `CheckLimit`. Cheap to clone: clones share the
/// channel, the breaker, the local fallback's counters and the denial
/// cache, so make one per process.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    rpc: RateLimiterClient<Channel>,
    /// `Bearer <token>`, sent with every call when a token is set.
    authorization: Option<Authorization>,
    domain: String,
    timeout: Duration,
    on_error: OnError,
    breaker: Mutex<Breaker>,
    local: Mutex<LocalLimiter>,
    denials: Option<Mutex<DenialCache>>,
}

/// Builds a [`Client`]; from [`Client::builder`].
#[derive(Debug)]
#[must_use]
pub struct ClientBuilder {
    target: Target,
    tls: Option<ClientTlsConfig>,
    authorization: Option<Authorization>,
    domain: String,
    timeout: Duration,
    on_error: OnError,
    local_replicas: u64,
    breaker: BreakerConfig,
    denial_cache: bool,
}

/// `Bearer <token>`; its `Debug` hides the token.
#[derive(Clone)]
struct Authorization(MetadataValue<Ascii>);

impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer ***")
    }
}

#[derive(Debug)]
enum Target {
    Uri(String),
    Channel(Channel),
}

impl Client {
    /// Connects to `uri` (`host:port` or `http://host:port`) with the
    /// defaults: no domain (each request names its own), a 50 ms deadline,
    /// [`OnError::Open`], the breaker opening after 5 failures for 1 s (up
    /// to 30 s), no denial cache. Fails if the service cannot be reached
    /// now; [`ClientBuilder::build`] connects on first use instead.
    pub async fn connect(uri: impl Into<String>) -> Result<Self, Error> {
        Self::builder(uri).connect().await
    }

    /// A builder for the service at `uri` (`host:port` or
    /// `http://host:port`).
    pub fn builder(uri: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(Target::Uri(uri.into()))
    }

    /// A builder over a channel of yours: TLS (`Endpoint::tls_config`, with
    /// a tonic TLS feature), keep-alive, a load-balanced channel.
    pub fn with_channel(channel: Channel) -> ClientBuilder {
        ClientBuilder::new(Target::Channel(channel))
    }

    /// The domain of requests that name none.
    pub fn domain(&self) -> &str {
        &self.inner.domain
    }

    /// The circuit breaker's state now.
    pub fn breaker_state(&self) -> BreakerState {
        lock(&self.inner.breaker).state(Instant::now())
    }

    /// Decides `request` (its `domain` defaults to the client's; `peer_ip`
    /// and `client_ip` in IPv4-mapped form are sent as IPv4): one
    /// `CheckLimit` call, or none when the denial cache or an open breaker
    /// answers. When the service fails, the on-error policy's decision is
    /// `Ok`; an error is the service refusing the request
    /// ([`Error::InvalidArgument`], [`Error::FailedPrecondition`]). Never
    /// retried: a call that timed out may have been counted.
    pub async fn check(&self, mut request: CheckLimitRequest) -> Result<Decision, Error> {
        let inner = &*self.inner;
        if request.domain.is_empty() {
            request.domain.clone_from(&inner.domain);
        }
        for address in [&mut request.peer_ip, &mut request.client_ip] {
            if let Ok(ip) = address.parse::<IpAddr>() {
                *address = ip.to_canonical().to_string();
            }
        }
        if let Some(denials) = &inner.denials {
            if let Some(cached) = lock(denials).get(&request, Instant::now()) {
                return Ok(cached);
            }
        }
        if !lock(&inner.breaker).try_acquire(Instant::now()) {
            return Ok(self.fallback(Error::BreakerOpen, &request));
        }
        // The deadline travels as `grpc-timeout` (the service then answers
        // by its failure policies within it) and is kept here even while
        // connecting, which `grpc-timeout` does not cover.
        let mut call = tonic::Request::new(request.clone());
        call.set_timeout(inner.timeout);
        if let Some(authorization) = &inner.authorization {
            call.metadata_mut()
                .insert("authorization", authorization.0.clone());
        }
        let answer = tokio::time::timeout(inner.timeout, inner.rpc.clone().check_limit(call)).await;
        let error = match answer {
            Ok(Ok(response)) => {
                lock(&inner.breaker).on_success();
                let decision = Decision::from(response.into_inner());
                if let Some(denials) = &inner.denials {
                    lock(denials).remember(&request, &decision, Instant::now());
                }
                return Ok(decision);
            }
            Ok(Err(status)) if timed_out(&status) => Error::DeadlineExceeded(inner.timeout),
            Ok(Err(status)) => Error::from(status),
            Err(_elapsed) => Error::DeadlineExceeded(inner.timeout),
        };
        if !error.is_service_failure() {
            lock(&inner.breaker).on_success();
            return Err(error);
        }
        lock(&inner.breaker).on_failure(Instant::now());
        Ok(self.fallback(error, &request))
    }

    fn fallback(&self, error: Error, request: &CheckLimitRequest) -> Decision {
        match &self.inner.on_error {
            OnError::Open => Decision::open(error),
            OnError::Closed => Decision::closed(error),
            OnError::Local => lock(&self.inner.local).decide(request, error, SystemTime::now()),
            OnError::Custom(decide) => {
                // Whatever it says, the service did not decide.
                let mut decision = decide(&error, request);
                decision.source = Source::Fallback;
                decision.degraded = true;
                decision
            }
        }
    }
}

impl ClientBuilder {
    fn new(target: Target) -> Self {
        Self {
            target,
            tls: None,
            authorization: None,
            domain: String::new(),
            timeout: Duration::from_millis(50),
            on_error: OnError::Open,
            local_replicas: 1,
            breaker: BreakerConfig::default(),
            denial_cache: false,
        }
    }

    /// The domain of requests that name none.
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = domain.into();
        self
    }

    /// The deadline of each call (default 50 ms), sent as `grpc-timeout`
    /// and enforced here.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// What decides when the service cannot (default [`OnError::Open`]).
    pub fn on_error(mut self, on_error: OnError) -> Self {
        self.on_error = on_error;
        self
    }

    /// [`OnError::Local`] divides every limit by this many app replicas
    /// (default 1).
    pub fn local_replicas(mut self, replicas: u64) -> Self {
        self.local_replicas = replicas;
        self
    }

    /// Consecutive failures that open the breaker (default 5).
    pub fn failure_threshold(mut self, failures: u32) -> Self {
        self.breaker.failure_threshold = failures;
        self
    }

    /// How long the breaker first stays open (default 1 s); each failed
    /// probe doubles it.
    pub fn recovery_timeout(mut self, timeout: Duration) -> Self {
        self.breaker.recovery_timeout = timeout;
        self
    }

    /// The longest the breaker stays open (default 30 s).
    pub fn max_recovery_timeout(mut self, timeout: Duration) -> Self {
        self.breaker.max_recovery_timeout = timeout;
        self
    }

    /// Repeat a denial of the identical request locally until its
    /// retry-after (default off: a client cannot know whether a policy rule
    /// counts denied hits; never for requests declaring a `count_denied`
    /// limit).
    pub fn denial_cache(mut self, enabled: bool) -> Self {
        self.denial_cache = enabled;
        self
    }

    /// The client, connecting on first use (so an app starts while the
    /// service is down). Must run inside a Tokio runtime.
    pub fn build(self) -> Result<Client, Error> {
        let channel = match &self.target {
            Target::Uri(uri) => self.endpoint(uri)?.connect_lazy(),
            Target::Channel(channel) => channel.clone(),
        };
        Ok(self.with(channel))
    }

    /// The client, connected now: fails when the service cannot be reached.
    pub async fn connect(self) -> Result<Client, Error> {
        let channel = match &self.target {
            Target::Uri(uri) => self
                .endpoint(uri)?
                .connect()
                .await
                .map_err(|error| Error::Connect(Arc::new(error)))?,
            Target::Channel(channel) => channel.clone(),
        };
        Ok(self.with(channel))
    }

    /// TLS to the service (mutual TLS with `ClientTlsConfig::identity`);
    /// a `host:port` address then means `https://host:port`. Ignored with
    /// [`Client::with_channel`] (configure that channel's endpoint).
    pub fn tls(mut self, tls: ClientTlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// A bearer token sent with every call (`authorization: Bearer …`),
    /// naming one of the service's `auth:` identities. Fails when it is not
    /// printable ASCII.
    pub fn bearer_token(mut self, token: &str) -> Result<Self, Error> {
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| Error::InvalidToken)?;
        self.authorization = Some(Authorization(value));
        Ok(self)
    }

    fn endpoint(&self, uri: &str) -> Result<Endpoint, Error> {
        let uri = if uri.contains("://") {
            uri.to_string()
        } else if self.tls.is_some() {
            format!("https://{uri}")
        } else {
            format!("http://{uri}")
        };
        let endpoint = Endpoint::from_shared(uri.clone()).map_err(|_| Error::InvalidUri(uri))?;
        match &self.tls {
            None => Ok(endpoint),
            Some(tls) => endpoint
                .tls_config(tls.clone())
                .map_err(|error| Error::Connect(Arc::new(error))),
        }
    }

    fn with(self, channel: Channel) -> Client {
        Client {
            inner: Arc::new(Inner {
                rpc: RateLimiterClient::new(channel),
                authorization: self.authorization,
                domain: self.domain,
                timeout: self.timeout,
                on_error: self.on_error,
                breaker: Mutex::new(Breaker::new(self.breaker)),
                local: Mutex::new(LocalLimiter::new(self.local_replicas)),
                denials: self.denial_cache.then(Mutex::default),
            }),
        }
    }
}

/// Whether tonic gave up on the call at its `grpc-timeout` (a CANCELLED
/// status caused by `TimeoutExpired`): the deadline, met first by the
/// channel rather than by the timer around the call.
fn timed_out(status: &tonic::Status) -> bool {
    let mut cause = std::error::Error::source(status);
    while let Some(error) = cause {
        if error.is::<tonic::TimeoutExpired>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// The state behind a lock stays consistent whatever panicked while it was
/// held (each update is one assignment), so a poisoned lock is used as is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
