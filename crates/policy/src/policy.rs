//! The compiled policy and the planner: which limits, under which counter
//! keys, apply to a request.

use crate::condition::Condition;
use crate::document::Algorithm;
use crate::key::{counter_key, IpMasks, KeyPart};
use crate::pattern::Specificity;
use crate::rate::Rate;
use crate::request::Attributes;
use std::collections::HashMap;
use std::time::Duration;

/// A compiled, validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Service-wide settings.
    pub settings: Settings,
    /// The in-process store's sizing.
    pub store: StoreSettings,
    pub(crate) skip: Vec<Condition>,
    pub(crate) rules: Vec<Rule>,
    /// Rule indices per domain (rules without a domain included), in order.
    pub(crate) by_domain: HashMap<String, Vec<usize>>,
    /// Indices of rules without a domain, for other domains.
    pub(crate) any_domain: Vec<usize>,
    pub(crate) limits: Vec<LimitSpec>,
    pub(crate) backends: Vec<BackendSpec>,
    /// How envoyproxy/ratelimit files are served.
    pub envoy: EnvoySettings,
}

/// How envoyproxy/ratelimit files are served (`envoy:`).
#[derive(Debug, Clone, Default)]
pub struct EnvoySettings {
    /// Their directory, as written (relative to the configuration file).
    pub config_dir: Option<String>,
    /// Index of the backend keeping their counters.
    pub backend: usize,
    /// What their descriptors do when it fails.
    pub failure_policy: FailurePolicy,
    /// `RateLimit-*` header names, when the headers are on.
    pub response_headers: Option<ResponseHeaderNames>,
}

/// Names of the `RateLimit-*` headers of `ShouldRateLimit` responses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHeaderNames {
    /// Limit.
    pub limit: String,
    /// Remaining.
    pub remaining: String,
    /// Reset, in seconds.
    pub reset: String,
}

/// Where a backend's counters live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSpec {
    /// The backend's name.
    pub name: String,
    /// What it is.
    pub kind: BackendKind,
}

/// The kinds of backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendKind {
    /// The in-process store, sized by `store:`.
    Memory,
    /// Redis.
    Redis(Box<RedisSpec>),
    /// A failover chain over other backends (indices into
    /// [`Policy::backends`]), first preferred.
    Failover(Vec<usize>),
}

/// What a rule does when its backend fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// Allow, marking the response degraded.
    #[default]
    Open,
    /// Deny with `UNAVAILABLE`.
    Closed,
    /// Decide in the in-process fallback store with the limits divided by
    /// `settings.local_replicas`.
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

/// A Redis backend's circuit breaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerSpec {
    /// Failures within `failure_window` that open it.
    pub failure_threshold: u32,
    /// The window failures are counted in.
    pub failure_window: Duration,
    /// First time open.
    pub recovery_timeout: Duration,
    /// Longest time open.
    pub max_recovery_timeout: Duration,
    /// Probes let through when half open.
    pub half_open_max_calls: u32,
}

/// A Redis backend's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSpec {
    /// Where Redis is.
    pub topology: RedisTopologySpec,
    /// ACL user.
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Connections.
    pub pool_size: usize,
    /// Longest wait for one command.
    pub command_timeout: Duration,
    /// Longest wait for the first connection.
    pub connect_timeout: Duration,
    /// Prepended to every key.
    pub key_prefix: String,
    /// Decide with Redis's `TIME` rather than the service's clock.
    pub redis_time: bool,
    /// TLS, when given (a `rediss://` URL without it uses the system's roots).
    pub tls: Option<TlsSpec>,
    /// Its circuit breaker.
    pub breaker: BreakerSpec,
}

/// TLS files of a Redis backend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSpec {
    /// CA certificate(s) to trust; absent: the system's roots.
    pub ca_file: Option<String>,
    /// Client certificate.
    pub cert_file: Option<String>,
    /// Its private key.
    pub key_file: Option<String>,
}

