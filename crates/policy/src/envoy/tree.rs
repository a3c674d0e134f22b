//! The descriptor trees of envoyproxy/ratelimit files and how a request
//! descriptor walks them.

use super::unit::Unit;
use crate::backend::FailurePolicy;
use crate::key::push_field;
use crate::limit::LimitSpec;
use crate::pattern::Pattern;
use std::collections::HashMap;

/// Validated envoyproxy/ratelimit configuration: one tree per domain.
#[derive(Debug, Clone, Default)]
pub struct EnvoyConfig {
    pub(crate) domains: HashMap<String, Level>,
    pub(crate) limits: Vec<EnvoyLimit>,
    /// The files it was loaded from, with their domains.
    pub(crate) files: Vec<(String, String)>,
    /// A node sets `failure_policy: closed`.
    pub(crate) fails_closed: bool,
}

/// The children of one node (or a domain's top level), by descriptor key.
pub(crate) type Level = HashMap<String, Branch>;

/// The nodes of one key at one level.
#[derive(Debug, Clone, Default)]
pub(crate) struct Branch {
    /// `key` + `value`.
    pub exact: HashMap<String, Node>,
    /// Wildcard and regex values, in declaration order.
    pub patterns: Vec<(Pattern, Node)>,
    /// `key` alone.
    pub any: Option<Node>,
}

/// One descriptor node.
#[derive(Debug, Clone, Default)]
pub(crate) struct Node {
    pub children: Level,
    pub action: Action,
    pub shadow: bool,
    pub quota_mode: bool,
    /// Every value matching this wildcard node shares one counter.
    pub share_threshold: bool,
    pub failure_policy: Option<FailurePolicy>,
    /// Its value as written (a wildcard's pattern; empty on a key-only
    /// node), for the reference service's metric key.
    pub written_value: String,
    /// `detailed_metric: true`: metrics keyed by the request's values.
    pub detailed_metric: bool,
    /// `value_to_metric: true`: the request's value in the metric key.
    pub value_to_metric: bool,
}

/// What reaching a node as the last entry means.
#[derive(Debug, Clone, Default)]
pub(crate) enum Action {
    /// No `rate_limit`: a whitelist entry (or an inner node).
    #[default]
    Nothing,
    /// `unlimited: true`.
    Unlimited,
    /// Indices into [`EnvoyConfig::limits`].
    Limits(Vec<usize>),
}

/// One `rate_limit` of a file.
#[derive(Debug, Clone)]
pub struct EnvoyLimit {
    /// The file it is declared in.
    pub file: String,
    /// The engine-facing limit (`id` is its index in the config).
    pub spec: LimitSpec,
    /// `name`, if given.
    pub name: Option<String>,
    /// The names of the limits it replaces.
    pub replaces: Vec<String>,
    /// Its part of the counter key (position on its node, algorithm).
    pub(crate) counter_tag: String,
    /// `requests_per_unit`.
    pub requests_per_unit: u32,
    /// The unit, when the window is one (absent for `window: 5m`).
    pub unit: Option<Unit>,
}

/// A request descriptor, as the policy needs it.
#[derive(Debug, Clone, Copy)]
pub struct EnvoyDescriptor<'r> {
    /// The entries, in order.
    pub entries: &'r [(&'r str, &'r str)],
    /// The request's own limit, overriding the files.
    pub limit_override: Option<(u32, Unit)>,
}

/// What applies to one request descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvoyPlan<'c> {
    /// Nothing limits it (unknown domain, no match, whitelist entry, or a
    /// node without a `rate_limit`).
    NoLimit,
    /// `unlimited: true`: OK without touching a counter.
    Unlimited,
    /// The request's own limit override.
    Override {
        /// The counter identity.
        key: String,
        /// Hits per unit.
        requests_per_unit: u32,
        /// The window.
        unit: Unit,
    },
    /// The file's limits on the matched node.
    Limited(EnvoyMatch<'c>),
}

/// The node a descriptor matched, with its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvoyMatch<'c> {
    /// The limits, with one counter key each (same order).
    pub limits: Vec<(&'c EnvoyLimit, String)>,
    /// `shadow_mode: true`: counted and reported OK.
    pub shadow: bool,
    /// `quota_mode: true`.
    pub quota_mode: bool,
    /// Our `failure_policy` extension, if set on the node.
    pub failure_policy: Option<FailurePolicy>,
}

