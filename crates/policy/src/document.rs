//! The configuration file as written: plain serde structs, every one closed
//! to unknown keys. [`crate::compile`] validates and compiles it.
//!
//! One file on purpose, though over 450 lines: it is the file's schema in the
//! file's order, each key with its default, and is read as a reference;
//! split, a reader would have to reassemble it.

use serde::Deserialize;
use std::collections::BTreeMap;

/// A whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Document {
    /// Service-wide policy settings.
    pub settings: SettingsDoc,
    /// The in-process store.
    pub store: StoreDoc,
    /// Where counters live; the first is the default. Absent: one in-process
    /// store named `memory`.
    pub backends: Vec<BackendDoc>,
    /// Requests matching any of these conditions are never limited.
    pub skip: Vec<ConditionDoc>,
    /// The rules, in declaration order.
    pub rules: Vec<RuleDoc>,
    /// The envoyproxy/ratelimit compatibility (`ShouldRateLimit`).
    pub envoy: EnvoyDoc,
    /// Limits callers declare with their requests, gated and overridden.
    pub declared: DeclaredDoc,
    /// Who may call, and what each caller may do. Absent: every caller is
    /// anonymous and may do everything.
    pub auth: Option<AuthDoc>,
}

/// `auth:`: the callers the service knows (by bearer token or client
/// certificate) and what each may do; callers it does not know get
/// `anonymous`'s permissions, or are refused when it is absent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthDoc {
    /// The known callers.
    pub identities: Vec<IdentityDoc>,
    /// What unknown callers may do; absent: they are refused.
    pub anonymous: Option<PermissionsDoc>,
    /// Count calls per identity in the metrics (`identity` label).
    pub metrics_by_identity: bool,
}

/// One known caller and its permissions.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityDoc {
    /// Unique name (not `anonymous`).
    pub name: String,
    /// Its bearer tokens, as SHA-256 hashes.
    pub tokens: Vec<TokenDoc>,
    /// Names its client certificate may carry: a SAN DNS name or URI (a
    /// SPIFFE ID), or the subject's common name.
    pub certificate_names: Vec<String>,
    /// Domains it may check: exact or globs with `*`.
    pub domains: Vec<String>,
    /// May declare limits (CheckLimit's `limits`).
    pub declare_limits: bool,
    /// May call the Admin service and read `/config`.
    pub operator: bool,
}

/// `auth.anonymous:`: what a caller no identity matches may do.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PermissionsDoc {
    /// Domains it may check: exact or globs with `*`.
    pub domains: Vec<String>,
    /// May declare limits.
    pub declare_limits: bool,
    /// May call the Admin service and read `/config`.
    pub operator: bool,
}

/// One bearer token of an identity, as the SHA-256 of the token in hex
/// (`printf %s "$TOKEN" | sha256sum`): written here, or read from a file
/// or an environment variable (one hash per line, for rotation).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenDoc {
    /// The hash itself.
    pub sha256: Option<String>,
    /// A file holding the hash(es).
    pub sha256_file: Option<String>,
    /// An environment variable holding the hash(es).
    pub sha256_env: Option<String>,
}

/// `declared:`: the limits callers declare with their requests (a view's
/// `@rate_limit`, a middleware's path rates), which domains accept them,
/// within which bounds, and the operator's overrides, which win.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeclaredDoc {
    /// The domains that accept declared limits; none unless listed.
    pub domains: Vec<String>,
    /// Most declared limits in one request.
    pub max_per_request: usize,
    /// The algorithms callers may declare; empty: all of them.
    pub algorithms: Vec<Algorithm>,
    /// Largest `N` of a declared rate `N/period`, and largest burst.
    pub max_count: u64,
    /// Shortest period of a declared rate, e.g. `1s`.
    pub min_period: String,
    /// Longest period of a declared rate, e.g. `1d`.
    pub max_period: String,
    /// The backend keeping their counters (default: the first).
    pub backend: Option<String>,
    /// What they do when it fails (default: `settings.failure_policy`).
    pub failure_policy: Option<String>,
    /// Declared names the metrics report by name (overrides' exact names
    /// are too); every other name shares one label value.
    pub metric_names: Vec<String>,
    /// The operator's word over the app's: the first override whose name
    /// (and `when`) matches a declared limit applies.
    pub overrides: Vec<DeclaredOverrideDoc>,
}

