//! The compiled policy and the planner: which limits, under which counter
//! keys, apply to a request.

use crate::auth::AuthSettings;
use crate::backend::{BackendKind, BackendSpec, FailurePolicy, StoreSettings};
use crate::condition::Condition;
use crate::declared::DeclaredSettings;
use crate::error::ConfigError;
use crate::key::{counter_key, KeyPart};
use crate::limit::{LimitId, LimitSpec};
use crate::pattern::Specificity;
use crate::request::Attributes;
use crate::secret::SecretSource;
use crate::settings::{EnvoySettings, Settings};
use std::collections::HashMap;

/// A compiled, validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Service-wide settings.
    pub settings: Settings,
    /// The in-process store's sizing, for memory backends and the `local`
    /// failure policy.
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
    /// Which limits callers may declare, and the operator's overrides.
    pub declared: DeclaredSettings,
    /// Who may call, and what each caller may do.
    pub auth: AuthSettings,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique among the rules: its counter namespace (unless grouped), and
    /// the `rule` label of metrics.
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
    /// Rules with the same family id compete (see [`Family`](crate::condition::Family)).
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
    /// The rule that matched, for metrics, logs and responses.
    pub rule: &'p str,
    /// The tier whose limits apply, if not the rule's own.
    pub tier: Option<&'p str>,
    /// The limit to check the counter against.
    pub limit: &'p LimitSpec,
    /// The counter identity: requests with the same key share a count.
    pub key: String,
    /// Count and report, never deny.
    pub shadow: bool,
    /// Index of the backend keeping the counter.
    pub backend: usize,
    /// What to do when that backend fails.
    pub failure_policy: FailurePolicy,
}

impl Policy {
    /// Reads every secret kept in a file or an environment variable (Redis
    /// passwords, token hashes) through `read`, which the loader provides
    /// (the policy does no I/O). Each one unread or invalid is an error
    /// naming `file`, the key that declared it and the file or variable
    /// (never the value).
    pub fn resolve_secrets(
        &mut self,
        file: &str,
        read: &dyn Fn(&SecretSource) -> Result<String, String>,
    ) -> Vec<ConfigError> {
        let passwords = self
            .backends
            .iter_mut()
            .filter_map(|backend| match &mut backend.kind {
                BackendKind::Redis(spec) => spec.password.as_mut(),
                _ => None,
            });
        let tokens = self
            .auth
            .identities
            .iter_mut()
            .flat_map(|identity| identity.tokens.iter_mut());
        passwords
            .chain(tokens)
            .filter_map(|secret| {
                let (SecretSource::File(name) | SecretSource::Env(name)) = secret.source.clone()
                else {
                    return None;
                };
                let result = read(&secret.source).and_then(|value| secret.set(value));
                result.err().map(|message| ConfigError {
                    file: file.to_string(),
                    path: secret.path.clone(),
                    value: Some(name),
                    message,
                })
            })
            .collect()
    }

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
