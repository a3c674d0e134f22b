//! Rules and what hangs off them: conditions, counting keys, tiers (their
//! limits are `limits.rs`'s), and the `envoy:` section, which names a
//! backend and a failure policy as a rule does.

use super::limits::LimitSource;
use super::Compiler;
use crate::backend::{BackendSpec, FailurePolicy};
use crate::condition::{Condition, Family};
use crate::document::{ConditionDoc, EnvoyDoc, RuleDoc};
use crate::envoy::EnvoyFileOptions;
use crate::key::{KeyPart, KeySource};
use crate::pattern::Pattern;
use crate::policy::{Rule, Tier};
use crate::settings::{EnvoySettings, ResponseHeaderNames};
use std::collections::HashSet;

impl Compiler {
    pub(super) fn rule(&mut self, path: &str, doc: &RuleDoc, backends: &[BackendSpec]) -> Rule {
        if doc.name.trim().is_empty() {
            self.errors.push(
                format!("{path}.name"),
                Some(&doc.name),
                "a rule needs a name",
            );
        }
        if doc.domain.as_deref() == Some("") {
            self.errors.push(
                format!("{path}.domain"),
                Some(""),
                "the domain must not be empty (omit it to match every domain)",
            );
        }
        let matches = self.condition(&format!("{path}.match"), &doc.matches);
        let skip_if = doc
            .skip_if
            .as_ref()
            .map(|condition| self.condition(&format!("{path}.skip_if"), condition));
        let key = match &doc.key {
            Some(parts) => self.key(&format!("{path}.key"), parts),
            None => matches
                .descriptor_keys()
                .map(|key| KeyPart(vec![KeySource::Descriptor(key.to_string())]))
                .collect(),
        };
        let (namespace, group) = match &doc.group {
            Some(group) if group.is_empty() => {
                self.errors
                    .push(format!("{path}.group"), Some(""), "a group needs a name");
                (String::new(), None)
            }
            Some(group) => (format!("group:{group}"), Some(group.as_str())),
            None => (format!("rule:{}", doc.name), None),
        };
        let limits = self.limit_set(path, LimitSource::of_rule(doc), group, "");
        let mut tier_names = HashSet::new();
        let tiers = doc
            .tiers
            .iter()
            .enumerate()
            .map(|(i, tier)| {
                let tier_path = format!("{path}.tiers[{i}]");
                if tier.name.is_empty() {
                    self.errors
                        .push(format!("{tier_path}.name"), Some(""), "a tier needs a name");
                } else if !tier_names.insert(tier.name.as_str()) {
                    self.errors.push(
                        format!("{tier_path}.name"),
                        Some(&tier.name),
                        "another tier of this rule has this name",
                    );
                }
                Tier {
                    name: tier.name.clone(),
                    when: self.condition(&format!("{tier_path}.when"), &tier.when),
                    limits: self.limit_set(
                        &tier_path,
                        LimitSource::of_tier(tier),
                        group,
                        &tier.name,
                    ),
                }
            })
            .collect();
        let backend =
            self.backend_index(&format!("{path}.backend"), doc.backend.as_ref(), backends);
        let failure_policy = self.failure_policy(
            &format!("{path}.failure_policy"),
            doc.failure_policy.as_ref(),
        );
        Rule {
            name: doc.name.clone(),
            shadow: doc.shadow,
            backend,
            failure_policy,
            family: self.family_id(matches.family()),
            specificity: matches.specificity(),
            matches,
            skip_if,
            key,
            limits,
            tiers,
            namespace,
        }
    }

    /// The index of the backend `name` (the first when absent).
    pub(super) fn backend_index(
        &mut self,
        path: &str,
        name: Option<&String>,
        backends: &[BackendSpec],
    ) -> usize {
        let Some(name) = name else {
            return 0;
        };
        backends
            .iter()
            .position(|backend| &backend.name == name)
            .unwrap_or_else(|| {
                let known: Vec<&str> = backends.iter().map(|b| b.name.as_str()).collect();
                self.errors.push(
                    path,
                    Some(name),
                    format!("no backend has this name (backends: {})", known.join(", ")),
                );
                0
            })
    }

    /// The failure policy written at `path`, else `settings.failure_policy`.
    pub(super) fn failure_policy(&mut self, path: &str, text: Option<&String>) -> FailurePolicy {
        match text {
            None => self.default_failure_policy,
            Some(text) => self
                .errors
                .check(path, text, text.parse())
                .unwrap_or_default(),
        }
    }

