//! The `declared:` section: the gate callers' declared limits pass (which
//! domains, how many, which algorithms, which rates), where their counters
//! live, their metric labels, and the operator's overrides.

use super::Compiler;
use crate::backend::BackendSpec;
use crate::declared::{AlgorithmChange, DeclaredOverride, DeclaredSettings, OverrideAction};
use crate::document::{DeclaredDoc, DeclaredOverrideDoc};
use crate::limit::LimitParameters;
use crate::pattern::Pattern;
use crate::rate::{parse_rate, Rate};
use std::collections::HashMap;
use std::time::Duration;

impl Compiler {
    /// `declared:`.
    pub(super) fn declared(
        &mut self,
        doc: &DeclaredDoc,
        backends: &[BackendSpec],
    ) -> DeclaredSettings {
        for (i, domain) in doc.domains.iter().enumerate() {
            if domain.is_empty() {
                self.errors.push(
                    format!("declared.domains[{i}]"),
                    Some(""),
                    "must not be empty",
                );
            }
        }
        for (field, value) in [
            ("max_per_request", doc.max_per_request as u64),
            ("max_count", doc.max_count),
        ] {
            if value == 0 {
                self.errors
                    .push(format!("declared.{field}"), Some("0"), "must be at least 1");
            }
        }
        let min_period = self.positive_duration(
            "declared.min_period",
            Some(&doc.min_period),
            Duration::from_secs(1),
        );
        let max_period = self.positive_duration(
            "declared.max_period",
            Some(&doc.max_period),
            Duration::from_secs(86_400),
        );
        if max_period < min_period {
            self.errors.push(
                "declared.max_period",
                Some(&doc.max_period),
                "must not be shorter than min_period",
            );
        }
        let overrides: Vec<DeclaredOverride> = doc
            .overrides
            .iter()
            .enumerate()
            .filter_map(|(i, o)| self.declared_override(&format!("declared.overrides[{i}]"), o))
            .collect();
        // Names the policy writes out are reported by name; no others, so
        // callers cannot grow the metrics.
        let exact_override_names = overrides.iter().filter_map(|o| match &o.name {
            Pattern::Exact(name) => Some(name.clone()),
            _ => None,
        });
        let labels: HashMap<String, String> = doc
            .metric_names
            .iter()
            .cloned()
            .chain(exact_override_names)
            .map(|name| {
                let label = format!("declared:{name}");
                (name, label)
            })
            .collect();
        DeclaredSettings {
            domains: doc.domains.iter().cloned().collect(),
            max_per_request: doc.max_per_request.max(1),
            algorithms: doc.algorithms.clone(),
            max_count: doc.max_count,
            min_period,
            max_period,
            backend: self.backend_index("declared.backend", doc.backend.as_ref(), backends),
            failure_policy: self
                .failure_policy("declared.failure_policy", doc.failure_policy.as_ref()),
            labels,
            overrides,
        }
    }

    /// One override: exactly one of other parameters, `unlimited: true` or
    /// `block: true`; its own parameters consistent with its algorithm.
    fn declared_override(
        &mut self,
        path: &str,
        doc: &DeclaredOverrideDoc,
    ) -> Option<DeclaredOverride> {
        if doc.name.is_empty() {
            self.errors.push(
                format!("{path}.name"),
                Some(""),
                "name the declared limits it applies to",
            );
        }
        let replaces = doc.rate.is_some() || doc.algorithm.is_some();
        if [replaces, doc.unlimited, doc.block]
            .iter()
            .filter(|given| **given)
            .count()
            != 1
        {
            self.errors.push(
                path,
                None,
                "give exactly one of other parameters (`rate`, `algorithm`), `unlimited: true` or `block: true`",
            );
            return None;
        }
        let algorithm_parameters = [
            ("burst", doc.burst.is_some()),
            ("initial_tokens", doc.initial_tokens.is_some()),
            ("count_denied", doc.count_denied.is_some()),
        ];
        if doc.algorithm.is_none() {
            for (field, given) in algorithm_parameters {
                if given {
                    self.errors.push(
                        format!("{path}.{field}"),
                        None,
                        "goes with an `algorithm` (the declared algorithm's parameters stay the caller's)",
                    );
                }
            }
        }
        let when = doc
            .when
            .as_ref()
            .map(|when| self.condition(&format!("{path}.when"), when));
        let rate = match &doc.rate {
            Some(text) => Some(self.errors.check(
                &format!("{path}.rate"),
                text,
                parse_rate(text),
            )?),
            None => None,
        };
        let algorithm = match doc.algorithm {
            Some(algorithm) => {
                let change = AlgorithmChange {
                    algorithm,
                    burst: doc.burst,
                    initial_tokens: doc.initial_tokens,
                    count_denied: doc.count_denied.unwrap_or(false),
                };
                // Checked with the override's rate, or a stand-in of one per
                // second where it keeps the declared one.
                let parameters = LimitParameters {
                    rate: rate.unwrap_or(Rate {
                        count: 1,
                        period: Duration::from_secs(1),
                    }),
                    algorithm,
                    burst: change.burst,
                    initial_tokens: change.initial_tokens,
                    count_denied: change.count_denied,
                };
                if let Err(problems) = parameters.spec("default", path.to_string()) {
                    for problem in problems {
                        self.errors.push(
                            format!("{path}.{}", problem.field),
                            Some(&problem.value),
                            problem.message,
                        );
                    }
                    return None;
                }
                Some(change)
            }
            None => None,
        };
        let action = if doc.unlimited {
            OverrideAction::Unlimited
        } else if doc.block {
            OverrideAction::Block
        } else {
            OverrideAction::Replace { rate, algorithm }
        };
        Some(DeclaredOverride {
            name: Pattern::from_glob(&doc.name),
            when,
            action,
        })
    }
}
