//! Reading envoyproxy/ratelimit YAML files into an [`EnvoyConfig`], with the
//! reference service's validation plus ours. All or nothing: every problem
//! in every file is reported, and any problem fails the whole load.

use super::tree::{Action, Branch, EnvoyConfig, EnvoyLimit, Level, Node};
use super::unit::Unit;
use crate::backend::FailurePolicy;
use crate::document::Algorithm;
use crate::error::{ConfigError, ConfigErrors, Errors};
use crate::pattern::Pattern;
use crate::policy::LimitSpec;
use crate::rate::{parse_duration, Rate};
use std::collections::HashMap;
use yaml_rust2::{Yaml, YamlLoader};

/// The keys the reference service accepts, anywhere in a file.
const REFERENCE_KEYS: [&str; 16] = [
    "domain",
    "key",
    "value",
    "descriptors",
    "rate_limit",
    "unit",
    "requests_per_unit",
    "unlimited",
    "name",
    "replaces",
    "shadow_mode",
    "detailed_metric",
    "value_to_metric",
    "share_threshold",
    "quota_mode",
    "metadata",
];

/// Where each of our optional extension keys belongs; a file without them
/// means what it means to the reference service.
fn extension_place(key: &str) -> Option<&'static str> {
    match key {
        "algorithm" | "window" | "burst" | "count_denied" => {
            Some("in a `rate_limit` or an entry of `limits`")
        }
        "limits" | "value_regex" | "failure_policy" => Some("on a descriptor"),
        _ => None,
    }
}

/// A loaded configuration and what was accepted but means nothing (a
/// reference key where it has no effect, as the reference service ignores
/// it too).
#[derive(Debug, Clone)]
pub struct EnvoyLoad {
    /// The configuration.
    pub config: EnvoyConfig,
    /// Harmless oddities, to log.
    pub warnings: Vec<ConfigError>,
}

/// Loads envoyproxy/ratelimit files, given as `(name, text)`: one domain per
/// file.
pub fn load_envoy_files(files: &[(String, String)]) -> Result<EnvoyLoad, ConfigErrors> {
    let mut config = EnvoyConfig::default();
    let mut warnings = Vec::new();
    let mut failures = Vec::new();
    let mut owners: HashMap<String, String> = HashMap::new();
    for (name, text) in files {
        let mut reader = FileReader {
            errors: Errors::new(name),
            warnings: Vec::new(),
            file: name,
            limits: &mut config.limits,
            fails_closed: &mut config.fails_closed,
        };
        let parsed = reader.file(text);
        warnings.append(&mut reader.warnings);
        let mut errors = reader.errors;
        if let Some((domain, level)) = parsed {
            if let Some(other) = owners.get(&domain) {
                errors.push(
                    "domain",
                    Some(&domain),
                    format!("the domain is already configured in {other}"),
                );
            } else {
                owners.insert(domain.clone(), name.clone());
                config.files.push((name.clone(), domain.clone()));
                config.domains.insert(domain, level);
            }
        }
        if let Err(ConfigErrors(mut found)) = errors.finish(()) {
            failures.append(&mut found);
        }
    }
    if failures.is_empty() {
        Ok(EnvoyLoad { config, warnings })
    } else {
        Err(ConfigErrors(failures))
    }
}

/// Walks one file.
struct FileReader<'a> {
    errors: Errors,
    warnings: Vec<ConfigError>,
    file: &'a str,
    limits: &'a mut Vec<EnvoyLimit>,
    /// Set when a node says `failure_policy: closed`.
    fails_closed: &'a mut bool,
}

/// The keys with a meaning at each place.
const FILE_KEYS: &[&str] = &["domain", "descriptors"];
const DESCRIPTOR_KEYS: &[&str] = &[
    "key",
    "value",
    "value_regex",
    "descriptors",
    "rate_limit",
    "limits",
    "shadow_mode",
    "detailed_metric",
    "value_to_metric",
    "share_threshold",
    "quota_mode",
    "metadata",
    "failure_policy",
];
const RATE_LIMIT_KEYS: &[&str] = &[
    "unit",
    "requests_per_unit",
    "unlimited",
    "name",
    "replaces",
    "algorithm",
    "window",
    "burst",
    "count_denied",
];
const REPLACES_KEYS: &[&str] = &["name"];

/// A mapping whose keys have been checked.
type Fields<'y> = Vec<(&'y str, &'y Yaml)>;

