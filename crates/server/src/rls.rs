//! `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`: a drop-in
//! for envoyproxy/ratelimit over the envoyproxy/ratelimit files in force,
//! decided on the same engine, backends and failure policies as CheckLimit.

use crate::decider::Decider;
use crate::dispatch::{self, Decided, Routed};
use crate::request::{check_length, invalid};
use envoy_types::pb::envoy::config::core::v3::HeaderValue;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    rate_limit::Unit as ProtoUnit, Code, DescriptorStatus, RateLimit,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitService;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::Duration as ProtoDuration;
use ratelimitd_engine::{AlgorithmKind, Check, Limit, Probe};
use ratelimitd_policy::{
    EnvoyConfig, EnvoyDescriptor, EnvoyLimit, EnvoyPlan, EnvoySettings, FailurePolicy, RequestCaps,
    ResponseHeaderNames, Unit,
};
use ratelimitd_proto::v1::limit_status::Failure;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};
use tracing::Instrument;

/// The RLS v3 service over a [`Decider`].
pub struct RateLimitServiceAdapter {
    decider: Arc<Decider>,
}

impl RateLimitServiceAdapter {
    /// RLS for `decider`.
    pub fn new(decider: Arc<Decider>) -> Self {
        Self { decider }
    }
}

#[tonic::async_trait]
impl RateLimitService for RateLimitServiceAdapter {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        let _timer = self
            .decider
            .backends()
            .metrics
            .grpc_timer("ShouldRateLimit");
        let budget = crate::grpc::caller_budget(&request);
        let span = tracing::info_span!("ShouldRateLimit", domain = %request.get_ref().domain);
        should_rate_limit(&self.decider, request.get_ref(), budget)
            .instrument(span)
            .await
            .map(Response::new)
    }
}

/// Where a planned limit comes from.
#[derive(Clone, Copy)]
enum Source<'a> {
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
enum Limits<'a> {
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
struct Planned<'a> {
    /// Index of the request descriptor.
    descriptor: usize,
    /// Where its limit comes from.
    source: Source<'a>,
    key: String,
    /// The limit reported as `current_limit`.
    reported: RateLimit,
    shadow: bool,
    quota_mode: bool,
    failure_policy: FailurePolicy,
    hits: u64,
}

/// What one request descriptor got.
enum Verdict {
    NoLimit,
    Unlimited,
    Checked,
}

