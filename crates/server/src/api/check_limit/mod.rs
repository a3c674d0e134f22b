//! `ratelimit.v1.RateLimiter/CheckLimit` over the policy's rules and the
//! limits the request declares: validate (`validate.rs`) → plan with the
//! policy (rules, then declared limits through its gate) → route through
//! the decision core → record → respond (`respond.rs`, `headers.rs`).
//! `Admin/Inspect`, ext_authz and `POST /v1/check` run the same pipeline;
//! `Admin/Reset` plans the same way and deletes the counters instead.

mod headers;
mod respond;
mod validate;

use crate::api::authorize;
use crate::api::fields::invalid;
use crate::api::layer::budget;
use crate::config::{request_limits, LoadedPolicy};
use crate::decide::{self, Routed};
use crate::state::ServiceState;
use crate::telemetry::metrics::Api;
use ratelimitd_engine::{Check, Limit, Probe};
use ratelimitd_policy::{
    Algorithm as PolicyAlgorithm, DeclareError, DeclaredCheck, FailurePolicy, Plan, PlannedCheck,
};
use ratelimitd_proto::v1::check_limit_response::Code;
use ratelimitd_proto::v1::rate_limiter_server::RateLimiter;
use ratelimitd_proto::v1::{CheckLimitRequest, CheckLimitResponse, ResetCounter};
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};
use tracing::Instrument;
use validate::ValidRequest;

/// `ratelimit.v1.RateLimiter`.
pub struct RateLimiterService {
    state: Arc<ServiceState>,
}

impl RateLimiterService {
    /// The service over `state`.
    pub fn new(state: Arc<ServiceState>) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl RateLimiter for RateLimiterService {
    async fn check_limit(
        &self,
        request: Request<CheckLimitRequest>,
    ) -> Result<Response<CheckLimitResponse>, Status> {
        let budget = budget(&request);
        let caller = authorize::caller(&request)?;
        let asked = request.get_ref();
        authorize::may_check(
            &self.state,
            &caller,
            &asked.domain,
            !asked.limits.is_empty(),
        )?;
        let span = tracing::info_span!("CheckLimit", domain = %request.get_ref().domain);
        let policy = self.state.policy();
        check(
            &self.state,
            &policy,
            request.get_ref(),
            budget,
            Mode::Decide,
        )
        .instrument(span)
        .await
        .map(Response::new)
    }
}

/// Whether a request is decided or only inspected.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode<'r> {
    /// Decided: counted, recorded in metrics and denial events.
    Decide,
    /// Inspected at cost 0 (only `rule`'s limits, if given): left out of
    /// the metrics.
    Inspect {
        /// Only this rule's limits.
        rule: Option<&'r str>,
    },
}

/// Decides `request` with `loaded` (a policy snapshot the caller holds);
/// backends get at most `budget`, after which failure policies answer.
pub async fn check(
    state: &ServiceState,
    loaded: &LoadedPolicy,
    request: &CheckLimitRequest,
    budget: Option<Duration>,
    mode: Mode<'_>,
) -> Result<CheckLimitResponse, Status> {
    let policy = &loaded.policy;
    let valid = ValidRequest::new(request, &policy.settings)?;
    let only = match mode {
        Mode::Decide => None,
        Mode::Inspect { rule } => rule,
    };
    let planned = match plan(loaded, &valid, only)? {
        Planning::Verdict(code) => return Ok(respond::verdict(code)),
        Planning::Limits(planned) => planned,
    };
    let applied = planned.applied(loaded);
    let routed: Vec<Routed<'_>> = applied.iter().map(|a| a.routed(valid.cost)).collect();
    let decisions = decide::route(state.backends(), &routed, budget).await;
    if mode == Mode::Decide {
        let domain = if policy.has_domain(&request.domain) {
            request.domain.as_str()
        } else {
            "*"
        };
        decide::record(
            (state.metrics(), state.events()),
            (Api::Policy, domain),
            &routed,
            &decisions,
        );
    }
    Ok(respond::response(loaded, &applied, &routed, &decisions))
}

