//! Limits declared by the caller with its request (`@rate_limit(key='ip',
//! rate='10/m')`), decided beside the policy's rules: checked against the
//! operator's gate (`declared:`: which domains, how many, which algorithms,
//! which rates), overridden where the operator says so, and given counter
//! keys that no rule's can equal.
//!
//! A declared counter is identified by the domain, the declared name, the
//! key's values and the algorithm: a changed rate keeps the count (two app
//! versions with different rates share one counter during a rolling
//! deploy), a changed algorithm starts afresh.

use crate::backend::FailurePolicy;
use crate::condition::Condition;
use crate::document::Algorithm;
use crate::key::{counter_key, push_field, KeyPart, KeySource};
use crate::limit::{LimitParameters, LimitSpec};
use crate::pattern::Pattern;
use crate::policy::Policy;
use crate::rate::{parse_rate, Rate};
use crate::request::Attributes;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// The `declared:` section, compiled.
#[derive(Debug, Clone)]
pub struct DeclaredSettings {
    /// The domains that accept declared limits.
    pub domains: HashSet<String>,
    /// Most declared limits in one request.
    pub max_per_request: usize,
    /// The algorithms callers may declare; empty: every one.
    pub algorithms: Vec<Algorithm>,
    /// Largest count of a declared rate, and largest burst.
    pub max_count: u64,
    /// Shortest period of a declared rate.
    pub min_period: Duration,
    /// Longest period of a declared rate.
    pub max_period: Duration,
    /// Index of the backend keeping their counters.
    pub backend: usize,
    /// What they do when it fails.
    pub failure_policy: FailurePolicy,
    /// Declared name → its metric label, for the names the policy names.
    pub labels: HashMap<String, String>,
    pub(crate) overrides: Vec<DeclaredOverride>,
}

/// The metric label of every declared name the policy does not name: one
/// value, so callers cannot grow the metrics without bound.
pub const UNNAMED_DECLARED_LABEL: &str = "declared:*";

/// One override, compiled.
#[derive(Debug, Clone)]
pub(crate) struct DeclaredOverride {
    pub name: Pattern,
    pub when: Option<Condition>,
    pub action: OverrideAction,
}

/// What an override does to a declared limit.
#[derive(Debug, Clone)]
pub(crate) enum OverrideAction {
    /// The limit does not apply.
    Unlimited,
    /// Every request is denied (a rate of 0).
    Block,
    /// Other parameters: a rate, and an algorithm with its own parameters.
    Replace {
        rate: Option<Rate>,
        algorithm: Option<AlgorithmChange>,
    },
}

/// An override's algorithm with its parameters (which replace the declared
/// ones: they belong to the declared algorithm).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AlgorithmChange {
    pub algorithm: Algorithm,
    pub burst: Option<u64>,
    pub initial_tokens: Option<u64>,
    pub count_denied: bool,
}

/// A limit as a caller declares it (the adapter reads it from its protocol).
#[derive(Debug, Clone, Copy)]
pub struct Declared<'r> {
    /// The counter family: a view, a group, a scope.
    pub name: &'r str,
    /// What to count by, in the key language (`ip`, `user|ip`, ...).
    pub key: &'r [String],
    /// `N/period`.
    pub rate: &'r str,
    /// None: the policy's default algorithm.
    pub algorithm: Option<Algorithm>,
    /// Token bucket capacity or GCRA burst; None: the rate's count.
    pub burst: Option<u64>,
    /// Token bucket tokens at start; None: the burst.
    pub initial_tokens: Option<u64>,
    /// Count denied hits too.
    pub count_denied: bool,
    /// Count and report, never deny.
    pub shadow: bool,
}

/// A declared limit that applies to a request, ready to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredCheck<'p, 'r> {
    /// The declared name: the status's `rule`.
    pub name: &'r str,
    /// The limit, after the operator's override if one applied.
    pub spec: LimitSpec,
    /// Whether an override replaced what was declared.
    pub overridden: bool,
    /// The counter identity.
    pub key: String,
    /// Count and report, never deny.
    pub shadow: bool,
    /// Index of the backend keeping the counter.
    pub backend: usize,
    /// What to do when that backend fails.
    pub failure_policy: FailurePolicy,
    /// Its metric label: `declared:<name>` if the policy names it, else
    /// [`UNNAMED_DECLARED_LABEL`].
    pub label: &'p str,
}

/// Why declared limits are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeclareError {
    /// The domain does not accept declared limits.
    NotAccepted(String),
    /// A declared limit is malformed or outside the gate: the field (e.g.
    /// `limits[1].rate`) and what is wrong.
    Invalid {
        /// The field, as the request names it.
        field: String,
        /// What is wrong.
        message: String,
    },
}