impl Default for DeclaredDoc {
    fn default() -> Self {
        Self {
            domains: Vec::new(),
            max_per_request: 8,
            algorithms: Vec::new(),
            max_count: 1_000_000,
            min_period: "1s".into(),
            max_period: "1d".into(),
            backend: None,
            failure_policy: None,
            metric_names: Vec::new(),
            overrides: Vec::new(),
        }
    }
}

/// One override of declared limits: other parameters, `unlimited: true` or
/// `block: true`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeclaredOverrideDoc {
    /// The declared name it applies to: exact, or a glob with `*`.
    pub name: String,
    /// Only for requests meeting this condition (as a tier's `when`).
    pub when: Option<ConditionDoc>,
    /// The rate instead of the declared one.
    pub rate: Option<String>,
    /// The algorithm instead of the declared one (with this override's
    /// `burst`, `initial_tokens` and `count_denied`, not the declared ones).
    pub algorithm: Option<Algorithm>,
    /// Token bucket capacity or GCRA burst.
    pub burst: Option<u64>,
    /// Token bucket tokens at start.
    pub initial_tokens: Option<u64>,
    /// Count denied hits too (window algorithms).
    pub count_denied: Option<bool>,
    /// The declared limit does not apply.
    pub unlimited: bool,
    /// Every request the declared limit applies to is denied.
    pub block: bool,
}

/// `envoy:`: where envoyproxy/ratelimit files are and how they are served.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnvoyDoc {
    /// A directory of envoyproxy/ratelimit YAML files, one domain each;
    /// relative to the configuration file's directory.
    pub config_dir: Option<String>,
    /// The backend keeping their counters (default: the first).
    pub backend: Option<String>,
    /// The backend keeping the counters of limits whose unit is `second`
    /// (default: `backend`), as the reference service's `REDIS_PERSECOND`.
    pub per_second_backend: Option<String>,
    /// Treat every descriptor as `quota_mode: true` (the reference
    /// service's `QUOTA_MODE`).
    pub quota_mode: bool,
    /// Several files may configure one domain, their descriptors merged
    /// (the reference service's `MERGE_DOMAIN_CONFIG`).
    pub merge_domains: bool,
    /// Whether denied hits count, for limits that do not say
    /// (`count_denied`); default true, as the reference service counts
    /// them. False is its `STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT`: a
    /// request over any limit consumes none.
    pub count_denied: Option<bool>,
    /// What their descriptors do when the backend fails (default:
    /// `settings.failure_policy`); a node's `failure_policy` overrides it.
    pub failure_policy: Option<String>,
    /// `RateLimit-*` headers on `ShouldRateLimit` responses.
    pub response_headers: ResponseHeadersDoc,
    /// The reference service's per-descriptor metrics, under its names.
    pub reference_metrics: ReferenceMetricsDoc,
}

/// `envoy.reference_metrics:` per-descriptor `total_hits`, `over_limit`,
/// `near_limit`, `within_limit` and `shadow_mode` counters under the names
/// the reference service's Prometheus mapping gives them
/// (`ratelimit_service_rate_limit_over_limit{domain,key1,key2}`), so its
/// dashboards and alerts keep working (the reference's `USE_PROMETHEUS`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReferenceMetricsDoc {
    /// Off by default: their labels carry descriptor values.
    pub enabled: bool,
    /// Hits past this share of a limit count as `near_limit` (the
    /// reference's `NEAR_LIMIT_RATIO`, default 0.8).
    pub near_limit_ratio: f32,
}

impl Default for ReferenceMetricsDoc {
    fn default() -> Self {
        Self {
            enabled: false,
            near_limit_ratio: 0.8,
        }
    }
}

/// `envoy.response_headers:` the headers describing the descriptor closest
/// to its limit (an over-limit one wins), as the reference service's
/// `RESPONSE_HEADERS_ENABLED`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseHeadersDoc {
    /// Add them (off by default, as in the reference service).
    pub enabled: bool,
    /// The limit header's name.
    pub limit: String,
    /// The remaining header's name.
    pub remaining: String,
    /// The reset header's name (seconds).
    pub reset: String,
}

