//! Configuration errors that name the file, the path inside it and the value.

use std::fmt;

/// One problem in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or environment variable) the bad value came from.
    pub file: String,
    /// The path inside it, e.g. `rules[2].limits[0].rate`.
    pub path: String,
    /// The offending value, when there is one.
    pub value: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// An error about a file as a whole (it cannot be read, or is not YAML
    /// or TOML at all): no path, no value. `?` and `.into()` turn it into
    /// the one-element [`ConfigErrors`] a loader fails with.
    pub fn whole_file(file: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            path: String::new(),
            value: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(value) = &self.value {
            write!(f, " (value: {value:?})")?;
        }
        Ok(())
    }
}

/// Every problem found in a configuration (at least one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// One error is a list of one, so a loader can fail with `?` on it.
impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        Self(vec![error])
    }
}

/// Collects errors for one file while walking it.
pub(crate) struct Errors {
    file: String,
    found: Vec<ConfigError>,
}

impl Errors {
    pub fn new(file: &str) -> Self {
        Self {
            file: file.to_string(),
            found: Vec::new(),
        }
    }

    pub fn push(
        &mut self,
        path: impl Into<String>,
        value: Option<&str>,
        message: impl Into<String>,
    ) {
        self.found.push(ConfigError {
            file: self.file.clone(),
            path: path.into(),
            value: value.map(str::to_string),
            message: message.into(),
        });
    }

    /// Records `result`'s error at `path` with `value`, returning the success.
    pub fn check<T>(&mut self, path: &str, value: &str, result: Result<T, String>) -> Option<T> {
        result
            .map_err(|message| self.push(path, Some(value), message))
            .ok()
    }

    /// Whether nothing was found so far.
    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// The errors found.
    pub fn into_found(self) -> Vec<ConfigError> {
        self.found
    }

    pub fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.found.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors(self.found))
        }
    }
}

/// Sorts errors in the order their places appear in a policy file
/// (settings, store, backends, skip, rules, envoy; entries by index),
/// keeping the order of errors at one place.
pub fn sort_in_document_order(errors: &mut [ConfigError]) {
    const SECTIONS: [&str; 8] = [
        "settings", "store", "backends", "skip", "rules", "envoy", "declared", "auth",
    ];
    errors.sort_by_key(|error| {
        let section = error.path.split(['.', '[']).next().unwrap_or_default();
        let rank = SECTIONS
            .iter()
            .position(|known| *known == section)
            .unwrap_or(SECTIONS.len());
        let index = error
            .path
            .strip_prefix(section)
            .and_then(|rest| rest.strip_prefix('['))
            .and_then(|rest| rest.split(']').next())
            .and_then(|index| index.parse::<usize>().ok());
        (rank, index)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_file_error_is_one_error_without_path_or_value() {
        let errors: ConfigErrors = ConfigError::whole_file("conf.yaml", "permission denied").into();
        assert_eq!(errors.0.len(), 1);
        assert_eq!(errors.to_string(), "conf.yaml: permission denied");
    }
}