/// Where a Redis deployment is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTopologySpec {
    /// `redis://` URL.
    Standalone(String),
    /// Sentinel service name and addresses.
    Sentinel {
        /// Service name.
        service: String,
        /// Sentinels, `host:port`.
        addresses: Vec<String>,
    },
    /// Cluster seed nodes.
    Cluster(Vec<String>),
}

/// Service-wide settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Every limit is in shadow mode.
    pub shadow_mode: bool,
    /// Deny requests that match no rule.
    pub deny_unmatched: bool,
    /// How client IPs are grouped in `ip` keys.
    pub ip_masks: IpMasks,
    /// Request size caps.
    pub caps: RequestCaps,
    /// What rules do by default when their backend fails.
    pub failure_policy: FailurePolicy,
    /// `local` fallback limits are divided by this.
    pub local_replicas: u64,
    /// Proxies whose `x-forwarded-for` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The domain of ext_authz checks without a `domain` context extension.
    pub ext_authz_domain: String,
}

/// Caps on request size, enforced before matching.
#[derive(Debug, Clone, Copy)]
pub struct RequestCaps {
    /// Most descriptor entries.
    pub max_descriptors: usize,
    /// Longest key or value in bytes.
    pub max_value_bytes: usize,
    /// Most headers.
    pub max_headers: usize,
    /// Largest cost.
    pub max_cost: u64,
}

/// The in-process store's sizing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// Most counters held at once.
    pub max_keys: usize,
    /// Deny (true) or allow untracked (false) hits on new keys when full.
    pub deny_when_full: bool,
    /// How often expired counters are reclaimed.
    pub sweep_interval: Duration,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The rule's name.
    pub name: String,
    /// Count and report, never deny.
    pub shadow: bool,
    /// Index of the backend in [`Policy::backends`].
    pub backend: usize,
    /// What it does when its backend fails.
    pub failure_policy: FailurePolicy,
    pub(crate) matches: Condition,
    pub(crate) skip_if: Option<Condition>,
    pub(crate) key: Vec<KeyPart>,
    pub(crate) limits: LimitSet,
    pub(crate) tiers: Vec<Tier>,
    /// Counter namespace: the group, or the rule itself.
    pub(crate) namespace: String,
    /// Rules with the same family id compete (see [`Family`]).
    pub(crate) family: usize,
    pub(crate) specificity: Vec<Specificity>,
}

/// Limits, or none at all.
#[derive(Debug, Clone)]
pub(crate) enum LimitSet {
    Unlimited,
    Limits(Vec<LimitId>),
}

/// A tier of a rule.
#[derive(Debug, Clone)]
pub(crate) struct Tier {
    pub name: String,
    pub when: Condition,
    pub limits: LimitSet,
}

/// Index of a limit in [`Policy::limits`].
pub type LimitId = usize;

/// One configured limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSpec {
    /// Index in [`Policy::limits`].
    pub id: LimitId,
    /// Name within its rule.
    pub name: String,
    /// Hits per period; 0 blocks.
    pub rate: Rate,
    /// The algorithm.
    pub algorithm: Algorithm,
    /// Token bucket capacity or GCRA burst (the rate's count unless set).
    pub burst: u64,
    /// Token bucket initial tokens (the burst unless set).
    pub initial_tokens: u64,
    /// Count denied hits too.
    pub count_denied: bool,
    /// Where it is declared, e.g. `rules[1].limits[0]`, for errors.
    pub path: String,
}

/// What the policy says about one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan<'p> {
    /// No rule matched.
    NoMatch,
    /// A `skip` condition matched: nothing applies.
    Skipped,
    /// These limits apply (possibly none: unlimited, skipped by `skip_if`, or
    /// a counting key absent from the request).
    Checks(Vec<PlannedCheck<'p>>),
}

