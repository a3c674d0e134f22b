//! The compiled policy and the planner: which limits, under which counter
//! keys, apply to a request.

use crate::backend::{BackendSpec, FailurePolicy, StoreSettings};
use crate::condition::Condition;
use crate::document::Algorithm;
use crate::key::{counter_key, KeyPart};
use crate::pattern::Specificity;
use crate::rate::Rate;
use crate::request::Attributes;
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

/// Index of a limit in [`Policy::limits`].
pub type LimitId = usize;

/// One configured limit, as the engine will enforce it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSpec {
    /// Index in [`Policy::limits`].
    pub id: LimitId,
    /// Name within its rule (`default` for the `rate:` shorthand): part of
    /// the counter key, and of metrics and errors.
    pub name: String,
    /// Hits per period; 0 blocks.
    pub rate: Rate,
    /// How hits are counted against the rate: the algorithms differ in how
    /// bursty the admitted traffic may be, and in memory per key.
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

impl LimitSpec {
    /// This limit's share on one of `replicas` replicas deciding alone: what
    /// the `local` failure policy enforces in each replica's in-process
    /// store while the shared backend is down, so that together the
    /// replicas admit about the limit. The rate's count, the burst and the
    /// initial tokens are divided rounding up, so a positive limit stays
    /// positive (and a rate of 0 still blocks); the initial tokens stay
    /// within the burst. `replicas` of 0 counts as 1 (the policy never
    /// holds 0: `settings.local_replicas` is at least 1).
    pub fn local_share(&self, replicas: u64) -> LimitSpec {
        let share = |n: u64| n.div_ceil(replicas.max(1));
        let mut local = self.clone();
        local.rate.count = share(self.rate.count);
        local.burst = share(self.burst);
        local.initial_tokens = share(self.initial_tokens).min(local.burst);
        local
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn spec(count: u64, burst: u64, initial_tokens: u64) -> LimitSpec {
        LimitSpec {
            id: 3,
            name: "default".into(),
            rate: Rate {
                count,
                period: Duration::from_secs(60),
            },
            algorithm: Algorithm::TokenBucket,
            burst,
            initial_tokens,
            count_denied: false,
            path: "rules[0].rate".into(),
        }
    }

    /// `(count, burst, initial tokens)` of a local share.
    fn shared(spec: LimitSpec, replicas: u64) -> (u64, u64, u64) {
        let local = spec.local_share(replicas);
        (local.rate.count, local.burst, local.initial_tokens)
    }

    #[test]
    fn a_local_share_divides_rounding_up_and_keeps_everything_else() {
        let whole = spec(100, 30, 10);
        let expected = LimitSpec {
            rate: Rate {
                count: 34,
                ..whole.rate
            },
            burst: 10,
            initial_tokens: 4,
            ..whole.clone()
        };
        assert_eq!(whole.local_share(3), expected);
    }

    #[test]
    fn a_positive_limit_stays_positive_and_zero_still_blocks() {
        assert_eq!(shared(spec(1, 1, 1), 5), (1, 1, 1));
        assert_eq!(shared(spec(0, 0, 0), 5), (0, 0, 0));
    }

    #[test]
    fn initial_tokens_stay_within_the_divided_burst() {
        assert_eq!(shared(spec(8, 3, 3), 4), (2, 1, 1));
        // Even from a limit no file can declare (initial above the burst).
        assert_eq!(shared(spec(8, 3, 5), 4), (2, 1, 1));
    }

    #[test]
    fn one_replica_or_none_is_the_whole_limit() {
        assert_eq!(spec(100, 30, 10).local_share(1), spec(100, 30, 10));
        assert_eq!(spec(100, 30, 10).local_share(0), spec(100, 30, 10));
    }
}