impl Default for ResponseHeadersDoc {
    fn default() -> Self {
        Self {
            enabled: false,
            limit: "RateLimit-Limit".into(),
            remaining: "RateLimit-Remaining".into(),
            reset: "RateLimit-Reset".into(),
        }
    }
}

/// `settings:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SettingsDoc {
    /// Report every limit as shadow: count and report, never deny.
    pub shadow_mode: bool,
    /// What a request that matches no rule gets: `allow` or `deny`.
    pub on_no_match: NoMatchDoc,
    /// The algorithm of limits that name none.
    pub default_algorithm: Algorithm,
    /// IPv4 addresses are counted per this prefix length (32: per address).
    pub ipv4_prefix: u8,
    /// IPv6 addresses are counted per this prefix length (64: per /64).
    pub ipv6_prefix: u8,
    /// Caps on request size.
    pub request: RequestCapsDoc,
    /// What rules do when their backend fails: `open`, `closed` or `local`.
    pub failure_policy: String,
    /// Replicas sharing the traffic: `local` fallback limits are divided by it.
    pub local_replicas: u64,
    /// Proxies (addresses or CIDRs) whose `x-forwarded-for` is believed:
    /// the client is the right-most address not in this list. Empty: the
    /// connection's source address, `x-forwarded-for` ignored.
    pub trusted_proxies: Vec<String>,
    /// The domain of ext_authz checks without a `domain` context extension.
    pub ext_authz_domain: String,
}

impl Default for SettingsDoc {
    fn default() -> Self {
        Self {
            shadow_mode: false,
            on_no_match: NoMatchDoc::Allow,
            default_algorithm: Algorithm::FixedWindow,
            ipv4_prefix: 32,
            ipv6_prefix: 64,
            request: RequestCapsDoc::default(),
            failure_policy: "open".into(),
            local_replicas: 1,
            trusted_proxies: Vec::new(),
            ext_authz_domain: "ext_authz".into(),
        }
    }
}

/// `settings.on_no_match`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum NoMatchDoc {
    /// Allowed, with no status.
    Allow,
    /// Denied (OVER_LIMIT), with no status.
    Deny,
}

/// `settings.request`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestCapsDoc {
    /// Most descriptor entries in one request.
    pub max_descriptors: usize,
    /// Longest key or value (descriptor, header, user, API key, path), in bytes.
    pub max_value_bytes: usize,
    /// Most headers in one request.
    pub max_headers: usize,
    /// Largest cost of one request.
    pub max_cost: u64,
}

impl Default for RequestCapsDoc {
    fn default() -> Self {
        Self {
            max_descriptors: 64,
            max_value_bytes: 1024,
            max_headers: 64,
            max_cost: 1_000_000,
        }
    }
}

/// `store:` (the in-process store).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreDoc {
    /// Most counters held at once.
    pub max_keys: usize,
    /// What a hit on a new key gets when the store is full: `deny` or `allow`.
    pub when_full: WhenFullDoc,
    /// How often expired counters are reclaimed, e.g. `10s`.
    pub sweep_interval: String,
}

impl Default for StoreDoc {
    fn default() -> Self {
        Self {
            max_keys: 1_000_000,
            when_full: WhenFullDoc::Deny,
            sweep_interval: "10s".into(),
        }
    }
}

/// `store.when_full`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum WhenFullDoc {
    /// Hits on new keys are denied.
    Deny,
    /// Hits on new keys are allowed without being counted.
    Allow,
}

