//! Reloading the configuration while serving: the policy file and the
//! envoyproxy/ratelimit directory are read and validated together, and put
//! in force together, or not at all (the running configuration stays, with
//! every error logged). Counters live in the backends, which a reload never
//! touches, so they survive it.

use crate::config::{LoadedEnvoy, LoadedPolicy};
use crate::decider::Decider;
use anyhow::Context;
use notify::Watcher;
use ratelimitd_policy::{ConfigError, ConfigErrors};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Where the configuration comes from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The policy file (`None`: the built-in example, with its built-in
    /// envoyproxy/ratelimit files).
    pub policy_file: Option<PathBuf>,
    /// `--envoy-config-dir`, which overrides the policy's `envoy.config_dir`.
    pub envoy_dir_flag: Option<PathBuf>,
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
        let policy = match &self.policy_file {
            Some(path) => LoadedPolicy::from_file(path)?,
            None => LoadedPolicy::example()?,
        };
        let local_replicas = policy.policy.settings.local_replicas;
        let envoy = match self.envoy_dir(&policy) {
            Some(dir) => Some(LoadedEnvoy::from_dir(&dir, local_replicas)?),
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
        self.policy_file.is_none() && self.envoy_dir_flag.is_none()
    }
}

/// Reloads `decider`'s configuration from `sources`, all or nothing. A
/// change to `backends:` or `store:` cannot be applied to open connections
/// and stores: it is refused (restart to apply it).
pub fn reload(decider: &Decider, sources: &Sources) -> Result<Loaded, ConfigErrors> {
    let result = validated_for(decider, sources);
    decider.backends().metrics.config_load(result.is_ok());
    let loaded = result?;
    decider.replace(loaded.policy.clone(), loaded.envoy.clone());
    Ok(loaded)
}

/// Loads `sources` and checks that `decider` can take it.
fn validated_for(decider: &Decider, sources: &Sources) -> Result<Loaded, ConfigErrors> {
    let loaded = sources.load()?;
    let running = decider.policy();
    let origin = &loaded.policy.origin;
    let refuse = |section: &str| {
        ConfigErrors(vec![ConfigError {
            file: origin.clone(),
            path: section.into(),
            value: None,
            message: "changed: a reload cannot apply this; restart ratelimitd to apply it".into(),
        }])
    };
    if loaded.policy.policy.backends() != running.policy.backends() {
        return Err(refuse("backends"));
    }
    if loaded.policy.policy.store != running.policy.store {
        return Err(refuse("store"));
    }
    Ok(loaded)
}

/// Reloads and logs the outcome.
pub fn reload_and_log(decider: &Decider, sources: &Sources, cause: &str) {
    if sources.is_built_in() {
        tracing::warn!(
            cause,
            "cannot reload: the example policy built into the binary is running ({} was not found); start with --config FILE to reload a file",
            crate::config::EXAMPLE_POLICY_PATH
        );
        return;
    }
    match reload(decider, sources) {
        Ok(loaded) => {
            log_warnings(&loaded.warnings);
            tracing::info!(
                cause,
                config = %loaded.policy.origin,
                rules = loaded.policy.policy.rules().len(),
                envoy_domains = loaded.envoy.as_ref().map_or(0, |e| e.config.files().len()),
                "configuration reloaded"
            );
        }
        Err(errors) => {
            for error in &errors.0 {
                tracing::error!(cause, %error, "configuration rejected; the running one stays");
            }
        }
    }
}

/// Logs each warning.
pub fn log_warnings(warnings: &[ConfigError]) {
    for warning in warnings {
        tracing::warn!(%warning, "configuration accepted with a warning");
    }
}

/// How long to let a burst of file events settle before reloading (editors
/// and Kubernetes ConfigMap updates write in several steps).
const SETTLE: Duration = Duration::from_millis(200);

/// Reloads on SIGHUP and whenever the policy file or a file of the
/// envoyproxy/ratelimit directory changes. Directories are watched rather
/// than files, so replacing a file by rename and Kubernetes' `..data`
/// symlink swap are seen.
pub fn spawn_reloader(
    decider: Arc<Decider>,
    sources: Sources,
    envoy_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let (sender, mut causes) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
    // Events name absolute paths: compare with absolute ones (symbolic
    // links left as they are, so a ConfigMap's links keep their directory).
    let policy_file = sources
        .policy_file
        .as_deref()
        .map(std::path::absolute)
        .transpose()?;
    let envoy_dir = envoy_dir.as_deref().map(std::path::absolute).transpose()?;
    let watched_envoy_dir = envoy_dir.clone();
    let policy_dir = policy_file
        .as_ref()
        .and_then(|file| file.parent())
        .map(Path::to_path_buf);
    let file_events = sender.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        let relevant = event.paths.iter().any(|path| {
            let hidden_swap = path
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(".."));
            Some(path) == policy_file.as_ref()
                || hidden_swap
                || watched_envoy_dir
                    .as_deref()
                    .is_some_and(|dir| path.parent() == Some(dir))
        });
        if relevant {
            let _ = file_events.send("file change");
        }
    })?;
    for dir in policy_dir.iter().chain(&envoy_dir) {
        watcher
            .watch(dir, notify::RecursiveMode::NonRecursive)
            .with_context(|| format!("cannot watch {}", dir.display()))?;
    }
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                if sender.send("SIGHUP").is_err() {
                    return;
                }
            }
        });
    }
    tokio::spawn(async move {
        let _watcher = watcher;
        while let Some(cause) = causes.recv().await {
            tokio::time::sleep(SETTLE).await;
            while causes.try_recv().is_ok() {}
            let (decider, sources) = (decider.clone(), sources.clone());
            let _ = tokio::task::spawn_blocking(move || reload_and_log(&decider, &sources, cause))
                .await;
        }
    });
    Ok(())
}