    /// `envoy:`.
    pub(super) fn envoy(&mut self, doc: &EnvoyDoc, backends: &[BackendSpec]) -> EnvoySettings {
        let failure_policy =
            self.failure_policy("envoy.failure_policy", doc.failure_policy.as_ref());
        let headers = &doc.response_headers;
        for (name, value) in [
            ("limit", &headers.limit),
            ("remaining", &headers.remaining),
            ("reset", &headers.reset),
        ] {
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                self.errors.push(
                    format!("envoy.response_headers.{name}"),
                    Some(value),
                    "not a valid HTTP header name",
                );
            }
        }
        let backend = self.backend_index("envoy.backend", doc.backend.as_ref(), backends);
        let ratio = doc.reference_metrics.near_limit_ratio;
        if !(0.0..=1.0).contains(&ratio) {
            self.errors.push(
                "envoy.reference_metrics.near_limit_ratio",
                Some(&ratio.to_string()),
                "a share of the limit, from 0 to 1",
            );
        }
        EnvoySettings {
            config_dir: doc.config_dir.clone(),
            backend,
            per_second_backend: match &doc.per_second_backend {
                Some(name) => self.backend_index("envoy.per_second_backend", Some(name), backends),
                None => backend,
            },
            quota_mode: doc.quota_mode,
            reference_metrics: doc
                .reference_metrics
                .enabled
                .then_some(doc.reference_metrics.near_limit_ratio),
            files: EnvoyFileOptions {
                merge_domains: doc.merge_domains,
                count_denied: doc.count_denied.unwrap_or(true),
            },
            failure_policy,
            response_headers: headers.enabled.then(|| ResponseHeaderNames {
                limit: headers.limit.clone(),
                remaining: headers.remaining.clone(),
                reset: headers.reset.clone(),
            }),
        }
    }

    fn family_id(&mut self, family: Family) -> usize {
        let next = self.families.len();
        *self.families.entry(family).or_insert(next)
    }

    fn key(&mut self, path: &str, parts: &[String]) -> Vec<KeyPart> {
        parts
            .iter()
            .enumerate()
            .filter_map(|(i, part)| {
                let sources: Result<Vec<KeySource>, String> =
                    part.split('|').map(KeySource::parse).collect();
                self.errors
                    .check(&format!("{path}[{i}]"), part, sources)
                    .map(KeyPart)
            })
            .collect()
    }

    pub(super) fn condition(&mut self, path: &str, doc: &ConditionDoc) -> Condition {
        let mut descriptors = Vec::new();
        for (i, entry) in doc.descriptors.iter().enumerate() {
            let entry_path = format!("{path}.descriptors[{i}]");
            if entry.key.is_empty() {
                self.errors.push(
                    format!("{entry_path}.key"),
                    Some(""),
                    "a descriptor key must not be empty",
                );
                continue;
            }
            let pattern = match (&entry.value, &entry.regex) {
                (Some(_), Some(_)) => {
                    self.errors
                        .push(entry_path, None, "give `value` or `regex`, not both");
                    continue;
                }
                (Some(value), None) => Pattern::from_glob(value),
                (None, Some(regex)) => {
                    let Some(pattern) = self.errors.check(
                        &format!("{entry_path}.regex"),
                        regex,
                        Pattern::regex(regex),
                    ) else {
                        continue;
                    };
                    pattern
                }
                (None, None) => Pattern::Any,
            };
            if descriptors.iter().any(|(key, _)| key == &entry.key) {
                self.errors.push(
                    format!("{entry_path}.key"),
                    Some(&entry.key),
                    "this key is already matched in this condition",
                );
                continue;
            }
            descriptors.push((entry.key.clone(), pattern));
        }
        descriptors.sort_by(|a, b| a.0.cmp(&b.0));
        let path_pattern = match (&doc.path, &doc.path_prefix) {
            (Some(_), Some(_)) => {
                self.errors
                    .push(path, None, "give `path` or `path_prefix`, not both");
                None
            }
            (Some(exact_or_glob), None) => Some(Pattern::from_glob(exact_or_glob)),
            (None, Some(prefix)) => Some(Pattern::Wildcard(format!("{prefix}*"))),
            (None, None) => None,
        };
        let methods = doc
            .methods
            .iter()
            .enumerate()
            .filter_map(|(i, method)| {
                let valid = !method.is_empty() && method.chars().all(|c| c.is_ascii_alphabetic());
                self.errors
                    .check(
                        &format!("{path}.methods[{i}]"),
                        method,
                        if valid {
                            Ok(())
                        } else {
                            Err("not an HTTP method".into())
                        },
                    )
                    .map(|()| method.to_ascii_uppercase())
            })
            .collect();
        let headers = doc
            .headers
            .iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), Pattern::from_glob(value)))
            .collect();
        let client_ip = self.networks(&format!("{path}.client_ip"), &doc.client_ip);
        Condition {
            descriptors,
            path: path_pattern,
            methods,
            headers,
            client_ip,
            users: doc.users.clone(),
            api_keys: doc.api_keys.clone(),
        }
    }
}
