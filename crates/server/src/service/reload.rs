//! Reloading the configuration while serving: the policy file and the
//! envoyproxy/ratelimit directory are read and validated together, and put
//! in force together, or not at all (the running configuration stays, with
//! every error logged). Counters live in the backends, which a reload never
//! touches, so they survive it; the backends' deny caches are dropped.

use crate::config::{Loaded, Sources, EXAMPLE_POLICY_PATH};
use crate::state::ServiceState;
use anyhow::Context;
use notify::Watcher;
use ratelimitd_policy::{ConfigError, ConfigErrors};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Reloads `state`'s configuration from `sources`, all or nothing. A
/// change to `backends:` or `store:` cannot be applied to open connections
/// and stores (and backend indices must keep their meaning): it is refused
/// (restart to apply it).
pub fn reload(state: &ServiceState, sources: &Sources) -> Result<Loaded, ConfigErrors> {
    let result = validated_for(state, sources);
    state.metrics().config_load(result.is_ok());
    let loaded = result?;
    state.replace(&loaded);
    state.backends().clear_deny_caches();
    Ok(loaded)
}

/// Loads `sources` and checks that `state` can take it.
fn validated_for(state: &ServiceState, sources: &Sources) -> Result<Loaded, ConfigErrors> {
    let loaded = sources.load()?;
    let running = state.policy();
    let origin = &loaded.policy.origin;
    let refuse = |section: &str| {
        ConfigErrors::from(ConfigError {
            file: origin.clone(),
            path: section.into(),
            value: None,
            message: "changed: a reload cannot apply this; restart ratelimitd to apply it".into(),
        })
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
pub fn reload_and_log(state: &ServiceState, sources: &Sources, cause: &str) {
    if sources.is_built_in() {
        tracing::warn!(
            cause,
            "cannot reload: the example policy built into the binary is running ({} was not found); start with --config FILE to reload a file",
            EXAMPLE_POLICY_PATH
        );
        return;
    }
    match reload(state, sources) {
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

/// Reloads on SIGHUP and, with `watch_files`, whenever the policy file or a
/// file of the envoyproxy/ratelimit directory changes. Directories are
/// watched rather than files, so replacing a file by rename and Kubernetes'
/// `..data` symlink swap are seen.
pub fn spawn_reloader(
    state: Arc<ServiceState>,
    sources: Sources,
    watch_files: bool,
) -> anyhow::Result<()> {
    let (sender, mut causes) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
    let watcher = if watch_files {
        Some(watch(
            &sources,
            sources.envoy_dir(&state.policy()),
            sender.clone(),
        )?)
    } else {
        None
    };
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
            let (state, sources) = (state.clone(), sources.clone());
            let _ =
                tokio::task::spawn_blocking(move || reload_and_log(&state, &sources, cause)).await;
        }
    });
    Ok(())
}

/// Watches the directories of the policy file and of the
/// envoyproxy/ratelimit files, sending a cause for each relevant change.
fn watch(
    sources: &Sources,
    envoy_dir: Option<PathBuf>,
    causes: tokio::sync::mpsc::UnboundedSender<&'static str>,
) -> anyhow::Result<notify::RecommendedWatcher> {
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
            let _ = causes.send("file change");
        }
    })?;
    for dir in policy_dir.iter().chain(&envoy_dir) {
        watcher
            .watch(dir, notify::RecursiveMode::NonRecursive)
            .with_context(|| format!("cannot watch {}", dir.display()))?;
    }
    Ok(watcher)
}