impl FileReader<'_> {
    /// The file's domain and top level, if it is valid so far.
    fn file(&mut self, text: &str) -> Option<(String, Level)> {
        let documents = match YamlLoader::load_from_str(text) {
            Ok(documents) => documents,
            Err(error) => {
                self.errors
                    .push("", None, format!("malformed YAML: {error}"));
                return None;
            }
        };
        let root = match documents.as_slice() {
            [] => &Yaml::Null,
            [one] => one,
            _ => {
                self.errors.push(
                    "",
                    None,
                    "one domain per file: found several YAML documents",
                );
                return None;
            }
        };
        let fields = self.mapping("", root, FILE_KEYS)?;
        let domain = self.string_field(&fields, "", "domain").unwrap_or_default();
        if domain.is_empty() {
            self.errors
                .push("domain", None, "the domain must not be empty");
        }
        let level = self.descriptors(&fields, "");
        Some((domain, level))
    }

    /// The `descriptors` list in `fields` (at `path`), as a level.
    fn descriptors(&mut self, fields: &Fields<'_>, path: &str) -> Level {
        let mut level = Level::new();
        let Some(list) = field(fields, "descriptors") else {
            return level;
        };
        let list_path = join(path, "descriptors");
        let items = match list {
            Yaml::Array(items) => items.as_slice(),
            Yaml::Null => &[],
            other => {
                self.type_error(&list_path, other, "a list of descriptors");
                return level;
            }
        };
        for (index, item) in items.iter().enumerate() {
            let item_path = format!("{list_path}[{index}]");
            if let Some((key, value, node)) = self.descriptor(&item_path, item) {
                self.insert(&mut level, &item_path, key, value, node);
            }
        }
        level
    }

    /// One descriptor node: its key, how its value matches, and the node.
    fn descriptor(&mut self, path: &str, yaml: &Yaml) -> Option<(String, NodeValue, Node)> {
        let fields = self.mapping(path, yaml, DESCRIPTOR_KEYS)?;
        let key = self.string_field(&fields, path, "key").unwrap_or_default();
        if key.is_empty() {
            self.errors.push(
                join(path, "key"),
                None,
                "the descriptor key must not be empty",
            );
        }
        let value = self.scalar_field(&fields, path, "value");
        let regex = self.string_field(&fields, path, "value_regex");
        let share_threshold = self.bool_field(&fields, path, "share_threshold");
        let value = match (value, regex) {
            (Some(_), Some(_)) => {
                self.errors.push(
                    join(path, "value_regex"),
                    None,
                    "give either value or value_regex, not both",
                );
                NodeValue::Any
            }
            (Some(value), None) if value.contains('*') => {
                NodeValue::Pattern(Pattern::Wildcard(value))
            }
            (Some(value), None) => NodeValue::Exact(value),
            (None, Some(regex)) => {
                let pattern = Pattern::regex(&regex);
                match self
                    .errors
                    .check(&join(path, "value_regex"), &regex, pattern)
                {
                    Some(pattern) => NodeValue::Pattern(pattern),
                    None => NodeValue::Any,
                }
            }
            (None, None) => NodeValue::Any,
        };
        if share_threshold && !matches!(&value, NodeValue::Pattern(Pattern::Wildcard(_))) {
            self.errors.push(
                join(path, "share_threshold"),
                None,
                "share_threshold needs a value with a `*` wildcard",
            );
        }
        let failure_policy = self
            .string_field(&fields, path, "failure_policy")
            .and_then(|text| {
                let parsed = text.parse();
                self.errors
                    .check(&join(path, "failure_policy"), &text, parsed)
            });
        *self.fails_closed |= failure_policy == Some(FailurePolicy::Closed);
        let action = self.action(&fields, path);
        let node = Node {
            children: self.descriptors(&fields, path),
            action,
            shadow: self.bool_field(&fields, path, "shadow_mode"),
            quota_mode: self.bool_field(&fields, path, "quota_mode"),
            share_threshold,
            failure_policy,
        };
        self.bool_field(&fields, path, "detailed_metric");
        Some((key, value, node))
    }

    /// Adds a node to its level, refusing a second node with the same key
    /// and value.
    fn insert(&mut self, level: &mut Level, path: &str, key: String, value: NodeValue, node: Node) {
        let branch: &mut Branch = level.entry(key.clone()).or_default();
        let duplicate = match value {
            NodeValue::Exact(value) => {
                let taken = branch.exact.contains_key(&value);
                branch.exact.entry(value).or_insert(node);
                taken
            }
            NodeValue::Pattern(pattern) => {
                let text = pattern_text(&pattern);
                let taken = branch.patterns.iter().any(|(p, _)| pattern_text(p) == text);
                if !taken {
                    branch.patterns.push((pattern, node));
                }
                taken
            }
            NodeValue::Any => {
                let taken = branch.any.is_some();
                branch.any.get_or_insert(node);
                taken
            }
        };
        if duplicate {
            self.errors.push(
                path,
                Some(&key),
                "another descriptor at this level has the same key and value",
            );
        }
    }

    /// The node's `rate_limit` or our `limits` list.
    fn action(&mut self, fields: &Fields<'_>, path: &str) -> Action {
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
        let fields = self.mapping(path, yaml, RATE_LIMIT_KEYS)?;
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
            // The reference service counts every hit, denied or not.
            None => counts_windows,
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
            let Some(item_fields) = self.mapping(&item_path, item, REPLACES_KEYS) else {
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

    /// `yaml` as a mapping at `path`: every key must be known (unknown keys
    /// are errors naming the key); reference keys that mean nothing here
    /// are warnings, our extension keys out of place are errors.
    fn mapping<'y>(
        &mut self,
        path: &str,
        yaml: &'y Yaml,
        meaningful: &[&str],
    ) -> Option<Fields<'y>> {
        let Yaml::Hash(hash) = yaml else {
            if matches!(yaml, Yaml::Null) && path.is_empty() {
                return Some(Vec::new());
            }
            self.type_error(path, yaml, "a mapping");
            return None;
        };
        let mut fields = Vec::new();
        for (key, value) in hash {
            let Some(name) = key.as_str() else {
                self.errors.push(
                    path,
                    Some(&scalar_text(key).unwrap_or_default()),
                    "keys must be strings",
                );
                continue;
            };
            if meaningful.contains(&name) {
                fields.push((name, value));
            } else if REFERENCE_KEYS.contains(&name) {
                self.warnings.push(ConfigError {
                    file: self.file.to_string(),
                    path: join(path, name),
                    value: None,
                    message: "this key has no effect here; ignored".into(),
                });
            } else if let Some(place) = extension_place(name) {
                // The reference rejects keys it does not know: one of ours
                // where it means nothing is a mistake, not a harmless oddity.
                let shown = scalar_text(value).unwrap_or_else(|| "…".into());
                self.errors.push(
                    join(path, name),
                    Some(&shown),
                    format!("`{name}` has no effect here: it belongs {place}"),
                );
            } else {
                self.errors.push(
                    join(path, name),
                    Some(name),
                    format!("unknown key `{name}`"),
                );
            }
        }
        Some(fields)
    }

    fn string_field(&mut self, fields: &Fields<'_>, path: &str, name: &str) -> Option<String> {
        let yaml = field(fields, name)?;
        match yaml {
            Yaml::String(text) => Some(text.clone()),
            Yaml::Null => None,
            other => {
                self.type_error(&join(path, name), other, "a string");
                None
            }
        }
    }

    /// A scalar read as text, as the reference service reads values.
    fn scalar_field(&mut self, fields: &Fields<'_>, path: &str, name: &str) -> Option<String> {
        let yaml = field(fields, name)?;
        let text = scalar_text(yaml);
        if text.is_none() {
            self.type_error(&join(path, name), yaml, "a string");
        }
        text
    }

    fn bool_field(&mut self, fields: &Fields<'_>, path: &str, name: &str) -> bool {
        match field(fields, name) {
            None | Some(Yaml::Null) => false,
            Some(Yaml::Boolean(value)) => *value,
            Some(other) => {
                self.type_error(&join(path, name), other, "true or false");
                false
            }
        }
    }

    fn u32_field(&mut self, fields: &Fields<'_>, path: &str, name: &str) -> u32 {
        match field(fields, name) {
            None | Some(Yaml::Null) => 0,
            Some(Yaml::Integer(value)) if u32::try_from(*value).is_ok() => *value as u32,
            Some(other) => {
                self.type_error(
                    &join(path, name),
                    other,
                    "a whole number from 0 to 4294967295",
                );
                0
            }
        }
    }

    fn type_error(&mut self, path: &str, yaml: &Yaml, expected: &str) {
        let value = scalar_text(yaml).unwrap_or_else(|| {
            match yaml {
                Yaml::Array(_) => "a list",
                _ => "a mapping",
            }
            .to_string()
        });
        self.errors
            .push(path, Some(&value), format!("expected {expected}"));
    }
}

/// How a node's value matches.
enum NodeValue {
    Exact(String),
    /// A wildcard or a regex.
    Pattern(Pattern),
    Any,
}

/// One `rate_limit`.
enum RateLimit {
    Unlimited,
    Limit(Box<EnvoyLimit>),
}

fn pattern_text(pattern: &Pattern) -> String {
    match pattern {
        Pattern::Wildcard(text) | Pattern::Exact(text) => text.clone(),
        Pattern::Regex(regex) => regex.as_str().to_string(),
        Pattern::Any => "*".into(),
    }
}

fn field<'y>(fields: &Fields<'y>, name: &str) -> Option<&'y Yaml> {
    fields
        .iter()
        .find(|(key, _)| *key == name)
        .map(|(_, value)| *value)
}

fn scalar_text(yaml: &Yaml) -> Option<String> {
    match yaml {
        Yaml::String(text) | Yaml::Real(text) => Some(text.clone()),
        Yaml::Integer(value) => Some(value.to_string()),
        Yaml::Boolean(value) => Some(value.to_string()),
        Yaml::Null => Some(String::new()),
        _ => None,
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}
