//! The limits of a rule or tier: a `limits:` list, the `rate:` shorthand
//! (one limit named `default`, its fields on the rule or tier itself) or
//! `unlimited: true`; each limit's fields checked against its algorithm, and
//! the limits of a group kept consistent, as they share counters.

use super::Compiler;
use crate::document::{Algorithm, LimitDoc, RuleDoc, TierDoc};
use crate::limit::{LimitId, LimitParameters, LimitSpec};
use crate::policy::LimitSet;
use crate::rate::parse_rate;
use std::collections::HashSet;

impl Compiler {
    pub(super) fn limit_set(
        &mut self,
        path: &str,
        source: LimitSource<'_>,
        group: Option<&str>,
        tier: &str,
    ) -> LimitSet {
        let given = [
            source.rate.is_some(),
            !source.limits.is_empty(),
            source.unlimited,
        ]
        .iter()
        .filter(|given| **given)
        .count();
        if given != 1 {
            self.errors.push(
                path,
                None,
                "give exactly one of `rate`, `limits` or `unlimited: true`",
            );
            return LimitSet::Unlimited;
        }
        let beside_rate = source.beside_rate;
        if source.rate.is_none() {
            for field in beside_rate.given() {
                self.errors.push(
                    format!("{path}.{field}"),
                    None,
                    format!("`{field}` goes with `rate:`; each entry of `limits:` takes its own"),
                );
            }
        }
        if source.unlimited {
            return LimitSet::Unlimited;
        }
        if let Some(rate) = source.rate {
            let shorthand = LimitDoc {
                name: None,
                rate: rate.to_string(),
                algorithm: beside_rate.algorithm,
                burst: beside_rate.burst,
                initial_tokens: beside_rate.initial_tokens,
                count_denied: beside_rate.count_denied.unwrap_or(false),
            };
            let id = self.limit(
                LimitPlace::Shorthand(path),
                &shorthand,
                "default",
                group,
                tier,
            );
            return LimitSet::Limits(id.into_iter().collect());
        }
        let mut names = HashSet::new();
        let ids = source
            .limits
            .iter()
            .enumerate()
            .filter_map(|(i, limit)| {
                let limit_path = format!("{path}.limits[{i}]");
                let name = match &limit.name {
                    Some(name) if !name.is_empty() => name.clone(),
                    Some(_) => {
                        self.errors.push(
                            format!("{limit_path}.name"),
                            Some(""),
                            "a limit name must not be empty",
                        );
                        return None;
                    }
                    None if source.limits.len() == 1 => "default".to_string(),
                    None => {
                        self.errors.push(
                            format!("{limit_path}.name"),
                            None,
                            "name each limit of a rule with several limits",
                        );
                        return None;
                    }
                };
                if !names.insert(name.clone()) {
                    self.errors.push(
                        format!("{limit_path}.name"),
                        Some(&name),
                        "another limit of this rule has this name",
                    );
                }
                self.limit(LimitPlace::Entry(&limit_path), limit, &name, group, tier)
            })
            .collect();
        LimitSet::Limits(ids)
    }

    fn limit(
        &mut self,
        place: LimitPlace<'_>,
        doc: &LimitDoc,
        name: &str,
        group: Option<&str>,
        tier: &str,
    ) -> Option<LimitId> {
        let field = |name: &str| place.field(name);
        let rate = self
            .errors
            .check(&field("rate"), &doc.rate, parse_rate(&doc.rate))?;
        let parameters = LimitParameters {
            rate,
            algorithm: doc.algorithm.unwrap_or(self.default_algorithm),
            burst: doc.burst,
            initial_tokens: doc.initial_tokens,
            count_denied: doc.count_denied,
        };
        let spec = match parameters.spec(name, place.spec_path()) {
            Ok(spec) => LimitSpec {
                id: self.limits.len(),
                ..spec
            },
            Err(problems) => {
                for problem in problems {
                    self.errors
                        .push(field(problem.field), Some(&problem.value), problem.message);
                }
                return None;
            }
        };
        if let Some(group) = group {
            let shared = (group.to_string(), tier.to_string(), name.to_string());
            if let Some(&first) = self.group_limits.get(&shared) {
                let first = &self.limits[first];
                if (
                    first.rate,
                    first.algorithm,
                    first.burst,
                    first.initial_tokens,
                    first.count_denied,
                ) != (
                    spec.rate,
                    spec.algorithm,
                    spec.burst,
                    spec.initial_tokens,
                    spec.count_denied,
                ) {
                    let message = format!(
                        "group `{group}` shares limit `{name}` with {}, which declares it differently",
                        first.path
                    );
                    self.errors
                        .push(spec.path.clone(), Some(&doc.rate), message);
                    return None;
                }
            } else {
                self.group_limits.insert(shared, spec.id);
            }
        }
        self.limits.push(spec);
        Some(self.limits.len() - 1)
    }
}

/// Where a rule or tier declares its limits.
pub(super) struct LimitSource<'d> {
    rate: Option<&'d str>,
    beside_rate: BesideRate,
    limits: &'d [LimitDoc],
    unlimited: bool,
}

/// The limit fields of a rule or tier document: [`RuleDoc`] and [`TierDoc`]
/// write their limits with the same fields, read here in one place.
macro_rules! limit_source {
    ($doc:expr) => {
        LimitSource {
            rate: $doc.rate.as_deref(),
            beside_rate: BesideRate {
                algorithm: $doc.algorithm,
                burst: $doc.burst,
                initial_tokens: $doc.initial_tokens,
                count_denied: $doc.count_denied,
            },
            limits: &$doc.limits,
            unlimited: $doc.unlimited,
        }
    };
}

impl<'d> LimitSource<'d> {
    /// A rule's own limits.
    pub(super) fn of_rule(doc: &'d RuleDoc) -> Self {
        limit_source!(doc)
    }

    /// A tier's limits, written as a rule's are.
    pub(super) fn of_tier(doc: &'d TierDoc) -> Self {
        limit_source!(doc)
    }
}

/// What a rule or tier may write beside its `rate:` shorthand.
#[derive(Clone, Copy)]
struct BesideRate {
    algorithm: Option<Algorithm>,
    burst: Option<u64>,
    initial_tokens: Option<u64>,
    count_denied: Option<bool>,
}

impl BesideRate {
    /// The fields written, by name.
    fn given(&self) -> impl Iterator<Item = &'static str> {
        [
            ("algorithm", self.algorithm.is_some()),
            ("burst", self.burst.is_some()),
            ("initial_tokens", self.initial_tokens.is_some()),
            ("count_denied", self.count_denied.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
    }
}

/// Where a limit is written: an entry of `limits:` (`rules[0].limits[1]`),
/// or the `rate:` shorthand, whose fields sit on the rule or tier itself
/// (`rules[0]`, with the rate at `rules[0].rate`).
#[derive(Clone, Copy)]
enum LimitPlace<'p> {
    Entry(&'p str),
    Shorthand(&'p str),
}

impl LimitPlace<'_> {
    /// The path of one of the limit's fields.
    fn field(self, name: &str) -> String {
        let (Self::Entry(path) | Self::Shorthand(path)) = self;
        format!("{path}.{name}")
    }

    /// The path naming the limit in errors about it as a whole: the entry,
    /// or the shorthand's rate.
    fn spec_path(self) -> String {
        match self {
            Self::Entry(path) => path.to_string(),
            Self::Shorthand(_) => self.field("rate"),
        }
    }
}