/// One rule.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuleDoc {
    /// Unique name, reported in statuses.
    pub name: String,
    /// The domain the rule belongs to; absent: every domain.
    pub domain: Option<String>,
    /// What a request must carry for the rule to apply.
    #[serde(rename = "match")]
    pub matches: ConditionDoc,
    /// The counting key: parts such as `ip`, `user`, `api_key`,
    /// `header:<name>`, `descriptor:<key>`, `path`, `method`; `a|b` takes the
    /// first present. Absent: the values of the descriptors matched.
    pub key: Option<Vec<String>>,
    /// Shorthand for one limit named `default`.
    pub rate: Option<String>,
    /// With `rate:`, its algorithm (default `settings.default_algorithm`).
    pub algorithm: Option<Algorithm>,
    /// With `rate:`, the token bucket capacity or GCRA burst.
    pub burst: Option<u64>,
    /// With `rate:`, the token bucket's tokens at start.
    pub initial_tokens: Option<u64>,
    /// With `rate:`, count denied hits too (window algorithms).
    pub count_denied: Option<bool>,
    /// Several limits, all of which must admit the request.
    pub limits: Vec<LimitDoc>,
    /// The rule matches and limits nothing (an allow-list entry).
    pub unlimited: bool,
    /// Other rates when a condition holds; the first matching tier wins.
    pub tiers: Vec<TierDoc>,
    /// The rule does not limit requests matching this condition.
    pub skip_if: Option<ConditionDoc>,
    /// Count and report, never deny.
    pub shadow: bool,
    /// Rules naming the same group share counters (per limit name and key).
    pub group: Option<String>,
    /// The backend keeping this rule's counters; absent: the first one.
    pub backend: Option<String>,
    /// When its backend fails: `open`, `closed` or `local` (default:
    /// `settings.failure_policy`).
    pub failure_policy: Option<String>,
}

/// One backend.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackendDoc {
    /// Unique name, used by rules' `backend:`.
    pub name: String,
    /// `memory` (sized by `store:`) or `redis`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Redis standalone: `redis://[user:password@]host:port[/db]`.
    pub url: Option<String>,
    /// Redis through Sentinel.
    pub sentinel: Option<SentinelDoc>,
    /// Redis Cluster.
    pub cluster: Option<ClusterDoc>,
    /// Redis ACL user.
    pub username: Option<String>,
    /// Redis password.
    pub password: Option<String>,
    /// A file holding the Redis password (a mounted secret), instead of
    /// `password`.
    pub password_file: Option<String>,
    /// An environment variable holding the Redis password, instead of
    /// `password`.
    pub password_env: Option<String>,
    /// Connections (commands are pipelined on them); default 4.
    pub pool_size: Option<usize>,
    /// Longest wait for one command; default `20ms`.
    pub command_timeout: Option<String>,
    /// Longest wait for the first connection; default `5s`.
    pub connect_timeout: Option<String>,
    /// Prepended to every key; default `rl:`.
    pub key_prefix: Option<String>,
    /// `engine` (default: the service's clock) or `redis` (Redis `TIME`).
    pub time_source: Option<String>,
    /// TLS (also implied, with the system's roots, by a `rediss://` URL).
    pub tls: Option<TlsDoc>,
    /// The circuit breaker of a redis backend.
    pub breaker: Option<BreakerDoc>,
    /// The cache of denials in front of a redis backend.
    pub deny_cache: Option<DenyCacheDoc>,
    /// A `failover` backend: other backends' names, in order of preference.
    pub members: Vec<String>,
}

/// `breaker:` of a Redis backend.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerDoc {
    /// Failures within `failure_window` that open it (default 5).
    pub failure_threshold: Option<u32>,
    /// Default `10s`.
    pub failure_window: Option<String>,
    /// First time open (default `1s`), doubled after each failed probe...
    pub recovery_timeout: Option<String>,
    /// ...up to this (default `30s`).
    pub max_recovery_timeout: Option<String>,
    /// Probes let through when half open (default 1).
    pub half_open_max_calls: Option<u32>,
}

/// `deny_cache:` of a Redis backend.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DenyCacheDoc {
    /// Default true, except with `time_source: redis` (where it cannot be).
    pub enabled: Option<bool>,
    /// About the most denials held (default 100,000).
    pub max_entries: Option<usize>,
}

/// `tls:` of a Redis backend: PEM files.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsDoc {
    /// CA certificate(s) to trust; absent: the system's roots.
    pub ca_file: Option<String>,
    /// Client certificate, for servers that require one.
    pub cert_file: Option<String>,
    /// The client certificate's private key.
    pub key_file: Option<String>,
}

/// `sentinel:` of a Redis backend.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SentinelDoc {
    /// The monitored service (master) name.
    pub service: String,
    /// Sentinel addresses, `host:port`.
    pub addresses: Vec<String>,
}

/// `cluster:` of a Redis backend.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterDoc {
    /// Seed nodes, `host:port`.
    pub nodes: Vec<String>,
}

