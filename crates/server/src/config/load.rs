//! Loading the configuration: reading the policy file, the environment and
//! the envoyproxy/ratelimit directory (the I/O the policy crate leaves to
//! us), and compiling every limit into an engine [`Limit`] with its local
//! share. Every error is collected, with file, path and value.

use super::engine::engine_limits;
use crate::auth::Authenticator;
use ratelimitd_engine::Limit;
use ratelimitd_policy::{
    load_envoy_files, load_partly, overrides_from, sort_in_document_order, ConfigError,
    ConfigErrors, EnvoyConfig, EnvoyFileOptions, EnvoyLoad, Format, Policy, SecretSource,
};
use std::path::{Path, PathBuf};

/// Where `serve` without `--config` finds the example policy: the
/// repository's copy, relative to the working directory, so that editing it
/// reloads it. When it is not there, the copy built into the binary runs.
pub const EXAMPLE_POLICY_PATH: &str = "deploy/ratelimitd.example.yaml";

/// The example policy, built in: the fallback when [`EXAMPLE_POLICY_PATH`]
/// is not there.
const EXAMPLE_POLICY: &str = include_str!("../../../../deploy/ratelimitd.example.yaml");

/// The name the built-in example policy goes by in errors and logs.
pub const EXAMPLE_POLICY_NAME: &str = "deploy/ratelimitd.example.yaml (built in)";

/// The envoyproxy/ratelimit files the example policy names
/// (`envoy.config_dir`), built in with it.
const EXAMPLE_ENVOY_FILES: [(&str, &str); 1] = [(
    "deploy/envoy/ratelimit-config/web.yaml (built in)",
    include_str!("../../../../deploy/envoy/ratelimit-config/web.yaml"),
)];

/// A policy ready to serve: the rules and one engine limit per policy limit.
#[derive(Debug)]
pub struct LoadedPolicy {
    /// The compiled rules.
    pub policy: Policy,
    /// Engine limits, indexed like [`Policy::limits`].
    pub limits: Vec<Limit>,
    /// The same limits divided by `settings.local_replicas`, for the `local`
    /// failure policy.
    pub local_limits: Vec<Limit>,
    /// Its `auth:` section, ready to authenticate callers with.
    pub auth: Authenticator,
    /// Where it came from.
    pub origin: String,
}

impl LoadedPolicy {
    /// Loads `path` (YAML or TOML by extension), with the process's
    /// `RATELIMITD_*__*` environment overrides.
    pub fn from_file(path: &Path) -> Result<Self, ConfigErrors> {
        let origin = path.display().to_string();
        let single =
            |message: String| ConfigErrors::from(ConfigError::whole_file(&origin, message));
        let format = Format::from_file_name(&origin)
            .ok_or_else(|| single("unknown file type: name it .yaml, .yml or .toml".to_string()))?;
        let text = std::fs::read_to_string(path)
            .map_err(|error| single(format!("cannot read the file: {error}")))?;
        Self::from_text(&text, format, &origin)
    }

    /// The built-in example policy (with environment overrides).
    pub fn example() -> Result<Self, ConfigErrors> {
        Self::from_text(EXAMPLE_POLICY, Format::Yaml, EXAMPLE_POLICY_NAME)
    }

    /// Loads configuration text from `origin`, with environment overrides.
    /// Every error is reported: the policy's own and each limit the engine
    /// refuses.
    pub fn from_text(text: &str, format: Format, origin: &str) -> Result<Self, ConfigErrors> {
        let overrides = overrides_from(std::env::vars());
        let (mut policy, mut errors) = load_partly(text, format, origin, &overrides)?;
        errors.extend(policy.resolve_secrets(origin, &read_secret));
        let specs = || policy.limits().iter().map(|spec| (origin, spec));
        let limits = match engine_limits(specs(), 1) {
            Ok(limits) => limits,
            Err(ConfigErrors(refused)) => {
                errors.extend(refused);
                Vec::new()
            }
        };
        if !errors.is_empty() {
            sort_in_document_order(&mut errors);
            return Err(ConfigErrors(errors));
        }
        // Divided limits are smaller, so they are valid when the full ones are.
        let local_limits = engine_limits(specs(), policy.settings.local_replicas)?;
        Ok(Self {
            auth: Authenticator::new(&policy.auth),
            policy,
            limits,
            local_limits,
            origin: origin.to_string(),
        })
    }
}

/// A secret's value from its file (relative to the working directory) or
/// environment variable.
fn read_secret(source: &SecretSource) -> Result<String, String> {
    match source {
        SecretSource::File(path) => {
            std::fs::read_to_string(path).map_err(|error| format!("cannot read the file: {error}"))
        }
        SecretSource::Env(name) => std::env::var(name)
            .map_err(|_| "the environment variable is not set (or not UTF-8)".to_string()),
        SecretSource::Inline => Err("an inline secret has nothing to read".into()),
    }
}