/// Decides one RLS request.
pub async fn should_rate_limit(
    decider: &Decider,
    request: &RateLimitRequest,
    budget: Option<Duration>,
) -> Result<RateLimitResponse, Status> {
    let running = decider.running();
    let loaded = &running.policy;
    let settings = &loaded.policy.settings;
    let overrides = validate(request, &settings.caps)?;
    let envoy = running.envoy.as_ref().ok_or_else(|| {
        Status::failed_precondition(
            "no rate limit configuration loaded: start with --envoy-config-dir or set envoy.config_dir",
        )
    })?;
    let envoy_settings = &loaded.policy.envoy;

    let (verdicts, mut planned) = plan(request, &envoy.config, &overrides, envoy_settings);
    drop_replaced(&mut planned);

    // A file's limits are compiled; an override's are built for this call.
    let limits: Vec<Limits<'_>> = planned
        .iter()
        .map(|p| match p.source {
            Source::File(limit) => Ok(Limits::File(
                &envoy.limits[limit.spec.id],
                &envoy.local_limits[limit.spec.id],
            )),
            Source::Override(requests_per_unit, unit) => {
                override_limits((requests_per_unit, unit), settings.local_replicas)
                    .map(|(limit, local)| Limits::Override(limit, local))
            }
        })
        .collect::<Result<_, _>>()?;
    // A counter named twice in one request is decided once, with the hits
    // of every descriptor that names it.
    let mut hits_per_counter: HashMap<&str, u64> = HashMap::new();
    for p in &planned {
        *hits_per_counter.entry(p.key.as_str()).or_default() += p.hits;
    }
    let routed: Vec<Routed<'_>> = planned
        .iter()
        .zip(&limits)
        .map(|(p, limits)| {
            let (limit, local_limit) = limits.pair();
            Routed {
                check: Check {
                    key: &p.key,
                    limit,
                    cost: hits_per_counter[p.key.as_str()],
                    // Shadow and quota-mode limits never stop the others
                    // from counting; their verdict is applied below.
                    enforced: !p.shadow && !p.quota_mode,
                    // A descriptor with hits 0 asks what the reference asks:
                    // is the count (after adding nothing) over the limit?
                    probe: Probe::Count,
                },
                backend: envoy_settings.backend,
                failure_policy: p.failure_policy,
                local_limit,
            }
        })
        .collect();
    let now = decider.backends().engine.now();
    let (decided, _) = dispatch::decide(decider.backends(), &routed, now, budget).await;

    record(decider, &request.domain, &planned, &decided);
    let statuses = statuses(&verdicts, &planned, &routed, &decided, now);
    let overall_code = if is_over_limit(&statuses, &planned) && !settings.shadow_mode {
        Code::OverLimit
    } else {
        Code::Ok
    };
    let response_headers_to_add = envoy_settings
        .response_headers
        .as_ref()
        .map(|names| response_headers(&statuses, names))
        .unwrap_or_default();
    Ok(RateLimitResponse {
        overall_code: overall_code as i32,
        statuses,
        response_headers_to_add,
        ..RateLimitResponse::default()
    })
}

