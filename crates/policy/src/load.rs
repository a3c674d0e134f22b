//! Parsing a configuration file's text (YAML or TOML) through the `config`
//! crate, with `RATELIMITD_` environment overrides. Reading the file and the
//! environment is the caller's job: this crate does no I/O.

use crate::document::Document;
use crate::error::{ConfigError, ConfigErrors};
use config::{Config, Environment, File, FileFormat};

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

/// Parses `text` (from `origin`, a file name used in errors) and applies
/// `overrides` (from [`overrides_from`]).
pub fn parse_document(
    text: &str,
    format: Format,
    origin: &str,
    overrides: &[(String, String)],
) -> Result<Document, ConfigErrors> {
    let file_format = match format {
        Format::Yaml => FileFormat::Yaml,
        Format::Toml => FileFormat::Toml,
    };
    let environment = Environment::with_prefix(ENV_PREFIX.trim_end_matches('_'))
        .prefix_separator("_")
        .separator("__")
        .try_parsing(true)
        .source(Some(overrides.iter().cloned().collect()));
    let single = |path: &str, message: String| {
        ConfigErrors(vec![ConfigError {
            file: origin.to_string(),
            path: path.to_string(),
            value: None,
            message,
        }])
    };
    let config = Config::builder()
        .add_source(File::from_str(text, file_format))
        .add_source(environment)
        .build()
        .map_err(|error| single("", error.to_string()))?;
    serde_path_to_error::deserialize::<_, Document>(config).map_err(|error| {
        let path = error.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let message = error.into_inner().to_string();
        // The path is reported on its own; drop config's restatement of it.
        let message = match message.find(" for key `") {
            Some(end) => message[..end].to_string(),
            None => message,
        };
        let file = overriding_variable(&path, overrides).unwrap_or_else(|| origin.to_string());
        ConfigErrors(vec![ConfigError {
            file,
            path,
            value: None,
            message,
        }])
    })
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
