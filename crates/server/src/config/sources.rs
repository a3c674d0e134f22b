//! Where the configuration comes from (a policy file, or the built-in
//! example; an envoyproxy/ratelimit directory) and reading all of it into
//! one validated [`Loaded`], ready to be put in force at startup or on
//! reload.

use super::load::{LoadedEnvoy, LoadedPolicy};
use ratelimitd_policy::{ConfigError, ConfigErrors, Format};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the configuration comes from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The policy file (`None`: the built-in example, with its built-in
    /// envoyproxy/ratelimit files).
    pub policy_file: Option<PathBuf>,
    /// `--envoy-config-dir`, which overrides the policy's `envoy.config_dir`.
    pub envoy_dir_flag: Option<PathBuf>,
    /// `--merge-domain-configs`: several files may configure one domain,
    /// whatever the policy's `envoy.merge_domains` says.
    pub merge_envoy_domains: bool,
    /// The policy made from the reference service's environment
    /// (`--envoy-compat`), instead of a policy file.
    pub generated_policy: Option<Arc<GeneratedPolicy>>,
}

/// A policy written by ratelimitd itself (from the reference service's
/// environment), loaded as a policy file would be.
#[derive(Debug, Clone)]
pub struct GeneratedPolicy {
    /// What errors and logs call it.
    pub origin: String,
    /// The policy, as YAML.
    pub yaml: String,
}

/// A configuration read and validated, not yet in force.
#[derive(Debug)]
pub struct Loaded {
    /// The policy.
    pub policy: Arc<LoadedPolicy>,
    /// The envoyproxy/ratelimit files, if a directory is configured.
    pub envoy: Option<Arc<LoadedEnvoy>>,
    /// Harmless oddities to log.
    pub warnings: Vec<ConfigError>,
}

impl Sources {
    /// Reads and validates everything; every error, from every file.
    pub fn load(&self) -> Result<Loaded, ConfigErrors> {
        let policy = match (&self.policy_file, &self.generated_policy) {
            (Some(path), _) => LoadedPolicy::from_file(path)?,
            (None, Some(generated)) => {
                LoadedPolicy::from_text(&generated.yaml, Format::Yaml, &generated.origin)?
            }
            (None, None) => LoadedPolicy::example()?,
        };
        let local_replicas = policy.policy.settings.local_replicas;
        let mut options = policy.policy.envoy.files;
        options.merge_domains |= self.merge_envoy_domains;
        let envoy = match self.envoy_dir(&policy) {
            Some(dir) => Some(LoadedEnvoy::from_dir(&dir, local_replicas, options)?),
            None if self.is_built_in() => Some(LoadedEnvoy::example(local_replicas)?),
            None => None,
        };
        let (envoy, warnings) = match envoy {
            Some((envoy, warnings)) => (Some(Arc::new(envoy)), warnings),
            None => (None, Vec::new()),
        };
        Ok(Loaded {
            policy: Arc::new(policy),
            envoy,
            warnings,
        })
    }

    /// The envoyproxy/ratelimit directory: the flag, else the policy's
    /// `envoy.config_dir` (relative to the policy file's directory; the
    /// built-in example's files are built in too).
    pub fn envoy_dir(&self, policy: &LoadedPolicy) -> Option<PathBuf> {
        if let Some(dir) = &self.envoy_dir_flag {
            return Some(dir.clone());
        }
        let written = Path::new(policy.policy.envoy.config_dir.as_ref()?);
        let file = self.policy_file.as_ref()?;
        Some(file.parent().unwrap_or(Path::new(".")).join(written))
    }

    /// Whether nothing is read from files: the built-in example policy with
    /// its built-in envoyproxy/ratelimit files.
    pub fn is_built_in(&self) -> bool {
        self.policy_file.is_none()
            && self.generated_policy.is_none()
            && self.envoy_dir_flag.is_none()
    }
}