impl Policy {
    /// The declared limits of `request` that apply to it (a key part absent
    /// from the request means the limit does not apply, as for rules; an
    /// override may make one unlimited), or why they are refused. Nothing
    /// declared: nothing to check, in any domain.
    pub fn declare<'p, 'r>(
        &'p self,
        request: &impl Attributes,
        declared: &'r [Declared<'r>],
    ) -> Result<Vec<DeclaredCheck<'p, 'r>>, DeclareError> {
        if declared.is_empty() {
            return Ok(Vec::new());
        }
        let gate = &self.declared;
        if !gate.domains.contains(request.domain()) {
            return Err(DeclareError::NotAccepted(request.domain().to_string()));
        }
        if declared.len() > gate.max_per_request {
            return Err(DeclareError::Invalid {
                field: "limits".into(),
                message: format!(
                    "{} declared limits, at most {} allowed",
                    declared.len(),
                    gate.max_per_request
                ),
            });
        }
        let mut checks = Vec::with_capacity(declared.len());
        for (index, limit) in declared.iter().enumerate() {
            let invalid = |field: &str, message: String| DeclareError::Invalid {
                field: format!("limits[{index}].{field}"),
                message,
            };
            let (parameters, key) = self
                .gated(limit)
                .map_err(|(field, message)| invalid(field, message))?;
            let (parameters, overridden) = match self.overridden(limit.name, request) {
                Some(action) => match action.apply(parameters) {
                    Some(parameters) => (parameters, true),
                    None => continue,
                },
                None => (parameters, false),
            };
            let spec = parameters
                .spec("default", format!("limits[{index}]"))
                .map_err(|problems| {
                    let problem = &problems[0];
                    invalid(
                        problem.field,
                        format!("{} (as overridden by the policy)", problem.message),
                    )
                })?;
            let Some(key) = counter_key(
                &declared_namespace(request.domain(), limit.name),
                spec.algorithm.as_str(),
                "",
                &key,
                request,
                self.settings.ip_masks,
            ) else {
                continue;
            };
            checks.push(DeclaredCheck {
                name: limit.name,
                spec,
                overridden,
                key,
                shadow: limit.shadow || self.settings.shadow_mode,
                backend: gate.backend,
                failure_policy: gate.failure_policy,
                label: gate
                    .labels
                    .get(limit.name)
                    .map_or(UNNAMED_DECLARED_LABEL, String::as_str),
            });
        }
        Ok(checks)
    }

    /// `limit`'s parameters and key, checked against the gate; or the field
    /// in error and why.
    fn gated(
        &self,
        limit: &Declared<'_>,
    ) -> Result<(LimitParameters, Vec<KeyPart>), (&'static str, String)> {
        let gate = &self.declared;
        if limit.name.is_empty() {
            return Err(("name", "must not be empty".into()));
        }
        let mut key = Vec::with_capacity(limit.key.len());
        for part in limit.key {
            let sources: Result<Vec<KeySource>, String> =
                part.split('|').map(KeySource::parse).collect();
            key.push(KeyPart(sources.map_err(|message| ("key", message))?));
        }
        let rate = parse_rate(limit.rate).map_err(|message| ("rate", message))?;
        if rate.count > gate.max_count {
            return Err((
                "rate",
                format!(
                    "{} per period is more than the {} the policy allows (declared.max_count)",
                    rate.count, gate.max_count
                ),
            ));
        }
        if rate.period < gate.min_period || rate.period > gate.max_period {
            return Err((
                "rate",
                format!(
                    "the period of {:?} is outside the {:?} to {:?} the policy allows (declared.min_period, declared.max_period)",
                    limit.rate, gate.min_period, gate.max_period
                ),
            ));
        }
        let algorithm = limit.algorithm.unwrap_or(self.settings.default_algorithm);
        if !gate.algorithms.is_empty() && !gate.algorithms.contains(&algorithm) {
            let allowed: Vec<&str> = gate.algorithms.iter().map(|a| a.as_str()).collect();
            return Err((
                "algorithm",
                format!(
                    "{} is not allowed here (declared.algorithms: {})",
                    algorithm.as_str(),
                    allowed.join(", ")
                ),
            ));
        }
        if limit.burst.is_some_and(|burst| burst > gate.max_count) {
            return Err((
                "burst",
                format!(
                    "more than the {} the policy allows (declared.max_count)",
                    gate.max_count
                ),
            ));
        }
        let parameters = LimitParameters {
            rate,
            algorithm,
            burst: limit.burst,
            initial_tokens: limit.initial_tokens,
            count_denied: limit.count_denied,
        };
        if let Err(problems) = parameters.spec("default", String::new()) {
            let problem = &problems[0];
            return Err((problem.field, problem.message.clone()));
        }
        Ok((parameters, key))
    }

    /// What the first override matching `name` (and the request) does.
    fn overridden(&self, name: &str, request: &impl Attributes) -> Option<&OverrideAction> {
        self.declared
            .overrides
            .iter()
            .find(|o| {
                o.name.matches(name) && o.when.as_ref().is_none_or(|when| when.matches(request))
            })
            .map(|o| &o.action)
    }
}

impl OverrideAction {
    /// The declared parameters with this override applied; `None` when the
    /// limit no longer applies.
    fn apply(&self, declared: LimitParameters) -> Option<LimitParameters> {
        Some(match *self {
            Self::Unlimited => return None,
            Self::Block => LimitParameters {
                rate: Rate {
                    count: 0,
                    ..declared.rate
                },
                ..declared
            },
            Self::Replace { rate, algorithm } => {
                let rate = rate.unwrap_or(declared.rate);
                match algorithm {
                    Some(change) => LimitParameters {
                        rate,
                        algorithm: change.algorithm,
                        burst: change.burst,
                        initial_tokens: change.initial_tokens,
                        count_denied: change.count_denied,
                    },
                    None => LimitParameters { rate, ..declared },
                }
            }
        })
    }
}

/// The counter namespace of a declared name in a domain: length-prefixed
/// fields under `declared`, which no rule's namespace (`rule:…`,
/// `group:…`) can equal, and no two (domain, name) pairs share.
fn declared_namespace(domain: &str, name: &str) -> String {
    let mut namespace = String::from("declared");
    push_field(&mut namespace, domain);
    push_field(&mut namespace, name);
    namespace
}
