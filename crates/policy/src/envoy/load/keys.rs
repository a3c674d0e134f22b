//! Which key belongs where in an envoyproxy/ratelimit file: one table of
//! every key, whose it is (the reference service's or our extension) and
//! where it means something. A key out of place is a warning when it is the
//! reference's (which ignores it too), an error when it is ours, and an
//! unknown key is always an error.

use super::fields::{join, scalar_text, Fields};
use super::FileReader;
use crate::error::ConfigError;
use yaml_rust2::Yaml;

/// The places of a file that hold keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    /// The top level.
    File,
    /// A descriptor node.
    Descriptor,
    /// A `rate_limit`, or an entry of our `limits` list.
    RateLimit,
    /// An entry of `replaces`.
    Replaces,
}

impl Place {
    /// Where that is, as errors say it ("it belongs …").
    fn described(self) -> &'static str {
        match self {
            Place::File => "at the top of the file",
            Place::Descriptor => "on a descriptor",
            Place::RateLimit => "in a `rate_limit` or an entry of `limits`",
            Place::Replaces => "in an entry of `replaces`",
        }
    }
}

/// Whose a key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// The reference service's: a file without our keys means what it
    /// means to the reference service.
    Reference,
    /// Our optional extension.
    Ours,
}

/// Every key a file may hold, whose it is, and the places it means
/// something at.
const KEYS: &[(&str, Origin, &[Place])] = {
    use Origin::{Ours, Reference};
    use Place::{Descriptor, File, RateLimit, Replaces};
    &[
        ("domain", Reference, &[File]),
        ("descriptors", Reference, &[File, Descriptor]),
        ("key", Reference, &[Descriptor]),
        ("value", Reference, &[Descriptor]),
        ("rate_limit", Reference, &[Descriptor]),
        ("shadow_mode", Reference, &[Descriptor]),
        ("detailed_metric", Reference, &[Descriptor]),
        ("value_to_metric", Reference, &[Descriptor]),
        ("share_threshold", Reference, &[Descriptor]),
        ("quota_mode", Reference, &[Descriptor]),
        ("metadata", Reference, &[Descriptor]),
        ("unit", Reference, &[RateLimit]),
        ("requests_per_unit", Reference, &[RateLimit]),
        ("unlimited", Reference, &[RateLimit]),
        ("name", Reference, &[RateLimit, Replaces]),
        ("replaces", Reference, &[RateLimit]),
        ("value_regex", Ours, &[Descriptor]),
        ("limits", Ours, &[Descriptor]),
        ("failure_policy", Ours, &[Descriptor]),
        ("algorithm", Ours, &[RateLimit]),
        ("window", Ours, &[RateLimit]),
        ("burst", Ours, &[RateLimit]),
        ("count_denied", Ours, &[RateLimit]),
    ]
};

impl FileReader<'_> {
    /// `yaml` as a mapping at `path`, a `place` of the file: its keys that
    /// mean something there. Every other key is reported (see the module
    /// doc).
    pub(super) fn mapping<'y>(
        &mut self,
        path: &str,
        yaml: &'y Yaml,
        place: Place,
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
            match KEYS.iter().find(|(known, _, _)| *known == name) {
                Some((_, _, places)) if places.contains(&place) => fields.push((name, value)),
                Some((_, Origin::Reference, _)) => self.warnings.push(ConfigError {
                    file: self.file.to_string(),
                    path: join(path, name),
                    value: None,
                    message: "this key has no effect here; ignored".into(),
                }),
                Some((_, Origin::Ours, places)) => {
                    // The reference rejects keys it does not know: one of
                    // ours where it means nothing is a mistake, not a
                    // harmless oddity.
                    let shown = scalar_text(value).unwrap_or_else(|| "…".into());
                    // Each of our keys means something at one place.
                    let belongs = places[0].described();
                    self.errors.push(
                        join(path, name),
                        Some(&shown),
                        format!("`{name}` has no effect here: it belongs {belongs}"),
                    );
                }
                None => self.errors.push(
                    join(path, name),
                    Some(name),
                    format!("unknown key `{name}`"),
                ),
            }
        }
        Some(fields)
    }
}
