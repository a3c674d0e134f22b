//! The reference service's name for what a request descriptor matched: the
//! stats key (`domain.key_value.subkey`) under which it counts
//! `total_hits`, `over_limit`, `near_limit`, `within_limit` and
//! `shadow_mode`, with its `detailed_metric` and `value_to_metric`
//! behaviour, so that dashboards built on the reference's metrics keep
//! their series.

use super::tree::{EnvoyConfig, Matched};
use regex::Regex;
use std::sync::LazyLock;

impl EnvoyConfig {
    /// The stats key of `entries` in `domain`, as the reference service
    /// names it; `None` when they reach no node of a known domain.
    ///
    /// - By default, the path of the nodes as the files write them
    ///   (`web.path_/api/*.user`): bounded by the configuration.
    /// - `value_to_metric: true` on a node puts the request's value in
    ///   its place (`web.path_/api/orders.user`).
    /// - `detailed_metric: true` on the matched node names every request
    ///   value (`web.path_/api/orders.user_alice`), except entries matched
    ///   by a `share_threshold` wildcard, which keep the wildcard.
    /// - A request's own `limit` override: its entries, `key_value` each.
    ///
    /// Colons, pipes and the dots of IPv4 addresses become underscores
    /// (the reference's `SanitizeStatName`).
    pub fn metric_key(
        &self,
        domain: &str,
        entries: &[(&str, &str)],
        is_override: bool,
    ) -> Option<String> {
        let mut level = self.domains.get(domain)?;
        if is_override {
            let mut key = domain.to_string();
            for (entry_key, value) in entries {
                key.push('.');
                push_named(&mut key, entry_key, value);
            }
            return Some(sanitize(&key));
        }
        let mut by_values = domain.to_string();
        let mut detailed = domain.to_string();
        let mut shared_detailed = domain.to_string();
        let mut any_shared = false;
        let mut last = None;
        for (entry_key, value) in entries {
            let (node, matched) = level.get(*entry_key)?.find(value)?;
            let shown = match matched {
                Matched::Pattern(_) => match matched.shared_pattern(node) {
                    Some(pattern) => pattern,
                    None if node.value_to_metric => value,
                    None => &node.written_value,
                },
                Matched::Exact => value,
                Matched::Any if node.value_to_metric => value,
                Matched::Any => "",
            };
            by_values.push('.');
            push_named(&mut by_values, entry_key, shown);
            detailed.push('.');
            detailed.push_str(entry_key);
            detailed.push('_');
            detailed.push_str(value);
            shared_detailed.push('.');
            let shared = matched.shared_pattern(node);
            any_shared |= shared.is_some();
            push_named(&mut shared_detailed, entry_key, shared.unwrap_or(value));
            level = &node.children;
            last = Some(node);
        }
        let key = if !last?.detailed_metric {
            by_values
        } else if any_shared {
            shared_detailed
        } else {
            detailed
        };
        Some(sanitize(&key))
    }
}

/// Appends `key_value`, or `key` when the value is empty.
fn push_named(into: &mut String, key: &str, value: &str) {
    into.push_str(key);
    if !value.is_empty() {
        into.push('_');
        into.push_str(value);
    }
}

/// The reference's `SanitizeStatName`: `:` and `|` become `_`, and so do
/// the dots of anything shaped like an IPv4 address.
fn sanitize(key: &str) -> String {
    static IPV4: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}").expect("a valid regex"));
    let replaced = key.replace([':', '|'], "_");
    IPV4.replace_all(&replaced, |found: &regex::Captures<'_>| {
        found[0].replace('.', "_")
    })
    .into_owned()
}