/// What a request comes to before anything is decided.
enum Planning<'p, 'r> {
    /// Nothing to decide: this is the answer (skipped, unmatched, or no
    /// limit left after narrowing).
    Verdict(Code),
    /// These limits apply.
    Limits(Planned<'p, 'r>),
}

/// The limits that apply to a request: the policy's rules that matched and
/// the limits it declares, with the engine limits of the declared ones.
struct Planned<'p, 'r> {
    rules: Vec<PlannedCheck<'p>>,
    declared: Vec<DeclaredCheck<'p, 'r>>,
    declared_limits: Vec<(Limit, Limit)>,
}

/// Plans `valid` with `loaded`: rules, then declared limits through the
/// policy's gate; only those named `only` (a rule's or a declared
/// limit's name), if given.
fn plan<'p, 'r>(
    loaded: &'p LoadedPolicy,
    valid: &'r ValidRequest<'r>,
    only: Option<&str>,
) -> Result<Planning<'p, 'r>, Status> {
    let policy = &loaded.policy;
    let (mut rules, matched) = match policy.plan(valid) {
        Plan::Skipped => return Ok(Planning::Verdict(Code::Ok)),
        Plan::NoMatch => (Vec::new(), false),
        Plan::Checks(planned) => (planned, true),
    };
    let mut declared = policy
        .declare(valid, &valid.declared)
        .map_err(declare_error)?;
    if !matched && declared.is_empty() {
        let unmatched = if policy.settings.deny_unmatched {
            Code::OverLimit
        } else {
            Code::Ok
        };
        return Ok(Planning::Verdict(unmatched));
    }
    if let Some(only) = only {
        rules.retain(|planned| planned.rule == only);
        declared.retain(|declared| declared.name == only);
    }
    if rules.is_empty() && declared.is_empty() {
        return Ok(Planning::Verdict(Code::Ok));
    }
    let declared_limits = declared
        .iter()
        .enumerate()
        .map(|(index, declared)| {
            request_limits(&declared.spec, policy.settings.local_replicas)
                .map_err(|message| invalid(format_args!("limits[{index}].rate"), message))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Planning::Limits(Planned {
        rules,
        declared,
        declared_limits,
    }))
}

impl Planned<'_, '_> {
    /// Every limit that applies, rules first.
    fn applied<'a>(&'a self, loaded: &'a LoadedPolicy) -> Vec<Applied<'a>> {
        self.rules
            .iter()
            .map(|planned| Applied::rule(planned, loaded))
            .chain(
                self.declared
                    .iter()
                    .zip(&self.declared_limits)
                    .map(|(declared, limits)| Applied::declared(declared, limits)),
            )
            .collect()
    }
}

/// The state of the counters `request` would touch (only `rule`'s, if
/// given: a rule's or a declared limit's name), consuming nothing: the
/// decision a request of cost 0 gets, left out of the metrics and denial
/// events.
pub async fn inspect(
    state: &ServiceState,
    request: &CheckLimitRequest,
    rule: Option<&str>,
    budget: Option<Duration>,
) -> Result<CheckLimitResponse, Status> {
    let loaded = state.policy();
    check_named(&loaded, request, rule)?;
    let request = CheckLimitRequest {
        cost: Some(0),
        ..request.clone()
    };
    check(state, &loaded, &request, budget, Mode::Inspect { rule }).await
}

/// Deletes the counters `request` would touch (only `rule`'s, if given),
/// in whichever backend holds them: one [`ResetCounter`] per limit.
/// UNAVAILABLE, naming the backend, when one could not delete.
pub async fn reset(
    state: &ServiceState,
    request: &CheckLimitRequest,
    rule: Option<&str>,
) -> Result<Vec<ResetCounter>, Status> {
    let loaded = state.policy();
    check_named(&loaded, request, rule)?;
    let valid = ValidRequest::new(request, &loaded.policy.settings)?;
    let planned = match plan(&loaded, &valid, rule)? {
        Planning::Verdict(_) => return Ok(Vec::new()),
        Planning::Limits(planned) => planned,
    };
    let applied = planned.applied(&loaded);
    let routed: Vec<Routed<'_>> = applied.iter().map(|a| a.routed(0)).collect();
    let deleted = decide::reset(state.backends(), &routed)
        .await
        .map_err(|error| Status::unavailable(format!("cannot reset the counters: {error}")))?;
    let backends = loaded.policy.backends();
    Ok(applied
        .iter()
        .zip(deleted)
        .map(|(applied, deleted)| ResetCounter {
            rule: applied.rule.to_string(),
            limit_name: applied.limit_name.to_string(),
            tier: applied.tier.to_string(),
            backend: backends[applied.backend].name.clone(),
            deleted,
        })
        .collect())
}

/// INVALID_ARGUMENT unless `rule`, if given, names a rule of the policy or
/// a limit `request` declares.
fn check_named(
    loaded: &LoadedPolicy,
    request: &CheckLimitRequest,
    rule: Option<&str>,
) -> Result<(), Status> {
    let Some(rule) = rule else { return Ok(()) };
    let named = loaded.policy.rules().iter().any(|r| r.name == rule)
        || request.limits.iter().any(|declared| declared.name == rule);
    if named {
        Ok(())
    } else {
        Err(invalid(
            "rule",
            format!("no rule or declared limit is named {rule:?}"),
        ))
    }
}

/// Declared limits refused: FAILED_PRECONDITION for a domain that does not
/// accept them, INVALID_ARGUMENT naming the field otherwise.
fn declare_error(error: DeclareError) -> Status {
    match error {
        DeclareError::NotAccepted(domain) => Status::failed_precondition(format!(
            "limits: domain {domain:?} does not accept declared limits (the policy's declared.domains)"
        )),
        DeclareError::Invalid { field, message } => invalid(field, message),
    }
}

/// One limit that applies to the request, from a policy rule or declared
/// by the request: its engine limits and what its status reports.
pub(crate) struct Applied<'a> {
    /// The status's `rule`: the rule's or the declared limit's name.
    pub rule: &'a str,
    /// The status's `limit_name`.
    pub limit_name: &'a str,
    /// The status's `tier` (`override` for a declared limit an operator
    /// overrode).
    pub tier: &'a str,
    /// The algorithm, as configured.
    pub algorithm: PolicyAlgorithm,
    /// Counted and reported, never denying.
    pub shadow: bool,
    /// Index of its backend.
    pub backend: usize,
    failure_policy: FailurePolicy,
    key: &'a str,
    label: &'a str,
    limit: &'a Limit,
    local_limit: &'a Limit,
}

