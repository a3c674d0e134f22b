//! Where counters live, as the policy describes it: the backends (in-process,
//! Redis in its three topologies, failover chains), their circuit breakers,
//! TLS and the in-process store's sizing, and what a rule does when its
//! backend fails. Descriptions only: the server turns them into the engine's
//! options and connects; nothing here knows how.

use crate::document::choose;
use crate::secret::Secret;
use std::str::FromStr;
use std::time::Duration;

/// One entry of `backends:`. Rules and `envoy:` refer to it by name; once
/// compiled, by its index in [`Policy::backends`](crate::Policy::backends),
/// which is why a reload may not change the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSpec {
    /// Unique among the backends: what rules write in `backend:`, and the
    /// `backend` label of its metrics.
    pub name: String,
    /// Where its counters are kept.
    pub kind: BackendKind,
}

/// The kinds of backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendKind {
    /// The in-process store, sized by `store:`. Counters are per replica.
    Memory,
    /// A Redis deployment shared by every replica.
    Redis(Box<RedisSpec>),
    /// A failover chain over other backends (indices into
    /// [`Policy::backends`](crate::Policy::backends)), first preferred.
    Failover(Vec<usize>),
}

/// A backend's `type:` as written; [`BackendKind`] is what it compiles to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BackendType {
    Memory,
    Redis,
    Failover,
}

impl BackendType {
    /// The name in files.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Redis => "redis",
            Self::Failover => "failover",
        }
    }
}

impl FromStr for BackendType {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        [Self::Memory, Self::Redis, Self::Failover]
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| "a backend's type is `memory`, `redis` or `failover`".into())
    }
}

/// What a rule does when its backend fails (an error, a timeout or an open
/// breaker): availability against enforcement, chosen per rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// Allow, marking the response degraded.
    #[default]
    Open,
    /// Deny with `UNAVAILABLE`.
    Closed,
    /// Decide in the in-process fallback store with the limits divided by
    /// `settings.local_replicas` (see [`LimitSpec::local_share`](crate::LimitSpec::local_share)).
    Local,
}

impl FailurePolicy {
    /// Every failure policy.
    pub const ALL: [Self; 3] = [Self::Open, Self::Closed, Self::Local];

    /// The name in files: `open`, `closed` or `local`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
            Self::Local => "local",
        }
    }
}

/// Reads the name in files (`open`, `closed`, `local`); the error names the
/// choices, for the policy file and envoyproxy/ratelimit files alike.
impl FromStr for FailurePolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        choose(text, "failure_policy", &Self::ALL.map(|p| (p.as_str(), p)))
    }
}

/// A Redis backend's circuit breaker: after repeated failures, calls fail at
/// once (and the failure policy applies) instead of each waiting for a
/// timeout, until a probe succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerSpec {
    /// Failures within `failure_window` that open it.
    pub failure_threshold: u32,
    /// How far back failures count towards the threshold.
    pub failure_window: Duration,
    /// How long it stays open the first time before letting probes through.
    pub recovery_timeout: Duration,
    /// The cap on the open time, which doubles after each failed probe.
    pub max_recovery_timeout: Duration,
    /// Calls let through as probes while half open.
    pub half_open_max_calls: u32,
}

/// A Redis backend's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSpec {
    /// Where Redis is: one server, behind sentinels, or a cluster.
    pub topology: RedisTopologySpec,
    /// The ACL user to authenticate as (with `password`); absent: Redis's
    /// `default` user.
    pub username: Option<String>,
    /// The `AUTH` password (inline, or read from a file or the
    /// environment); the `/config` view shows `***` instead.
    pub password: Option<Secret>,
    /// Connections kept open (commands are pipelined on them).
    pub pool_size: usize,
    /// Longest wait for one command before it counts as a failure.
    pub command_timeout: Duration,
    /// Longest wait for the first connection at start.
    pub connect_timeout: Duration,
    /// Prepended to every counter key, so deployments can share a Redis.
    pub key_prefix: String,
    /// Decide with Redis's `TIME` rather than the service's clock, for
    /// replicas whose clocks disagree.
    pub redis_time: bool,
    /// TLS files, when given (a `rediss://` URL without them uses the
    /// system's roots).
    pub tls: Option<TlsSpec>,
    /// Its circuit breaker.
    pub breaker: BreakerSpec,
    /// The cache of its denials, if on.
    pub deny_cache: Option<DenyCacheSpec>,
}

/// A Redis backend's cache of denials: requests on counters it saw denied
/// with nothing remaining are answered without a call, exactly as Redis
/// would answer them, until one hit fits again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DenyCacheSpec {
    /// About the most denials held; the least used are evicted first.
    pub max_entries: usize,
}

/// A Redis backend's `time_source:`: whose clock decides, the service's
/// (`engine`, the default) or Redis's `TIME` (`redis`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeSource {
    Engine,
    Redis,
}

impl FromStr for TimeSource {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "engine" => Ok(Self::Engine),
            "redis" => Ok(Self::Redis),
            _ => Err("unknown time_source, expected one of: engine, redis".into()),
        }
    }
}

/// TLS files of a Redis backend (PEM), read when the service connects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSpec {
    /// CA certificate(s) to trust; absent: the system's roots.
    pub ca_file: Option<String>,
    /// Client certificate, for servers that require one.
    pub cert_file: Option<String>,
    /// The client certificate's private key (given with `cert_file`).
    pub key_file: Option<String>,
}

/// Where a Redis deployment is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTopologySpec {
    /// One server: its `redis://` or `rediss://` URL.
    Standalone(String),
    /// A master found through sentinels, which follow its failovers.
    Sentinel {
        /// The monitored master's name, as the sentinels know it.
        service: String,
        /// The sentinels, `host:port`; any one that answers will do.
        addresses: Vec<String>,
    },
    /// Redis Cluster seed nodes, `host:port`; the rest are discovered.
    Cluster(Vec<String>),
}

/// The in-process store's sizing (`store:`): memory backends and the `local`
/// failure policy's fallback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// Most counters held at once, which bounds its memory.
    pub max_keys: usize,
    /// When full, deny hits on new keys (true, fail closed), or decide them
    /// as if their counter were new without keeping it (false, fail open).
    pub deny_when_full: bool,
    /// How often expired counters are reclaimed.
    pub sweep_interval: Duration,
}
