//! Parsing a configuration file's text (YAML or TOML) through the `config`
//! crate, with `RATELIMITD_` environment overrides. Reading the file and the
//! environment is the caller's job: this crate does no I/O.

use crate::document::Document;
use crate::error::{ConfigError, ConfigErrors};
use config::{Config, Environment, File, FileFormat, Map, Value, ValueKind};
use serde_path_to_error::Segment;

/// A configuration file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// YAML (`.yaml`, `.yml`).
    Yaml,
    /// TOML (`.toml`).
    Toml,
}

impl Format {
    /// The format a file name's extension says, if any.
    pub fn from_file_name(name: &str) -> Option<Self> {
        let extension = name.rsplit_once('.')?.1.to_ascii_lowercase();
        match extension.as_str() {
            "yaml" | "yml" => Some(Self::Yaml),
            "toml" => Some(Self::Toml),
            _ => None,
        }
    }
}

/// The prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "RATELIMITD_";

/// The environment variables that override configuration keys: those with the
/// `RATELIMITD_` prefix and a `__` section separator, e.g.
/// `RATELIMITD_SETTINGS__SHADOW_MODE=true` sets `settings.shadow_mode`.
/// (Single-underscore variables such as `RATELIMITD_GRPC_ADDR` are the
/// command line's.)
pub fn overrides_from(vars: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    vars.into_iter()
        .filter(|(name, _)| {
            name.strip_prefix(ENV_PREFIX)
                .is_some_and(|rest| rest.contains("__"))
        })
        .collect()
}

/// A file read as far as it could be: the document, and its structural
/// errors (unknown keys, wrong types, unknown choices). Each such error's
/// value was taken out so the rest could be read, and every error is
/// reported at once.
#[derive(Debug)]
pub struct ParsedDocument {
    /// The document without the values in error.
    pub document: Document,
    /// One error per value taken out.
    pub errors: Vec<ConfigError>,
}

impl ParsedDocument {
    /// Whether `error`, found later on the document, may only follow from a
    /// value taken out: it lies in an object (a rule, a limit, …) that had
    /// one taken out. Such an object's own checks would work on defaults,
    /// so only its structural errors are reported.
    pub fn is_consequence(&self, error: &ConfigError) -> bool {
        self.errors.iter().any(|taken| {
            let object = containing_object(&taken.path);
            !object.is_empty() && within(&error.path, object)
        })
    }
}

/// Most structural errors reported for one file (each one takes a pass).
const MAX_STRUCTURAL_ERRORS: usize = 64;

/// Parses `text` (from `origin`, a file name used in errors) and applies
/// `overrides` (from [`overrides_from`]). Fails only when the text cannot be
/// read at all (malformed YAML or TOML); every other problem is in
/// [`ParsedDocument::errors`].
pub fn parse_document(
    text: &str,
    format: Format,
    origin: &str,
    overrides: &[(String, String)],
) -> Result<ParsedDocument, ConfigErrors> {
    let file_format = match format {
        Format::Yaml => FileFormat::Yaml,
        Format::Toml => FileFormat::Toml,
    };
    let environment = Environment::with_prefix(ENV_PREFIX.trim_end_matches('_'))
        .prefix_separator("_")
        .separator("__")
        .try_parsing(true)
        .source(Some(overrides.iter().cloned().collect()));
    let mut tree = Config::builder()
        .add_source(File::from_str(text, file_format))
        .add_source(environment)
        .build()
        .map_err(|error| ConfigError::whole_file(origin, error.to_string()))?
        .cache;
    let mut errors: Vec<ConfigError> = Vec::new();
    loop {
        let error = match serde_path_to_error::deserialize::<_, Document>(tree.clone()) {
            Ok(document) => {
                errors.sort_by(|a, b| a.path.cmp(&b.path));
                return Ok(ParsedDocument { document, errors });
            }
            Err(error) => error,
        };
        let path = error.path().clone();
        let shown = path.to_string();
        let shown = if shown == "." { String::new() } else { shown };
        let message = error.into_inner().to_string();
        // The path is reported on its own; drop config's restatement of it.
        let message = match message.find(" for key `") {
            Some(end) => message[..end].to_string(),
            None => message,
        };
        let repeated = errors.iter().any(|seen| seen.path == shown);
        let file = overriding_variable(&shown, overrides).unwrap_or_else(|| origin.to_string());
        if !repeated {
            errors.push(ConfigError {
                file,
                path: shown,
                value: None,
                message,
            });
        }
        // Take the value out and read the rest, unless that cannot make
        // progress: then report what was found.
        if repeated || errors.len() >= MAX_STRUCTURAL_ERRORS || !take_out(&mut tree, &path) {
            errors.sort_by(|a, b| a.path.cmp(&b.path));
            return Err(ConfigErrors(errors));
        }
    }
}

/// Takes the value at `path` out of `tree`: a key is removed, a list entry
/// becomes empty. Returns whether there was one.
fn take_out(tree: &mut Value, path: &serde_path_to_error::Path) -> bool {
    let segments: Vec<&Segment> = path.iter().collect();
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut node = tree;
    for segment in parents {
        node = match (segment, &mut node.kind) {
            (Segment::Map { key }, ValueKind::Table(table)) => match table.get_mut(key) {
                Some(child) => child,
                None => return false,
            },
            (Segment::Seq { index }, ValueKind::Array(items)) => match items.get_mut(*index) {
                Some(child) => child,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, &mut node.kind) {
        (Segment::Map { key }, ValueKind::Table(table)) => table.remove(key).is_some(),
        (Segment::Seq { index }, ValueKind::Array(items)) => match items.get_mut(*index) {
            Some(item) => {
                item.kind = ValueKind::Table(Map::new());
                true
            }
            None => false,
        },
        _ => false,
    }
}

/// The object a path's value sits in: `rules[2]` for `rules[2].colour`, the
/// entry itself for a list entry (`rules[2]`); empty for a top-level key.
fn containing_object(path: &str) -> &str {
    if path.ends_with(']') {
        return path;
    }
    path.rfind('.').map_or("", |dot| &path[..dot])
}

/// Whether `path` is `object` or lies inside it.
fn within(path: &str, object: &str) -> bool {
    path.strip_prefix(object)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// The environment variable that set `path`, if one did.
fn overriding_variable(path: &str, overrides: &[(String, String)]) -> Option<String> {
    overrides.iter().find_map(|(name, value)| {
        let key = name[ENV_PREFIX.len()..]
            .to_ascii_lowercase()
            .replace("__", ".");
        (key == path).then(|| format!("environment variable {name}={value}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_lies_in_the_object_holding_the_value_in_error() {
        assert_eq!(containing_object("rules[2].colour"), "rules[2]");
        assert_eq!(containing_object("rules[2]"), "rules[2]");
        assert_eq!(
            containing_object("rules[1].limits[0].algorithm"),
            "rules[1].limits[0]"
        );
        assert_eq!(containing_object("colour"), "");
        assert!(within("rules[1].limits[0].burst", "rules[1].limits[0]"));
        assert!(within("rules[1]", "rules[1]"));
        assert!(!within("rules[10].rate", "rules[1]"));
    }
}