impl PartialEq for EnvoyLimit {
    fn eq(&self, other: &Self) -> bool {
        self.spec.id == other.spec.id
    }
}

impl Eq for EnvoyLimit {}

impl EnvoyConfig {
    /// Whether a node sets `failure_policy: closed`.
    pub fn fails_closed(&self) -> bool {
        self.fails_closed
    }

    /// Every limit, indexed by `spec.id`.
    pub fn limits(&self) -> &[EnvoyLimit] {
        &self.limits
    }

    /// How many domains the files configure (fewer than files when
    /// several merge into one).
    pub fn domain_count(&self) -> usize {
        self.domains.len()
    }

    /// The files loaded, each with its domain, in load order.
    pub fn files(&self) -> &[(String, String)] {
        &self.files
    }

    /// What applies to `descriptor` in `domain`.
    ///
    /// The tree is walked one level per entry: the exact `key`+`value`
    /// node first, else the wildcard and regex values of that key in
    /// declaration order, else the key-only node; nothing found means no
    /// limit. Only the node reached by the last entry counts (no
    /// backtracking). Counters are per request value, except on exact nodes
    /// and wildcard nodes with `share_threshold`.
    pub fn plan(&self, domain: &str, descriptor: EnvoyDescriptor<'_>) -> EnvoyPlan<'_> {
        let Some(mut level) = self.domains.get(domain) else {
            return EnvoyPlan::NoLimit;
        };
        if let Some((requests_per_unit, unit)) = descriptor.limit_override {
            let mut key = counter_prefix(domain);
            for (entry_key, value) in descriptor.entries {
                push_field(&mut key, entry_key);
                push_field(&mut key, value);
            }
            key.push('}');
            push_field(&mut key, &format!("override:{requests_per_unit}/{unit:?}"));
            return EnvoyPlan::Override {
                key,
                requests_per_unit,
                unit,
            };
        }
        let mut key = counter_prefix(domain);
        let mut reached = None;
        for (entry_key, value) in descriptor.entries {
            let Some((node, matched)) = level.get(*entry_key).and_then(|b| b.find(value)) else {
                return EnvoyPlan::NoLimit;
            };
            push_field(&mut key, entry_key);
            push_field(&mut key, matched.shared_pattern(node).unwrap_or(value));
            level = &node.children;
            reached = Some(node);
        }
        key.push('}');
        let Some(node) = reached else {
            return EnvoyPlan::NoLimit;
        };
        match &node.action {
            Action::Nothing => EnvoyPlan::NoLimit,
            Action::Unlimited => EnvoyPlan::Unlimited,
            Action::Limits(ids) => EnvoyPlan::Limited(EnvoyMatch {
                limits: ids
                    .iter()
                    .map(|&id| {
                        let limit = &self.limits[id];
                        let mut limit_key = key.clone();
                        push_field(&mut limit_key, &limit.counter_tag);
                        (limit, limit_key)
                    })
                    .collect(),
                shadow: node.shadow,
                quota_mode: node.quota_mode,
                failure_policy: node.failure_policy,
            }),
        }
    }
}

/// How a request value reached a node.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Matched<'c> {
    /// Its `key` + `value` node.
    Exact,
    /// A wildcard or regex value.
    Pattern(&'c Pattern),
    /// The key-only node.
    Any,
}

impl<'c> Matched<'c> {
    /// The wildcard every matching value shares a counter under
    /// (`share_threshold: true`), if that is how `node` was reached.
    pub(crate) fn shared_pattern(self, node: &Node) -> Option<&'c str> {
        match self {
            Self::Pattern(Pattern::Wildcard(text)) if node.share_threshold => Some(text),
            _ => None,
        }
    }
}

impl Branch {
    /// The node `value` reaches, and how.
    pub(crate) fn find(&self, value: &str) -> Option<(&Node, Matched<'_>)> {
        if let Some(node) = self.exact.get(value) {
            return Some((node, Matched::Exact));
        }
        if let Some((pattern, node)) = self.patterns.iter().find(|(p, _)| p.matches(value)) {
            return Some((node, Matched::Pattern(pattern)));
        }
        self.any.as_ref().map(|node| (node, Matched::Any))
    }
}

/// Envoy counters start `{envoy/`, which no policy rule's key can (those
/// start with a length), then the domain.
fn counter_prefix(domain: &str) -> String {
    let mut key = String::with_capacity(64);
    key.push_str("{envoy/");
    push_field(&mut key, domain);
    key
}
