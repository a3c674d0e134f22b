//! Service-wide settings: how requests are bounded and read before any rule
//! is matched (`settings:`), and how envoyproxy/ratelimit files are served
//! (`envoy:`).

use crate::backend::FailurePolicy;
use crate::document::Algorithm;
use crate::envoy::EnvoyFileOptions;
use crate::key::IpMasks;

/// Service-wide settings (`settings:`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Every limit counts and reports but never denies: a dry run of the
    /// whole policy.
    pub shadow_mode: bool,
    /// Deny requests that match no rule, rather than allow them.
    pub deny_unmatched: bool,
    /// How client IPs are grouped in `ip` keys (per address, per /64, ...),
    /// so one client cannot escape a limit by changing address.
    pub ip_masks: IpMasks,
    /// Request size caps, checked before matching.
    pub caps: RequestCaps,
    /// What rules do when their backend fails, unless they say otherwise.
    pub failure_policy: FailurePolicy,
    /// The algorithm of limits that name none (declared ones included).
    pub default_algorithm: Algorithm,
    /// Replicas sharing the traffic: the `local` failure policy gives each
    /// this share of a limit (at least 1).
    pub local_replicas: u64,
    /// Proxies whose `x-forwarded-for` is believed: the client is the
    /// right-most address not among them. Empty: the connection's address.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The domain of ext_authz checks without a `domain` context extension.
    pub ext_authz_domain: String,
}

/// Caps on request size, enforced before matching so that a request cannot
/// make the service do unbounded work.
#[derive(Debug, Clone, Copy)]
pub struct RequestCaps {
    /// Most descriptor entries in one request.
    pub max_descriptors: usize,
    /// Longest key or value (descriptor, header, user, API key, path), in
    /// bytes.
    pub max_value_bytes: usize,
    /// Most headers in one request.
    pub max_headers: usize,
    /// Largest cost (hits counted at once) of one request.
    pub max_cost: u64,
}

/// How envoyproxy/ratelimit files are served (`envoy:`).
#[derive(Debug, Clone, Default)]
pub struct EnvoySettings {
    /// Their directory, as written (relative to the configuration file).
    pub config_dir: Option<String>,
    /// Index of the backend keeping their counters.
    pub backend: usize,
    /// Index of the backend keeping the counters of limits whose unit is
    /// `second` (the same as `backend` unless `envoy.per_second_backend`).
    pub per_second_backend: usize,
    /// Every descriptor is in quota mode (`envoy.quota_mode`).
    pub quota_mode: bool,
    /// How the files are read (`envoy.merge_domains`, `envoy.count_denied`).
    pub files: EnvoyFileOptions,
    /// With `envoy.reference_metrics.enabled`, the near-limit ratio of the
    /// reference service's per-descriptor metrics.
    pub reference_metrics: Option<f32>,
    /// What their descriptors do when it fails, unless a node says otherwise.
    pub failure_policy: FailurePolicy,
    /// `RateLimit-*` header names, when the headers are on.
    pub response_headers: Option<ResponseHeaderNames>,
}

/// Names of the `RateLimit-*` headers of `ShouldRateLimit` responses, which
/// describe the descriptor closest to its limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHeaderNames {
    /// The header carrying that descriptor's limit.
    pub limit: String,
    /// The header carrying what remains of it.
    pub remaining: String,
    /// The header carrying the seconds until it resets.
    pub reset: String,
}