/// Metrics and denial events for every limit decided.
fn record(decider: &Decider, domain: &str, planned: &[Planned<'_>], decided: &[Decided]) {
    let metrics = &decider.backends().metrics;
    for (p, decided) in planned.iter().zip(decided) {
        let rule = match p.source {
            Source::File(limit) => limit.name.as_deref().unwrap_or(&limit.spec.path),
            Source::Override(..) => "override",
        };
        decided.record(metrics, ("envoy", domain, rule), &p.key, p.shadow);
    }
}

/// What applies to each request descriptor, and the limits to check (in
/// request order).
fn plan<'c>(
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
                    quota_mode: false,
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
                        quota_mode: matched.quota_mode,
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

/// Checks the request's shape; returns each descriptor's limit override.
fn validate(
    request: &RateLimitRequest,
    caps: &RequestCaps,
) -> Result<Vec<Option<(u32, Unit)>>, Status> {
    if request.domain.is_empty() {
        return Err(invalid("domain", "must not be empty"));
    }
    check_length("domain", &request.domain, caps)?;
    if request.descriptors.is_empty() {
        return Err(invalid("descriptors", "must not be empty"));
    }
    if request.descriptors.len() > caps.max_descriptors {
        return Err(invalid(
            "descriptors",
            format!(
                "{} descriptors, at most {} allowed",
                request.descriptors.len(),
                caps.max_descriptors
            ),
        ));
    }
    if u64::from(request.hits_addend) > caps.max_cost {
        return Err(invalid(
            "hits_addend",
            format!("{}, at most {} allowed", request.hits_addend, caps.max_cost),
        ));
    }
    request
        .descriptors
        .iter()
        .enumerate()
        .map(|(index, descriptor)| {
            let field = |name: &str| format!("descriptors[{index}].{name}");
            if descriptor.entries.len() > caps.max_descriptors {
                return Err(invalid(
                    &field("entries"),
                    format!(
                        "{} entries, at most {} allowed",
                        descriptor.entries.len(),
                        caps.max_descriptors
                    ),
                ));
            }
            for (position, entry) in descriptor.entries.iter().enumerate() {
                check_length(
                    &field(&format!("entries[{position}].key")),
                    &entry.key,
                    caps,
                )?;
                check_length(
                    &field(&format!("entries[{position}].value")),
                    &entry.value,
                    caps,
                )?;
            }
            if let Some(hits) = &descriptor.hits_addend {
                if hits.value > caps.max_cost {
                    return Err(invalid(
                        &field("hits_addend"),
                        format!("{}, at most {} allowed", hits.value, caps.max_cost),
                    ));
                }
            }
            if descriptor.is_negative_hits {
                return Err(invalid(
                    &field("is_negative_hits"),
                    "returning hits is not supported",
                ));
            }
            descriptor
                .limit
                .as_ref()
                .map(|limit| {
                    unit_of(limit.unit)
                        .map(|unit| (limit.requests_per_unit, unit))
                        .ok_or_else(|| {
                            invalid(
                                &field("limit.unit"),
                                format!("{} is not a time unit", limit.unit),
                            )
                        })
                })
                .transpose()
        })
        .collect()
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
fn drop_replaced<'c>(planned: &mut Vec<Planned<'c>>) {
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

/// Over the limit when a descriptor not in quota mode is, or when every
/// quota-mode descriptor (there being some) is.
fn is_over_limit(statuses: &[DescriptorStatus], planned: &[Planned<'_>]) -> bool {
    let over = |quota: bool| {
        statuses
            .iter()
            .enumerate()
            .filter(|(i, _)| quota_mode(planned, *i) == quota)
            .map(|(_, status)| status.code == Code::OverLimit as i32)
            .collect::<Vec<bool>>()
    };
    let quota = over(true);
    over(false).contains(&true) || (!quota.is_empty() && quota.iter().all(|&over| over))
}

fn quota_mode(planned: &[Planned<'_>], descriptor: usize) -> bool {
    planned
        .iter()
        .any(|p| p.descriptor == descriptor && p.quota_mode)
}

/// An override's limit and its local fallback share: a fixed window that
/// counts every hit, as the reference service does.
fn override_limits(
    (requests_per_unit, unit): (u32, Unit),
    local_replicas: u64,
) -> Result<(Limit, Limit), Status> {
    let build = |count: u64| {
        Limit::fixed_window(count, unit.duration())
            .and_then(Limit::counting_denied)
            .map_err(|error| invalid("descriptors.limit", error.0))
    };
    let count = u64::from(requests_per_unit);
    Ok((build(count)?, build(count.div_ceil(local_replicas))?))
}

/// The statuses, one per request descriptor, in order.
fn statuses(
    verdicts: &[Verdict],
    planned: &[Planned<'_>],
    routed: &[Routed<'_>],
    decided: &[Decided],
    now: u64,
) -> Vec<DescriptorStatus> {
    verdicts
        .iter()
        .enumerate()
        .map(|(index, verdict)| match verdict {
            Verdict::NoLimit => status(Code::Ok, None, 0, None),
            Verdict::Unlimited => status(Code::Ok, None, u32::MAX, None),
            Verdict::Checked => {
                // The descriptor's binding limit: the first over, else the
                // one with the least remaining.
                let mine = (0..planned.len()).filter(|&i| planned[i].descriptor == index);
                let binding = mine.min_by_key(|&i| {
                    let outcome = &decided[i].outcome;
                    (!over(&decided[i]), outcome.remaining)
                });
                let Some(i) = binding else {
                    // Every limit of it was replaced.
                    return status(Code::Ok, None, 0, None);
                };
                let code = if over(&decided[i]) && !planned[i].shadow {
                    Code::OverLimit
                } else {
                    Code::Ok
                };
                let reset = until_reset(routed[i].check.limit, &decided[i], now);
                status(
                    code,
                    Some(planned[i].reported.clone()),
                    u32::try_from(decided[i].outcome.remaining).unwrap_or(u32::MAX),
                    Some(reset),
                )
            }
        })
        .collect()
}

/// Over its limit, or failing closed.
fn over(decided: &Decided) -> bool {
    decided.outcome.over_limit || decided.failure == Failure::FailClosed
}

fn status(
    code: Code,
    current_limit: Option<RateLimit>,
    limit_remaining: u32,
    duration_until_reset: Option<u64>,
) -> DescriptorStatus {
    DescriptorStatus {
        code: code as i32,
        current_limit,
        limit_remaining,
        duration_until_reset: duration_until_reset.map(|seconds| ProtoDuration {
            seconds: i64::try_from(seconds).unwrap_or(i64::MAX),
            nanos: 0,
        }),
        ..DescriptorStatus::default()
    }
}

/// Whole seconds until the limit resets: for a fixed window the rest of the
/// current window (as the reference service computes it), for the other
/// algorithms the time until fully replenished.
fn until_reset(limit: &Limit, decided: &Decided, now: u64) -> u64 {
    let micros = match limit.kind() {
        AlgorithmKind::FixedWindow => {
            let period = limit.period_micros();
            period - now % period
        }
        _ => decided.outcome.reset_after,
    };
    micros.div_ceil(1_000_000)
}

/// `current_limit` for a limit of `requests_per_unit` per `unit` (UNKNOWN
/// for our windows that are not a unit).
fn reported(name: Option<String>, requests_per_unit: u32, unit: Option<Unit>) -> RateLimit {
    RateLimit {
        name: name.unwrap_or_default(),
        requests_per_unit,
        unit: unit.map_or(ProtoUnit::Unknown, proto_unit) as i32,
    }
}

fn proto_unit(unit: Unit) -> ProtoUnit {
    match unit {
        Unit::Second => ProtoUnit::Second,
        Unit::Minute => ProtoUnit::Minute,
        Unit::Hour => ProtoUnit::Hour,
        Unit::Day => ProtoUnit::Day,
        Unit::Week => ProtoUnit::Week,
        Unit::Month => ProtoUnit::Month,
        Unit::Year => ProtoUnit::Year,
    }
}

fn unit_of(value: i32) -> Option<Unit> {
    Some(match ProtoUnit::try_from(value).ok()? {
        ProtoUnit::Unknown => return None,
        ProtoUnit::Second => Unit::Second,
        ProtoUnit::Minute => Unit::Minute,
        ProtoUnit::Hour => Unit::Hour,
        ProtoUnit::Day => Unit::Day,
        ProtoUnit::Week => Unit::Week,
        ProtoUnit::Month => Unit::Month,
        ProtoUnit::Year => Unit::Year,
    })
}

/// `RateLimit-Limit`, `-Remaining` and `-Reset` for the descriptor closest
/// to its limit; an over-limit descriptor wins (the last one, as in the
/// reference service).
fn response_headers(
    statuses: &[DescriptorStatus],
    names: &ResponseHeaderNames,
) -> Vec<HeaderValue> {
    let is_over = |status: &DescriptorStatus| status.code == Code::OverLimit as i32;
    let mut chosen: Option<&DescriptorStatus> = None;
    for status in statuses.iter().filter(|s| s.current_limit.is_some()) {
        let replaces_chosen = match chosen {
            None => true,
            Some(_) if is_over(status) => true,
            Some(current) => !is_over(current) && status.limit_remaining < current.limit_remaining,
        };
        if replaces_chosen {
            chosen = Some(status);
        }
    }
    let Some(status) = chosen else {
        return Vec::new();
    };
    let header = |key: &str, value: String| HeaderValue {
        key: key.to_string(),
        value,
        ..HeaderValue::default()
    };
    let limit = status
        .current_limit
        .as_ref()
        .map_or(0, |l| l.requests_per_unit);
    let reset = status
        .duration_until_reset
        .as_ref()
        .map_or(0, |d| d.seconds);
    vec![
        header(&names.limit, limit.to_string()),
        header(&names.remaining, status.limit_remaining.to_string()),
        header(&names.reset, reset.to_string()),
    ]
}
