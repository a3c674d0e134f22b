//! What a descriptor node does: its `rate_limit` (or our `limits` list),
//! each read into an engine-facing [`LimitSpec`] with the reference
//! service's defaults (a fixed window per unit, every hit counted), and
//! `replaces`.

use super::fields::{field, join, Fields};
use super::keys::Place;
use super::FileReader;
use crate::document::Algorithm;
use crate::envoy::tree::{Action, EnvoyLimit};
use crate::envoy::unit::Unit;
use crate::limit::LimitSpec;
use crate::rate::{parse_duration, Rate};
use yaml_rust2::Yaml;

impl FileReader<'_> {
    /// The node's `rate_limit` or our `limits` list.
    pub(super) fn action(&mut self, fields: &Fields<'_>, path: &str) -> Action {
        let single = field(fields, "rate_limit");
        let several = field(fields, "limits");
        let limits: Vec<(String, &Yaml)> = match (single, several) {
            (Some(_), Some(_)) => {
                self.errors.push(
                    join(path, "limits"),
                    None,
                    "give either rate_limit or limits, not both",
                );
                return Action::Nothing;
            }
            (Some(yaml), None) => vec![(join(path, "rate_limit"), yaml)],
            (None, Some(Yaml::Array(items))) => items
                .iter()
                .enumerate()
                .map(|(i, yaml)| (format!("{}[{i}]", join(path, "limits")), yaml))
                .collect(),
            (None, Some(other)) => {
                self.type_error(&join(path, "limits"), other, "a list of rate limits");
                return Action::Nothing;
            }
            (None, None) => return Action::Nothing,
        };
        let mut ids = Vec::new();
        let mut unlimited = false;
        for (limit_path, yaml) in limits {
            match self.rate_limit(&limit_path, yaml) {
                Some(RateLimit::Unlimited) => unlimited = true,
                Some(RateLimit::Limit(limit)) => {
                    let id = self.limits.len();
                    // Its part of the counter key: its position on the node
                    // and its algorithm. A reload that changes the rate keeps
                    // the count (as the reference service does); one that
                    // changes the algorithm starts afresh.
                    let counter_tag = format!("{}:{:?}", ids.len(), limit.spec.algorithm);
                    self.limits.push(EnvoyLimit {
                        spec: LimitSpec { id, ..limit.spec },
                        counter_tag,
                        ..*limit
                    });
                    ids.push(id);
                }
                None => {}
            }
        }
        if unlimited && !ids.is_empty() {
            self.errors.push(
                join(path, "limits"),
                None,
                "an unlimited descriptor cannot have other limits",
            );
        }
        if unlimited {
            Action::Unlimited
        } else {
            Action::Limits(ids)
        }
    }

    /// One `rate_limit` mapping.
    fn rate_limit(&mut self, path: &str, yaml: &Yaml) -> Option<RateLimit> {
        let fields = self.mapping(path, yaml, Place::RateLimit)?;
        let name = self.string_field(&fields, path, "name");
        let replaces = self.replaces(&fields, path, name.as_deref());
        let unit_text = self.string_field(&fields, path, "unit");
        let unit = unit_text.as_deref().and_then(|text| {
            let unit = Unit::from_name(text)
                .ok_or_else(|| format!("unknown unit `{text}`, expected one of: second, minute, hour, day, week, month, year"));
            self.errors.check(&join(path, "unit"), text, unit)
        });
        if self.bool_field(&fields, path, "unlimited") {
            if let Some(text) = &unit_text {
                self.errors.push(
                    join(path, "unit"),
                    Some(text),
                    "an unlimited rate limit must not have a unit",
                );
            }
            return Some(RateLimit::Unlimited);
        }
        let requests_per_unit = self.u32_field(&fields, path, "requests_per_unit");
        let window = self.string_field(&fields, path, "window").and_then(|text| {
            let parsed = parse_duration(&text).and_then(|period| {
                if period.is_zero() {
                    Err("a window must be longer than zero".to_string())
                } else {
                    Ok(period)
                }
            });
            self.errors.check(&join(path, "window"), &text, parsed)
        });
        let period = match (unit_text.is_some(), window) {
            (true, Some(_)) => {
                self.errors.push(
                    join(path, "window"),
                    None,
                    "give either unit or window, not both",
                );
                return None;
            }
            (true, None) => unit?.duration(),
            (false, Some(window)) => window,
            (false, None) => {
                self.errors.push(
                    join(path, "unit"),
                    None,
                    "a rate limit needs a unit (second, minute, hour, day, week, month, year)",
                );
                return None;
            }
        };
        let algorithm = match self.string_field(&fields, path, "algorithm") {
            Some(text) => self.errors.check(
                &join(path, "algorithm"),
                &text,
                Algorithm::try_from(text.clone()),
            )?,
            None => Algorithm::FixedWindow,
        };
        let counts_windows = matches!(algorithm, Algorithm::FixedWindow | Algorithm::SlidingWindow);
        let count_denied = match field(&fields, "count_denied") {
            Some(_) => self.bool_field(&fields, path, "count_denied"),
            // The reference service counts every hit, denied or not
            // (unless told not to: `EnvoyFileOptions::count_denied`).
            None => counts_windows && self.count_denied,
        };
        let count = u64::from(requests_per_unit);
        let burst = match field(&fields, "burst") {
            Some(_) => u64::from(self.u32_field(&fields, path, "burst")),
            None => count,
        };
        Some(RateLimit::Limit(Box::new(EnvoyLimit {
            file: self.file.to_string(),
            spec: LimitSpec {
                id: 0,
                name: name.clone().unwrap_or_default(),
                rate: Rate { count, period },
                algorithm,
                burst,
                initial_tokens: burst,
                count_denied,
                path: path.to_string(),
            },
            name,
            replaces,
            counter_tag: String::new(),
            requests_per_unit,
            unit: Unit::of_period(period),
        })))
    }

    /// `replaces: [{name: …}]`.
    fn replaces(&mut self, fields: &Fields<'_>, path: &str, own: Option<&str>) -> Vec<String> {
        let Some(list) = field(fields, "replaces") else {
            return Vec::new();
        };
        let list_path = join(path, "replaces");
        let Yaml::Array(items) = list else {
            self.type_error(&list_path, list, "a list of `{name: …}`");
            return Vec::new();
        };
        let mut names = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let item_path = format!("{list_path}[{index}]");
            let Some(item_fields) = self.mapping(&item_path, item, Place::Replaces) else {
                continue;
            };
            let name = self
                .string_field(&item_fields, &item_path, "name")
                .unwrap_or_default();
            if name.is_empty() {
                self.errors.push(
                    join(&item_path, "name"),
                    None,
                    "a replaced limit needs a name",
                );
            } else if Some(name.as_str()) == own {
                self.errors.push(
                    join(&item_path, "name"),
                    Some(&name),
                    "a limit cannot replace itself",
                );
            } else {
                names.push(name);
            }
        }
        names
    }
}

/// One `rate_limit`.
enum RateLimit {
    Unlimited,
    Limit(Box<EnvoyLimit>),
}
