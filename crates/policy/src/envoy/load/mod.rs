//! Reading envoyproxy/ratelimit YAML files into an [`EnvoyConfig`], with the
//! reference service's validation plus ours. All or nothing: every problem
//! in every file is reported, and any problem fails the whole load.
//!
//! This file walks the files and their descriptor trees; `keys.rs` says
//! which key belongs where, `fields.rs` reads typed fields, and
//! `rate_limit.rs` reads what a node does.

mod fields;
mod keys;
mod rate_limit;

use super::tree::{Branch, EnvoyConfig, EnvoyLimit, Level, Node};
use crate::backend::FailurePolicy;
use crate::error::{ConfigError, ConfigErrors, Errors};
use crate::pattern::Pattern;
use fields::{field, join, Fields};
use keys::Place;
use std::collections::HashMap;
use yaml_rust2::{Yaml, YamlLoader};

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

/// How files are read beyond what they say: the reference service's
/// switches that change the meaning of every file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvoyFileOptions {
    /// Several files may configure one domain (`MERGE_DOMAIN_CONFIG`).
    pub merge_domains: bool,
    /// Denied hits count on limits that do not say (`count_denied`): true
    /// as in the reference service; false is its
    /// `STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT`.
    pub count_denied: bool,
}

impl Default for EnvoyFileOptions {
    fn default() -> Self {
        Self {
            merge_domains: false,
            count_denied: true,
        }
    }
}

/// Loads envoyproxy/ratelimit files, given as `(name, text)`.
///
/// A domain belongs to one file, unless `options.merge_domains` (the reference
/// service's `MERGE_DOMAIN_CONFIG`): then each later file of a domain adds
/// its top-level descriptors to the domain's, and one that is already there
/// (the same key and value) is an error naming both files, as the
/// reference service patches and refuses them.
pub fn load_envoy_files(
    files: &[(String, String)],
    options: EnvoyFileOptions,
) -> Result<EnvoyLoad, ConfigErrors> {
    let mut config = EnvoyConfig::default();
    let mut warnings = Vec::new();
    let mut failures = Vec::new();
    let mut owners: HashMap<String, String> = HashMap::new();
    let mut node_owners: HashMap<(String, String, String), String> = HashMap::new();
    for (name, text) in files {
        let mut reader = FileReader {
            errors: Errors::new(name),
            warnings: Vec::new(),
            file: name,
            limits: &mut config.limits,
            fails_closed: &mut config.fails_closed,
            count_denied: options.count_denied,
        };
        let parsed = reader.file(text);
        warnings.append(&mut reader.warnings);
        let mut errors = reader.errors;
        if let Some((domain, level)) = parsed {
            let claimed: Vec<(String, String)> = top_level_names(&level).collect();
            match owners.get(&domain) {
                Some(other) if !options.merge_domains => errors.push(
                    "domain",
                    Some(&domain),
                    format!("the domain is already configured in {other}"),
                ),
                Some(_) => {
                    for (key, value) in &claimed {
                        let owner = (domain.clone(), key.clone(), value.clone());
                        if let Some(other) = node_owners.get(&owner) {
                            errors.push(
                                "descriptors",
                                Some(&composite_key(key, value)),
                                format!(
                                    "domain `{domain}`: this descriptor is already defined in {other}"
                                ),
                            );
                        }
                    }
                    if errors.is_empty() {
                        let merged = config.domains.entry(domain.clone()).or_default();
                        merge_level(merged, level);
                        config.files.push((name.clone(), domain.clone()));
                    }
                }
                None => {
                    owners.insert(domain.clone(), name.clone());
                    config.files.push((name.clone(), domain.clone()));
                    config.domains.insert(domain.clone(), level);
                }
            }
            for (key, value) in claimed {
                node_owners
                    .entry((domain.clone(), key, value))
                    .or_insert_with(|| name.clone());
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
    /// Whether denied hits count on window limits that do not say.
    count_denied: bool,
}

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
        let fields = self.mapping("", root, Place::File)?;
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
        let fields = self.mapping(path, yaml, Place::Descriptor)?;
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
        let written_value = match &value {
            NodeValue::Exact(text) => text.clone(),
            NodeValue::Pattern(pattern) => pattern_text(pattern),
            NodeValue::Any => String::new(),
        };
        let node = Node {
            children: self.descriptors(&fields, path),
            action,
            shadow: self.bool_field(&fields, path, "shadow_mode"),
            quota_mode: self.bool_field(&fields, path, "quota_mode"),
            share_threshold,
            failure_policy,
            written_value,
            detailed_metric: self.bool_field(&fields, path, "detailed_metric"),
            value_to_metric: self.bool_field(&fields, path, "value_to_metric"),
        };
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
}

/// The key and value text of every node of a level, as a file writes them
/// (`""` for a key-only node).
fn top_level_names(level: &Level) -> impl Iterator<Item = (String, String)> + '_ {
    level.iter().flat_map(|(key, branch)| {
        let exact = branch.exact.keys().cloned();
        let patterns = branch.patterns.iter().map(|(p, _)| pattern_text(p));
        let any = branch.any.iter().map(|_| String::new());
        exact
            .chain(patterns)
            .chain(any)
            .map(move |value| (key.clone(), value))
    })
}

/// The reference service's name for a node: `key_value`, or `key`.
fn composite_key(key: &str, value: &str) -> String {
    if value.is_empty() {
        key.to_string()
    } else {
        format!("{key}_{value}")
    }
}

/// Adds the nodes of `new` to `merged` (none of them is there already).
fn merge_level(merged: &mut Level, new: Level) {
    for (key, branch) in new {
        let into = merged.entry(key).or_default();
        into.exact.extend(branch.exact);
        into.patterns.extend(branch.patterns);
        if branch.any.is_some() {
            into.any = branch.any;
        }
    }
}

/// How a node's value matches.
enum NodeValue {
    Exact(String),
    /// A wildcard or a regex.
    Pattern(Pattern),
    Any,
}

fn pattern_text(pattern: &Pattern) -> String {
    match pattern {
        Pattern::Wildcard(text) | Pattern::Exact(text) => text.clone(),
        Pattern::Regex(regex) => regex.as_str().to_string(),
        Pattern::Any => "*".into(),
    }
}