/// One limit to check for a request.
#[derive(Debug, PartialEq, Eq)]
pub struct PlannedCheck<'p> {
    /// The rule's name.
    pub rule: &'p str,
    /// The tier whose limits apply, if not the rule's own.
    pub tier: Option<&'p str>,
    /// The limit.
    pub limit: &'p LimitSpec,
    /// The counter identity.
    pub key: String,
    /// Count and report, never deny.
    pub shadow: bool,
    /// Index of the backend keeping the counter.
    pub backend: usize,
    /// What to do when that backend fails.
    pub failure_policy: FailurePolicy,
}

impl Policy {
    /// Every limit, indexed by [`LimitSpec::id`].
    pub fn limits(&self) -> &[LimitSpec] {
        &self.limits
    }

    /// Whether rules are declared for `domain` (rules without a domain
    /// apply to every domain and do not count).
    pub fn has_domain(&self, domain: &str) -> bool {
        self.by_domain.contains_key(domain)
    }

    /// The backends; the first is the default.
    pub fn backends(&self) -> &[BackendSpec] {
        &self.backends
    }

    /// The rules, in declaration order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Plans the checks for `request`.
    ///
    /// Every rule of the request's domain (and every rule without a domain)
    /// is matched. Matching rules of the same family (constraining the same
    /// descriptor keys and attributes) compete: the most specific wins
    /// (exact, then wildcard, then key-only; longer literal prefixes first),
    /// earlier declaration breaking ties. Rules of different families all
    /// apply, in declaration order. Shadow rules compete only with shadow
    /// rules: trying a limit beside the ones in force never takes one of
    /// them out of force.
    pub fn plan<'p>(&'p self, request: &impl Attributes) -> Plan<'p> {
        if self.skip.iter().any(|condition| condition.matches(request)) {
            return Plan::Skipped;
        }
        let candidates = self
            .by_domain
            .get(request.domain())
            .unwrap_or(&self.any_domain);
        let mut winners: Vec<usize> = Vec::new();
        for &index in candidates {
            let rule = &self.rules[index];
            if !rule.matches.matches(request) {
                continue;
            }
            match winners.iter_mut().find(|winner| {
                let winner = &self.rules[**winner];
                winner.family == rule.family && winner.shadow == rule.shadow
            }) {
                Some(winner) if rule.specificity > self.rules[*winner].specificity => {
                    *winner = index;
                }
                Some(_) => {}
                None => winners.push(index),
            }
        }
        if winners.is_empty() {
            return Plan::NoMatch;
        }
        winners.sort_unstable();
        let checks = winners
            .into_iter()
            .flat_map(|index| self.rule_checks(&self.rules[index], request))
            .collect();
        Plan::Checks(checks)
    }

    fn rule_checks<'p>(
        &'p self,
        rule: &'p Rule,
        request: &impl Attributes,
    ) -> Vec<PlannedCheck<'p>> {
        if rule
            .skip_if
            .as_ref()
            .is_some_and(|condition| condition.matches(request))
        {
            return Vec::new();
        }
        let tier = rule.tiers.iter().find(|tier| tier.when.matches(request));
        let (tier_name, limits) = match tier {
            Some(tier) => (Some(tier.name.as_str()), &tier.limits),
            None => (None, &rule.limits),
        };
        let LimitSet::Limits(ids) = limits else {
            return Vec::new();
        };
        let masks = self.settings.ip_masks;
        let shadow = rule.shadow || self.settings.shadow_mode;
        ids.iter()
            .map(|&id| &self.limits[id])
            .map_while(|limit| {
                let key = counter_key(
                    &rule.namespace,
                    &limit.name,
                    tier_name.unwrap_or(""),
                    &rule.key,
                    request,
                    masks,
                )?;
                Some(PlannedCheck {
                    rule: &rule.name,
                    tier: tier_name,
                    limit,
                    key,
                    shadow,
                    backend: rule.backend,
                    failure_policy: rule.failure_policy,
                })
            })
            .collect()
    }
}
