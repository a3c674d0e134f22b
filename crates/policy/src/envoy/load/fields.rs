//! Typed readers for the fields of a checked mapping: each reports a value
//! of the wrong type at its path (as the reference service would refuse it)
//! and gives the caller a default to go on with.

use super::FileReader;
use yaml_rust2::Yaml;

/// A mapping whose keys have been checked.
pub(super) type Fields<'y> = Vec<(&'y str, &'y Yaml)>;

impl FileReader<'_> {
    /// A string, or nothing when absent or null.
    pub(super) fn string_field(
        &mut self,
        fields: &Fields<'_>,
        path: &str,
        name: &str,
    ) -> Option<String> {
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
    pub(super) fn scalar_field(
        &mut self,
        fields: &Fields<'_>,
        path: &str,
        name: &str,
    ) -> Option<String> {
        let yaml = field(fields, name)?;
        let text = scalar_text(yaml);
        if text.is_none() {
            self.type_error(&join(path, name), yaml, "a string");
        }
        text
    }

    /// A boolean, false when absent or null.
    pub(super) fn bool_field(&mut self, fields: &Fields<'_>, path: &str, name: &str) -> bool {
        match field(fields, name) {
            None | Some(Yaml::Null) => false,
            Some(Yaml::Boolean(value)) => *value,
            Some(other) => {
                self.type_error(&join(path, name), other, "true or false");
                false
            }
        }
    }

    /// A whole number that fits 32 bits (as the reference's Go `uint32`),
    /// 0 when absent or null.
    pub(super) fn u32_field(&mut self, fields: &Fields<'_>, path: &str, name: &str) -> u32 {
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

    /// Reports `yaml` at `path` as not the `expected` type, showing the
    /// value (or what it is, for a list or a mapping).
    pub(super) fn type_error(&mut self, path: &str, yaml: &Yaml, expected: &str) {
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

/// The value of `name` in `fields`, if given.
pub(super) fn field<'y>(fields: &Fields<'y>, name: &str) -> Option<&'y Yaml> {
    fields
        .iter()
        .find(|(key, _)| *key == name)
        .map(|(_, value)| *value)
}

/// A scalar's text, as written; `None` for a list or a mapping.
pub(super) fn scalar_text(yaml: &Yaml) -> Option<String> {
    match yaml {
        Yaml::String(text) | Yaml::Real(text) => Some(text.clone()),
        Yaml::Integer(value) => Some(value.to_string()),
        Yaml::Boolean(value) => Some(value.to_string()),
        Yaml::Null => Some(String::new()),
        _ => None,
    }
}

/// The path of `name` within `path` (the top level's path is empty).
pub(super) fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}
