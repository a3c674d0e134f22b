//! What an RLS request asks for: each descriptor walked down the
//! envoyproxy/ratelimit trees (`policy::envoy`) or taken from its `limit`
//! override, limits named under `replaces` dropped, and the hits of a
//! counter named twice added up, ready for the decision core.

use crate::config::{override_limits, LoadedEnvoy};
use crate::decide::Routed;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::RateLimit;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use ratelimitd_engine::{Check, Limit, Probe};
use ratelimitd_policy::{
    EnvoyConfig, EnvoyDescriptor, EnvoyLimit, EnvoyPlan, EnvoySettings, FailurePolicy, Unit,
};
use std::collections::{HashMap, HashSet};

use super::respond::reported;

/// Where a planned limit comes from.
#[derive(Clone, Copy)]
pub(super) enum Source<'a> {
    /// A `rate_limit` of the files.
    File(&'a EnvoyLimit),
    /// The request's own `limit`: requests per unit.
    Override(u32, Unit),
}

impl<'a> Source<'a> {
    fn file(self) -> Option<&'a EnvoyLimit> {
        match self {
            Self::File(limit) => Some(limit),
            Self::Override(..) => None,
        }
    }
}

/// A planned limit's engine limit and its local fallback share.
pub(super) enum Limits<'a> {
    /// Compiled with the files.
    File(&'a Limit, &'a Limit),
    /// Built from the request's override.
    Override(Limit, Limit),
}

impl Limits<'_> {
    fn pair(&self) -> (&Limit, &Limit) {
        match self {
            Self::File(limit, local) => (limit, local),
            Self::Override(limit, local) => (limit, local),
        }
    }
}

/// One descriptor's limit, ready to check.
pub(super) struct Planned<'a> {
    /// Index of the request descriptor.
    pub descriptor: usize,
    /// Where its limit comes from.
    pub source: Source<'a>,
    /// The counter's identity.
    pub key: String,
    /// The limit reported as `current_limit`.
    pub reported: RateLimit,
    /// Counted and reported OK (`shadow_mode: true`).
    pub shadow: bool,
    /// Over only when every quota-mode descriptor is.
    pub quota_mode: bool,
    /// What to do when the backend fails.
    pub failure_policy: FailurePolicy,
    /// Hits of this descriptor.
    pub hits: u64,
}

/// What one request descriptor got.
pub(super) enum Verdict {
    NoLimit,
    Unlimited,
    Checked,
}

/// What applies to each request descriptor, and the limits to check (in
/// request order).
pub(super) fn plan<'c>(
    request: &RateLimitRequest,
    config: &'c EnvoyConfig,
    overrides: &[Option<(u32, Unit)>],
    envoy_settings: &EnvoySettings,
) -> (Vec<Verdict>, Vec<Planned<'c>>) {
    let mut verdicts = Vec::with_capacity(request.descriptors.len());
    let mut planned: Vec<Planned<'_>> = Vec::new();
    for (index, descriptor) in request.descriptors.iter().enumerate() {
        let entries: Vec<(&str, &str)> = descriptor
            .entries
            .iter()
            .map(|entry| (entry.key.as_str(), entry.value.as_str()))
            .collect();
        let plan = config.plan(
            &request.domain,
            EnvoyDescriptor {
                entries: &entries,
                limit_override: overrides[index],
            },
        );
        let hits = hits(request, descriptor);
        verdicts.push(match plan {
            EnvoyPlan::NoLimit => Verdict::NoLimit,
            EnvoyPlan::Unlimited => Verdict::Unlimited,
            EnvoyPlan::Override {
                key,
                requests_per_unit,
                unit,
            } => {
                planned.push(Planned {
                    descriptor: index,
                    source: Source::Override(requests_per_unit, unit),
                    key,
                    reported: reported(None, requests_per_unit, Some(unit)),
                    shadow: false,
                    quota_mode: envoy_settings.quota_mode,
                    failure_policy: envoy_settings.failure_policy,
                    hits,
                });
                Verdict::Checked
            }
            EnvoyPlan::Limited(matched) => {
                for (limit, key) in matched.limits {
                    planned.push(Planned {
                        descriptor: index,
                        source: Source::File(limit),
                        key,
                        reported: reported(limit.name.clone(), limit.requests_per_unit, limit.unit),
                        shadow: matched.shadow,
                        quota_mode: matched.quota_mode || envoy_settings.quota_mode,
                        failure_policy: matched
                            .failure_policy
                            .unwrap_or(envoy_settings.failure_policy),
                        hits,
                    });
                }
                Verdict::Checked
            }
        });
    }
    (verdicts, planned)
}