/// envoyproxy/ratelimit files ready to serve: the trees and one engine limit
/// per `rate_limit`.
#[derive(Debug)]
pub struct LoadedEnvoy {
    /// The compiled trees.
    pub config: EnvoyConfig,
    /// Engine limits, indexed like [`EnvoyConfig::limits`].
    pub limits: Vec<Limit>,
    /// The same divided by `settings.local_replicas`.
    pub local_limits: Vec<Limit>,
    /// Where they were read from (a directory, or the built-in example).
    pub origin: String,
}

impl LoadedEnvoy {
    /// Loads every `*.yaml` / `*.yml` file of `dir` (not hidden ones, such
    /// as Kubernetes' `..data`; symbolic links are followed), all or
    /// nothing, as `options` say (merged domains, denied hits). Returns the loaded files and the harmless
    /// oddities to log.
    pub fn from_dir(
        dir: &Path,
        local_replicas: u64,
        options: EnvoyFileOptions,
    ) -> Result<(Self, Vec<ConfigError>), ConfigErrors> {
        let files = read_envoy_dir(dir)?;
        Self::from_files(&files, dir.display().to_string(), local_replicas, options)
    }

    /// The example policy's files, built in.
    pub(crate) fn example(local_replicas: u64) -> Result<(Self, Vec<ConfigError>), ConfigErrors> {
        let files: Vec<(String, String)> = EXAMPLE_ENVOY_FILES
            .iter()
            .map(|(name, text)| (name.to_string(), text.to_string()))
            .collect();
        Self::from_files(
            &files,
            "built in".into(),
            local_replicas,
            EnvoyFileOptions::default(),
        )
    }

    /// Loads files given as `(name, text)`, all or nothing.
    fn from_files(
        files: &[(String, String)],
        origin: String,
        local_replicas: u64,
        options: EnvoyFileOptions,
    ) -> Result<(Self, Vec<ConfigError>), ConfigErrors> {
        let EnvoyLoad { config, warnings } = load_envoy_files(files, options)?;
        let specs = || {
            config
                .limits()
                .iter()
                .map(|limit| (limit.file.as_str(), &limit.spec))
        };
        let limits = engine_limits(specs(), 1)?;
        let local_limits = engine_limits(specs(), local_replicas)?;
        Ok((
            Self {
                config,
                limits,
                local_limits,
                origin,
            },
            warnings,
        ))
    }
}

/// The envoyproxy/ratelimit files of `dir`, as `(path, text)`, by name.
fn read_envoy_dir(dir: &Path) -> Result<Vec<(String, String)>, ConfigErrors> {
    let origin = dir.display().to_string();
    let failed =
        |file: String, message: String| ConfigErrors::from(ConfigError::whole_file(&file, message));
    let entries = std::fs::read_dir(dir).map_err(|error| {
        failed(
            origin.clone(),
            format!("cannot read the directory: {error}"),
        )
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or(".");
            !name.starts_with('.')
                && (name.ends_with(".yaml") || name.ends_with(".yml"))
                && path.is_file()
        })
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let name = path.display().to_string();
            std::fs::read_to_string(&path)
                .map(|text| (name.clone(), text))
                .map_err(|error| failed(name, format!("cannot read the file: {error}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_limits_out_of_range_are_config_errors_with_path_and_value() {
        let errors = LoadedPolicy::from_text(
            "rules: [{name: ok, rate: 1/s}, {name: huge, rate: 5000000000/m}]",
            Format::Yaml,
            "big.yaml",
        )
        .unwrap_err();
        assert_eq!(
            errors.to_string(),
            "big.yaml: rules[1].rate: window limits are at most 4294967295 per window, got 5000000000 (value: \"5000000000/m\")"
        );
    }

    #[test]
    fn each_refused_limit_is_reported_once() {
        let errors = LoadedPolicy::from_text(
            "settings: {local_replicas: 3}\nrules: [{name: a, rate: 5000000000/m}, {name: b, limits: [{rate: 20000/m, algorithm: sliding_log}]}]",
            Format::Yaml,
            "two.yaml",
        )
        .unwrap_err();
        assert_eq!(
            errors.to_string(),
            "two.yaml: rules[0].rate: window limits are at most 4294967295 per window, got 5000000000 (value: \"5000000000/m\")\n\
             two.yaml: rules[1].limits[0]: sliding_log keeps one entry per hit and allows limits up to 10000, got 20000 (value: \"20000/m\")"
        );
    }

    #[test]
    fn limits_the_engine_refuses_are_reported_with_every_other_error() {
        let errors = LoadedPolicy::from_text(
            "rules: [{name: huge, rate: 5000000000/m}, {name: typo, rate: 1/m, colour: red}, {name: bad, rate: 1/x}]",
            Format::Yaml,
            "all.yaml",
        )
        .unwrap_err();
        let paths: Vec<&str> = errors.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["rules[0].rate", "rules[1].colour", "rules[2].rate"]);
    }

    #[test]
    fn a_zero_rate_blocks_whatever_the_algorithm() {
        let loaded = LoadedPolicy::from_text(
            "rules: [{name: off, limits: [{rate: 0/m, algorithm: token_bucket}]}]",
            Format::Yaml,
            "zero.yaml",
        )
        .unwrap();
        assert_eq!(loaded.limits[0].capacity(), 0);
    }
}