impl<'a> Applied<'a> {
    fn rule(planned: &'a PlannedCheck<'a>, loaded: &'a LoadedPolicy) -> Self {
        Self {
            rule: planned.rule,
            limit_name: &planned.limit.name,
            tier: planned.tier.unwrap_or_default(),
            algorithm: planned.limit.algorithm,
            shadow: planned.shadow,
            backend: planned.backend,
            failure_policy: planned.failure_policy,
            key: &planned.key,
            label: planned.rule,
            limit: &loaded.limits[planned.limit.id],
            local_limit: &loaded.local_limits[planned.limit.id],
        }
    }

    fn declared(
        declared: &'a DeclaredCheck<'a, 'a>,
        (limit, local_limit): &'a (Limit, Limit),
    ) -> Self {
        Self {
            rule: declared.name,
            limit_name: &declared.spec.name,
            tier: if declared.overridden { "override" } else { "" },
            algorithm: declared.spec.algorithm,
            shadow: declared.shadow,
            backend: declared.backend,
            failure_policy: declared.failure_policy,
            key: &declared.key,
            label: declared.label,
            limit,
            local_limit,
        }
    }

    /// The check for the decision core, consuming `cost`.
    fn routed(&self, cost: u64) -> Routed<'a> {
        Routed {
            check: Check {
                key: self.key,
                limit: self.limit,
                cost,
                enforced: !self.shadow,
                probe: Probe::NextHit,
            },
            backend: self.backend,
            failure_policy: self.failure_policy,
            local_limit: self.local_limit,
            label: self.label,
            shadow: self.shadow,
        }
    }
}