/// Hits for `descriptor`: its own `hits_addend` as given (0 checks without
/// consuming), else the request's, where 0 means 1.
fn hits(request: &RateLimitRequest, descriptor: &RateLimitDescriptor) -> u64 {
    match &descriptor.hits_addend {
        Some(hits) => hits.value,
        None => u64::from(request.hits_addend.max(1)),
    }
}

/// Drops every limit named under `replaces` by a limit of this request.
pub(super) fn drop_replaced<'c>(planned: &mut Vec<Planned<'c>>) {
    let replaced: HashSet<&'c str> = planned
        .iter()
        .filter_map(|p| p.source.file())
        .flat_map(|limit| limit.replaces.iter().map(String::as_str))
        .collect();
    if replaced.is_empty() {
        return;
    }
    planned.retain(|p| {
        p.source
            .file()
            .and_then(|limit| limit.name.as_deref())
            .is_none_or(|name| !replaced.contains(name))
    });
}

/// The engine limits of each planned limit: a file's are compiled, an
/// override's are built for this call (its error names the field).
pub(super) fn limits<'a>(
    planned: &[Planned<'a>],
    envoy: &'a LoadedEnvoy,
    local_replicas: u64,
) -> Result<Vec<Limits<'a>>, String> {
    planned
        .iter()
        .map(|p| match p.source {
            Source::File(limit) => Ok(Limits::File(
                &envoy.limits[limit.spec.id],
                &envoy.local_limits[limit.spec.id],
            )),
            Source::Override(requests_per_unit, unit) => {
                override_limits(requests_per_unit, unit, local_replicas)
                    .map(|(limit, local)| Limits::Override(limit, local))
            }
        })
        .collect()
}

/// The checks for the decision core. A counter named twice in one request
/// is decided once, with the hits of every descriptor that names it.
pub(super) fn route<'a>(
    planned: &'a [Planned<'a>],
    limits: &'a [Limits<'a>],
    envoy_settings: &EnvoySettings,
) -> Vec<Routed<'a>> {
    let hits_per_counter = CounterHits::new(planned);
    planned
        .iter()
        .zip(limits)
        .map(|(p, limits)| {
            let (limit, local_limit) = limits.pair();
            Routed {
                check: Check {
                    key: &p.key,
                    limit,
                    cost: hits_per_counter.of(&p.key),
                    // Shadow and quota-mode limits never stop the others
                    // from counting; their verdict is applied in respond.
                    enforced: !p.shadow && !p.quota_mode,
                    // A descriptor with hits 0 asks what the reference asks:
                    // is the count (after adding nothing) over the limit?
                    probe: Probe::Count,
                },
                backend: if p.unit() == Some(Unit::Second) {
                    envoy_settings.per_second_backend
                } else {
                    envoy_settings.backend
                },
                failure_policy: p.failure_policy,
                local_limit,
                label: p.label(),
                shadow: p.shadow,
            }
        })
        .collect()
}

/// The hits of each counter a request names, added up over the planned
/// limits that name it.
enum CounterHits<'a> {
    /// Few limits: scanned for each counter, cheaper than hashing every key
    /// (a request names one to a few counters).
    Few(&'a [Planned<'a>]),
    /// Many: summed once per key.
    Many(HashMap<&'a str, u64>),
}

impl<'a> CounterHits<'a> {
    /// Past this many planned limits the hits are summed in a map.
    const MOST_SCANNED: usize = 8;

    fn new(planned: &'a [Planned<'a>]) -> Self {
        if planned.len() <= Self::MOST_SCANNED {
            return Self::Few(planned);
        }
        let mut hits: HashMap<&str, u64> = HashMap::new();
        for p in planned {
            *hits.entry(p.key.as_str()).or_default() += p.hits;
        }
        Self::Many(hits)
    }

    /// The hits of every planned limit on `key`'s counter.
    fn of(&self, key: &str) -> u64 {
        match self {
            Self::Few(planned) => planned
                .iter()
                .filter(|p| p.key == key)
                .map(|p| p.hits)
                .sum(),
            Self::Many(hits) => hits[key],
        }
    }
}

impl Planned<'_> {
    /// Whether its limit is the request's own `limit` override.
    pub(super) fn is_override(&self) -> bool {
        matches!(self.source, Source::Override(..))
    }

    /// The unit of its limit (none for a `window:` of ours), which sends
    /// per-second limits to `envoy.per_second_backend`.
    fn unit(&self) -> Option<Unit> {
        match self.source {
            Source::File(limit) => limit.unit,
            Source::Override(_, unit) => Some(unit),
        }
    }

    /// Its name in metrics and denial events: the limit's `name`, else its
    /// place in the file; `override` for a request's own limit.
    fn label(&self) -> &str {
        match self.source {
            Source::File(limit) => limit.name.as_deref().unwrap_or(&limit.spec.path),
            Source::Override(..) => "override",
        }
    }
}