/// A tier: other limits when `when` holds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TierDoc {
    /// Reported in statuses and part of the counter's identity.
    pub name: String,
    /// The condition selecting the tier.
    pub when: ConditionDoc,
    /// Shorthand for one limit named `default`.
    pub rate: Option<String>,
    /// With `rate:`, its algorithm (default `settings.default_algorithm`).
    pub algorithm: Option<Algorithm>,
    /// With `rate:`, the token bucket capacity or GCRA burst.
    pub burst: Option<u64>,
    /// With `rate:`, the token bucket's tokens at start.
    pub initial_tokens: Option<u64>,
    /// With `rate:`, count denied hits too (window algorithms).
    pub count_denied: Option<bool>,
    /// The tier's limits.
    pub limits: Vec<LimitDoc>,
    /// Requests of this tier are not limited.
    pub unlimited: bool,
}

/// One limit.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitDoc {
    /// Unique within the rule; defaults to `default` for a single limit.
    pub name: Option<String>,
    /// `N/period`, e.g. `10/s`, `100/5m`.
    pub rate: String,
    /// Defaults to `settings.default_algorithm`.
    pub algorithm: Option<Algorithm>,
    /// Token bucket capacity or GCRA burst; defaults to the rate's count.
    pub burst: Option<u64>,
    /// Token bucket tokens at start; defaults to `burst`.
    pub initial_tokens: Option<u64>,
    /// Count denied hits too (fixed_window and sliding_window).
    pub count_denied: bool,
}

/// The algorithms, as written in files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum Algorithm {
    /// Epoch-aligned fixed windows.
    FixedWindow,
    /// Two weighted windows.
    SlidingWindow,
    /// Exact log of hits.
    SlidingLog,
    /// Token bucket.
    TokenBucket,
    /// Generic cell rate algorithm.
    Gcra,
}

/// A condition: every field given must hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConditionDoc {
    /// Descriptor entries the request must carry.
    pub descriptors: Vec<DescriptorDoc>,
    /// The path: exact, or a glob when it contains `*`.
    pub path: Option<String>,
    /// The path starts with this.
    pub path_prefix: Option<String>,
    /// One of these methods (case-insensitive).
    pub methods: Vec<String>,
    /// Header name to value: exact, `*` for presence, or a glob.
    pub headers: BTreeMap<String, String>,
    /// The client IP is in one of these networks or addresses.
    pub client_ip: Vec<String>,
    /// The user is one of these.
    pub users: Vec<String>,
    /// The API key is one of these.
    pub api_keys: Vec<String>,
}

/// A descriptor entry condition: `value` (exact or `*` glob), `regex`, or
/// neither (any value).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DescriptorDoc {
    /// The entry key.
    pub key: String,
    /// Exact value, or a glob when it contains `*`.
    pub value: Option<String>,
    /// A regex the whole value must match.
    pub regex: Option<String>,
}

/// Picks `text` among `choices`, or says what the choices are: every word
/// of a closed list in the configuration is read, and refused, alike.
pub(crate) fn choose<T: Copy>(text: &str, what: &str, choices: &[(&str, T)]) -> Result<T, String> {
    choices
        .iter()
        .find(|(name, _)| *name == text)
        .map(|(_, value)| *value)
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
            format!(
                "unknown {what} `{text}`, expected one of: {}",
                names.join(", ")
            )
        })
}

impl TryFrom<String> for Algorithm {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        choose(&text, "algorithm", &Self::NAMES)
    }
}

impl Algorithm {
    /// The name in files, e.g. `sliding_log`.
    pub fn as_str(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, algorithm)| *algorithm == self)
            .map(|(name, _)| *name)
            .expect("every algorithm is named")
    }

    /// Every algorithm with its name in files.
    pub const NAMES: [(&'static str, Self); 5] = [
        ("fixed_window", Self::FixedWindow),
        ("sliding_window", Self::SlidingWindow),
        ("sliding_log", Self::SlidingLog),
        ("token_bucket", Self::TokenBucket),
        ("gcra", Self::Gcra),
    ];
}

impl TryFrom<String> for NoMatchDoc {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        choose(
            &text,
            "on_no_match",
            &[("allow", Self::Allow), ("deny", Self::Deny)],
        )
    }
}

impl TryFrom<String> for WhenFullDoc {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        choose(
            &text,
            "when_full",
            &[("deny", Self::Deny), ("allow", Self::Allow)],
        )
    }
}
